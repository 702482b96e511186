#!/usr/bin/env node
// `make bench-ab OTHER=dir`: the built site (www/dist, "new") against another build of it ("old",
// e.g. a copy of www/dist made before a change) in one headless Chromium, alternating old and new
// on each configuration, so that a change smaller than this shared machine's drift between
// benchmark runs still shows. Prints the median inference time of each and new / old.
//
//   node bench/ab.mjs OLD_DIST [--runs 5] [--model isnet_quint8.onnx] [--configs relaxed:1,default]
// Configurations (--configs): build:threads pairs, or `default` for the page's own choice (all
// cores); by default the relaxed build on 1 thread, and the page's default.
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { DIST, ROOT, launch, modelDir, serve } from '../tests/browser/harness.mjs';
import { ISOLATION_HEADERS } from '../www/serve.mjs';
import { IMAGE, median, option as optionOf, sha256Of } from './common.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => optionOf(args, name, fallback);
const other = args[0] && !args[0].startsWith('--') ? resolve(args[0]) : null;
const runs = Number(option('--runs', 5));
const file = option('--model', 'isnet_quint8.onnx');
const configs = option('--configs', 'relaxed:1,default')
  .split(',')
  .map((config) => {
    if (config === 'default') return {};
    const [variant, threads] = config.split(':');
    return { variant, threads: Number(threads) };
  });
const models = modelDir();
for (const [missing, what] of [
  [!other || !existsSync(join(other, 'worker.js')), 'usage: ab.mjs OLD_DIST (a built copy of www/dist)'],
  [!existsSync(join(DIST, 'worker.js')), 'www/dist is not built (make build)'],
  [!models || !existsSync(join(models, file)), `no ${file} in ../shared/models or target/models`],
  [!existsSync(IMAGE), `${IMAGE} not found`],
]) {
  if (missing) {
    console.error(what);
    process.exit(2);
  }
}

const server = await serve({
  mounts: { '/bench': join(ROOT, 'bench/page'), '/old': other, '/models': models },
  handlers: { '/bench-input.jpg': (req, res) => res.writeHead(200, { 'Content-Type': 'image/jpeg', ...ISOLATION_HEADERS }).end(readFileSync(IMAGE)) },
  headersFor: (path) => (path.startsWith('/bench/') ? { 'Content-Security-Policy': null } : {}),
});
const browser = await launch();
const call = (fn, ...params) => browser.page.evaluate(([f, p]) => window.bench[f](...p), [fn, params]);
try {
  await browser.page.goto(`${server.base}/bench/index.html`);
  await browser.page.waitForFunction(() => document.body.dataset.ready === 'true');
  const { cores } = await call('environment');
  console.log(
    `${file}, example photo: ${runs} runs each after a warm-up, old and new alternating; ` +
      `${cpus()[0].model}, ${cores} cores, load average before ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  const spec = { modelUrl: `/models/${file}`, sha256: sha256Of(file) };
  for (const config of configs) {
    const builds = [];
    for (const [label, site] of [
      ['old', '/old'],
      ['new', ''],
    ]) {
      const started = await call('startCutout', label, { ...spec, ...config, site });
      builds.push({ label, started, times: [] });
    }
    for (let round = 0; round <= runs; round++) {
      for (const build of builds) {
        const { inferenceMs } = await call('runCutout', build.label);
        if (round > 0) build.times.push(inferenceMs);
      }
    }
    const [old, now] = builds.map((b) => median(b.times) / 1000);
    const { variant, threads } = builds[1].started;
    console.log(
      `  ${variant} build, ${threads} thread(s): old ${old.toFixed(2)} s, new ${now.toFixed(2)} s, ` +
        `new / old ${(now / old).toFixed(3)}   (old ${builds[0].times.map((t) => (t / 1000).toFixed(2)).join(' ')}; ` +
        `new ${builds[1].times.map((t) => (t / 1000).toFixed(2)).join(' ')})`,
    );
    for (const build of builds) await call('stop', build.label);
  }
} finally {
  await browser.close();
  await server.close();
}
