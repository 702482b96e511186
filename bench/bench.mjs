#!/usr/bin/env node
// `make bench`, browser part: the built site (www/dist) and onnxruntime-web side by side in one
// headless Chromium session, on the IS-Net models and the example photo. Alternates Cutout and
// the peer (A B A B), reports medians after one warm-up run each.
//
//   node bench/bench.mjs [--runs 3] [--models isnet_quint8.onnx,isnet_fp16.onnx] [--quick] [--profile [build]]
// --quick: one run, quint8 only, no SIMD-only comparison (a short smoke run).
// --profile [simd|relaxed|threads]: also print where Cutout's inference time goes, per op type,
// inside the browser: on the page's default configuration, or on the named build on one thread.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DIST, ROOT, launch, modelDir, serve } from '../tests/browser/harness.mjs';
import { ISOLATION_HEADERS } from '../www/serve.mjs';
import { readPng, writePng } from '../tests/package/png.mjs';
import { IMAGE, median, option as optionOf, sha256Of } from './common.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => optionOf(args, name, fallback);
const quick = args.includes('--quick');
const runs = quick ? 1 : Number(option('--runs', 3));
const modelFiles = option('--models', quick ? 'isnet_quint8.onnx' : 'isnet_quint8.onnx,isnet_fp16.onnx').split(',');
const ORT_DIST = join(ROOT, 'bench/node_modules/onnxruntime-web/dist');
// The native CLI (tract, held to onnxruntime's masks by `make parity`): the browser's mask of the
// same pixels must stay within the same bound, whichever kernels the wasm build runs.
const CLI = process.env.CUTOUT_BIN || join(process.env.CARGO_TARGET_DIR || join(ROOT, 'target'), 'release/cutout');

const seconds = (ms) => (ms / 1000).toFixed(2);
const pad = (value, width) => String(value).padStart(width);

function skip(reason) {
  console.log(`\n*** browser benchmark SKIPPED: ${reason} ***\n`);
  process.exit(0);
}

