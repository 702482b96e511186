// cutout-wasm: background removal in the browser, on the user's device. The work runs in a Web
// Worker (the same worker as the Cutout web app); calls queue; models are cached in the Cache API.
import { EngineClient, STAGES } from './engine-client.js';
import { engineOptions } from './protocol.js';
import manifest from './manifest.js';
import { resolveModel } from './model-spec.js';
import { MODEL_CACHE } from './models.js';

// The worker's URL written out here, where bundlers (Vite, webpack, esbuild) look for it.
const client = new EngineClient(() => new Worker(new URL('./worker.js', import.meta.url), { type: 'module' }));
let queue = Promise.resolve();
let defaults = { modelBaseUrl: null };

/** Sets package-wide defaults, e.g. `configure({ modelBaseUrl: '/models/' })`. */
export function configure(options) {
  defaults = { ...defaults, ...options };
}

function abortError() {
  return new DOMException('The operation was aborted.', 'AbortError');
}

// Runs `task` after every earlier call, with abort support: an abort while the worker is busy
// terminates it (the engine cannot be interrupted mid-call); the next call starts a fresh one.
function enqueue(signal, task) {
  const run = queue.then(() => {
    if (signal?.aborted) throw abortError();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        client.stop(abortError());
        reject(abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      task()
        .then(resolve, reject)
        .finally(() => signal?.removeEventListener('abort', onAbort));
    });
  });
  queue = run.catch(() => {});
  return run;
}

async function loadModel(spec, options) {
  const model = resolveModel(spec, manifest, { modelBaseUrl: options.modelBaseUrl ?? defaults.modelBaseUrl, baseUrl: location.href });
  if (client.modelKey === model.key) return;
  const onProgress = options.onProgress || (() => {});
  await client.loadModel(model, { onProgress: (loaded, total) => onProgress({ stage: 'download', loaded, total }) });
}

async function toPayload(input) {
  if (input instanceof Blob) return { file: input };
  if (typeof input === 'string' || input instanceof URL) {
    const url = new URL(input, location.href);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`could not fetch ${url.href}: HTTP ${response.status}`);
    return { file: await response.blob() };
  }
  if (typeof ImageData !== 'undefined' && input instanceof ImageData) {
    const copy = new Uint8ClampedArray(input.data); // the caller keeps its ImageData
    return { pixels: { buffer: copy.buffer, width: input.width, height: input.height } };
  }
  const drawable =
    (typeof HTMLImageElement !== 'undefined' && input instanceof HTMLImageElement) ||
    (typeof HTMLCanvasElement !== 'undefined' && input instanceof HTMLCanvasElement) ||
    (typeof ImageBitmap !== 'undefined' && input instanceof ImageBitmap) ||
    (typeof OffscreenCanvas !== 'undefined' && input instanceof OffscreenCanvas);
  if (drawable) {
    if (input instanceof HTMLImageElement && !input.complete) await input.decode();
    const width = (input instanceof HTMLImageElement && input.naturalWidth) || input.width;
    const height = (input instanceof HTMLImageElement && input.naturalHeight) || input.height;
    if (!width || !height) throw new Error('the image has no pixels (not loaded yet?)');
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext('2d', { willReadFrequently: true });
    context.drawImage(input, 0, 0);
    const data = context.getImageData(0, 0, width, height).data;
    return { pixels: { buffer: data.buffer, width, height } };
  }
  throw new TypeError('input must be a Blob/File, ImageData, HTMLImageElement, HTMLCanvasElement, ImageBitmap, URL or string URL');
}

/**
 * Removes the background of `input` and resolves to the result as a Blob (PNG by default).
 * Options: model, output ('png' | 'webp' | 'mask'), background, crop, maxPixels, refine (edge
 * refinement, default true), onProgress, signal.
 */
export function removeBackground(input, options = {}) {
  const onProgress = options.onProgress || (() => {});
  return enqueue(options.signal, async () => {
    const payload = await toPayload(input);
    await loadModel(options.model, options);
    const { file, pixels } = payload;
    // Inference also reports the fraction of the graph done.
    const onStage = (stage, fraction = 0) => onProgress({ stage, loaded: STAGES.indexOf(stage) + fraction, total: STAGES.length });
    const done = await client.process({ file, pixels, options: engineOptions(options) }, { onStage });
    onProgress({ stage: 'done', loaded: STAGES.length, total: STAGES.length });
    return new Blob([done.bytes], { type: done.mime });
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
  client.modelKey = null;
  return typeof caches !== 'undefined' ? caches.delete(MODEL_CACHE) : false;
}

/** The built-in model manifest: ids, names, sizes, licences (with links) and sources; `models.default` is used when no model is named. */
export const models = manifest;
