// The result viewer and editor as a person uses them, on the example photo and the real model:
// the before/after split with keys, zoom, the erase and restore brush with undo/redo and reset
// (checked in the downloaded file's pixels), new export settings rendered without a second
// inference, the queue's own controls, the phone layout with a touch brush, and axe-core's rules.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ISNET_SHA256, ROOT, SHARED, axeViolations, chromiumPath, launch, modelDir, photosMissing, serve, waitForItem, waitForModel } from './harness.mjs';

const models = modelDir();
const example = join(SHARED, 'eval/example_input.jpg');
const skip = !models ? 'the IS-Net model is not available (run models/fetch-isnet.sh)' : !chromiumPath() ? 'chromium is not installed' : false;
const skipPhotos = skip || photosMissing(example);
if (skip) console.log(`\n*** SKIPPING editor tests: ${skip} ***\n`);

const MODEL = '/models/isnet_quint8.onnx';
// Points of the example photo (933x1405): on the front giraffe, on the other one, and sky.
/** @type {[number, number]} */
const GIRAFFE = [538, 868];
/** @type {[number, number]} */
const OTHER_GIRAFFE = [598, 698];
/** @type {[number, number]} */
const SKY = [80, 60];

let server;
before(async () => {
  if (skip) return;
  server = await serve({ mounts: { '/models': models } });
});
after(async () => server?.close());

const link = () => `${server.base}/?model=${MODEL}&sha256=${ISNET_SHA256}`;

// Mean alpha of the 5x5 patch at each point of the item's current download, and its format.
async function download(page) {
  return page.evaluate(
    async (points) => {
      const href = /** @type {HTMLAnchorElement} */ (document.querySelector('.item a[download]')).href;
      const blob = await (await fetch(href)).blob();
      const bitmap = await createImageBitmap(blob, { premultiplyAlpha: 'none', colorSpaceConversion: 'none' });
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const context = canvas.getContext('2d');
      context.drawImage(bitmap, 0, 0);
      const mean = ([x, y], channel) => {
        const data = context.getImageData(x - 2, y - 2, 5, 5).data;
        let sum = 0;
        for (let i = channel; i < data.length; i += 4) sum += data[i];
        return Math.round(sum / 25);
      };
      const all = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
      let opaque = true;
      for (let i = 3; i < all.length; i += 4) if (all[i] !== 255) opaque = false;
      const head = [...new Uint8Array(await blob.slice(0, 4).arrayBuffer())];
      return {
        type: blob.type,
        head,
        width: bitmap.width,
        height: bitmap.height,
        opaque,
        alpha: Object.fromEntries(Object.entries(points).map(([name, p]) => [name, mean(p, 3)])),
        rgb: Object.fromEntries(Object.entries(points).map(([name, p]) => [name, [0, 1, 2].map((c) => mean(p, c))])),
      };
    },
    { giraffe: GIRAFFE, other: OTHER_GIRAFFE, sky: SKY },
  );
}

const renders = (page) => page.evaluate(() => Number(document.getElementById('viewer').dataset.rendered));
const inferences = (page) => page.evaluate(() => Number(document.body.dataset.inferences));

// Waits for the render after `action` (a stroke, an undo, a setting) and the viewer's repaint.
async function rendered(page, action) {
  const before = await renders(page);
  await action();
  await page.waitForFunction((n) => Number(document.getElementById('viewer').dataset.rendered) > n && document.getElementById('viewer-busy').hidden, before, {
    timeout: 60_000,
  });
}

// Where an image point is on the screen, through the viewer's current zoom and pan.
async function onScreen(page, [x, y]) {
  return page.evaluate(
    ([x, y]) => {
      const canvas = /** @type {HTMLCanvasElement} */ (document.getElementById('viewer-after'));
      const box = document.getElementById('viewer-after-content').getBoundingClientRect();
      return { x: box.left + (x * box.width) / canvas.width, y: box.top + (y * box.height) / canvas.height };
    },
    [x, y],
  );
}

async function drag(page, from, to) {
  const a = await onScreen(page, from);
  const b = await onScreen(page, to);
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move(b.x, b.y, { steps: 12 });
  await page.mouse.up();
}

async function openExample(page) {
  await page.goto(link());
  await waitForModel(page);
  await page.setInputFiles('#file-input', example);
  assert.equal(await waitForItem(page, 'example_input.jpg'), 'completed');
  await page.click('.item .thumb');
  await page.waitForFunction(() => Number(document.getElementById('viewer').dataset.rendered) > 0 && document.getElementById('viewer-busy').hidden, null, {
    timeout: 60_000,
  });
}

