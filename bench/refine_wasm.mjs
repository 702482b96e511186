// Edge refinement's cost in wasm (the npm package's Node engine: relaxed-SIMD build, one
// thread): the same photo with refinement on and off, alternating, and the time from the
// engine's `postprocess` stage to its `encode` stage (mask to photo size, refinement, render).
//
//   node bench/refine_wasm.mjs PHOTO [MODEL.onnx] [RUNS]
//
// Needs the package built (`make package`, into www/package/). A 12 MP photo from the example:
//   .venv/bin/python -c "from PIL import Image; Image.open('../shared/eval/example_input.jpg')
//     .convert('RGB').resize((2823, 4251)).save('/tmp/photo12mp.jpg', quality=95)"
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const [photo, modelPath = fileURLToPath(new URL('../../shared/models/isnet_fp16.onnx', import.meta.url)), runs = '3'] = process.argv.slice(2);
const packageEntry = new URL('../www/package/node.js', import.meta.url);
if (!photo || !existsSync(photo)) throw new Error('usage: node bench/refine_wasm.mjs PHOTO [MODEL.onnx] [RUNS]');
if (!existsSync(fileURLToPath(packageEntry))) throw new Error('www/package/ is missing: run `make package` first');
if (!existsSync(modelPath)) throw new Error(`no model at ${modelPath}`);

const { removeBackground } = await import(packageEntry.href);
const model = { path: modelPath, sha256: createHash('sha256').update(readFileSync(modelPath)).digest('hex') };
const seconds = { on: [], off: [] };
// One warm-up of each, as the first calls include compiling and the model's preparation.
for (let run = -1; run < Number(runs); run++) {
  for (const refine of [true, false]) {
    const stamps = {};
    await removeBackground(photo, { model, refine, onProgress: (p) => (stamps[p.stage] = performance.now()) });
    if (run >= 0) seconds[refine ? 'on' : 'off'].push((stamps.encode - stamps.postprocess) / 1000);
  }
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const [on, off] = [median(seconds.on), median(seconds.off)];
console.log(`postprocess stage, median of ${runs}: refined ${on.toFixed(3)} s, --no-refine ${off.toFixed(3)} s`);
console.log(
  `refinement adds ${(on - off).toFixed(3)} s (runs: on ${seconds.on.map((s) => s.toFixed(3)).join(' ')}; off ${seconds.off.map((s) => s.toFixed(3)).join(' ')})`,
);
