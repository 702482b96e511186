// cutout-wasm: background removal in the browser, on the user's device. The work runs in a Web
// Worker (the same worker as the Cutout web app); calls queue; models are cached in the Cache API.
import manifest from './manifest.js';
import { resolveModel } from './model-spec.js';

const MODEL_CACHE = 'cutout-models-v1';
const STAGES = ['decode', 'preprocess', 'inference', 'postprocess', 'encode'];

let worker = null;
let workerReady = null;
let loadedKey = null;
let listener = () => {};
let queue = Promise.resolve();
let nextId = 1;
let defaults = { modelBaseUrl: null };

/** Sets package-wide defaults, e.g. `configure({ modelBaseUrl: '/models/' })`. */
export function configure(options) {
  defaults = { ...defaults, ...options };
}

function abortError() {
  return new DOMException('The operation was aborted.', 'AbortError');
}

function ensureWorker() {
  if (worker) return workerReady;
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = ({ data }) => listener(data);
  loadedKey = null;
  workerReady = new Promise((resolve, reject) => {
    listener = (data) => {
      if (data.type === 'ready') resolve();
      else if (data.type === 'fatal') reject(new Error(data.message));
    };
    worker.onerror = (event) => reject(new Error(`the Cutout worker could not start: ${event.message || 'unknown error'}`));
  });
  worker.postMessage({ type: 'init' });
  return workerReady;
}

function stopWorker() {
  worker?.terminate();
  worker = null;
  loadedKey = null;
}

// Runs `task` after every earlier call, with abort support: an abort while the worker is busy
// terminates it (the engine cannot be interrupted mid-call); the next call starts a fresh one.
function enqueue(signal, task) {
  const run = queue.then(() => {
    if (signal?.aborted) throw abortError();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        stopWorker();
        reject(abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      task().then(resolve, reject).finally(() => signal?.removeEventListener('abort', onAbort));
    });
  });
  queue = run.catch(() => {});
  return run;
}

function request(message, transfer, handle) {
  return new Promise((resolve, reject) => {
    listener = (data) => {
      if (data.type === 'fatal') {
        stopWorker();
        reject(new Error(data.message));
      } else handle(data, resolve, reject);
    };
    worker.postMessage(message, transfer);
  });
}

async function loadModel(spec, options) {
  await ensureWorker();
  const model = resolveModel(spec, manifest, { modelBaseUrl: options.modelBaseUrl ?? defaults.modelBaseUrl, baseUrl: location.href });
  if (loadedKey === model.key) return;
  const onProgress = options.onProgress || (() => {});
  await request({ type: 'load-model', model }, [], (data, resolve, reject) => {
    if (data.type === 'model-progress') onProgress({ stage: 'download', loaded: data.loaded, total: data.total });
    else if (data.type === 'model-ready') resolve();
    else if (data.type === 'model-error') reject(Object.assign(new Error(data.message), { code: data.code || undefined }));
  });
  loadedKey = model.key;
}

async function toPayload(input) {
  if (input instanceof Blob) return { file: input, transfer: [] };
  if (typeof input === 'string' || input instanceof URL) {
    const url = new URL(input, location.href);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`could not fetch ${url.href}: HTTP ${response.status}`);
    return { file: await response.blob(), transfer: [] };
  }
  if (typeof ImageData !== 'undefined' && input instanceof ImageData) {
    const copy = new Uint8ClampedArray(input.data); // the caller keeps its ImageData
    return { pixels: { buffer: copy.buffer, width: input.width, height: input.height }, transfer: [copy.buffer] };
  }
  const drawable =
    (typeof HTMLImageElement !== 'undefined' && input instanceof HTMLImageElement) ||
    (typeof HTMLCanvasElement !== 'undefined' && input instanceof HTMLCanvasElement) ||
    (typeof ImageBitmap !== 'undefined' && input instanceof ImageBitmap) ||
    (typeof OffscreenCanvas !== 'undefined' && input instanceof OffscreenCanvas);
  if (drawable) {
    if (input instanceof HTMLImageElement && !input.complete) await input.decode();
    const width = input.naturalWidth || input.width;
    const height = input.naturalHeight || input.height;
    if (!width || !height) throw new Error('the image has no pixels (not loaded yet?)');
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext('2d', { willReadFrequently: true });
    context.drawImage(input, 0, 0);
    const data = context.getImageData(0, 0, width, height).data;
    return { pixels: { buffer: data.buffer, width, height }, transfer: [data.buffer] };
  }
  throw new TypeError('input must be a Blob/File, ImageData, HTMLImageElement, HTMLCanvasElement, ImageBitmap, URL or string URL');
}

function engineOptions(options) {
  return {
    output: options.output || 'png',
    background: options.background || null,
    crop: options.crop ?? false,
    maxPixels: options.maxPixels,
    withMask: false,
  };
}

/**
 * Removes the background of `input` and resolves to the result as a Blob (PNG by default).
 * Options: model, output ('png' | 'webp' | 'mask'), background, crop, maxPixels, onProgress, signal.
 */
export function removeBackground(input, options = {}) {
  const onProgress = options.onProgress || (() => {});
  return enqueue(options.signal, async () => {
    const payload = await toPayload(input);
    await loadModel(options.model, options);
    const id = nextId++;
    const { file, pixels, transfer } = payload;
    return request({ type: 'process', id, file, pixels, options: engineOptions(options) }, transfer, (data, resolve, reject) => {
      if (data.id !== id) return;
      if (data.type === 'stage') onProgress({ stage: data.stage, loaded: STAGES.indexOf(data.stage), total: STAGES.length });
      else if (data.type === 'done') {
        onProgress({ stage: 'done', loaded: STAGES.length, total: STAGES.length });
        resolve(new Blob([data.bytes], { type: data.mime }));
      } else if (data.type === 'failed') reject(new Error(data.message));
    });
  });
}

/** The 8-bit alpha mask of `input` as a grey PNG Blob (255 = subject). */
export function segment(input, options = {}) {
  return removeBackground(input, { ...options, output: 'mask', background: null, crop: false });
}

/** Downloads (or loads from the cache) and prepares a model ahead of the first image. */
export function preload(model, options = {}) {
  return enqueue(options.signal, () => loadModel(model, options));
}

/** Deletes every model this package stored in the browser's Cache API. */
export async function clearModelCache() {
  loadedKey = null;
  return typeof caches !== 'undefined' ? caches.delete(MODEL_CACHE) : false;
}

/** The built-in model manifest: ids, names, sizes, licences (with links) and sources; `models.default` is used when no model is named. */
export const models = manifest;