// Cutout's mask in the browser vs the CLI's on the pixels the page decoded (saved as PNG).
async function maskParity(worker, file) {
  const { width, height, rgba, mask } = await call('maskCutout', worker);
  const dir = mkdtempSync(join(tmpdir(), 'cutout-parity-'));
  try {
    writeFileSync(join(dir, 'photo.png'), writePng(width, height, Buffer.from(rgba, 'base64')));
    execFileSync(CLI, ['-i', join(dir, 'photo.png'), '-o', join(dir, 'mask.png'), '-m', join(models, file), '--mask-only', '-q'], { stdio: 'inherit' });
    const ours = readPng(Buffer.from(mask, 'base64'));
    const native = readPng(readFileSync(join(dir, 'mask.png')));
    if (ours.width !== native.width || ours.height !== native.height) throw new Error('the masks differ in size');
    let sum = 0;
    let max = 0;
    for (let y = 0; y < ours.height; y++) {
      for (let x = 0; x < ours.width; x++) {
        const delta = Math.abs(ours.alphaAt(x, y) - native.alphaAt(x, y));
        sum += delta;
        max = Math.max(max, delta);
      }
    }
    return { mean: sum / (ours.width * ours.height), max };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const models = modelDir();
if (!models) skip('no IS-Net model in ../shared/models or target/models (models/fetch-isnet.sh)');
if (!existsSync(IMAGE)) skip(`${IMAGE} not found`);
if (!existsSync(join(DIST, 'worker.js'))) skip('www/dist is not built (make build)');
if (!existsSync(ORT_DIST)) skip('onnxruntime-web is not installed (cd bench && npm ci)');

// The server sends COOP + COEP (cross-origin isolation) by default, so both engines may use threads.
const server = await serve({
  mounts: { '/bench': join(ROOT, 'bench/page'), '/ort': ORT_DIST, '/models': models },
  handlers: {
    '/bench-input.jpg': (req, res) => res.writeHead(200, { 'Content-Type': 'image/jpeg', ...ISOLATION_HEADERS }).end(readFileSync(IMAGE)),
  },
  // The benchmark's own pages and the peer's files run without the app's CSP.
  headersFor: (path) => (path.startsWith('/bench/') || path.startsWith('/ort/') ? { 'Content-Security-Policy': null } : {}),
});
const loadBefore = loadavg();
const browser = await launch();
const { page } = browser;
const call = (fn, ...params) => page.evaluate(([f, p]) => window.bench[f](...p), [fn, params]);

try {
  await page.goto(`${server.base}/bench/index.html`);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  const env = await call('environment');
  const cores = env.cores;
  const threadCounts = [...new Set([1, cores])];
  console.log(
    `browser benchmark: ${env.userAgent.match(/Chrome\/[\d.]+/)?.[0] || env.userAgent}, ${cores} cores, ` +
      `cross-origin isolated: ${env.crossOriginIsolated}, ${cpus()[0].model}`,
  );
  console.log(
    `example photo, median of ${runs} after one warm-up, Cutout and onnxruntime-web alternating; ` +
      `load average before: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`,
  );

  const rows = [];
  const startups = [];
  const parities = [];
  let memoryBytes = 0;
  for (const file of modelFiles) {
    if (!existsSync(join(models, file))) {
      console.log(`${file}: skipped, not in ${models}`);
      continue;
    }
    const spec = { modelUrl: `/models/${file}`, sha256: sha256Of(file) };
    // Cold start (model fetched and stored), then second visits (model from the Cache API): the
    // median of three, each after the browser has been idle for a moment, as a later visit
    // would be (Chromium finishes compiling the wasm in the background after a cold start).
    const cold = await call('startCutout', 'cutout', spec);
    const visits = [];
    for (let visit = 0; visit < 3; visit++) {
      await new Promise((done) => setTimeout(done, 3000));
      visits.push(await call('startCutout', 'cutout', spec));
    }
    if (!visits.every((v) => v.fromCache)) throw new Error('a second visit did not read the model from the cache');
    const second = [...visits].sort((x, y) => x.totalMs - y.totalMs)[1];
    startups.push({ file, cold, second });
    if (args.includes('--profile')) {
      // The page's default configuration, or one build on one thread (--profile relaxed).
      const named = option('--profile', null);
      const variant = named && !named.startsWith('--') ? named : null;
      const worker = variant ? 'cutout-profile' : 'cutout';
      if (variant) await call('startCutout', worker, { ...spec, variant, threads: 1 });
      await call('profileCutout', worker); // warm-up
      const ops = await call('profileCutout', worker);
      if (variant) await call('stop', worker);
      const total = ops.reduce((sum, op) => sum + op.seconds, 0);
      console.log(`\nCutout ${variant ?? cold.variant}, ${file}: ${total.toFixed(2)} s in ops`);
      for (const op of ops.slice(0, 15)) {
        console.log(
          `  ${((100 * op.seconds) / total).toFixed(1).padStart(5)}% ${op.seconds.toFixed(3).padStart(7)} s ${String(op.calls).padStart(5)} x ${op.op}`,
        );
      }
    }
    await call('stop', 'cutout');
    // One Cutout and one peer worker per thread count, all loaded up front, then alternated.
    const pairs = [];
    for (const threads of threadCounts) {
      const ours = await call('startCutout', `cutout-${threads}`, { ...spec, threads });
      const peer = await call('startPeer', `peer-${threads}`, { ...spec, threads });
      pairs.push({ threads, ours, peer, inference: [], endToEnd: [], theirs: [] });
    }
    startups.at(-1).peerCreateMs = pairs[0].peer.createMs;
    for (let round = 0; round <= runs; round++) {
      for (const pair of pairs) {
        const result = await call('runCutout', `cutout-${pair.threads}`);
        memoryBytes = Math.max(memoryBytes, result.memoryBytes);
        const ran = await call('runPeer', `peer-${pair.threads}`);
        process.stderr.write(
          `  ${file} ${pair.threads} thread(s) round ${round}${round ? '' : ' (warm-up)'}: ` +
            `Cutout ${seconds(result.inferenceMs)} s, ort-web ${seconds(ran.inferenceMs)} s\n`,
        );
        if (round === 0) continue;
        pair.inference.push(result.inferenceMs);
        pair.endToEnd.push(result.endToEndMs);
        pair.theirs.push(ran.inferenceMs);
      }
    }
    if (existsSync(CLI)) parities.push({ file, variant: pairs[0].ours.variant, ...(await maskParity(`cutout-${pairs[0].threads}`, file)) });
    for (const pair of pairs) {
      await call('stop', `cutout-${pair.threads}`);
      await call('stop', `peer-${pair.threads}`);
      rows.push({
        file,
        threads: pair.threads,
        cutoutThreads: pair.ours.threads,
        variant: pair.ours.variant,
        ours: median(pair.inference),
        endToEnd: median(pair.endToEnd),
        theirs: median(pair.theirs),
      });
    }
    // The SIMD-only build (browsers without relaxed SIMD), for the quantized model.
    if (!quick && file === 'isnet_quint8.onnx') {
      await call('startCutout', 'cutout-simd', { ...spec, variant: 'simd', threads: 1 });
      const times = [];
      for (let round = 0; round <= runs; round++) {
        const result = await call('runCutout', 'cutout-simd');
        if (round > 0) times.push(result.inferenceMs);
      }
      await call('stop', 'cutout-simd');
      rows.push({
        file,
        threads: 1,
        cutoutThreads: 1,
        variant: 'simd',
        ours: median(times),
        endToEnd: null,
        theirs: rows.find((r) => r.file === file && r.threads === 1).theirs,
      });
    }
  }

  console.log(
    `\n${'model'.padEnd(18)} ${pad('threads', 7)} ${pad('build', 8)} ${pad('Cutout s', 9)} ${pad('ort-web s', 9)} ${pad('Cutout/ort', 10)} ${pad('e2e s', 6)}`,
  );
  for (const r of rows) {
    const threads = r.cutoutThreads === r.threads ? String(r.threads) : `${r.threads} (${r.cutoutThreads})`;
    console.log(
      `${r.file.padEnd(18)} ${pad(threads, 7)} ${pad(r.variant, 8)} ${pad(seconds(r.ours), 9)} ${pad(seconds(r.theirs), 9)} ` +
        `${pad((r.ours / r.theirs).toFixed(2), 10)} ${pad(r.endToEnd == null ? '-' : seconds(r.endToEnd), 6)}`,
    );
  }
  if (rows.some((r) => r.cutoutThreads !== r.threads)) console.log('  "2 (1)": ort-web on 2 threads, Cutout on the 1 it has');
  console.log('\nstart-up (Cutout: new worker -> model ready; ort-web: InferenceSession.create)');
  for (const { file, cold, second, peerCreateMs } of startups) {
    const line = (s) => `${seconds(s.totalMs)} s (instantiate ${seconds(s.instantiateMs)}, model ${seconds(s.fetchMs)}, prepare ${seconds(s.compileMs)})`;
    console.log(
      `  ${file} (${cold.variant} build, ${cold.threads} thread(s)): cold ${line(cold)};\n    second visit ${line(second)}; ort-web create ${seconds(peerCreateMs)} s`,
    );
    const phases = Object.entries(second.phases || {})
      .map(([phase, s]) => `${phase} ${s.toFixed(2)}`)
      .join(', ');
    console.log(`    preparing, second visit: ${phases} s`);
  }
  console.log(`\nmask parity, browser vs native CLI on the same decoded pixels (bound: mean 1 level = 1/255)`);
  if (!existsSync(CLI)) console.log(`  skipped: no CLI at ${CLI} (make cli)`);
  for (const p of parities) console.log(`  ${p.file} (${p.variant} build): mean |delta alpha| ${p.mean.toFixed(4)} levels, max ${p.max}`);
  console.log(`\nwasm linear memory after the runs (Cutout's peak): ${(memoryBytes / 1e6).toFixed(0)} MB`);
  for (const dir of readdirSync(DIST)
    .filter((d) => d.startsWith('pkg-'))
    .sort()) {
    const wasm = readFileSync(join(DIST, dir, 'cutout_wasm_bg.wasm'));
    console.log(`wasm ${dir}: ${(wasm.length / 1e6).toFixed(2)} MB raw, ${(gzipSync(wasm, { level: 9 }).length / 1e6).toFixed(2)} MB gzipped`);
  }
} finally {
  await browser.close();
  await server.close();
}