test('the viewer compares, zooms, erases, restores, undoes and re-exports without a second inference', { skip: skipPhotos }, async () => {
  const browser = await launch();
  const { page } = browser;
  try {
    await openExample(page);
    assert.deepEqual(await axeViolations(page), [], 'the page with the viewer open');
    await page.screenshot({ path: join(ROOT, 'target/viewer-desktop.png') });
    assert.equal(await inferences(page), 1);

    // The split moves with the keys.
    const split = '#viewer-split';
    assert.equal(await page.getAttribute(split, 'aria-valuenow'), '50');
    await page.focus(split);
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('ArrowLeft');
    assert.equal(await page.getAttribute(split, 'aria-valuenow'), '40');
    await page.keyboard.press('End');
    assert.equal(await page.getAttribute(split, 'aria-valuenow'), '100');

    // Zoom: + and - keys, the wheel, capped at 400 %, and Fit.
    const zoom = async () => Number((await page.textContent('#zoom-level')).replace('%', ''));
    const fitted = await zoom();
    await page.keyboard.press('+');
    assert.ok((await zoom()) > fitted, 'zoomed in');
    for (let i = 0; i < 20; i++) await page.keyboard.press('+');
    assert.equal(await zoom(), 400, 'at most 400 %');
    await page.keyboard.press('0');
    assert.equal(await zoom(), fitted, 'fitted again');
    const centre = await onScreen(page, GIRAFFE);
    await page.mouse.move(centre.x, centre.y);
    await page.mouse.wheel(0, -400);
    assert.ok((await zoom()) > fitted, 'the wheel zooms');
    assert.ok(Math.abs((await onScreen(page, GIRAFFE)).x - centre.x) < 2, 'around the pointer');
    await page.keyboard.press('0');

    const original = await download(page);
    assert.ok(original.alpha.giraffe >= 240 && original.alpha.other >= 240 && original.alpha.sky <= 8, JSON.stringify(original.alpha));

    // Erase across the front giraffe: transparent there in the downloaded PNG, the rest kept.
    await page.click('label:has(input[name=viewer-tool][value=erase])');
    assert.deepEqual(await axeViolations(page, '#viewer'), [], 'the viewer with the brush');
    await rendered(page, () => drag(page, [GIRAFFE[0] - 40, GIRAFFE[1]], [GIRAFFE[0] + 40, GIRAFFE[1]]));
    let now = await download(page);
    assert.equal(now.type, 'image/png');
    assert.deepEqual([now.width, now.height], [933, 1405]);
    assert.ok(now.alpha.giraffe <= 8, `erased: ${JSON.stringify(now.alpha)}`);
    assert.ok(now.alpha.other >= 240, `the other giraffe kept: ${JSON.stringify(now.alpha)}`);

    // Undo brings it back, redo erases again.
    await rendered(page, () => page.keyboard.press('Control+Z'));
    now = await download(page);
    assert.ok(now.alpha.giraffe >= 240, `undone: ${JSON.stringify(now.alpha)}`);
    await rendered(page, () => page.keyboard.press('Control+Shift+Z'));
    assert.ok((await download(page)).alpha.giraffe <= 8, 'redone');

    // Restore paints the sky back in, with the photo's own colours.
    await page.click('label:has(input[name=viewer-tool][value=restore])');
    await rendered(page, () => drag(page, [SKY[0] - 30, SKY[1]], [SKY[0] + 30, SKY[1]]));
    now = await download(page);
    assert.ok(now.alpha.sky >= 240, `restored: ${JSON.stringify(now.alpha)}`);
    assert.ok(now.alpha.giraffe <= 8, 'the erase stays');

    // Reset goes back to the model's mask (and is itself undoable).
    await rendered(page, () => page.click('#edit-reset'));
    now = await download(page);
    assert.deepEqual(now.alpha, original.alpha, 'the model’s mask again');
    await rendered(page, () => page.click('#edit-undo'));
    assert.ok((await download(page)).alpha.sky >= 240, 'the reset undone');

    // Copy puts the edited result on the clipboard as PNG.
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.base });
    await page.click('#viewer-copy');
    await page.waitForFunction(() => /Copied/.test(document.getElementById('viewer-status').textContent));
    const copied = await page.evaluate(async () => {
      const [entry] = await navigator.clipboard.read();
      const bitmap = await createImageBitmap(await entry.getType('image/png'));
      return { types: entry.types, width: bitmap.width, height: bitmap.height };
    });
    assert.deepEqual(copied, { types: ['image/png'], width: 933, height: 1405 });

    // JPEG on a colour: a new file from the same mask, no alpha, no second inference.
    await rendered(page, () => page.selectOption('#export-kind', 'jpeg'));
    await rendered(page, async () => {
      await page.selectOption('#export-background', 'colour');
    });
    await rendered(page, () => page.fill('#export-colour', '#00a000').then(() => page.dispatchEvent('#export-colour', 'change')));
    now = await download(page);
    assert.equal(now.type, 'image/jpeg');
    assert.deepEqual(now.head.slice(0, 3), [0xff, 0xd8, 0xff], 'a JPEG file');
    assert.ok(now.opaque, 'no transparency in a JPEG');
    const [r, g, b] = now.rgb.giraffe;
    assert.ok(g > 130 && r < 60 && b < 60, `the erased part shows the chosen colour: ${now.rgb.giraffe}`);
    assert.equal(await page.getAttribute('.item a[download]', 'download'), 'example_input-cutout.jpg');

    // A size preset: the longer side 512 px.
    await rendered(page, () => page.selectOption('#export-size', '512'));
    now = await download(page);
    assert.deepEqual([now.width, now.height], [340, 512]);
    assert.equal(await inferences(page), 1, 'every change re-rendered without the model');

    // Esc closes the viewer; the queue item keeps the edited result.
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => document.body.dataset.viewer === 'closed' && !(/** @type {HTMLDialogElement} */ (document.getElementById('viewer')).open));
    assert.deepEqual(await axeViolations(page), [], 'the page with a result');
    // Dragging the Download link out hands over the file itself (Chromium's DownloadURL).
    const dragged = await page.evaluate(() => {
      const transfer = new DataTransfer();
      document.querySelector('.item a[download]').dispatchEvent(new DragEvent('dragstart', { dataTransfer: transfer, bubbles: true }));
      return transfer.getData('DownloadURL');
    });
    assert.match(dragged, /^image\/jpeg:example_input-cutout\.jpg:blob:http/);
  } finally {
    await browser.close();
  }
});

