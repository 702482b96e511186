// cutout-wasm for Node.js (20+): the same engine, run in-process. Inputs may be file paths,
// file:// or http(s) URLs, Buffers/Uint8Arrays or Blobs; models are cached on disk in the same
// place as the `cutout` CLI's ($CUTOUT_CACHE_DIR or $XDG_CACHE_HOME/cutout, ~/.cache/cutout).
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile, open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import manifest from './manifest.js';
import { resolveModel } from './model-spec.js';
import * as relaxedGlue from './pkg-relaxed/cutout_wasm.js';
import * as simdGlue from './pkg-simd/cutout_wasm.js';

const RELAXED_SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15, 65, 2, 253, 15, 253, 128, 2, 11]);
const STAGES = ['decode', 'preprocess', 'inference', 'postprocess', 'encode'];

let wasm = null;
let engine = null;
let engineKey = null;
let queue = Promise.resolve();
let defaults = { modelBaseUrl: null };

export function configure(options) {
  defaults = { ...defaults, ...options };
}

function abortError() {
  return new DOMException('The operation was aborted.', 'AbortError');
}

async function initWasm() {
  if (wasm) return wasm;
  const relaxed = WebAssembly.validate(RELAXED_SIMD_PROBE);
  const glue = relaxed ? relaxedGlue : simdGlue;
  const file = new URL(`./pkg-${relaxed ? 'relaxed' : 'simd'}/cutout_wasm_bg.wasm`, import.meta.url);
  glue.initSync({ module: await readFile(file) });
  wasm = glue;
  return wasm;
}

export function cacheDir() {
  if (process.env.CUTOUT_CACHE_DIR) return process.env.CUTOUT_CACHE_DIR;
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'cutout');
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

async function readIfValid(path, expected) {
  try {
    const bytes = await readFile(path);
    return !expected || sha256(bytes) === expected ? bytes : null;
  } catch {
    return null;
  }
}

// Downloads to `<path>.part`, verifies, then renames: nothing partial or unverified is kept.
async function download(url, path, expected, onProgress) {
  await mkdir(dirname(path), { recursive: true });
  const partial = `${path}.part`;
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`could not download the model: HTTP ${response.status} from ${url}`);
    const total = Number(response.headers.get('content-length')) || 0;
    const file = await open(partial, 'w');
    const hash = createHash('sha256');
    let loaded = 0;
    try {
      for await (const chunk of response.body) {
        hash.update(chunk);
        await file.write(chunk);
        loaded += chunk.length;
        onProgress({ stage: 'download', loaded, total });
      }
    } catch (e) {
      throw new Error(`the model download from ${url} was interrupted after ${loaded} of ${total || '?'} bytes: ${e.message}`);
    } finally {
      await file.close();
    }
    if (total && loaded !== total) throw new Error(`the model download from ${url} was cut after ${loaded} of ${total} bytes`);
    const actual = hash.digest('hex');
    if (expected && actual !== expected) {
      throw new Error(`model file hash mismatch: expected sha256 ${expected}, got ${actual} (${url} is not the expected model; nothing was kept)`);
    }
    await rename(partial, path);
  } catch (e) {
    await rm(partial, { force: true });
    throw e;
  }
}

async function modelBytes(spec, options) {
  const onProgress = options.onProgress || (() => {});
  if (spec && typeof spec === 'object' && spec.path) {
    const bytes = await readFile(spec.path);
    const known = manifest.models.find((m) => m.sha256 === sha256(bytes));
    const expected = spec.sha256 ? String(spec.sha256).toLowerCase() : null;
    return { bytes, key: `path:${spec.path}`, entry: { ...(spec.entry || known || manifest.models.find((m) => m.id === manifest.default)), sha256: expected } };
  }
  const model = resolveModel(spec, manifest, { modelBaseUrl: options.modelBaseUrl ?? defaults.modelBaseUrl, baseUrl: 'file:///' });
  if (model.url.startsWith('file:')) return modelBytes({ path: fileURLToPath(model.url), sha256: model.sha256, entry: model.entry }, options);
  const name = model.entry?.url === model.url || model.key.startsWith('id:') ? model.entry.file : `url-${sha256(model.url).slice(0, 16)}/${model.url.split('/').pop()}`;
  const path = join(cacheDir(), 'models', name);
  let bytes = await readIfValid(path, model.sha256);
  if (!bytes) {
    await download(model.url, path, model.sha256, onProgress);
    bytes = await readFile(path);
  }
  return { bytes, key: model.key, entry: { ...model.entry, sha256: model.sha256 } };
}

async function loadModel(spec, options) {
  const w = await initWasm();
  const probeKey = JSON.stringify(spec ?? manifest.default);
  if (engine && engineKey === probeKey) return;
  const { bytes, entry } = await modelBytes(spec, options);
  engine?.free();
  engine = null;
  engine = new w.Engine(bytes, JSON.stringify(entry));
  engineKey = probeKey;
}

async function inputBytes(input) {
  if (input instanceof Uint8Array) return input; // Buffer too
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (typeof Blob !== 'undefined' && input instanceof Blob) return new Uint8Array(await input.arrayBuffer());
  const text = input instanceof URL ? input.href : String(input);
  if (/^https?:\/\//i.test(text)) {
    const response = await fetch(text);
    if (!response.ok) throw new Error(`could not fetch ${text}: HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  }
  const path = text.startsWith('file:') ? fileURLToPath(text) : text;
  try {
    return await readFile(path);
  } catch (e) {
    throw new Error(e.code === 'ENOENT' ? `no such file: ${path}` : `cannot read ${path}: ${e.message}`);
  }
}

function enqueue(signal, task) {
  const run = queue.then(() => {
    if (signal?.aborted) throw abortError();
    return task();
  });
  queue = run.catch(() => {});
  return run;
}

/**
 * Removes the background of `input` (path, URL, Buffer, Blob) and resolves to a Blob (PNG by
 * default). `savePath` also writes it there (never over an existing file unless `overwrite`).
 */
export function removeBackground(input, options = {}) {
  const onProgress = options.onProgress || (() => {});
  return enqueue(options.signal, async () => {
    const bytes = await inputBytes(input);
    await loadModel(options.model, options);
    if (options.signal?.aborted) throw abortError();
    const engineOptions = { output: options.output || 'png', background: options.background || null, crop: options.crop ?? false, maxPixels: options.maxPixels };
    let output;
    try {
      output = engine.processEncoded(bytes, engineOptions, (stage) => onProgress({ stage, loaded: STAGES.indexOf(stage), total: STAGES.length }));
    } catch (e) {
      throw new Error(e.message);
    }
    const result = output.takeBytes();
    const blob = new Blob([result], { type: output.mime });
    output.free();
    onProgress({ stage: 'done', loaded: STAGES.length, total: STAGES.length });
    if (options.savePath) {
      await mkdir(dirname(options.savePath), { recursive: true });
      await writeFile(options.savePath, result, { flag: options.overwrite ? 'w' : 'wx' }).catch((e) => {
        throw new Error(e.code === 'EEXIST' ? `${options.savePath} already exists (pass overwrite: true to replace it)` : e.message);
      });
    }
    return blob;
  });
}

export function segment(input, options = {}) {
  return removeBackground(input, { ...options, output: 'mask', background: null, crop: false });
}

export function preload(model, options = {}) {
  return enqueue(options.signal, () => loadModel(model, options));
}

/** Deletes the models cached on disk. */
export async function clearModelCache() {
  engine?.free();
  engine = null;
  engineKey = null;
  await rm(join(cacheDir(), 'models'), { recursive: true, force: true });
  return true;
}

export const models = manifest;
