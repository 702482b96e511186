// The npm package as its users get it: `npm pack`, installed into a fresh Node project, a fresh
// Vite app and a plain HTML page, each run with the real IS-Net model.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ISNET_SHA256, ROOT, SHARED, chromiumPath, firefoxPath, launch, launchFirefox, modelDir, photosMissing, serve } from '../browser/harness.mjs';
import { brokenImages } from '../broken-images.mjs';
import { readPng } from './png.mjs';

const models = modelDir();
const example = join(SHARED, 'eval/example_input.jpg');
const camel = join(SHARED, 'eval/davis2016/images/camel_00000.jpg');
const skip = !models ? 'the IS-Net model is not available (run models/fetch-isnet.sh)' : photosMissing(example, camel);
if (skip) console.log(`\n*** SKIPPING package tests: ${skip} ***\n`);
const work = mkdtempSync(join(tmpdir(), 'cutout-package-'));
// The photos the pages load: the example and one DAVIS frame.
const FIXTURES = join(work, 'fixtures');
mkdirSync(FIXTURES, { recursive: true });
if (!skip) {
  writeFileSync(join(FIXTURES, 'example_input.jpg'), readFileSync(example));
  writeFileSync(join(FIXTURES, 'camel_00000.jpg'), readFileSync(camel));
}
let tarball;
let browser;

const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });

function project(name, dependencies) {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module', dependencies }, null, 2));
  run('npm', ['install', '--no-audit', '--no-fund', '--silent'], dir);
  return dir;
}

before(() => {
  if (skip) return;
  const out = run('npm', ['pack', join(ROOT, 'www/package'), '--pack-destination', work, '--json'], work);
  const [packed] = JSON.parse(out);
  tarball = join(work, packed.filename);
  console.log(`# packed ${packed.filename}: ${packed.size} bytes, ${packed.unpackedSize} unpacked, ${packed.entryCount} files`);
});

after(async () => {
  await browser?.close();
});