test('queue controls: remove, clear, no retry for a file that cannot work, download all (N), drops anywhere', { skip: skipPhotos }, async () => {
  const browser = await launch();
  const { page } = browser;
  // "Clear" asks first when some results were not downloaded: yes.
  page.on('dialog', (dialog) => dialog.type() === 'confirm' && dialog.accept());
  try {
    await page.goto(link());
    await waitForModel(page);
    await page.setInputFiles('#file-input', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a picture') });
    assert.equal(await waitForItem(page, 'notes.txt'), 'failed');
    await page.setInputFiles('#file-input', example);
    assert.ok(await page.isHidden('.item[data-status=failed] button:text("Retry")'), 'no Retry for a file that is not an image');
    assert.equal(await waitForItem(page, 'example_input.jpg'), 'completed');
    assert.equal(await page.textContent('#download-all'), 'Download all (1)');

    // A file dropped outside the drop zone is added, not opened in place of the app.
    const dropped = await page.evaluateHandle(async () => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([await (await fetch('icons/icon-192.png')).blob()], 'icon.png', { type: 'image/png' }));
      return transfer;
    });
    const appUrl = page.url();
    await page.dispatchEvent('footer', 'dragenter', { dataTransfer: dropped });
    await page.dispatchEvent('footer', 'dragover', { dataTransfer: dropped });
    await page.dispatchEvent('footer', 'drop', { dataTransfer: dropped });
    assert.equal(await waitForItem(page, 'icon.png'), 'completed');
    assert.equal(page.url(), appUrl, 'the app is still here');
    assert.equal(await page.textContent('#download-all'), 'Download all (2)');

    // Results survive a reload, edits included, and render again without the model.
    await page.click('.item:has(.name:text-is("example_input.jpg")) .thumb');
    await page.waitForFunction(() => document.getElementById('viewer-busy').hidden && Number(document.getElementById('viewer').dataset.rendered) > 0);
    await page.click('label:has(input[name=viewer-tool][value=erase])');
    await rendered(page, () => drag(page, [GIRAFFE[0] - 40, GIRAFFE[1]], [GIRAFFE[0] + 40, GIRAFFE[1]]));
    await page.keyboard.press('Escape');
    await page.waitForTimeout(500); // the last save
    await page.reload();
    assert.equal(browser.leaveWarnings.count, 0, 'no warning: everything is kept');
    await page.waitForFunction(() => document.body.dataset.restored === '2');
    const names = await page.$$eval('.item .name', (elements) => elements.map((n) => n.textContent));
    assert.deepEqual(names, ['icon.png', 'example_input.jpg'], 'newest first; the failed file is not kept');
    await waitForModel(page);
    await page.click('.item:has(.name:text-is("example_input.jpg")) .thumb');
    await page.waitForFunction(() => document.getElementById('viewer-busy').hidden && Number(document.getElementById('viewer').dataset.rendered) > 0);
    assert.equal(await page.evaluate(() => document.getElementById('viewer').dataset.strokes), '1', 'the stroke is kept');
    await rendered(page, () => page.click('#edit-undo'));
    await page.keyboard.press('Escape');
    assert.equal(await inferences(page), 0, 'kept results need no inference');
    await page.click('#clear-all');
    assert.equal(await page.locator('.item').count(), 0, 'cleared');
    await page.reload();
    await waitForModel(page);
    assert.equal(await page.locator('.item').count(), 0, 'and gone from this browser');

    await page.setInputFiles('#file-input', example);
    assert.equal(await waitForItem(page, 'example_input.jpg'), 'completed');
    await page.click('.item button:text("Remove")');
    assert.equal(await page.locator('.item').count(), 0, 'removed');
    assert.ok(await page.isVisible('#queue-empty'));
    await page.setInputFiles('#file-input', [example, example]);
    await page.waitForFunction(() => document.querySelectorAll('.item').length === 2);
    await page.click('#clear-all');
    assert.equal(await page.locator('.item').count(), 0, 'cleared, the running item too');
    await page.setInputFiles('#file-input', example);
    assert.equal(await waitForItem(page, 'example_input.jpg'), 'completed', 'and the queue still works');

    // A full storage quota: the result stays usable, the page says it is not kept, and leaving
    // with it not downloaded asks first.
    await page.addInitScript(() => {
      IDBObjectStore.prototype.put = () => {
        throw new DOMException('the quota is exceeded', 'QuotaExceededError');
      };
    });
    await page.reload();
    await waitForModel(page);
    await page.click('#clear-all');
    await page.setInputFiles('#file-input', example);
    assert.equal(await waitForItem(page, 'example_input.jpg'), 'completed');
    await page.waitForSelector('.item[data-kept=false]');
    assert.match(await page.textContent('#announcer'), /could not be kept in this browser \(this browser’s storage is full\)/);
    await page.click('#queue-heading'); // the browser asks only after a user gesture
    await page.reload();
    assert.equal(browser.leaveWarnings.count, 1, 'one warning before the reload');
  } finally {
    await browser.close();
  }
});

