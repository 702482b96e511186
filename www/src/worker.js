// The worker owns the wasm engine and the model; the page only posts messages. The messages are
// typed in protocol.js; every reply echoes its request's id.
/** @typedef {import('./protocol.js').Request} Request */
/** @typedef {import('./protocol.js').Reply} Reply */
import { relaxedSimd, simd } from './vendor/wasm-feature-detect.js';
import { errorCode } from './protocol.js';
import { fetchModel, listCachedModels, deleteCachedModel } from './models.js';
// Static imports and literal URLs, so bundlers (Vite, webpack, esbuild) find every file.
import * as relaxedGlue from './pkg-relaxed/cutout_wasm.js';
import * as simdGlue from './pkg-simd/cutout_wasm.js';
import * as threadsGlue from './pkg-threads/cutout_wasm.js';

// threads: relaxed SIMD + a pool of Web Workers on shared memory (cross-origin isolated pages).
const BUILDS = {
  threads: { glue: threadsGlue, wasm: new URL('./pkg-threads/cutout_wasm_bg.wasm', import.meta.url) },
  relaxed: { glue: relaxedGlue, wasm: new URL('./pkg-relaxed/cutout_wasm_bg.wasm', import.meta.url) },
  simd: { glue: simdGlue, wasm: new URL('./pkg-simd/cutout_wasm_bg.wasm', import.meta.url) },
};

let wasm = null; // the glue module (Engine, probeDimensions, ...)
let wasmMemory = null; // the instance's linear memory: its size is the engine's peak footprint
let variant = null;
let engine = null;
let engineKey = null;
let loading = Promise.resolve();

/** @type {(message: Reply, transfer?: Transferable[]) => void} */
const post = (message, transfer = []) => self.postMessage(message, transfer);

// ?variant= forces a build, ?threads=N caps the pool (tests, the benchmark, site owners).
const params = new URL(self.location.href).searchParams;

function requestedThreads() {
  const param = Math.floor(Number(params.get('threads')));
  return param >= 1 ? param : navigator.hardwareConcurrency || 1;
}

async function pickVariant(threads) {
  const forced = params.get('variant');
  if (forced in BUILDS) return forced;
  const relaxed = await relaxedSimd();
  // Shared memory, which threads need, exists only on cross-origin isolated pages.
  if (relaxed && threads > 1 && self.crossOriginIsolated) return 'threads';
  if (relaxed) return 'relaxed';
  if (await simd()) return 'simd';
  return null;
}

async function instantiate(name) {
  const { glue, wasm: wasmUrl } = BUILDS[name];
  const exports = await glue.default({ module_or_path: wasmUrl });
  wasm = glue;
  wasmMemory = exports.memory;
}

async function init(id) {
  const wanted = requestedThreads();
  variant = await pickVariant(wanted);
  if (!variant) throw new Error('This browser does not support WebAssembly SIMD, which Cutout needs. Please use a current Chrome, Edge, Firefox or Safari.');
  const started = performance.now();
  await instantiate(variant);
  let threads = 1;
  if (wasm.threadsSupported()) {
    try {
      await wasm.initThreadPool(wanted);
      threads = wasm.useThreads(wanted);
    } catch (e) {
      // No threads after all (e.g. nested workers refused): the single-threaded build.
      console.warn(`Cutout: no thread pool (${e.message}); using one thread`);
      variant = 'relaxed';
      await instantiate(variant);
    }
  }
  const manifest = JSON.parse(wasm.manifestJson());
  post({ type: 'ready', id, variant, threads, manifest, instantiateMs: performance.now() - started });
}

async function loadModel(id, model) {
  const key = model.key;
  if (engine && engineKey === key) {
    post({ type: 'model-ready', id, info: { key, cached: true, reused: true } });
    return;
  }
  if (engine) {
    engine.free();
    engine = null;
    engineKey = null;
  }
  let bytes;
  let fromCache = false;
  // The sha256 the engine checks: a file's, if one was given. Downloaded or cached bytes were
  // checked by fetchModel (SubtleCrypto, native code); hashing them again in wasm is slow.
  let engineSha256 = null;
  const started = performance.now();
  if (model.file) {
    bytes = new Uint8Array(await model.file.arrayBuffer());
    engineSha256 = model.sha256 || null;
  } else {
    const result = await fetchModel(model, {
      onProgress: (loaded, total) => post({ type: 'model-progress', id, loaded, total }),
      onWarning: (message) => post({ type: 'model-status', id, state: 'warning', message }),
    });
    bytes = result.bytes;
    fromCache = result.fromCache;
  }
  const fetchedMs = performance.now() - started;
  post({ type: 'model-status', id, state: 'compiling', message: 'Preparing the model…' });
  const entry = { ...model.entry, sha256: engineSha256 };
  const compileStarted = performance.now();
  engine = new wasm.Engine(bytes, JSON.stringify(entry));
  engineKey = key;
  post({
    type: 'model-ready',
    id,
    info: {
      key,
      fromCache,
      bytes: bytes.length,
      fetchMs: fetchedMs,
      compileMs: performance.now() - compileStarted,
      variant,
      memoryBytes: wasmMemory.buffer.byteLength,
      phases: engine.loadPhases(),
    },
  });
}