test('Node 20: a file path in, a correct PNG out (and saved), clear errors', { skip }, async () => {
  const dir = project('node-app', { 'cutout-wasm': `file:${tarball}` });
  writeFileSync(
    join(dir, 'run.mjs'),
    `import { removeBackground, segment } from 'cutout-wasm';
const model = { path: ${JSON.stringify(join(models, 'isnet_quint8.onnx'))}, sha256: '${ISNET_SHA256}' };
const stages = [];
// Inference runs on the engine's own thread: the event loop keeps turning meanwhile.
let ticks = 0;
const timer = setInterval(() => ticks++, 20);
const started = Date.now();
const blob = await removeBackground(${JSON.stringify(example)}, { model, savePath: 'out.png', onProgress: (p) => stages.push([p.stage, p.loaded]) });
const elapsed = Date.now() - started;
clearInterval(timer);
const errors = {};
try { await removeBackground(Buffer.from('not an image'), { model }); } catch (e) { errors.garbage = e.message; errors.garbageCode = e.code; }
try { await removeBackground('missing.jpg', { model }); } catch (e) { errors.missing = e.message; }
try { await removeBackground(${JSON.stringify(example)}, { model, savePath: 'out.png' }); } catch (e) { errors.exists = e.message; }
try { await removeBackground(${JSON.stringify(example)}, { model: { path: ${JSON.stringify(join(models, 'isnet_quint8.onnx'))}, sha256: '${'0'.repeat(64)}' } }); } catch (e) { errors.hash = e.message; }
// No model named: the default, from its real public host (unreachable here, so the error says
// which URL and why).
try { await removeBackground(${JSON.stringify(example)}); } catch (e) { errors.offline = e.message; }
// An abort during inference rejects with AbortError, and the next call still works.
const controller = new AbortController();
const aborted = removeBackground(${JSON.stringify(example)}, { model, signal: controller.signal });
setTimeout(() => controller.abort(), 300);
const abort = await aborted.then(() => 'resolved', (e) => e.name);
const afterAbort = (await removeBackground(${JSON.stringify(example)}, { model })).type;
// Every kind of broken image is refused with its reason; an unusual valid one works.
const { brokenImages } = await import(${JSON.stringify(join(ROOT, 'tests/broken-images.mjs'))});
const { readFileSync } = await import('node:fs');
const broken = {};
for (const { name, bytes } of brokenImages(readFileSync(${JSON.stringify(camel)}))) {
  broken[name] = await removeBackground(bytes, { model }).then((b) => ({ type: b.type }), (e) => ({ message: e.message, code: e.code }));
}
const afterBroken = (await removeBackground(${JSON.stringify(camel)}, { model })).type;
const { models } = await import('cutout-wasm');
const listed = models.models.map((m) => ({ id: m.id, licence: m.licence, licenceUrl: m.licence_url }));
console.log(JSON.stringify({ type: blob.type, size: blob.size, stages, errors, ticks, elapsed, abort, afterAbort, broken, afterBroken, default: models.default, listed }));`,
  );
  const cache = mkdtempSync(join(tmpdir(), 'cutout-node-cache-'));
  const result = JSON.parse(
    execFileSync('node', ['run.mjs'], { cwd: dir, encoding: 'utf8', env: { ...process.env, CUTOUT_CACHE_DIR: cache } })
      .trim()
      .split('\n')
      .pop(),
  );
  assert.ok(result.ticks >= result.elapsed / 20 / 3, `the event loop kept running: ${result.ticks} ticks of 20 ms in ${result.elapsed} ms`);
  assert.equal(result.abort, 'AbortError');
  assert.equal(result.afterAbort, 'image/png');
  for (const { name, expected, works } of brokenImages(readFileSync(camel))) {
    const outcome = result.broken[name];
    if (works) assert.equal(outcome.type, 'image/png', `${name}: ${JSON.stringify(outcome)}`);
    else assert.match(outcome.message || '', expected, `${name}: ${JSON.stringify(outcome)}`);
  }
  assert.equal(result.afterBroken, 'image/png', 'the next good image still works');
  assert.equal(result.default, 'isnet-fp16');
  for (const m of result.listed) assert.ok(m.licence && m.licenceUrl, `${m.id} lists its licence`);
  assert.match(result.errors.offline, /https:\/\/staticimgly\.com\/@imgly\/background-removal-data\/1\.4\.5\/dist\/fe1b9f06/);
  assert.match(result.errors.offline, /offline, or the host is unreachable/);
  assert.equal(result.type, 'image/png');
  // Each stage once, in order; inference also reports its progress through the graph.
  const names = result.stages.map(([stage]) => stage).filter((stage, i, all) => stage !== all[i - 1]);
  assert.deepEqual(names, ['decode', 'preprocess', 'inference', 'postprocess', 'encode', 'done']);
  const inference = result.stages.filter(([stage]) => stage === 'inference').map(([, loaded]) => loaded);
  assert.ok(inference.length > 3, `progress during inference: ${inference}`);
  assert.ok(
    inference.every((loaded, i) => loaded >= 2 && loaded <= 3 && (i === 0 || loaded >= inference[i - 1])),
    `between stages 2 and 3, rising: ${inference}`,
  );
  const png = readPng(readFileSync(join(dir, 'out.png')));
  assert.deepEqual([png.width, png.height], [933, 1405]);
  assert.ok(png.patchAlpha(538, 868, 5) >= 240, 'subject opaque');
  assert.ok(png.patchAlpha(0, 0, 32) <= 8, 'background transparent');
  assert.match(result.errors.garbage, /not a supported image/);
  assert.equal(result.errors.garbageCode, 'not-an-image', "the engine's error code reaches the caller");
  assert.match(result.errors.missing, /no such file: missing.jpg/);
  assert.match(result.errors.exists, /already exists/);
  assert.match(result.errors.hash, /hash mismatch/);
});

// In-page checks shared by the Vite app and the plain page: `window.cutout` is the package.
async function exercise(page) {
  return page.evaluate(
    async ({ sha256 }) => {
      const model = { url: '/models/isnet_quint8.onnx', sha256 };
      const input = await (await fetch('/fixtures/example_input.jpg')).blob();
      const events = [];
      const blob = await window.cutout.removeBackground(input, { model, onProgress: (p) => events.push(p.stage) });
      const bitmap = await createImageBitmap(blob, { premultiplyAlpha: 'none' });
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const context = canvas.getContext('2d');
      context.drawImage(bitmap, 0, 0);
      const alpha = (x, y) => context.getImageData(x, y, 1, 1).data[3];
      const result = { type: blob.type, width: bitmap.width, height: bitmap.height, subject: alpha(540, 870), corner: alpha(2, 2), events };
      // Abort a running call: it rejects with AbortError and the next call still works.
      const controller = new AbortController();
      const aborted = window.cutout.removeBackground(input, { model, signal: controller.signal });
      setTimeout(() => controller.abort(), 1500);
      result.abort = await aborted.then(
        () => 'resolved',
        (e) => e.name,
      );
      // A corrupt image is a clear Error.
      const broken = new Blob([new Uint8Array(await input.slice(0, 5000).arrayBuffer())], { type: 'image/jpeg' });
      result.corrupt = await window.cutout.removeBackground(broken, { model }).then(
        () => 'resolved',
        (e) => `${e.code}: ${e.message}`,
      );
      // The element.
      const element = document.createElement('cutout-image');
      element.setAttribute('model', model.url);
      element.setAttribute('sha256', sha256);
      const done = new Promise((resolve) => {
        element.addEventListener('cutout-done', () => resolve('done'));
        element.addEventListener('cutout-error', (e) => resolve(`error: ${/** @type {CustomEvent} */ (e).detail.error.message}`));
      });
      element.setAttribute('src', '/fixtures/camel_00000.jpg');
      document.body.append(element);
      result.element = await done;
      const link = /** @type {HTMLAnchorElement} */ (element.shadowRoot.querySelector('[part=download]'));
      result.elementDownload = { href: link.href.slice(0, 5), name: link.download, hidden: link.hidden };
      return result;
    },
    { sha256: ISNET_SHA256 },
  );
}

