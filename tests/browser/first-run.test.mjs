// A new user's first visit: the plain URL, the default model from (a stand-in for) its public
// host, reached cross-origin over https with that host's URL layout. The page asks before any
// download (name, size, licence, the other models); declining downloads nothing; accepting
// downloads and verifies the parts and cuts out a photo; hosts that refuse, lack CORS, cut the
// download or change a file trusted on first download each get an error that names the problem.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  ROOT,
  SHARED,
  cachedModelUrls,
  chromiumPath,
  inspectResult,
  itemInfo,
  launch,
  manifestOn,
  modelDir,
  modelRoutes,
  photosMissing,
  publicHost,
  serve,
  waitForItem,
  waitForModel,
} from './harness.mjs';

const models = modelDir();
const example = join(SHARED, 'eval/example_input.jpg');
const skip = !models || !chromiumPath() ? 'the IS-Net models or chromium are not available' : false;
const skipPhotos = skip || photosMissing(example);
if (skip) console.log(`\n*** SKIPPING first-run tests: ${skip} ***\n`);

let host;
let site;
let browser;
let manifest;
let quint8;

before(async () => {
  if (skip) return;
  host = await publicHost(new Map());
  manifest = manifestOn(host.base);
  const entry = (id) => manifest.models.find((m) => m.id === id);
  quint8 = readFileSync(join(models, 'isnet_quint8.onnx'));
  for (const [path, route] of modelRoutes(entry('isnet-fp16'), readFileSync(join(models, 'isnet_fp16.onnx')), host.base)) host.routes.set(path, route);
  for (const [path, route] of modelRoutes(entry('isnet'), quint8, host.base)) host.routes.set(path, route);
  const body = JSON.stringify(manifest);
  site = await serve({ handlers: { '/models.json': (req, res) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(body) } });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await site?.close();
  await host?.close();
});

const modelHits = () => [...host.hits.values()].reduce((a, b) => a + b, 0);
const statusText = (page) => page.textContent('#model-status');

async function chooseModel(page, id) {
  await page.selectOption('#model-select', id);
  await page.waitForSelector('#first-run:not([hidden])');
}

async function modelError(page) {
  await page.waitForSelector('#model-status.error', { timeout: 120_000 });
  return { text: await statusText(page), code: await page.evaluate(() => document.body.dataset.modelError) };
}

