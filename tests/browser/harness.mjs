// Shared set-up for the browser tests: the built site served on 127.0.0.1 (with the real models
// mounted beside it), and Debian's Chromium driven by playwright-core with a fresh profile.
import { execSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { createServer } from '../../www/serve.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DIST = join(ROOT, 'www/dist');
export const SHARED = process.env.CUTOUT_SHARED_DIR || join(ROOT, '../shared');

// The tests' real photos come from ../shared/eval (never shipped); where it is absent the tests
// that need them are skipped, and say so loudly.
export function photosMissing(...paths) {
  const missing = paths.filter((path) => !existsSync(path));
  if (!missing.length) return false;
  const reason = `the eval photos are not available (${missing.join(', ')})`;
  console.error(`\n*** SKIPPING photo tests: ${reason} ***\n`);
  return reason;
}
export const ISNET_SHA256 = '7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a';

// The real model: ../shared/models, else the npm-assembled copy in target/models.
export function modelDir() {
  for (const dir of [join(SHARED, 'models'), join(ROOT, 'target/models')]) {
    if (existsSync(join(dir, 'isnet_quint8.onnx'))) return dir;
  }
  return null;
}

export function chromiumPath() {
  return process.env.CHROMIUM || commandPath('chromium') || commandPath('chromium-browser');
}

// Starts the server; `hits` counts requests per path, `sent` the bytes sent per path (as on the
// wire: gzipped where the server compressed); `handlers` serve test-only routes.
/** @param {Partial<Parameters<typeof createServer>[0]>} [options] */
export async function serve({ root = DIST, mounts = {}, handlers = {}, headersFor, publicMirrorDir = null } = {}) {
  const hits = new Map();
  const sent = new Map();
  const server = createServer({
    root,
    mounts,
    handlers,
    headersFor,
    publicMirrorDir,
    onRequest: (path) => hits.set(path, (hits.get(path) || 0) + 1),
    onSent: (path, bytes) => sent.set(path, (sent.get(path) || 0) + bytes),
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(null)));
  const base = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (server.address()).port}`;
  return { base, hits, sent, close: () => new Promise((ok) => server.close(ok)) };
}

// `options` adds to or replaces the context's (a phone: viewport, hasTouch, isMobile).
export async function launch(options = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'cutout-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath(),
    headless: true,
    viewport: { width: 1100, height: 900 },
    ...options,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // The stand-ins for the public model hosts serve https with a certificate made for the test.
      '--ignore-certificate-errors',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  const leaveWarnings = acceptLeaving(page);
  const consoleLines = [];
  page.on('console', (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (err) => consoleLines.push(`pageerror: ${err.message}`));
  return {
    context,
    page,
    consoleLines,
    leaveWarnings,
    close: async () => {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

// The page warns before it is left with results not downloaded; the tests leave and reload
// pages freely, so they accept that warning, and count it.
export function acceptLeaving(page) {
  const warnings = { count: 0 };
  page.on('dialog', (dialog) => {
    if (dialog.type() !== 'beforeunload') return;
    warnings.count++;
    dialog.accept().catch(() => {});
  });
  return warnings;
}

// axe-core's accessibility rules run in the page (evaluated over the DevTools protocol, which the
// page's CSP does not restrict): the violations, each as "rule: the elements it found".
const AXE_SOURCE = readFileSync(join(ROOT, 'tests/browser/node_modules/axe-core/axe.min.js'), 'utf8');
export async function axeViolations(page, context = 'html') {
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async (selector) => {
    // @ts-ignore axe is the script evaluated above
    const result = await window.axe.run(selector, { resultTypes: ['violations'] });
    return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  }, context);
  return violations;
}

// Accepts the first-run card (the download the page asks about before any model is fetched).
export async function acceptFirstRun(page) {
  await page.waitForSelector('#first-run:not([hidden])', { timeout: 60_000 });
  await page.click('#first-run-accept');
}

// Waits until a model is ready, accepting the first-run card if the page asks first.
export async function waitForModel(page, timeout = 180_000) {
  const outcome = await page.waitForFunction(
    () => (document.body.dataset.modelReady === 'true' ? 'ready' : !document.getElementById('first-run').hidden ? 'ask' : false),
    null,
    { timeout, polling: 250 },
  );
  if ((await outcome.jsonValue()) === 'ask') {
    await page.click('#first-run-accept');
    await page.waitForFunction(() => document.body.dataset.modelReady === 'true', null, { timeout, polling: 250 });
  }
}

// Waits until the queue item for `name` reaches a final state and returns it.
export async function waitForItem(page, name, timeout = 300_000) {
  const handle = await page.waitForFunction(
    (n) => {
      const item = [.../** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll('.item'))].find((el) => el.querySelector('.name').textContent === n);
      const status = item?.dataset.status;
      return status === 'completed' || status === 'failed' || status === 'cancelled' ? status : false;
    },
    name,
    { timeout, polling: 250 },
  );
  return handle.jsonValue();
}

export async function itemInfo(page, name) {
  return page.evaluate((n) => {
    const item = [.../** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll('.item'))].find((el) => el.querySelector('.name').textContent === n);
    const link = /** @type {HTMLAnchorElement | null} */ (item.querySelector('a[download]'));
    return {
      status: item.dataset.status,
      text: item.querySelector('.status').textContent,
      href: link && !link.hidden ? link.href : null,
      download: link && !link.hidden ? link.download : null,
    };
  }, name);
}

// Reads the result blob the page offers, inside the page: PNG signature, size and alpha samples.
export async function inspectResult(page, href, points) {
  return page.evaluate(
    async ({ href, points }) => {
      const blob = await (await fetch(href)).blob();
      const bytes = new Uint8Array(await blob.arrayBuffer());
      const signature = Array.from(bytes.slice(0, 8));
      const bitmap = await createImageBitmap(blob, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const context = canvas.getContext('2d');
      context.drawImage(bitmap, 0, 0);
      const patchMean = ([x, y, size]) => {
        const data = context.getImageData(x, y, size, size).data;
        let sum = 0;
        for (let i = 3; i < data.length; i += 4) sum += data[i];
        return sum / (size * size);
      };
      return { type: blob.type, signature, width: bitmap.width, height: bitmap.height, alphas: points.map(patchMean) };
    },
    { href, points },
  );
}

// A stand-in for a public model host on its own origin (https on 127.0.0.1, a certificate made
// for the run): `routes` maps paths to {body} | {status} | {body, cut: bytes}; `cors: false`
// leaves out Access-Control-Allow-Origin, as a host that does not allow other sites.
export async function publicHost(routes) {
  const dir = mkdtempSync(join(tmpdir(), 'cutout-tls-'));
  execSync(
    `openssl req -x509 -newkey rsa:2048 -nodes -keyout ${dir}/key.pem -out ${dir}/cert.pem -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1`,
    { stdio: 'ignore' },
  );
  const hits = new Map();
  const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (req, res) => {
    const path = new URL(req.url, 'https://localhost').pathname;
    hits.set(path, (hits.get(path) || 0) + 1);
    const route = routes.get(path);
    const cors = route?.cors === false ? {} : { 'Access-Control-Allow-Origin': '*' };
    if (!route) return res.writeHead(404, cors).end('not found');
    if (route.status) return res.writeHead(route.status, cors).end('refused');
    res.writeHead(200, { ...cors, 'Content-Type': 'application/octet-stream', 'Content-Length': route.body.length });
    if (req.method === 'HEAD') return res.end();
    if (route.cut) return res.write(route.body.subarray(0, route.cut), () => res.destroy());
    res.end(route.body);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(null)));
  const base = `https://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (server.address()).port}`;
  return { base, hits, routes, close: () => new Promise((ok) => server.close(ok)) };
}