test('a phone in dark mode: no sideways scrolling, the new item in view, a touch brush, and nothing shifts', { skip: skipPhotos }, async () => {
  const browser = await launch({ viewport: { width: 360, height: 780 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2, colorScheme: 'dark' });
  const { page, context } = browser;
  try {
    await page.addInitScript(() => {
      window.layoutShift = 0;
      new PerformanceObserver((list) => {
        // A layout-shift entry (no type for it in the DOM library yet).
        for (const entry of /** @type {any[]} */ (list.getEntries())) if (!entry.hadRecentInput) window.layoutShift += entry.value;
      }).observe({ type: 'layout-shift', buffered: true });
    });
    await page.goto(link());
    await waitForModel(page);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360), 'no horizontal scroll at 360 px');
    assert.equal(await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor), 'rgb(18, 21, 27)', 'dark colours');
    assert.deepEqual(await axeViolations(page), [], 'the page on a phone, dark (contrast included)');
    await page.setInputFiles('#file-input', example);
    await page.waitForFunction(() => {
      const box = document.querySelector('.item').getBoundingClientRect();
      return box.top >= 0 && box.top < innerHeight;
    });
    assert.equal(await waitForItem(page, 'example_input.jpg'), 'completed');
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360), 'still none with a result');
    await page.tap('.item .thumb');
    await page.waitForFunction(() => Number(document.getElementById('viewer').dataset.rendered) > 0 && document.getElementById('viewer-busy').hidden, null, {
      timeout: 60_000,
    });
    await page.tap('label:has(input[name=viewer-tool][value=erase])');
    // A finger's drag, as the touch screen sends it (pointer events of type touch).
    const cdp = await context.newCDPSession(page);
    const from = await onScreen(page, [GIRAFFE[0] - 40, GIRAFFE[1]]);
    const to = await onScreen(page, [GIRAFFE[0] + 40, GIRAFFE[1]]);
    const touch = (type, { x, y }) => cdp.send('Input.dispatchTouchEvent', { type, touchPoints: type === 'touchEnd' ? [] : [{ x, y }] });
    await rendered(page, async () => {
      await touch('touchStart', from);
      for (let i = 1; i <= 10; i++) await touch('touchMove', { x: from.x + ((to.x - from.x) * i) / 10, y: from.y });
      await touch('touchEnd', to);
    });
    assert.ok((await download(page)).alpha.giraffe <= 8, 'erased by touch');
    const shift = await page.evaluate(() => window.layoutShift);
    assert.ok(shift < 0.1, `cumulative layout shift ${shift}`);
    await page.tap('label:has(input[name=viewer-backdrop][value=colour])');
    await page.screenshot({ path: join(ROOT, 'target/viewer-phone.png') });
  } finally {
    await browser.close();
  }
});
