// The page's main flow in every browser engine: Chromium (Playwright), Firefox (firefox-esr over
// WebDriver BiDi, puppeteer-core) and WebKit (WebKitGTK's MiniBrowser through WebKitWebDriver,
// selenium-webdriver; no SharedArrayBuffer there, so one thread). Each downloads the model once,
// loads it from the cache on the next visit, cuts out the example photo correctly and refuses a
// broken file with its reason.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  ISNET_SHA256,
  SHARED,
  chromiumPath,
  firefoxPath,
  inspectResult,
  itemInfo,
  launch,
  launchFirefox,
  launchWebKit,
  modelDir,
  photosMissing,
  serve,
  waitForItem,
  waitForModel,
  webkitMissing,
} from './harness.mjs';

const models = modelDir();
const example = join(SHARED, 'eval/example_input.jpg');
const skip = !models ? 'the IS-Net model is not available (run models/fetch-isnet.sh)' : photosMissing(example);
const missing = {
  Chromium: !chromiumPath() && 'chromium is not installed',
  Firefox: !firefoxPath() && 'firefox-esr is not installed',
  WebKit: webkitMissing(),
};
for (const [engine, why] of Object.entries(skip ? { all: skip } : missing)) if (why) console.log(`\n*** SKIPPING the ${engine} main flow: ${why} ***\n`);
const MODEL = '/models/isnet_quint8.onnx';
const fixtures = mkdtempSync(join(tmpdir(), 'cutout-engines-'));
const broken = join(fixtures, 'cut-short.jpg');

before(() => {
  if (skip) return;
  const jpeg = readFileSync(example);
  writeFileSync(broken, Buffer.concat([jpeg.subarray(0, jpeg.length / 2), Buffer.from([0xff, 0xd9])]));
});

// Firefox's page as the harness's helpers expect a page (Playwright's argument order).
function firefoxPage(page) {
  return {
    goto: (url) => page.goto(url),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    waitForFunction: (fn, arg, { timeout, polling }) => page.waitForFunction(fn, { timeout, polling }, arg),
    click: (selector) => page.click(selector),
    setInputFiles: async (selector, paths) => (await page.$(selector)).uploadFile(...paths),
  };
}

// WebDriver classic (selenium) as a page for the same helpers.
function webdriverPage(driver) {
  const evaluate = (fn, arg) => driver.executeScript(`return (${fn})(arguments[0]);`, arg);
  return {
    goto: (url) => driver.get(url),
    evaluate,
    waitForFunction: async (fn, arg, { timeout, polling }) => {
      const deadline = Date.now() + timeout;
      for (;;) {
        const value = await evaluate(fn, arg);
        if (value) return { jsonValue: async () => value };
        if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${fn}`);
        await new Promise((ok) => setTimeout(ok, polling));
      }
    },
    click: (selector) => evaluate((s) => document.querySelector(s).click(), selector),
    setInputFiles: async (selector, paths) => {
      const { By } = await import('selenium-webdriver');
      await (await driver.findElement(By.css(selector))).sendKeys(paths.join('\n'));
    },
  };
}

async function mainFlow(page, engine) {
  const server = await serve({ mounts: { '/models': models } });
  try {
    const link = `${server.base}/?model=${MODEL}&sha256=${ISNET_SHA256}`;
    await page.goto(link);
    await waitForModel(page, 300_000);
    assert.equal(server.hits.get(MODEL), 1, `${engine}: the model is downloaded once`);
    // The next visit: the model comes from the cache.
    await page.goto(link);
    await waitForModel(page, 300_000);
    const visit = await page.evaluate(() => ({ ...document.body.dataset }));
    assert.equal(visit.modelFromCache, 'true', `${engine}: ${JSON.stringify(visit)}`);
    assert.equal(server.hits.get(MODEL), 1, `${engine}: no second model request`);
    console.log(`# ${engine}: ${visit.variant} build, ${visit.threads} thread(s)`);

    await page.setInputFiles('#file-input', [example, broken]);
    assert.equal(await waitForItem(page, 'cut-short.jpg', 600_000), 'failed', engine);
    assert.match((await itemInfo(page, 'cut-short.jpg')).text, /FAILED: the image is corrupt or truncated: .*cut short/, engine);
    assert.equal(await waitForItem(page, 'example_input.jpg', 600_000), 'completed', `${engine}: ${(await itemInfo(page, 'example_input.jpg')).text}`);
    const result = await inspectResult(page, (await itemInfo(page, 'example_input.jpg')).href, [
      [538, 868, 5],
      [598, 698, 5],
      [0, 0, 32],
      [901, 0, 32],
    ]);
    assert.deepEqual(result.signature, [137, 80, 78, 71, 13, 10, 26, 10], `${engine}: a PNG`);
    assert.deepEqual([result.width, result.height], [933, 1405], `${engine}: the input size`);
    result.alphas.slice(0, 2).forEach((a) => assert.ok(a >= 240, `${engine}: subject opaque: ${result.alphas}`));
    result.alphas.slice(2).forEach((a) => assert.ok(a <= 8, `${engine}: corners transparent: ${result.alphas}`));
    return visit;
  } finally {
    await server.close();
  }
}

const closers = [];
after(async () => {
  for (const close of closers) await close();
});

test('Chromium: model cached, example photo, broken file', { skip: skip || missing.Chromium }, async () => {
  const browser = await launch();
  closers.push(browser.close);
  await mainFlow(browser.page, 'Chromium');
});

test('Firefox: model cached, example photo, broken file', { skip: skip || missing.Firefox }, async () => {
  const firefox = await launchFirefox();
  closers.push(firefox.close);
  await mainFlow(firefoxPage(firefox.page), 'Firefox');
});

test('WebKit: model cached, example photo, broken file (one thread: no SharedArrayBuffer)', { skip: skip || missing.WebKit }, async () => {
  const webkit = await launchWebKit();
  closers.push(webkit.close);
  const visit = await mainFlow(webdriverPage(webkit.driver), 'WebKit');
  assert.equal(visit.threads, '1');
});
