// The engine's thread in Node: a worker_threads worker that owns the wasm instance and the model
// (loaded once per worker), so inference never blocks the caller's event loop. The messages are
// typed in protocol.js (NodeRequest, NodeReply). node.js posts it
// {type: 'load', spec, modelBaseUrl} and {type: 'process', id, bytes, options}; it answers with
// {type: 'progress', ...}, {type: 'loaded'}, {type: 'done', id, bytes, mime} or
// {type: 'failed', id, message, code}.
//
// Models are cached on disk in the same place and layout as the `cutout` CLI's
// ($CUTOUT_CACHE_DIR or $XDG_CACHE_HOME/cutout, ~/.cache/cutout), with the same record of hashes
// trusted on first download.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parentPort } from 'node:worker_threads';
import manifest from './manifest.js';
import { cacheDir } from './node-cache.js';
import { errorCode } from './protocol.js';
import { resolveModel } from './model-spec.js';
import * as relaxedGlue from './pkg-relaxed/cutout_wasm.js';
import * as simdGlue from './pkg-simd/cutout_wasm.js';
import { relaxedSimd } from './vendor/wasm-feature-detect.js';

const TRUST_FILE = 'trusted-downloads.json';

/** @type {(message: import('./protocol.js').NodeReply, transfer?: ArrayBuffer[]) => void} */
const post = (message, transfer) => parentPort.postMessage(message, transfer);

let wasm = null;
let engine = null;
let engineKey = null;

async function initWasm() {
  if (wasm) return wasm;
  const relaxed = await relaxedSimd();
  const glue = relaxed ? relaxedGlue : simdGlue;
  const file = new URL(`./pkg-${relaxed ? 'relaxed' : 'simd'}/cutout_wasm_bg.wasm`, import.meta.url);
  glue.initSync({ module: await readFile(file) });
  wasm = glue;
  return wasm;
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const trustPath = () => join(cacheDir(), 'models', TRUST_FILE);

async function trustedHashes() {
  try {
    return JSON.parse(await readFile(trustPath(), 'utf8')).sha256_by_url || {};
  } catch (e) {
    if (e.code === 'ENOENT') return {};
    throw new Error(`${trustPath()} is damaged (${e.message}): delete it to trust downloads anew`);
  }
}

async function recordTrust(url, hash) {
  const all = { ...(await trustedHashes()), [url]: hash };
  const partial = `${trustPath()}.part`;
  await writeFile(partial, JSON.stringify({ sha256_by_url: all }, null, 2));
  await rename(partial, trustPath());
}

async function readIfValid(path, expected) {
  try {
    const bytes = await readFile(path);
    return !expected || sha256(bytes) === expected ? bytes : null;
  } catch {
    return null;
  }
}

function httpError(status, url) {
  if (status === 401 || status === 403) {
    return `could not download the model: HTTP ${status} from ${url}: the host refuses anonymous downloads (a gated model needs an account); self-host it (modelBaseUrl) or choose an open model`;
  }
  if (status === 404 || status === 410) return `could not download the model: HTTP ${status} from ${url}: there is no such file there (moved or removed)`;
  return `could not download the model: HTTP ${status} from ${url}`;
}

// One response body appended to `file`, hashed into `hashes`; returns its byte count.
async function fetchInto(url, file, hashes, expectedSize, onBytes) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`could not fetch ${url} (offline, or the host is unreachable): ${e.cause?.message || e.message}`);
  }
  if (!response.ok) throw new Error(httpError(response.status, url));
  const announced = Number(response.headers.get('content-length')) || 0;
  let loaded = 0;
  try {
    for await (const chunk of response.body) {
      loaded += chunk.length;
      if (expectedSize && loaded > expectedSize)
        throw Object.assign(new Error(`${url} sent more than the expected ${expectedSize} bytes: wrong file`), { code: 'model-oversized' });
      for (const hash of hashes) hash.update(chunk);
      await file.write(chunk);
      onBytes(chunk.length);
    }
  } catch (e) {
    if (e.code === 'model-oversized') throw e;
    throw new Error(`the model download from ${url} was interrupted after ${loaded} of ${announced || expectedSize || '?'} bytes: ${e.message}`);
  }
  const total = announced || expectedSize;
  if (total && loaded !== total) throw new Error(`the model download from ${url} was cut after ${loaded} of ${total} bytes`);
  return loaded;
}

