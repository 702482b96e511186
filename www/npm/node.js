// cutout-wasm for Node.js (20+): the same engine, in a worker_threads worker (node-engine.js), so
// the event loop keeps running during an inference. Inputs may be file paths, file:// or
// http(s) URLs, Buffers/Uint8Arrays or Blobs; models are cached on disk in the same place as the
// `cutout` CLI's ($CUTOUT_CACHE_DIR or $XDG_CACHE_HOME/cutout, ~/.cache/cutout).
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import manifest from './manifest.js';
import { cacheDir } from './node-cache.js';
import { STAGES, engineOptions } from './protocol.js';

export { cacheDir };

let worker = null;
let queue = Promise.resolve();
let defaults = { modelBaseUrl: null };

/** Sets package-wide defaults, e.g. `configure({ modelBaseUrl: 'https://my.host/models/' })`. */
export function configure(options) {
  defaults = { ...defaults, ...options };
}

function abortError() {
  return new DOMException('The operation was aborted.', 'AbortError');
}

// The caller's Node options, less `--input-type`: a worker inherits them, and Node refuses that
// one in a worker ("can only be used with string input"), so `node --input-type=module -e` works.
function workerExecArgv() {
  const options = [];
  for (let i = 0; i < process.execArgv.length; i++) {
    const option = process.execArgv[i];
    if (option === '--input-type') i++;
    else if (!option.startsWith('--input-type=')) options.push(option);
  }
  return options;
}

function ensureWorker() {
  if (!worker) {
    worker = new Worker(new URL('./node-engine.js', import.meta.url), { execArgv: workerExecArgv() });
    // An idle engine thread must not keep the caller's process alive.
    worker.unref();
  }
  return worker;
}

function stopWorker() {
  worker?.terminate();
  worker = null;
}

// One request to the engine thread; `handle` sees its messages until it settles the promise.
function request(message, transfer, handle, signal) {
  const w = ensureWorker();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      stopWorker(); // the engine cannot be interrupted mid-call: a fresh thread takes the next call
      settle(reject, abortError());
    };
    const onMessage = (data) =>
      handle(
        data,
        (value) => settle(resolve, value),
        (error) => settle(reject, error),
      );
    const onError = (error) => {
      stopWorker();
      settle(reject, new Error(`the Cutout engine thread failed: ${error.message}`));
    };
    const onExit = (code) => settle(reject, new Error(`the Cutout engine thread stopped (exit code ${code})`));
    function settle(done, value) {
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
      signal?.removeEventListener('abort', onAbort);
      w.unref();
      done(value);
    }
    w.ref();
    w.on('message', onMessage);
    w.on('error', onError);
    w.on('exit', onExit);
    signal?.addEventListener('abort', onAbort, { once: true });
    w.postMessage(message, transfer);
  });
}

function enqueue(signal, task) {
  const run = queue.then(() => {
    if (signal?.aborted) throw abortError();
    return task();
  });
  queue = run.catch(() => {});
  return run;
}

function loadModel(spec, options) {
  const onProgress = options.onProgress || (() => {});
  const message = { type: 'load', spec: spec ?? null, modelBaseUrl: options.modelBaseUrl ?? defaults.modelBaseUrl };
  return request(
    message,
    [],
    (data, resolve, reject) => {
      if (data.type === 'progress') onProgress({ stage: data.stage, loaded: data.loaded, total: data.total });
      else if (data.type === 'loaded') resolve();
      else if (data.type === 'failed') reject(Object.assign(new Error(data.message), { code: data.code }));
    },
    options.signal,
  );
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
    const copy = new Uint8Array(bytes); // transferred to the engine thread; the caller keeps its buffer
    const { bytes: result, mime } = await request(
      { type: 'process', id: 1, bytes: copy, options: engineOptions(options) },
      [copy.buffer],
      (data, resolve, reject) => {
        if (data.type === 'stage') onProgress({ stage: data.stage, loaded: STAGES.indexOf(data.stage) + (data.fraction ?? 0), total: STAGES.length });
        else if (data.type === 'done') resolve(data);
        else if (data.type === 'failed') reject(Object.assign(new Error(data.message), { code: data.code }));
      },
      options.signal,
    );
    const blob = new Blob([result], { type: mime });
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
  stopWorker();
  await rm(join(cacheDir(), 'models'), { recursive: true, force: true });
  return true;
}

/** The built-in model manifest: ids, names, sizes, licences and sources. `models.default` is
 * the model used when none is named. */
export const models = manifest;
