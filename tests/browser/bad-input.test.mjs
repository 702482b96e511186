// Hostile and unusual input in the page: every kind of broken image fails with its reason and
// keeps nothing, an unusual but valid one works, and the next photo still works; a browser whose
// storage is full still runs the model it just downloaded, says it could not keep it, and stores
// nothing partial.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { brokenImages } from '../broken-images.mjs';
import {
  ISNET_SHA256,
  SHARED,
  cachedModelUrls,
  chromiumPath,
  inspectResult,
  itemInfo,
  launch,
  modelDir,
  photosMissing,
  serve,
  waitForItem,
  waitForModel,
} from './harness.mjs';

const models = modelDir();
const davis = join(SHARED, 'eval/davis2016/images/camel_00000.jpg');
const skip = !models ? 'the IS-Net model is not available (run models/fetch-isnet.sh)' : !chromiumPath() ? 'chromium is not installed' : false;
const skipPhotos = skip || photosMissing(davis);
if (skip) console.log(`\n*** SKIPPING bad-input browser tests: ${skip} ***\n`);

const MODEL = '/models/isnet_quint8.onnx';
let server;
let browser;

before(async () => {
  if (skip) return;
  server = await serve({ mounts: { '/models': models } });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

// The records the page keeps in IndexedDB: name, status and whether a result is stored.
async function keptRecords(page) {
  return page.evaluate(
    () =>
      new Promise((resolve, reject) => {
        const open = indexedDB.open('cutout-results');
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const request = open.result.transaction('items').objectStore('items').getAll();
          request.onsuccess = () => resolve(request.result.map((r) => ({ name: r.name, status: r.status, result: Boolean(r.result) })));
          request.onerror = () => reject(request.error);
        };
      }),
  );
}

test('every kind of broken image fails with its reason and keeps nothing; the next photo works', { skip: skipPhotos }, async () => {
  const { page } = browser;
  await page.goto(`${server.base}/?model=${MODEL}&sha256=${ISNET_SHA256}`);
  await waitForModel(page);
  const cases = brokenImages(readFileSync(davis));
  await page.setInputFiles('#file-input', [
    ...cases.map(({ name, bytes }) => ({ name, mimeType: name.endsWith('.png') ? 'image/png' : 'image/jpeg', buffer: bytes })),
    { name: 'camel_00000.jpg', mimeType: 'image/jpeg', buffer: readFileSync(davis) },
  ]);
  for (const { name, expected, works, worksInBrowser } of cases) {
    const status = await waitForItem(page, name);
    const { text } = await itemInfo(page, name);
    if (works || worksInBrowser) {
      assert.equal(status, 'completed', `${name}: ${text}`);
      continue;
    }
    assert.equal(status, 'failed', `${name}: ${text}`);
    assert.match(text, expected, name);
    assert.doesNotMatch(text, /[{}]|Error\b/, `${name}: plain words`);
  }
  const deep = await inspectResult(page, (await itemInfo(page, 'deep-colour.png')).href, [[0, 0, 4]]);
  assert.deepEqual([deep.width, deep.height], [96, 64], 'a 16-bit PNG keeps its size');
  assert.equal(await waitForItem(page, 'camel_00000.jpg'), 'completed', 'the queue goes on');
  const photo = await inspectResult(page, (await itemInfo(page, 'camel_00000.jpg')).href, [[0, 0, 24]]);
  assert.deepEqual([photo.width, photo.height], [854, 480]);
  const failed = cases.filter((c) => !c.works && !c.worksInBrowser).map((c) => c.name);
  const kept = await keptRecords(page);
  assert.deepEqual(
    kept.filter((r) => failed.includes(r.name) && r.result),
    [],
    `no result is kept for a failed file: ${JSON.stringify(kept)}`,
  );
});

test(
  'storage full during the model download: the model runs this visit, the page says it is not kept, nothing partial is stored',
  { skip: skipPhotos },
  async () => {
    const { page, context } = browser;
    // A quota-limited origin: far less room than the model needs.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.base, quotaSize: 1 << 20 });
    try {
      await page.goto(`${server.base}/?model=${MODEL}&sha256=${ISNET_SHA256}`);
      await waitForModel(page);
      await page.evaluate(async () => {
        for (const name of await caches.keys()) await caches.delete(name);
      });
      await page.reload();
      await waitForModel(page).catch(async (e) => {
        throw new Error(`${e.message}\nthe page says: ${await page.evaluate(() => document.body.innerText)}\n${browser.consoleLines.join('\n')}`);
      });
      const status = await page.textContent('#model-status');
      assert.match(status, /^Model ready \(downloaded; not stored, so the next visit downloads it again\)\./, status);
      assert.match(status, /Could not keep the model for offline use \(browser storage is full: delete other models or site data\)/, status);
      assert.ok(!(await cachedModelUrls(page)).some((u) => u.endsWith(MODEL)), 'nothing partial is stored');
      await page.setInputFiles('#file-input', davis);
      assert.equal(await waitForItem(page, 'camel_00000.jpg'), 'completed', (await itemInfo(page, 'camel_00000.jpg')).text);
    } finally {
      await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.base });
    }
  },
);
