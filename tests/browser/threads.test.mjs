// Threads: on a static host that sends no isolation headers, the first visit runs the
// single-threaded build (and works); the service worker then adds COOP/COEP, so from the next
// visit the page is cross-origin isolated and runs the multi-threaded build on every core. A pool
// whose workers never start falls back to one thread after a bounded wait, and says so.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  DIST,
  ISNET_SHA256,
  SHARED,
  chromiumPath,
  photosMissing,
  inspectResult,
  itemInfo,
  launch,
  modelDir,
  serve,
  waitForItem,
  waitForModel,
} from './harness.mjs';

const models = modelDir();
const skip = !models ? 'the IS-Net model is not available (run models/fetch-isnet.sh)' : !chromiumPath() ? 'chromium is not installed' : false;
if (skip) console.log(`\n*** SKIPPING threads tests: ${skip} ***\n`);

let server;
let browser;
const MODEL = '/models/isnet_quint8.onnx';
const example = join(SHARED, 'eval/example_input.jpg');
const skipPhotos = skip || photosMissing(example);

before(async () => {
  if (skip) return;
  // A plain static host: no Cross-Origin-Opener-Policy / Embedder-Policy headers.
  const plainHost = () => ({ 'Cross-Origin-Opener-Policy': null, 'Cross-Origin-Embedder-Policy': null });
  server = await serve({ mounts: { '/models': models }, headersFor: plainHost });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function cutOutExample(page, name) {
  await page.setInputFiles('#file-input', { name, mimeType: 'image/jpeg', buffer: readFileSync(example) });
  assert.equal(await waitForItem(page, name), 'completed', (await itemInfo(page, name)).text);
  const result = await inspectResult(page, (await itemInfo(page, name)).href, [
    [538, 868, 5],
    [598, 698, 5],
    [0, 0, 32],
    [901, 0, 32],
  ]);
  assert.deepEqual([result.width, result.height], [933, 1405], 'the input size');
  result.alphas.slice(0, 2).forEach((a) => assert.ok(a >= 240, `subject opaque: ${result.alphas}`));
  result.alphas.slice(2).forEach((a) => assert.ok(a <= 8, `corners transparent: ${result.alphas}`));
}

test('no isolation: one thread; after the service worker isolates the page: all cores', { skip: skipPhotos }, async () => {
  const { page } = browser;
  const link = `${server.base}/?model=${MODEL}&sha256=${ISNET_SHA256}`;
  await page.goto(link);
  await waitForModel(page);
  assert.equal(await page.evaluate(() => crossOriginIsolated), false);
  const first = await page.evaluate(() => ({ ...document.body.dataset }));
  assert.equal(first.variant, 'relaxed');
  assert.equal(first.threads, '1');
  await cutOutExample(page, 'first-visit.jpg');

  await page.evaluate(() => navigator.serviceWorker.ready);
  await page.reload();
  await waitForModel(page);
  assert.equal(await page.evaluate(() => crossOriginIsolated), true, 'the service worker isolates the page');
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const second = await page.evaluate(() => ({ ...document.body.dataset }));
  assert.equal(second.variant, cores > 1 ? 'threads' : 'relaxed');
  assert.equal(Number(second.threads), cores);
  assert.match(await page.textContent('#engine-info'), new RegExp(`${cores} thread`));
  await cutOutExample(page, 'second-visit.jpg');
});

test('a thread pool whose workers never start: one thread after a bounded wait, said on the page', { skip: skipPhotos }, async () => {
  // The pool's worker script: served to the engine's worker, which imports it, never answered
  // as the script of a pool worker.
  const snippets = join(DIST, 'pkg-threads/snippets');
  const rayon = readdirSync(snippets).find((dir) => dir.startsWith('wasm-bindgen-rayon-'));
  const helpers = `/pkg-threads/snippets/${rayon}/src/workerHelpers.js`;
  const source = readFileSync(join(DIST, helpers));
  const held = [];
  const poolScript = (req, res) => {
    // A Worker's own script is fetched in same-origin mode; the imports of a module in cors mode.
    if (req.headers['sec-fetch-dest'] === 'worker' && req.headers['sec-fetch-mode'] === 'same-origin') return held.push(res);
    res.writeHead(200, { 'Content-Type': 'text/javascript', 'Cache-Control': 'no-store', 'Cross-Origin-Resource-Policy': 'same-origin' });
    res.end(source);
  };
  const isolated = await serve({ mounts: { '/models': models }, handlers: { [helpers]: poolScript } });
  // Without the service worker, which would serve the script from its cache once it controls
  // the page.
  const own = await launch({ serviceWorkers: 'block' });
  try {
    const { page } = own;
    const started = Date.now();
    await page.goto(`${isolated.base}/?model=${MODEL}&sha256=${ISNET_SHA256}`);
    await waitForModel(page);
    assert.equal(await page.evaluate(() => crossOriginIsolated), true);
    assert.ok(held.length >= 1, 'the pool asked for its workers');
    const engine = await page.evaluate(() => ({ ...document.body.dataset }));
    assert.equal(engine.variant, 'relaxed');
    assert.equal(engine.threads, '1');
    assert.match(
      await page.textContent('#engine-info'),
      /1 thread \(the thread pool failed \(its \d+ worker threads did not start within 10 s\), so one thread is used\)/,
    );
    assert.ok(Date.now() - started < 60_000, `ready after ${Date.now() - started} ms`);
    await cutOutExample(page, 'no-pool.jpg');
  } finally {
    await own.close();
    held.forEach((res) => res.destroy());
    await isolated.close();
  }
});
