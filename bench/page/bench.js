// The benchmark page: drives the site's own worker (www/dist/worker.js, exactly what the app runs)
// and peer workers (onnxruntime-web) and returns timings to bench/bench.mjs.
import { resolveModel } from '/model-spec.js';

const IMAGE_URL = '/bench-input.jpg';
const workers = new Map();

// Posts `message` and resolves with the first reply of type `until`; `onOther` sees the rest.
function request(worker, message, until, onOther = () => {}) {
  return new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => {
      if (data.type === until) resolve(data);
      else if (['error', 'fatal', 'model-error', 'failed'].includes(data.type)) reject(new Error(`${data.type}: ${data.message}`));
      else onOther(data);
    };
    worker.onerror = (e) => reject(new Error(`worker error: ${e.message}`));
    worker.postMessage(message);
  });
}

function stop(name) {
  workers.get(name)?.worker.terminate();
  workers.delete(name);
}

// Starts the site's worker and loads a model: the start-up a visitor waits for.
// `threads` / `variant` unset: what the app itself picks (all cores, best build). `site`: the
// path another build of the site is served at (bench/ab.mjs), else the built one.
async function startCutout(name, { modelUrl, sha256, variant, threads, site = '' }) {
  stop(name);
  const started = performance.now();
  const query = new URLSearchParams();
  if (variant) query.set('variant', variant);
  if (threads) query.set('threads', threads);
  const worker = new Worker(`${site}/worker.js?${query}`, { type: 'module' });
  const ready = await request(worker, { type: 'init' }, 'ready');
  const readyMs = performance.now() - started;
  const model = resolveModel({ url: modelUrl, sha256 }, ready.manifest, { baseUrl: location.href });
  const loaded = await request(worker, { type: 'load-model', model }, 'model-ready');
  workers.set(name, { worker });
  return {
    variant: ready.variant,
    threads: ready.threads || 1,
    instantiateMs: readyMs,
    fetchMs: loaded.info.fetchMs,
    fromCache: loaded.info.fromCache,
    compileMs: loaded.info.compileMs,
    phases: loaded.info.phases,
    totalMs: performance.now() - started,
  };
}

// One photo through the whole pipeline (decode -> PNG); inference timed between its stages.
async function runCutout(name) {
  const { worker } = workers.get(name);
  const file = await (await fetch(IMAGE_URL)).blob();
  const stages = {};
  const started = performance.now();
  const done = await request(worker, { type: 'process', id: 1, file, options: {} }, 'done', (data) => {
    if (data.type === 'stage') stages[data.stage] = performance.now();
  });
  const endToEndMs = performance.now() - started;
  if (!(done.bytes.byteLength > 1000) || done.mime !== 'image/png') throw new Error('cutout produced no PNG');
  return { inferenceMs: stages.postprocess - stages.inference, endToEndMs, memoryBytes: done.memoryBytes };
}

// Per-op inference times inside the site's worker (decoded here, like the page does).
async function profileCutout(name) {
  const { worker } = workers.get(name);
  const bitmap = await createImageBitmap(await (await fetch(IMAGE_URL)).blob());
  const context = new OffscreenCanvas(bitmap.width, bitmap.height).getContext('2d');
  context.drawImage(bitmap, 0, 0);
  const { data, width, height } = context.getImageData(0, 0, bitmap.width, bitmap.height);
  const pixels = { buffer: data.buffer, width, height };
  const { ops } = await request(worker, { type: 'profile', pixels }, 'profiled');
  return ops;
}

// The photo as the page decodes it, and Cutout's mask of exactly those pixels (base64, for the
// mask parity check against the native CLI).
async function maskCutout(name) {
  const { worker } = workers.get(name);
  const bitmap = await createImageBitmap(await (await fetch(IMAGE_URL)).blob());
  const context = new OffscreenCanvas(bitmap.width, bitmap.height).getContext('2d');
  context.drawImage(bitmap, 0, 0);
  const { data, width, height } = context.getImageData(0, 0, bitmap.width, bitmap.height);
  const rgba = toBase64(data);
  const pixels = { buffer: data.buffer, width, height };
  const done = await request(worker, { type: 'process', id: 2, pixels, options: { withMask: true } }, 'done');
  return { width, height, rgba, mask: toBase64(new Uint8Array(done.mask)) };
}

function toBase64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

async function startPeer(name, { modelUrl, threads }) {
  stop(name);
  const worker = new Worker('/bench/peer-worker.js', { type: 'module' });
  const loaded = await request(worker, { type: 'load', modelUrl, imageUrl: IMAGE_URL, threads }, 'loaded');
  workers.set(name, { worker });
  return { createMs: loaded.createMs, threads: loaded.threads };
}

async function runPeer(name) {
  const { worker } = workers.get(name);
  const ran = await request(worker, { type: 'run' }, 'ran');
  if (!(ran.maskMean > 0.01 && ran.maskMean < 0.99)) throw new Error(`the peer's mask looks empty (mean ${ran.maskMean})`);
  return { inferenceMs: ran.inferenceMs };
}

window.bench = {
  startCutout,
  runCutout,
  profileCutout,
  maskCutout,
  startPeer,
  runPeer,
  stop,
  environment: () => ({ crossOriginIsolated, cores: navigator.hardwareConcurrency, userAgent: navigator.userAgent }),
};
document.body.dataset.ready = 'true';
