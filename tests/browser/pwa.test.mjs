// The offline PWA: after one online visit with a model cached, the app loads and cuts out a photo
// with the network off; it passes Chromium's installability checks; a new deployment is offered
// as a reload, keeps the cached models and removes the old shell cache.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  DIST,
  ISNET_SHA256,
  SHARED,
  cachedModelUrls,
  photosMissing,
  chromiumPath,
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
const skipPhotos = skip || photosMissing(join(SHARED, 'eval/example_input.jpg'));
if (skip) console.log(`\n*** SKIPPING PWA tests: ${skip} ***\n`);

// A copy of the site, so the update test can deploy a "new version" without touching www/dist.
const site = mkdtempSync(join(tmpdir(), 'cutout-site-'));
let server;
let browser;
const MODEL = '/models/isnet_quint8.onnx';

before(async () => {
  if (skip) return;
  cpSync(DIST, site, { recursive: true });
  server = await serve({ root: site, mounts: { '/models': models } });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const shellCaches = (page) => page.evaluate(async () => (await caches.keys()).filter((k) => k.startsWith('cutout-shell-')));

test('first visit caches the shell, then the app works offline', { skip: skipPhotos }, async () => {
  const { page, context } = browser;
  const link = `${server.base}/?model=${MODEL}&sha256=${ISNET_SHA256}`;
  await page.goto(link);
  await waitForModel(page);
  await page.waitForFunction(() => document.body.dataset.offlineReady === 'true', null, { timeout: 120_000 });
  const [shell] = await shellCaches(page);
  assert.ok(shell, 'a shell cache exists');
  const cached = await page.evaluate(async (name) => (await (await caches.open(name)).keys()).map((r) => new URL(r.url).pathname), shell);
  for (const path of ['/', '/index.html', '/app.js', '/viewer.js', '/worker.js', '/pkg-threads/cutout_wasm.js', '/manifest.webmanifest']) {
    assert.ok(cached.includes(path), `${path} is precached`);
  }
  assert.deepEqual(
    cached.filter((path) => path.endsWith('.wasm')),
    [],
    'no wasm build is precached',
  );
  // The build the page runs is kept, and only that one.
  const variant = await page.evaluate(() => document.body.dataset.variant);
  const used = `/pkg-${variant}/cutout_wasm_bg.wasm`;
  const keptBuilds = () =>
    page.evaluate(async () => {
      const names = (await caches.keys()).filter((k) => k.startsWith('cutout-build-'));
      const lists = await Promise.all(names.map(async (name) => (await (await caches.open(name)).keys()).map((r) => new URL(r.url).pathname)));
      return lists.flat();
    });
  await page.waitForFunction(
    async () =>
      (await caches.keys()).some((k) => k.startsWith('cutout-build-')) &&
      (await caches.open((await caches.keys()).find((k) => k.startsWith('cutout-build-')))).keys().then((keys) => keys.length > 0),
    null,
    { timeout: 60_000 },
  );
  assert.deepEqual(await keptBuilds(), [used]);

  // What the first visit cost: the bytes the server sent (gzipped, as static hosts send them).
  const wasmFetches = [...server.hits.entries()].filter(([path]) => path.endsWith('.wasm'));
  assert.deepEqual(wasmFetches, [[used, 1]], 'one wasm build, fetched once');
  const sent = [...server.sent.entries()];
  const modelBytes = server.sent.get(MODEL) || 0;
  const appBytes = sent.filter(([path]) => path !== MODEL).reduce((sum, [, bytes]) => sum + bytes, 0);
  console.log(
    `first visit: ${((appBytes + modelBytes) / 1e6).toFixed(1)} MB sent = the model ${(modelBytes / 1e6).toFixed(1)} MB + the app ${(appBytes / 1e6).toFixed(2)} MB (${sent.length} files)`,
  );
  assert.equal(modelBytes, statSync(join(models, 'isnet_quint8.onnx')).size, 'the model once');
  assert.ok(appBytes < 4.5e6, `the app beyond the model costs ${appBytes} bytes`);

  await context.setOffline(true);
  try {
    await page.reload();
    await waitForModel(page);
    assert.equal(await page.evaluate(() => navigator.onLine), false, 'really offline');
    await page.setInputFiles('#file-input', join(SHARED, 'eval/example_input.jpg'));
    assert.equal(await waitForItem(page, 'example_input.jpg'), 'completed');
    const info = await itemInfo(page, 'example_input.jpg');
    const result = await inspectResult(page, info.href, [
      [538, 868, 5],
      [0, 0, 32],
    ]);
    assert.deepEqual(result.signature, [137, 80, 78, 71, 13, 10, 26, 10]);
    assert.deepEqual([result.width, result.height], [933, 1405]);
    assert.ok(result.alphas[0] >= 240 && result.alphas[1] <= 8, `alphas ${result.alphas}`);
  } finally {
    await context.setOffline(false);
  }
});

test('the manifest and service worker pass Chromium’s installability checks', { skip }, async () => {
  const { page, context } = browser;
  await page.goto(`${server.base}/`);
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 60_000 });
  const cdp = await context.newCDPSession(page);
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  assert.deepEqual(installabilityErrors, [], JSON.stringify(installabilityErrors));
  const manifest = await cdp.send('Page.getAppManifest');
  assert.deepEqual(manifest.errors, [], JSON.stringify(manifest.errors));
  await cdp.detach();
});

