// The peer: onnxruntime-web (pinned in bench/package.json) in a module worker, as
// @imgly/background-removal and transformers.js run it, on the same ONNX file and photo.
//   page -> worker: {type: 'load', modelUrl, imageUrl, threads} | {type: 'run'}
//   worker -> page: {type: 'loaded', createMs, threads} | {type: 'ran', inferenceMs, maskMean} | {type: 'error', message}
import * as ort from '/ort/ort.wasm.min.mjs';

const SIZE = 1024;
let session = null;
let feeds = null;

// The model's input: the photo resized to 1024x1024 by the browser, planar RGB, pixel/255 - 0.5.
async function inputTensor(imageUrl) {
  const blob = await (await fetch(imageUrl)).blob();
  const bitmap = await createImageBitmap(blob, { resizeWidth: SIZE, resizeHeight: SIZE, resizeQuality: 'high' });
  const context = new OffscreenCanvas(SIZE, SIZE).getContext('2d');
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, SIZE, SIZE).data;
  const planar = new Float32Array(3 * SIZE * SIZE);
  for (let i = 0; i < SIZE * SIZE; i++) {
    for (let c = 0; c < 3; c++) planar[c * SIZE * SIZE + i] = rgba[4 * i + c] / 255 - 0.5;
  }
  return new ort.Tensor('float32', planar, [1, 3, SIZE, SIZE]);
}

self.onmessage = async ({ data }) => {
  try {
    if (data.type === 'load') {
      ort.env.wasm.numThreads = data.threads;
      ort.env.wasm.wasmPaths = '/ort/';
      const bytes = new Uint8Array(await (await fetch(data.modelUrl)).arrayBuffer());
      const started = performance.now();
      session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
      const createMs = performance.now() - started;
      feeds = { [session.inputNames[0]]: await inputTensor(data.imageUrl) };
      self.postMessage({ type: 'loaded', createMs, threads: ort.env.wasm.numThreads });
    } else if (data.type === 'run') {
      const started = performance.now();
      const results = await session.run(feeds, [session.outputNames[0]]);
      const inferenceMs = performance.now() - started;
      const mask = results[session.outputNames[0]].data;
      let sum = 0;
      for (let i = 0; i < mask.length; i++) sum += mask[i];
      for (const tensor of Object.values(results)) tensor.dispose?.();
      self.postMessage({ type: 'ran', inferenceMs, maskMean: sum / mask.length });
    }
  } catch (e) {
    self.postMessage({ type: 'error', message: e.message || String(e) });
  }
};