// Decodes in the worker so the page never blocks: the browser's decoder for what it knows
// (JPEG, PNG, WebP, GIF, AVIF; EXIF orientation applied), the engine's for the rest (TIFF, ...).
/** @param {import('./protocol.js').ProcessRequest} request */
async function processImage({ id, file, pixels, options }) {
  if (!engine) throw new Error('No model is loaded yet.');
  const stage = (name) => post({ type: 'stage', id, stage: name });
  if (pixels) {
    // Already decoded by the caller (ImageData, canvas): the buffer was transferred, not copied.
    finish(id, engine.processRgba(new Uint8Array(pixels.buffer), pixels.width, pixels.height, options, stage), options);
    return;
  }
  stage('decode');
  const bytes = new Uint8Array(await file.arrayBuffer());
  const maxPixels = options.maxPixels || 50_000_000;
  // The engine reads the header first: it refuses gigantic, empty and truncated images before
  // anything decodes them. Only formats it does not know (AVIF, ...) go to the browser unchecked.
  let headerError = null;
  try {
    wasm.probeDimensions(bytes, maxPixels);
  } catch (e) {
    if (e.name !== 'not-an-image') throw e;
    headerError = e;
  }
  let bitmap = null;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
  } catch {
    bitmap = null;
  }
  let output;
  if (bitmap) {
    const { width, height } = bitmap;
    if (width * height > maxPixels) {
      bitmap.close();
      // Same wording as the engine, which had no header parser for this format.
      throw Object.assign(new Error(`the image is too large: ${width}x${height} = ${width * height} pixels, the limit is ${maxPixels}`), {
        name: 'too-many-pixels',
      });
    }
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext('2d', { willReadFrequently: true });
    context.drawImage(bitmap, 0, 0);
    bitmap.close();
    const pixels = context.getImageData(0, 0, width, height, { colorSpace: 'srgb' }).data;
    output = engine.processRgba(pixels, width, height, options, stage);
  } else if (headerError) {
    throw headerError;
  } else {
    output = engine.processEncoded(bytes, options, stage);
  }
  finish(id, output, options);
}

function finish(id, output, options) {
  const result = output.takeBytes();
  const mask = options.withMask ? output.takeMaskPng() : null;
  /** @type {import('./protocol.js').DoneReply} */
  const message = {
    type: 'done',
    id,
    bytes: result.buffer,
    mime: output.mime,
    width: output.width,
    height: output.height,
    mask: mask && mask.buffer,
    memoryBytes: wasmMemory.buffer.byteLength,
  };
  output.free();
  post(message, mask ? [result.buffer, mask.buffer] : [result.buffer]);
}

// A wasm trap (a panic) leaves the instance unusable: say so, so the page restarts the worker.
function isTrap(e) {
  return e instanceof WebAssembly.RuntimeError;
}

self.onmessage = async (/** @type {MessageEvent<Request>} */ { data }) => {
  try {
    switch (data.type) {
      case 'init':
        await init(data.id);
        break;
      case 'load-model':
        // One load at a time, in order: a model chosen while another loads waits for it.
        loading = loading.then(async () => {
          try {
            await loadModel(data.id, data.model);
          } catch (e) {
            post({ type: 'model-error', id: data.id, key: data.model.key, message: e.message || String(e), code: e.code || null });
            if (isTrap(e)) post({ type: 'fatal', message: 'The engine crashed while loading the model.' });
          }
        });
        break;
      case 'process':
        try {
          await processImage(data);
        } catch (e) {
          post({ type: 'failed', id: data.id, message: e.message || String(e), code: errorCode(e) });
          if (isTrap(e)) post({ type: 'fatal', message: 'The engine crashed; restarting it.' });
        }
        break;
      case 'profile': {
        // Per-op inference times on already decoded pixels (the benchmark's --profile).
        const { pixels } = data;
        post({ type: 'profiled', id: data.id, ops: engine.profile(new Uint8Array(pixels.buffer), pixels.width, pixels.height) });
        break;
      }
      case 'list-models':
        post({ type: 'models', id: data.id, list: await listCachedModels() });
        break;
      case 'delete-model':
        await deleteCachedModel(data.url);
        post({ type: 'models', id: data.id, list: await listCachedModels() });
        break;
      default:
        throw new Error(`unknown message ${/** @type {any} */ (data).type}`);
    }
  } catch (e) {
    post({ type: 'fatal', message: e.message || String(e) });
  }
};