test('a new deployment is offered as a reload, keeps the models and drops the old shell', { skip }, async () => {
  const { page } = browser;
  await page.goto(`${server.base}/?model=${MODEL}&sha256=${ISNET_SHA256}`);
  await waitForModel(page);
  const [oldShell] = await shellCaches(page);
  // Deploy: any change to a shell file changes the service worker's version.
  const sw = readFileSync(join(site, 'sw.js'), 'utf8');
  const version = sw.match(/const VERSION = '([0-9a-f]+)'/)[1];
  writeFileSync(join(site, 'sw.js'), sw.replace(version, 'feedfacecafe'));
  writeFileSync(join(site, 'style.css'), `${readFileSync(join(site, 'style.css'), 'utf8')}\n/* v2 */\n`);
  await page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).update());
  await page.waitForSelector('#update-banner:not([hidden])', { timeout: 120_000 });
  await Promise.all([page.waitForNavigation(), page.click('#update-reload')]);
  await waitForModel(page);
  assert.deepEqual(await shellCaches(page), ['cutout-shell-feedfacecafe'], `old shell ${oldShell} removed`);
  assert.ok(
    (await cachedModelUrls(page)).some((u) => u.endsWith(MODEL)),
    'the model is still cached',
  );
  assert.equal(await page.evaluate(() => document.body.dataset.modelFromCache), 'true');
});

test('a photo shared to the installed app (its share target) is queued and cut out', { skip }, async () => {
  const { page } = browser;
  await page.goto(`${server.base}/?model=${MODEL}&sha256=${ISNET_SHA256}`);
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 60_000 });
  // What the system's share sheet sends: a multipart POST to the manifest's action.
  const manifest = JSON.parse(readFileSync(join(site, 'manifest.webmanifest'), 'utf8'));
  assert.equal(manifest.share_target.action, './share');
  const redirect = await page.evaluate(async () => {
    const form = new FormData();
    form.append('photos', new File([await (await fetch('icons/icon-512.png')).blob()], 'shared.png', { type: 'image/png' }));
    const response = await fetch('share', { method: 'POST', body: form, redirect: 'manual' });
    return response.type;
  });
  assert.equal(redirect, 'opaqueredirect', 'answered with a redirect to the app');
  await page.goto(`${server.base}/?shared=1&model=${MODEL}&sha256=${ISNET_SHA256}`);
  await waitForModel(page);
  assert.equal(await waitForItem(page, 'shared.png'), 'completed');
  assert.equal(new URL(page.url()).searchParams.has('shared'), false, 'the address no longer says shared');
  assert.deepEqual(await page.evaluate(async () => (await (await caches.open('cutout-shared')).keys()).length), 0, 'nothing left waiting');
});