function checkExercise(result) {
  assert.equal(result.type, 'image/png');
  assert.deepEqual([result.width, result.height], [933, 1405]);
  assert.ok(result.subject >= 240 && result.corner <= 8, JSON.stringify(result));
  for (const stage of ['download', 'decode', 'inference', 'encode', 'done']) assert.ok(result.events.includes(stage), `progress ${stage}: ${result.events}`);
  assert.equal(result.abort, 'AbortError');
  assert.match(result.corrupt, /^corrupt-image: .*corrupt or truncated/);
  assert.equal(result.element, 'done');
  assert.deepEqual(result.elementDownload, { href: 'blob:', name: 'camel_00000-cutout.png', hidden: false });
}

// The site at `root` in Chromium (Playwright) or Firefox (puppeteer-core over WebDriver BiDi,
// whose page has the same goto / evaluate / waitForFunction).
async function runSite(root, engine = 'chromium') {
  const server = await serve({ root, mounts: { '/models': models, '/fixtures': FIXTURES } });
  let firefox;
  try {
    let page;
    if (engine === 'firefox') {
      firefox = await launchFirefox();
      page = firefox.page;
    } else {
      browser ??= await launch();
      page = await browser.context.newPage();
    }
    await page.goto(`${server.base}/`);
    await page.waitForFunction(() => window.cutout !== undefined);
    return await exercise(page);
  } finally {
    await firefox?.close();
    await server.close();
  }
}

test('Node: the package works from `node --input-type=module -e` too', { skip }, () => {
  const dir = project('node-eval', { 'cutout-wasm': `file:${tarball}` });
  const model = { path: join(models, 'isnet_quint8.onnx'), sha256: ISNET_SHA256 };
  const script = `const { removeBackground } = await import('cutout-wasm');
const blob = await removeBackground(${JSON.stringify(camel)}, { model: ${JSON.stringify(model)} });
console.log(JSON.stringify({ type: blob.type, size: blob.size }));`;
  const out = execFileSync('node', ['--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8' });
  const result = JSON.parse(out.trim().split('\n').pop());
  assert.equal(result.type, 'image/png');
  assert.ok(result.size > 1000, `a PNG of ${result.size} bytes`);
});

test('a fresh Vite app bundles the package without configuration and runs it', { skip: skip || (!chromiumPath() && 'no chromium') }, async () => {
  const dir = project('vite-app', { 'cutout-wasm': `file:${tarball}`, vite: '7.3.8' });
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>vite + cutout-wasm</title><script type="module" src="/main.js"></script>');
  writeFileSync(join(dir, 'main.js'), "import * as cutout from 'cutout-wasm';\nimport 'cutout-wasm/element';\nwindow.cutout = cutout;\n");
  run('npx', ['vite', 'build', '--logLevel', 'warn'], dir);
  checkExercise(await runSite(join(dir, 'dist')));
});

// A page that loads the package from node_modules (made once, for each browser that runs it).
let plainPageDir;
function plainPage() {
  if (plainPageDir) return plainPageDir;
  plainPageDir = project('plain-page', { 'cutout-wasm': `file:${tarball}` });
  writeFileSync(join(plainPageDir, 'index.html'), '<!doctype html><title>plain + cutout-wasm</title><script type="module" src="main.js"></script>');
  writeFileSync(
    join(plainPageDir, 'main.js'),
    "import * as cutout from './node_modules/cutout-wasm/index.js';\nimport './node_modules/cutout-wasm/element.js';\nwindow.cutout = cutout;\n",
  );
  return plainPageDir;
}

test('a plain HTML page uses the package from node_modules with no build step', { skip: skip || (!chromiumPath() && 'no chromium') }, async () => {
  checkExercise(await runSite(plainPage()));
});

test('the same page in Firefox', { skip: skip || (!firefoxPath() && 'firefox-esr is not installed') }, async () => {
  checkExercise(await runSite(plainPage(), 'firefox'));
});
