// The worker owns the wasm engine and the model; the page only posts messages.
//
// page -> worker: {type: 'init'} | {type: 'load-model', model} | {type: 'process', id, file, options}
//                 | {type: 'list-models'} | {type: 'delete-model', url} | {type: 'profile', pixels: {buffer, width, height}}
// worker -> page: {type: 'ready', variant, threads, manifest, instantiateMs} | {type: 'model-progress', loaded, total}
//                 | {type: 'model-status', state, message} | {type: 'model-ready', info}
//                 | {type: 'model-error', key, message, code} | {type: 'stage', id, stage}
//                 | {type: 'done', id, bytes, mime, width, height, mask, memoryBytes} (buffers transferred)
//                 | {type: 'failed', id, message} | {type: 'models', list} | {type: 'fatal', message}
//                 | {type: 'profiled', ops: [{op, calls, seconds}]}
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

// wasm-feature-detect style probes: a function returning i8x16.relaxed_swizzle(...) resp. i8x16.popcnt(...).
const RELAXED_SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15, 65, 2, 253, 15, 253, 128, 2, 11]);
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

let wasm = null; // the glue module (Engine, probeDimensions, ...)
let wasmMemory = null; // the instance's linear memory: its size is the engine's peak footprint
let variant = null;
let engine = null;
let engineKey = null;
let loading = Promise.resolve();

const post = (message, transfer = []) => self.postMessage(message, transfer);

// ?variant= forces a build, ?threads=N caps the pool (tests, the benchmark, site owners).
const params = new URL(self.location.href).searchParams;

function requestedThreads() {
  const param = Math.floor(Number(params.get('threads')));
  return param >= 1 ? param : navigator.hardwareConcurrency || 1;
}

function pickVariant(threads) {
  const forced = params.get('variant');
  if (forced in BUILDS) return forced;
  const relaxed = WebAssembly.validate(RELAXED_SIMD_PROBE);
  // Shared memory, which threads need, exists only on cross-origin isolated pages.
  if (relaxed && threads > 1 && self.crossOriginIsolated) return 'threads';
  if (relaxed) return 'relaxed';
  if (WebAssembly.validate(SIMD_PROBE)) return 'simd';
  return null;
}

async function instantiate(name) {
  const { glue, wasm: wasmUrl } = BUILDS[name];
  const exports = await glue.default({ module_or_path: wasmUrl });
  wasm = glue;
  wasmMemory = exports.memory;
}

async function init() {
  const wanted = requestedThreads();
  variant = pickVariant(wanted);
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
  post({ type: 'ready', variant, threads, manifest, instantiateMs: performance.now() - started });
}

async function loadModel(model) {
  const key = model.key;
  if (engine && engineKey === key) {
    post({ type: 'model-ready', info: { key, cached: true, reused: true } });
    return;
  }
  if (engine) {
    engine.free();
    engine = null;
    engineKey = null;
  }
  let bytes;
  let fromCache = false;
  const started = performance.now();
  if (model.file) {
    bytes = new Uint8Array(await model.file.arrayBuffer());
  } else {
    const result = await fetchModel(model, {
      onProgress: (loaded, total) => post({ type: 'model-progress', loaded, total }),
      onWarning: (message) => post({ type: 'model-status', state: 'warning', message }),
    });
    bytes = result.bytes;
    fromCache = result.fromCache;
  }
  const fetchedMs = performance.now() - started;
  post({ type: 'model-status', state: 'compiling', message: 'Preparing the model…' });
  const entry = { ...model.entry, sha256: model.sha256 || null };
  const compileStarted = performance.now();
  engine = new wasm.Engine(bytes, JSON.stringify(entry));
  engineKey = key;
  post({
    type: 'model-ready',
    info: { key, fromCache, bytes: bytes.length, fetchMs: fetchedMs, compileMs: performance.now() - compileStarted, variant, memoryBytes: wasmMemory.buffer.byteLength,
      phases: engine.loadPhases() },
  });
}

// Decodes in the worker so the page never blocks: the browser's decoder for what it knows
// (JPEG, PNG, WebP, GIF, AVIF; EXIF orientation applied), the engine's for the rest (TIFF, ...).
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
      throw Object.assign(new Error(`the image is too large: ${width}x${height} = ${width * height} pixels, the limit is ${maxPixels}`), { name: 'too-many-pixels' });
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
  const message = {
    type: 'done', id, bytes: result.buffer, mime: output.mime, width: output.width, height: output.height, mask: mask && mask.buffer,
    memoryBytes: wasmMemory.buffer.byteLength,
  };
  output.free();
  post(message, mask ? [result.buffer, mask.buffer] : [result.buffer]);
}

// A wasm trap (a panic) leaves the instance unusable: say so, so the page restarts the worker.
function isTrap(e) {
  return e instanceof WebAssembly.RuntimeError;
}

self.onmessage = async ({ data }) => {
  try {
    switch (data.type) {
      case 'init':
        await init();
        break;
      case 'load-model':
        // One load at a time, in order: a model chosen while another loads waits for it.
        loading = loading.then(async () => {
          try {
            await loadModel(data.model);
          } catch (e) {
            post({ type: 'model-error', key: data.model.key, message: e.message || String(e), code: e.code || null });
            if (isTrap(e)) post({ type: 'fatal', message: 'The engine crashed while loading the model.' });
          }
        });
        break;
      case 'process':
        try {
          await processImage(data);
        } catch (e) {
          post({ type: 'failed', id: data.id, message: e.message || String(e) });
          if (isTrap(e)) post({ type: 'fatal', message: 'The engine crashed; restarting it.' });
        }
        break;
      case 'profile': {
        // Per-op inference times on already decoded pixels (the benchmark's --profile).
        const { pixels } = data;
        post({ type: 'profiled', ops: engine.profile(new Uint8Array(pixels.buffer), pixels.width, pixels.height) });
        break;
      }
      case 'list-models':
        post({ type: 'models', list: await listCachedModels() });
        break;
      case 'delete-model':
        await deleteCachedModel(data.url);
        post({ type: 'models', list: await listCachedModels() });
        break;
      default:
        throw new Error(`unknown message ${data.type}`);
    }
  } catch (e) {
    post({ type: 'fatal', message: e.message || String(e) });
  }
};