// Downloads to `<path>.part` (one file, or the parts in order, each checked against its own
// hash), verifies, then renames: nothing partial or unverified is kept. Returns the sha256.
async function download(model, path, expected, onProgress) {
  await mkdir(dirname(path), { recursive: true });
  const partial = `${path}.part`;
  const whole = createHash('sha256');
  const total = model.size || 0;
  let loaded = 0;
  const onBytes = (n) => onProgress({ stage: 'download', loaded: (loaded += n), total });
  const file = await open(partial, 'w');
  try {
    if (model.parts?.length) {
      for (const [index, part] of model.parts.entries()) {
        const own = createHash('sha256');
        await fetchInto(part.url, file, [whole, own], part.size, onBytes);
        const actual = own.digest('hex');
        if (actual !== part.sha256)
          throw new Error(`model part ${index + 1} of ${model.parts.length} (${part.url}) has sha256 ${actual}, expected ${part.sha256}: nothing was kept`);
      }
    } else {
      await fetchInto(model.url, file, [whole], model.size, onBytes);
    }
    await file.close();
    const actual = whole.digest('hex');
    if (expected && actual !== expected) {
      throw new Error(`model file hash mismatch: expected sha256 ${expected}, got ${actual} (${model.url} is not the expected model; nothing was kept)`);
    }
    await rename(partial, path);
    return actual;
  } catch (e) {
    await file.close().catch(() => {});
    await rm(partial, { force: true });
    throw e;
  }
}

async function modelBytes(spec, modelBaseUrl, onProgress) {
  if (spec && typeof spec === 'object' && spec.path) {
    const bytes = await readFile(spec.path);
    const known = manifest.models.find((m) => m.sha256 === sha256(bytes));
    const expected = spec.sha256 ? String(spec.sha256).toLowerCase() : null;
    return { bytes, entry: { ...(spec.entry || known || manifest.models.find((m) => m.id === manifest.default)), sha256: expected } };
  }
  const model = resolveModel(spec, manifest, { modelBaseUrl, baseUrl: 'file:///' });
  if (model.url.startsWith('file:')) return modelBytes({ path: fileURLToPath(model.url), sha256: model.sha256, entry: model.entry }, modelBaseUrl, onProgress);
  const byId = model.key.startsWith('id:');
  const name = byId ? model.entry.file : `url-${sha256(model.url).slice(0, 16)}/${model.url.split('/').pop()}`;
  const path = join(cacheDir(), 'models', name);
  const trustKey = model.parts?.length ? model.parts[0].url : model.url;
  const trusted = model.sha256 ? null : (await trustedHashes())[trustKey] || null;
  const expected = model.sha256 || trusted;
  let bytes = await readIfValid(path, expected);
  if (!bytes) {
    const actual = await download(model, path, expected, onProgress);
    if (!expected) await recordTrust(trustKey, actual);
    bytes = await readFile(path);
  }
  // No sha256 for the engine: readIfValid or download checked these bytes (Node's native
  // hash); hashing them again in wasm is slow.
  return { bytes, entry: { ...model.entry, sha256: null } };
}

async function load({ spec, modelBaseUrl }) {
  const w = await initWasm();
  const key = JSON.stringify([spec ?? manifest.default, modelBaseUrl]);
  if (engine && engineKey === key) return;
  const { bytes, entry } = await modelBytes(spec, modelBaseUrl, (progress) => post({ type: 'progress', ...progress }));
  engine?.free();
  engine = null;
  engine = new w.Engine(bytes, JSON.stringify(entry));
  engineKey = key;
}

function processImage({ id, bytes, options }) {
  let reported = 0;
  const output = engine.processEncoded(bytes, options, (stage, fraction) => {
    // Inference reports after every node of the graph: pass on each whole percent.
    if (fraction !== undefined && fraction < 1 && fraction - reported < 0.01) return;
    if (fraction !== undefined) reported = fraction;
    post({ type: 'stage', id, stage, fraction });
  });
  const result = output.takeBytes();
  const mime = output.mime;
  output.free();
  post({ type: 'done', id, bytes: result, mime }, [result.buffer]);
}

parentPort.on('message', async (/** @type {import('./protocol.js').NodeRequest} */ message) => {
  try {
    if (message.type === 'load') {
      await load(message);
      post({ type: 'loaded' });
    } else if (message.type === 'process') {
      processImage(message);
    }
  } catch (e) {
    post({ type: 'failed', id: message.type === 'process' ? message.id : null, message: e.message || String(e), code: errorCode(e) });
  }
});
