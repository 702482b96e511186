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

// The pool's workers normally start in well under a second. One that never starts (its script
// blocked or never served, a browser limit on nested workers) would leave the engine waiting for
// ever: after this long the single-threaded build takes over, and the page says why.
const THREAD_POOL_TIMEOUT_MS = 10_000;

function withinTime(promise, ms, message) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
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
  try {
    await instantiate(variant);
  } catch (e) {
    // Offline with only the single-threaded build kept (it was the one a first, not yet
    // isolated, visit used): that one, rather than nothing.
    if (variant !== 'threads') throw e;
    console.warn(`Cutout: the threads build could not be loaded (${e.message}); using one thread`);
    variant = 'relaxed';
    await instantiate(variant);
  }
  let threads = 1;
  let notice;
  if (wasm.threadsSupported()) {
    try {
      const seconds = THREAD_POOL_TIMEOUT_MS / 1000;
      await withinTime(wasm.initThreadPool(wanted), THREAD_POOL_TIMEOUT_MS, `its ${wanted} worker threads did not start within ${seconds} s`);
      threads = wasm.useThreads(wanted);
    } catch (e) {
      // No threads after all (nested workers refused or never started): the single-threaded build.
      notice = `the thread pool failed (${e.message}), so one thread is used`;
      console.warn(`Cutout: ${notice}`);
      variant = 'relaxed';
      await instantiate(variant);
    }
  }
  const manifest = JSON.parse(wasm.manifestJson());
  const wasmUrl = BUILDS[variant].wasm.href;
  post({ type: 'ready', id, variant, threads, notice, manifest, wasmUrl, instantiateMs: performance.now() - started });
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
  let stored = false;
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
    stored = result.stored;
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
      stored,
      bytes: bytes.length,
      fetchMs: fetchedMs,
      compileMs: performance.now() - compileStarted,
      variant,
      memoryBytes: wasmMemory.buffer.byteLength,
      phases: engine.loadPhases(),
    },
  });
}

// Decoded photos of the latest results, by the client's key, so that touch-ups and new settings
// re-composite without decoding again; anything else is decoded again from its file.
const DECODED_KEPT = 2;
/** @type {Map<string, {pixels: Uint8Array, width: number, height: number}>} */
const decodedByKey = new Map();

function keepDecoded(key, decoded) {
  decodedByKey.delete(key);
  decodedByKey.set(key, decoded);
  while (decodedByKey.size > DECODED_KEPT) decodedByKey.delete(decodedByKey.keys().next().value);
}

// Decodes in the worker so the page never blocks: the browser's decoder for what it knows
// (JPEG, PNG, WebP, GIF, AVIF; EXIF orientation applied), the engine's for the rest (TIFF, ...).
async function decode(file, maxPixels) {
  const bytes = new Uint8Array(await file.arrayBuffer());
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
    const data = context.getImageData(0, 0, width, height, { colorSpace: 'srgb' }).data;
    return { pixels: new Uint8Array(data.buffer), width, height };
  }
  if (headerError) throw headerError;
  const decoded = wasm.decodeRgba(bytes, maxPixels);
  const image = { width: decoded.width, height: decoded.height, pixels: decoded.takePixels() };
  decoded.free();
  return image;
}

/** @param {import('./protocol.js').ProcessRequest} request */
async function processImage({ id, file, pixels, options, keep }) {
  if (!engine) throw new Error('No model is loaded yet.');
  let lastPosted = 0;
  const stage = (name, fraction) => {
    // Inference reports after every node of the graph: pass on a few per second.
    const now = performance.now();
    if (fraction !== undefined && fraction < 1 && now - lastPosted < 100) return;
    lastPosted = now;
    post({ type: 'stage', id, stage: name, fraction });
  };
  let image = pixels && { pixels: new Uint8Array(pixels.buffer), width: pixels.width, height: pixels.height };
  if (!image) {
    stage('decode');
    image = await decode(file, options.maxPixels || 50_000_000);
  }
  const output = engine.processRgba(image.pixels, image.width, image.height, options, stage);
  if (keep) keepDecoded(keep, image);
  finish(id, output, options, image);
}

// A result made again from the photo and its alpha, without the model: touch-up strokes, other
// output settings, a background picture.
/** @param {import('./protocol.js').CompositeRequest} request */
async function compositeImage({ id, key, file, alpha, strokes, options, backgroundFile }) {
  const maxPixels = options.maxPixels || 50_000_000;
  let image = decodedByKey.get(key);
  if (!image) image = await decode(file, maxPixels);
  keepDecoded(key, image);
  const background = backgroundFile ? await decode(backgroundFile, maxPixels) : null;
  const output = wasm.composite(
    image.pixels,
    image.width,
    image.height,
    new Uint8Array(alpha),
    JSON.stringify(strokes),
    options,
    background?.pixels,
    background?.width ?? 0,
    background?.height ?? 0,
  );
  finish(id, output, options, image);
}

function finish(id, output, options, input) {
  const result = output.takeBytes();
  const mask = options.withMask ? output.takeMaskPng() : null;
  const alpha = options.withAlpha ? output.takeAlpha() : null;
  const view = options.withView ? output.takeView() : null;
  /** @type {import('./protocol.js').DoneReply} */
  const message = {
    type: 'done',
    id,
    bytes: result.buffer,
    mime: output.mime,
    width: output.width,
    height: output.height,
    mask: mask && mask.buffer,
    alpha: alpha && alpha.buffer,
    view: view && view.buffer,
    inputWidth: input.width,
    inputHeight: input.height,
    memoryBytes: wasmMemory.buffer.byteLength,
  };
  output.free();
  const transfer = [result, mask, alpha, view].filter(Boolean).map((bytes) => bytes.buffer);
  post(message, transfer);
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
      case 'composite':
        try {
          await (data.type === 'process' ? processImage(data) : compositeImage(data));
        } catch (e) {
          post({ type: 'failed', id: data.id, message: e.message || String(e), code: errorCode(e) });
          if (isTrap(e)) post({ type: 'fatal', message: 'The engine crashed; restarting it.' });
        }
        break;
      case 'forget':
        decodedByKey.delete(data.key);
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
