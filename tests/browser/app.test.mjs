// The built site in headless Chromium, as a person uses it: real IS-Net model served locally,
// the example photo in, a correct transparent PNG out; the model cached for the next visit; and
// the failure paths (hash mismatch, cut download, corrupt image, cancel).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  ISNET_SHA256,
  SHARED,
  acceptFirstRun,
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
const example = join(SHARED, 'eval/example_input.jpg');
const davis = join(SHARED, 'eval/davis2016/images/camel_00000.jpg');
const skip = !models ? 'the IS-Net model is not available (run models/fetch-isnet.sh)' : !chromiumPath() ? 'chromium is not installed' : false;
const skipPhotos = skip || photosMissing(example, davis);
if (skip) console.log(`\n*** SKIPPING browser end-to-end tests: ${skip} ***\n`);

let server;
let browser;
const fixtures = mkdtempSync(join(tmpdir(), 'cutout-fixtures-'));
const MODEL_PATH = '/models/isnet_quint8.onnx';

before(async () => {
  if (skip) return;
  const modelBytes = readFileSync(join(models, 'isnet_quint8.onnx'));
  server = await serve({
    mounts: { '/models': models, '/mirror': models },
    handlers: {
      // Announces the whole model, sends a tenth of it, then drops the connection.
      '/cut/isnet_quint8.onnx': (req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': modelBytes.length });
        res.write(modelBytes.subarray(0, modelBytes.length / 10), () => res.destroy());
      },
    },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

const url = (query) => `${server.base}/?${new URLSearchParams(query)}`;

test('a photo becomes a correct transparent PNG, and the model is cached for the next visit', { skip: skipPhotos }, async () => {
  const { page } = browser;
  await page.goto(url({ model: MODEL_PATH, sha256: ISNET_SHA256 }));
  await waitForModel(page);
  assert.equal(server.hits.get(MODEL_PATH), 1, 'the model is downloaded once');
  assert.ok(
    (await cachedModelUrls(page)).some((u) => u.endsWith(MODEL_PATH)),
    'and stored in the Cache API',
  );

  await page.setInputFiles('#file-input', example);
  assert.equal(await waitForItem(page, 'example_input.jpg'), 'completed', (await itemInfo(page, 'example_input.jpg')).text);
  const info = await itemInfo(page, 'example_input.jpg');
  assert.match(info.href, /^blob:/);
  assert.equal(info.download, 'example_input-cutout.png');
  const result = await inspectResult(page, info.href, [
    [538, 868, 5],
    [598, 698, 5],
    [298, 648, 5], // the two giraffes
    [0, 0, 32],
    [901, 0, 32],
    [0, 1373, 32], // corners
  ]);
  assert.deepEqual(result.signature, [137, 80, 78, 71, 13, 10, 26, 10], 'a PNG');
  assert.equal(result.type, 'image/png');
  assert.deepEqual([result.width, result.height], [933, 1405], 'the input size');
  result.alphas.slice(0, 3).forEach((a) => assert.ok(a >= 240, `subject opaque: ${result.alphas}`));
  result.alphas.slice(3).forEach((a) => assert.ok(a <= 8, `corners transparent: ${result.alphas}`));

  // Download all: one zip holding the result byte for byte (Python's zipfile reads it and checks its CRCs).
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-all')]);
  assert.equal(download.suggestedFilename(), 'cutouts.zip');
  const zipPath = join(fixtures, 'cutouts.zip');
  await download.saveAs(zipPath);
  const readZip =
    'import json, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nprint(json.dumps({n: z.read(n).hex() for n in z.namelist()}))';
  const entries = JSON.parse(execFileSync('python3', ['-c', readZip, zipPath], { maxBuffer: 64 << 20 }).toString());
  const resultHex = await page.evaluate(
    async (href) => [...new Uint8Array(await (await fetch(href)).arrayBuffer())].map((b) => b.toString(16).padStart(2, '0')).join(''),
    info.href,
  );
  assert.deepEqual(Object.keys(entries), ['example_input-cutout.png']);
  assert.equal(entries['example_input-cutout.png'], resultHex, 'the zip holds the result unchanged');

  // Second visit: the model comes from the cache, with no request to the network.
  await page.reload();
  await waitForModel(page);
  assert.equal(server.hits.get(MODEL_PATH), 1, 'no second model request');
  assert.equal(await page.evaluate(() => document.body.dataset.modelFromCache), 'true');
});

test('a corrupt image fails with a reason and the next image still succeeds', { skip: skipPhotos }, async () => {
  const { page } = browser;
  await page.goto(url({ model: MODEL_PATH, sha256: ISNET_SHA256 }));
  await waitForModel(page);
  const corrupt = join(fixtures, 'broken.jpg');
  const jpeg = readFileSync(davis);
  writeFileSync(corrupt, jpeg.subarray(0, jpeg.length / 2));
  const text = join(fixtures, 'notes.png');
  writeFileSync(text, 'this is not an image');
  await page.setInputFiles('#file-input', [corrupt, text, davis]);
  assert.equal(await waitForItem(page, 'broken.jpg'), 'failed');
  assert.match((await itemInfo(page, 'broken.jpg')).text, /FAILED: .*(corrupt|truncated)/);
  assert.equal(await waitForItem(page, 'notes.png'), 'failed');
  assert.match((await itemInfo(page, 'notes.png')).text, /FAILED: not a supported image/);
  assert.equal(await waitForItem(page, 'camel_00000.jpg'), 'completed');
  const info = await itemInfo(page, 'camel_00000.jpg');
  const result = await inspectResult(page, info.href, [[0, 0, 24]]);
  assert.deepEqual([result.width, result.height], [854, 480]);
});

test('cancel stops pending and running work and the queue goes on', { skip: skipPhotos }, async () => {
  const { page } = browser;
  await page.goto(url({ model: MODEL_PATH, sha256: ISNET_SHA256 }));
  await waitForModel(page);
  await page.setInputFiles('#file-input', [example, davis]);
  await page.waitForSelector('.item[data-status=processing]');
  await page.getByRole('button', { name: 'Cancel camel_00000.jpg' }).click();
  await page.getByRole('button', { name: 'Cancel example_input.jpg' }).click();
  assert.equal(await waitForItem(page, 'camel_00000.jpg'), 'cancelled');
  assert.equal(await waitForItem(page, 'example_input.jpg'), 'cancelled');
  // The engine restarts (model from the cache) and takes new work.
  await waitForModel(page);
  await page.getByRole('button', { name: 'Retry camel_00000.jpg' }).click();
  assert.equal(await waitForItem(page, 'camel_00000.jpg'), 'completed');
});

test('a model with the wrong hash is refused with a clear message and nothing is cached', { skip }, async () => {
  const { page } = browser;
  const wrong = 'ab'.repeat(32);
  await page.goto(url({ model: '/mirror/isnet_quint8.onnx', sha256: wrong }));
  await acceptFirstRun(page);
  await page.waitForSelector('#model-status.error', { timeout: 120_000 });
  const message = await page.textContent('#model-status');
  assert.match(message, /hash mismatch/);
  assert.ok(message.includes(wrong) && message.includes(ISNET_SHA256), message);
  assert.ok(!(await cachedModelUrls(page)).some((u) => u.includes('/mirror/')), 'nothing unverified is stored');
  assert.ok(await page.isVisible('#model-retry'), 'a retry is offered');
});

test('a download cut mid-way gives a retryable error and stores nothing', { skip: skipPhotos }, async () => {
  const { page } = browser;
  await page.goto(url({ model: '/cut/isnet_quint8.onnx', sha256: ISNET_SHA256 }));
  await acceptFirstRun(page);
  await page.waitForSelector('#model-status.error', { timeout: 120_000 });
  assert.match(await page.textContent('#model-status'), /interrupted|cut/);
  assert.ok(!(await cachedModelUrls(page)).some((u) => u.includes('/cut/')));
  // The page stays usable: images added now fail with the model's reason instead of hanging.
  await page.setInputFiles('#file-input', davis);
  assert.equal(await waitForItem(page, 'camel_00000.jpg'), 'failed');
});
