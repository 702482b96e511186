#!/usr/bin/env node
// `bench/memory.py`'s browser column: one photo through the site's own worker (www/dist, the page's
// default build and threads) in headless Chromium, and the worker's wasm linear memory afterwards
// (wasm memory only grows, so this is its peak). Prints one JSON line.
//
//   node bench/memory-browser.mjs MODEL_FILE PHOTO.jpg
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { DIST, ROOT, launch, serve } from '../tests/browser/harness.mjs';
import { ISOLATION_HEADERS } from '../www/serve.mjs';
import { sha256Of } from './common.mjs';

const [modelPath, photo] = process.argv.slice(2).map((path) => resolve(path));
if (!modelPath || !photo) {
  console.error('usage: memory-browser.mjs MODEL_FILE PHOTO.jpg');
  process.exit(2);
}
if (!existsSync(join(DIST, 'worker.js'))) {
  console.error('www/dist is not built (make build)');
  process.exit(2);
}
const server = await serve({
  mounts: { '/bench': join(ROOT, 'bench/page'), '/models': dirname(modelPath) },
  handlers: {
    '/bench-input.jpg': (req, res) => res.writeHead(200, { 'Content-Type': 'image/jpeg', ...ISOLATION_HEADERS }).end(readFileSync(photo)),
  },
  headersFor: (path) => (path.startsWith('/bench/') ? { 'Content-Security-Policy': null } : {}),
});
const browser = await launch();
try {
  const { page } = browser;
  const call = (fn, ...params) => page.evaluate(([f, p]) => window.bench[f](...p), [fn, params]);
  await page.goto(`${server.base}/bench/index.html`);
  await page.waitForFunction(() => document.body.dataset.ready === 'true');
  const spec = { modelUrl: `/models/${basename(modelPath)}`, sha256: sha256Of(basename(modelPath)) };
  const started = await call('startCutout', 'cutout', spec);
  const result = await call('runCutout', 'cutout');
  console.log(JSON.stringify({ variant: started.variant, threads: started.threads, memoryMb: result.memoryBytes / 1e6, seconds: result.endToEndMs / 1000 }));
} finally {
  await browser.close();
  await server.close();
}