// The site's manifest with each public host replaced by `base`, paths unchanged (as the CLI's
// tests do): served as the page's models.json.
export function manifestOn(base) {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'models/manifest.json'), 'utf8'));
  const local = (url) => url && `${base}/${url.split('/').slice(3).join('/')}`;
  for (const entry of manifest.models) {
    entry.url = local(entry.url);
    entry.parts_base_url = local(entry.parts_base_url);
  }
  return manifest;
}

// Routes serving `bytes` as model `entry` does on its host (its parts, or its one file).
export function modelRoutes(entry, bytes, base) {
  const routes = new Map();
  const path = (url) => url.slice(base.length);
  if (entry.url) routes.set(path(entry.url), { body: bytes });
  let offset = 0;
  for (const part of entry.parts || []) {
    routes.set(path(entry.parts_base_url + part.sha256), { body: bytes.subarray(offset, offset + part.size) });
    offset += part.size;
  }
  return routes;
}

export async function cachedModelUrls(page) {
  return page.evaluate(async () => (await (await caches.open('cutout-models-v1')).keys()).map((r) => r.url));
}

// Firefox (Debian's firefox-esr) over WebDriver BiDi, driven by puppeteer-core: its page has the
// same goto / evaluate / waitForFunction as Playwright's.
export function firefoxPath() {
  return commandPath('firefox-esr') || commandPath('firefox');
}

export async function launchFirefox() {
  const { default: puppeteer } = await import('puppeteer-core');
  // One evaluate can run a whole cut-out on one thread of Firefox's wasm: on a loaded machine
  // that outlasts puppeteer's default 180 s per protocol call (the tests keep their own limits).
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: firefoxPath(),
    headless: true,
    protocolTimeout: 900_000,
  });
  const page = await browser.newPage();
  return { browser, page, close: () => browser.close() };
}

// WebKitGTK (Safari's engine): Debian's WebKitWebDriver starting MiniBrowser, under xvfb-run (it
// needs a display), driven by selenium-webdriver.
const MINIBROWSER = '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
export function webkitMissing() {
  if (!commandPath('WebKitWebDriver')) return 'WebKitWebDriver is not installed (webkit2gtk-driver)';
  if (!existsSync(MINIBROWSER)) return `MiniBrowser is not at ${MINIBROWSER}`;
  if (!commandPath('xvfb-run')) return 'xvfb-run is not installed (xvfb)';
  return false;
}

export async function launchWebKit() {
  const { spawn } = await import('node:child_process');
  const { createServer: createNetServer } = await import('node:net');
  const { Builder } = await import('selenium-webdriver');
  const port = await new Promise((ok) => {
    const probe = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (probe.address());
      probe.close(() => ok(port));
    });
  });
  // Its own process group, so that closing ends xvfb-run, Xvfb, the driver and the browser.
  const driverProcess = spawn('xvfb-run', ['-a', 'WebKitWebDriver', `--port=${port}`], { stdio: 'ignore', detached: true });
  const capabilities = { browserName: 'MiniBrowser', 'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] } };
  let driver;
  for (let attempt = 0; !driver; attempt++) {
    try {
      driver = await new Builder().usingServer(`http://127.0.0.1:${port}`).withCapabilities(capabilities).build();
    } catch (e) {
      if (attempt > 40) throw e;
      await new Promise((ok) => setTimeout(ok, 250));
    }
  }
  return {
    driver,
    close: async () => {
      await driver.quit().catch(() => {});
      try {
        process.kill(-driverProcess.pid);
      } catch {}
    },
  };
}

// The program's path on PATH, or null.
function commandPath(name) {
  try {
    return execSync(`command -v ${name}`, { shell: '/bin/bash' }).toString().trim() || null;
  } catch {
    return null;
  }
}