test('the plain URL asks first, downloads nothing on "Not now", and cuts out a photo once accepted', { skip: skipPhotos }, async () => {
  const { page } = browser;
  await page.goto(`${site.base}/`);
  await page.waitForSelector('#first-run:not([hidden])');
  assert.equal(await page.textContent('#first-run-name'), 'IS-Net general use (fp16 weights)');
  assert.equal(await page.textContent('#first-run-size'), '(88.2 MB)');
  assert.match(await page.textContent('#first-run-licence'), /^AGPL-3\.0/);
  assert.equal(await page.getAttribute('#first-run-licence-link', 'href'), 'https://www.gnu.org/licenses/agpl-3.0.html');
  assert.match(await page.textContent('#first-run'), /Download once, then it works offline/);
  assert.match(await page.textContent('#first-run-source'), /IMG\.LY's CDN/);
  const choices = await page.$$eval('#first-run-choices input', (inputs) => inputs.map((i) => i.value));
  for (const id of ['isnet-fp16', 'isnet', 'ormbg', 'rmbg-1.4']) assert.ok(choices.includes(id), `${id} offered`);
  await page.screenshot({ path: join(ROOT, 'target/first-run-card.png'), fullPage: false });
  assert.equal(modelHits(), 0, 'nothing is downloaded before the user accepts');

  await page.click('#first-run-decline');
  assert.match(await statusText(page), /Nothing was downloaded/);
  assert.equal(modelHits(), 0);
  // Images added now wait for a model instead of failing.
  await page.setInputFiles('#file-input', example);
  assert.equal(await page.getAttribute('.item', 'data-status'), 'pending');

  await page.click('#model-choose');
  await page.click('#first-run-accept');
  await waitForModel(page);
  const first = `/@imgly/background-removal-data/1.4.5/dist/${manifest.models[0].parts[0].sha256}`;
  assert.equal(host.hits.get(first), 1, 'the first part came from the public layout');
  assert.equal(modelHits(), 22, 'all 22 parts, once each');
  assert.equal(await waitForItem(page, 'example_input.jpg'), 'completed');
  const info = await itemInfo(page, 'example_input.jpg');
  const result = await inspectResult(page, info.href, [
    [538, 868, 5],
    [598, 698, 5],
    [0, 0, 32],
    [0, 1373, 32],
  ]);
  assert.deepEqual([result.width, result.height], [933, 1405]);
  result.alphas.slice(0, 2).forEach((a) => assert.ok(a >= 240, `subject opaque: ${result.alphas}`));
  result.alphas.slice(2).forEach((a) => assert.ok(a <= 8, `background transparent: ${result.alphas}`));

  // The next visit: no question, no download.
  await page.reload();
  await page.waitForFunction(() => document.body.dataset.modelReady === 'true', null, { timeout: 120_000 });
  assert.ok(await page.isHidden('#first-run'));
  assert.equal(modelHits(), 22);
});

test('another model can be picked in the card', { skip }, async () => {
  const { page } = browser;
  await page.goto(`${site.base}/`);
  await chooseModel(page, 'isnet');
  assert.equal(await page.textContent('#first-run-size'), '(44.3 MB)');
  await page.click('#first-run-choices input[value="isnet-fp16"]');
  assert.equal(await page.textContent('#first-run-size'), '(88.2 MB)');
  await page.click('#first-run-choices input[value="isnet"]');
  assert.equal(await page.inputValue('#model-select'), 'isnet');
  await page.click('#first-run-accept');
  await waitForModel(page);
  assert.ok((await cachedModelUrls(page)).some((u) => u.endsWith('/dist/isnet_quint8.onnx')));
});

test('hosts that refuse, lack CORS or cut the download: clear errors, nothing stored, other models offered', { skip }, async () => {
  const { page } = browser;
  const pathOf = (id) => new URL(manifest.models.find((m) => m.id === id).url).pathname;
  host.routes.set(pathOf('rmbg-1.4'), { status: 401 });
  host.routes.set(pathOf('rmbg-1.4-fp16'), { body: quint8, cut: 1_000_000 });
  host.routes.set(pathOf('rmbg-1.4-fp32'), { body: quint8, cors: false });
  await page.goto(`${site.base}/`);

  /** @type {[string, string | RegExp, RegExp][]} */
  const cases = [
    ['rmbg-1.4', 'model-refused', /HTTP 401.*refuses anonymous downloads.*Self-host/],
    ['ormbg', 'model-not-found', /HTTP 404.*no such file/],
    ['rmbg-1.4-fp16', 'model-cut', /cut|interrupted/],
    // A cross-origin isolated page cannot tell a host without CORS from one that is down.
    ['rmbg-1.4-fp32', /^model-(no-cors|unreachable)$/, /no CORS header Access-Control-Allow-Origin/],
  ];
  for (const [id, code, pattern] of cases) {
    await chooseModel(page, id);
    assert.match(await page.textContent('#first-run-licence'), id === 'ormbg' ? /Apache-2\.0/ : /non-commercial/);
    await page.click('#first-run-accept');
    const error = await modelError(page);
    if (code instanceof RegExp) assert.match(error.code, code, error.text);
    else assert.equal(error.code, code, error.text);
    assert.match(error.text, pattern);
    assert.ok(await page.isVisible('#model-choose'), 'other models are offered');
    assert.ok(!(await cachedModelUrls(page)).some((u) => u.includes('/briaai/') || u.includes('/schirrmacher/')), 'nothing stored');
  }
});

test('a model nobody pinned is trusted on first download, and a changed file is refused', { skip }, async () => {
  const { page } = browser;
  const path = '/someone/model/resolve/main/model.onnx';
  host.routes.set(path, { body: quint8 });
  const link = `${site.base}/?model=${encodeURIComponent(host.base + path)}`;
  await page.goto(link);
  await page.waitForSelector('#first-run:not([hidden])');
  assert.match(await page.textContent('#first-run-licence'), /not stated/);
  await page.click('#first-run-accept');
  await page.waitForFunction(() => document.body.dataset.modelReady === 'true', null, { timeout: 120_000 });
  const recorded = await page.evaluate(async (url) => await (await (await caches.open('cutout-trust-v1')).match(url))?.text(), host.base + path);
  assert.match(recorded || '', /^[0-9a-f]{64}$/, 'the hash is recorded');

  const changed = Buffer.concat([quint8, Buffer.from('changed')]);
  host.routes.set(path, { body: changed });
  await page.evaluate(async (url) => (await caches.open('cutout-models-v1')).delete(url), host.base + path);
  await page.goto(link);
  await page.click('#first-run-accept');
  const error = await modelError(page);
  assert.equal(error.code, 'model-hash-mismatch');
  assert.match(error.text, /trusted on first download/);
  assert.ok(error.text.includes(recorded), error.text);
});

test('offline before the first download says so', { skip }, async () => {
  const { page, context } = browser;
  await page.goto(`${site.base}/`);
  await chooseModel(page, 'ormbg');
  await context.setOffline(true);
  try {
    await page.click('#first-run-accept');
    const error = await modelError(page);
    assert.equal(error.code, 'model-offline');
    assert.match(error.text, /offline/);
  } finally {
    await context.setOffline(false);
  }
});

test('make serve plays the public hosts: models.json points at local copies in their URL layout', { skip }, async () => {
  const { createHash } = await import('node:crypto');
  const local = await serve({ publicMirrorDir: models });
  try {
    const served = await (await fetch(`${local.base}/models.json`)).json();
    const entry = served.models.find((m) => m.id === served.default);
    assert.equal(entry.parts_base_url, `${local.base}/public-hosts/staticimgly.com/@imgly/background-removal-data/1.4.5/dist/`);
    for (const part of [entry.parts[0], entry.parts.at(-1)]) {
      const bytes = Buffer.from(await (await fetch(entry.parts_base_url + part.sha256)).arrayBuffer());
      assert.equal(bytes.length, part.size);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), part.sha256);
    }
    const absent = served.models.find((m) => m.id === 'rmbg-1.4');
    assert.match(absent.url, /^https:\/\/huggingface\.co\//, 'models not on this machine keep their real host');
  } finally {
    await local.close();
  }
});
