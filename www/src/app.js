// The page: input, queue and results. All pixel work happens in worker.js, reached through
// engine-client.js (the npm package's client too).
import { EngineClient, ModelLoadError } from './engine-client.js';
import { downloadOf, resolveModel, sizeText } from './model-spec.js';
import { activeStrokes, createViewer } from './viewer.js';
import { forget, forgetAll, keep, keptItems } from './store.js';
// client-zip, vendored into the site by build.sh: stored entries (PNG and WebP are compressed already), ZIP64 past 4 GB.
import { downloadZip } from './vendor/client-zip.js';

// The page's elements by id; typed loosely: each is the input, select, progress... index.html has.
const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));

const state = {
  manifest: null,
  config: {},
  engine: /** @type {EngineClient} */ (/** @type {unknown} */ (null)),
  workerReady: false,
  model: null, // {key, url, sha256, size, entry, file}
  modelReady: false,
  modelError: null,
  items: [],
  nextId: 1,
  running: null, // the item the worker is processing
  inferences: 0, // model runs this visit (a re-render needs none)
  cachedUrls: new Set(), // models stored in this browser, by URL
  consented: new Set(), // models whose download the user accepted, by key
};

function announce(text) {
  $('announcer').textContent = text;
}

// ---- worker lifecycle ---------------------------------------------------------------------------

function createWorker() {
  // ?variant= and ?threads= pass through to the worker (tests, benchmarks, capping cores).
  const url = new URL('worker.js', location.href);
  for (const name of ['variant', 'threads']) {
    const value = new URLSearchParams(location.search).get(name);
    if (value) url.searchParams.set(name, value);
  }
  return new Worker(url, { type: 'module' });
}

function startWorker() {
  state.workerReady = false;
  state.modelReady = false;
  document.body.dataset.modelReady = 'false';
  state.engine.start().then(onReady, () => {}); // a failed start is reported by onFatal / onError
}

function restartWorker() {
  state.engine.stop();
  state.running = null;
  startWorker();
}

function onReady(ready) {
  state.workerReady = true;
  state.manifest = state.manifest || ready.manifest;
  $('engine-info').textContent =
    `Engine: tract, WebAssembly ${ready.variant === 'simd' ? 'SIMD' : 'relaxed SIMD'}, ` +
    `${ready.threads} thread${ready.threads === 1 ? '' : 's'}${ready.notice ? ` (${ready.notice})` : ''}.`;
  document.body.dataset.threads = String(ready.threads);
  document.body.dataset.variant = ready.variant;
  // The service worker keeps only the wasm build in use: tell it which (it may not have seen the
  // worker fetch it, on a first visit).
  navigator.serviceWorker?.ready.then((registration) => registration.active?.postMessage({ type: 'keep-build', path: ready.wasmUrl }));
  if (!$('model-select').options.length) fillModelSelect();
  listCachedModels().then((listed) => listed && loadOrAsk());
}

function onModelProgress(loaded, total) {
  const bar = $('model-progress');
  bar.classList.remove('invisible');
  bar.max = total || 1;
  bar.value = total ? loaded : 0;
  setModelStatus(`Downloading the model: ${mb(loaded)}${total ? ` of ${mb(total)}` : ''}`);
}

// `warnings`: what the worker said while it loaded the model (why it is not stored, say): they
// stay on screen beside "ready" instead of being replaced by it.
function onModelReady(info, warnings = []) {
  state.modelReady = true;
  state.modelError = null;
  $('model-progress').classList.add('invisible');
  $('model-retry').hidden = true;
  $('model-choose').hidden = true;
  const how = info.reused
    ? ''
    : info.fromCache
      ? ' (from this browser’s storage)'
      : info.stored
        ? ' (downloaded and stored for next time)'
        : ' (downloaded; not stored, so the next visit downloads it again)';
  setModelStatus([`Model ready${how}.`, ...warnings].join(' '), warnings.length ? 'warning' : 'ok');
  document.body.dataset.modelReady = 'true';
  document.body.dataset.modelFromCache = String(Boolean(info.fromCache));
  if (info.compileMs) document.body.dataset.modelCompileMs = String(Math.round(info.compileMs));
  listCachedModels();
  pump();
}

function onModelError(error) {
  state.modelReady = false;
  state.modelError = error.message;
  $('model-progress').classList.add('invisible');
  setModelStatus(error.message, 'error');
  $('model-retry').hidden = false;
  $('model-choose').hidden = false;
  document.body.dataset.modelReady = 'false';
  document.body.dataset.modelError = error.code || 'model-error';
  failPending(`the model could not be loaded: ${error.message}`);
  listCachedModels();
}

// ---- models -------------------------------------------------------------------------------------

const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

const resolveOptions = () => ({ modelBaseUrl: state.config.modelBaseUrl, baseUrl: location.href });

function fillModelSelect() {
  const select = $('model-select');
  select.replaceChildren();
  const params = new URLSearchParams(location.search);
  if (params.get('model')) {
    const option = new Option(`From the link: ${params.get('model')}`, 'param');
    select.add(option);
  }
  for (const entry of state.manifest.models) {
    const source = downloadOf(entry, state.config.modelBaseUrl, location.href);
    const label = `${entry.name}${entry.size ? ` — ${mb(entry.size)}` : ''}`;
    const option = new Option(label, entry.id);
    option.disabled = !source;
    select.add(option);
  }
  select.value = params.get('model') ? 'param' : state.config.defaultModel || state.manifest.default;
  showModelDetails();
}

function showModelDetails() {
  const model = selectedModel();
  if (!model) return;
  const entry = model.entry;
  const source = model.file ? `local file ${model.file.name}` : model.url;
  $('model-details').textContent =
    `${entry.name}. Licence: ${entry.licence}. Source: ${source}${model.sha256 ? ` (sha256 ${model.sha256.slice(0, 12)}…)` : ' (unverified)'}.`;
}

function selectedModel() {
  if (state.model && state.model.file) return state.model;
  const select = $('model-select');
  if (select.value === 'param') {
    const params = new URLSearchParams(location.search);
    return resolveModel({ url: params.get('model'), sha256: params.get('sha256') }, state.manifest, resolveOptions());
  }
  return resolveModel(select.value, state.manifest, resolveOptions());
}

// A model already stored here (or accepted this visit) loads at once; any other is downloaded
// only after the user has seen what it is, how big, and under which licence.
function loadOrAsk() {
  const model = selectedModel();
  if (!model) return;
  if (model.file || state.cachedUrls.has(model.url) || state.consented.has(model.key)) {
    showFirstRunCard(false);
    loadModel();
  } else {
    showFirstRun(model);
  }
}

function describeLinkModel(model) {
  // A link's model is known only when its sha256 is a manifest model's.
  const known = model.sha256 && state.manifest.models.some((m) => m.sha256 === model.sha256);
  if (known) return model.entry;
  return {
    name: 'The model this link names',
    licence: 'not stated: the link does not name a model this site lists; use it only if you know its licence',
    licence_url: null,
    source: model.url,
    size: null,
  };
}

function showFirstRun(model) {
  const fromLink = $('model-select').value === 'param';
  const entry = fromLink ? describeLinkModel(model) : model.entry;
  $('first-run-name').textContent = entry.name;
  $('first-run-size').textContent = sizeText(entry) ? `(${sizeText(entry)})` : '(size not published)';
  $('first-run-licence').textContent = entry.licence;
  const link = $('first-run-licence-link');
  link.hidden = !entry.licence_url;
  if (entry.licence_url) link.href = entry.licence_url;
  const gated =
    entry.gated && !state.config.modelBaseUrl ? ' Gated: its host refuses anonymous downloads, so it works only where this site serves it (modelBaseUrl).' : '';
  // A site that hosts the models itself (modelBaseUrl) serves them: name that, not the public host.
  const from = state.config.modelBaseUrl ? model.url : entry.source || model.url;
  $('first-run-source').textContent = `From: ${from}.${gated}`;
  $('first-run-accept').textContent = `Download${sizeText(entry) ? ` ${sizeText(entry)}` : ''}`;
  renderChoices();
  showFirstRunCard(true);
  $('model-choose').hidden = true;
  document.body.dataset.firstRun = 'shown';
  setModelStatus('Choose a model to download.');
}

// The card is a modal dialog: it covers the page instead of pushing it down as it appears.
function showFirstRunCard(open) {
  const card = $('first-run');
  card.hidden = !open;
  if (open && !card.open) card.showModal();
  if (!open && card.open) card.close();
}

function renderChoices() {
  const box = $('first-run-choices');
  box.replaceChildren();
  const select = $('model-select');
  for (const option of select.options) {
    const label = document.createElement('label');
    const radio = Object.assign(document.createElement('input'), {
      type: 'radio',
      name: 'first-run-model',
      value: option.value,
      checked: option.value === select.value,
      disabled: option.disabled,
    });
    radio.addEventListener('change', () => {
      select.value = radio.value;
      showModelDetails();
      showFirstRun(selectedModel());
      box.querySelector(`input[value="${CSS.escape(radio.value)}"]`)?.focus();
    });
    label.append(radio, ` ${option.textContent}`);
    const entry = state.manifest.models.find((m) => m.id === option.value);
    if (entry)
      label.append(
        Object.assign(document.createElement('span'), {
          className: 'hint',
          textContent: `${entry.licence}${entry.gated ? ' · gated: self-hosting only' : ''}`,
        }),
      );
    box.append(label);
  }
}

function acceptFirstRun() {
  const model = selectedModel();
  state.consented.add(model.key);
  showFirstRunCard(false);
  document.body.dataset.firstRun = 'accepted';
  loadModel();
}

function declineFirstRun() {
  showFirstRunCard(false);
  document.body.dataset.firstRun = 'declined';
  setModelStatus('Nothing was downloaded. Cutout needs a model to remove backgrounds: choose one when you are ready (or use a local .onnx file).', 'warning');
  $('model-choose').hidden = false;
}

function loadModel() {
  if (!state.workerReady) return;
  requestModel(selectedModel(), 'Loading the model…');
}

// Loads `model`; a later choice supersedes it, so its outcome is then ignored.
function requestModel(model, status) {
  state.model = model;
  state.modelReady = false;
  document.body.dataset.modelReady = 'false';
  showModelDetails();
  setModelStatus(status);
  const current = () => state.model?.key === model.key;
  const warnings = [];
  const onStatus = (kind, message) => {
    if (kind === 'warning') warnings.push(message);
    setModelStatus(message, kind === 'warning' ? 'warning' : '');
  };
  state.engine.loadModel(model, { onProgress: onModelProgress, onStatus }).then(
    (info) => current() && onModelReady(info, warnings),
    // Not a ModelLoadError: the engine was stopped or crashed, and reloads the model when it restarts.
    (error) => current() && error instanceof ModelLoadError && onModelError(error),
  );
}

function setModelStatus(text, kind = '') {
  const el = $('model-status');
  el.textContent = text;
  el.className = `status-line ${kind}`;
}

// Resolves to true once the list of stored models is shown (and known to loadOrAsk); to false
// when the engine stopped meanwhile (its restart lists them again).
function listCachedModels() {
  if (!state.workerReady) return Promise.resolve(false);
  return state.engine.listModels().then(
    (list) => (showCachedModels(list), true),
    () => false,
  );
}

function showCachedModels(list) {
  renderCachedModels(list);
  state.cachedUrls = new Set(list.map((m) => m.url));
}

function renderCachedModels(list) {
  const ul = $('cached-list');
  ul.replaceChildren();
  if (!list.length) {
    ul.append(Object.assign(document.createElement('li'), { textContent: 'None yet.' }));
    return;
  }
  for (const model of list) {
    const li = document.createElement('li');
    const name = model.id || model.url.split('/').pop();
    li.append(`${name} — ${mb(model.size)} `);
    const button = Object.assign(document.createElement('button'), { type: 'button', className: 'secondary small', textContent: 'Delete' });
    button.setAttribute('aria-label', `Delete ${name} from this browser`);
    button.onclick = () => state.engine.deleteModel(model.url).then(showCachedModels, () => {});
    li.append(button);
    ul.append(li);
  }
}

// ---- queue --------------------------------------------------------------------------------------

// Errors that the same file would give again: no Retry for them.
const PERMANENT_ERRORS = new Set(['not-an-image', 'corrupt-image', 'empty-input', 'zero-size', 'too-many-pixels', 'bad-pixel-buffer']);
const STATUS_TEXT = { pending: 'PENDING', processing: 'PROCESSING', completed: 'COMPLETED', failed: 'FAILED', cancelled: 'CANCELLED' };
// Where each stage starts on the item's progress bar; inference fills the span to the next.
const STAGE_PERCENT = { decode: 0, preprocess: 3, inference: 6, postprocess: 94, encode: 97 };
const narrow = window.matchMedia('(max-width: 899px)');

/** The output settings the page's Output panel holds: every item starts with them. */
function defaultSettings() {
  const output = $('output-kind').value;
  return {
    output,
    background: output !== 'mask' && $('bg-enabled').checked ? $('bg-colour').value : null,
    backgroundFile: null,
    crop: $('crop-enabled').checked ? Math.max(0, Math.min(1000, Number($('crop-margin').value) || 0)) : false,
    maxSide: Number($('max-side').value) || null,
    refine: $('refine-enabled').checked,
  };
}

/** What the engine is asked for, from an item's settings. */
function engineOptions(settings, extra = {}) {
  const { output, background, crop, maxSide, refine } = settings;
  return { output, background: output === 'mask' ? null : background, crop, maxSide, refine, ...extra };
}

function addFiles(files) {
  let last = null;
  for (const file of files) last = addItem(file, file.name || 'pasted-image');
  // On a phone the results are below the inputs: bring the new item into view.
  if (last && narrow.matches) last.el.root.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  pump();
}

function addItem(file, name) {
  const item = showItem({ id: state.nextId++, file, name, settings: defaultSettings(), customised: false, history: [], future: [], downloaded: false });
  if (state.modelError) setStatus(item, 'failed', `the model could not be loaded: ${state.modelError}`);
  else {
    setStatus(item, 'pending');
    persist(item);
  }
  return item;
}

// An item in the queue, new or kept from an earlier visit.
function showItem(fields) {
  const item = { ...fields, key: `item-${fields.id}`, status: 'pending', percent: 0 };
  item.inputUrl = URL.createObjectURL(item.file);
  item.el = renderItem(item);
  state.items.push(item);
  $('queue').prepend(item.el.root);
  return item;
}

// ---- kept results -------------------------------------------------------------------------------

/** Saves the item in this browser (one save at a time per item; the latest state wins). */
function persist(item) {
  if (item.saving) {
    item.saveAgain = true;
    return;
  }
  if (!state.items.includes(item) || !(item.status === 'pending' || item.status === 'completed')) return;
  item.saving = true;
  const record = {
    id: item.id,
    name: item.name,
    file: item.file,
    status: item.status,
    settings: item.settings,
    customised: item.customised,
    history: item.history,
    future: item.future,
    downloaded: item.downloaded,
    ...(item.status === 'completed' && {
      alpha: item.alpha,
      inputWidth: item.inputWidth,
      inputHeight: item.inputHeight,
      result: item.result,
      resultWidth: item.resultWidth,
      resultHeight: item.resultHeight,
    }),
  };
  keep(record)
    .then(
      () => {
        item.kept = true;
        if (!state.items.includes(item)) forget(item.id).catch(() => {});
      },
      (error) => {
        item.kept = false;
        const why = error?.name === 'QuotaExceededError' ? 'this browser’s storage is full' : error?.message || 'storage is unavailable';
        announce(`${item.name} could not be kept in this browser (${why}): download it before you leave.`);
        item.el.root.dataset.kept = 'false';
        item.el.status.title = `Not kept in this browser: ${why}`;
      },
    )
    .finally(() => {
      item.saving = false;
      if (item.saveAgain) {
        item.saveAgain = false;
        persist(item);
      }
    });
}

// Shows the results kept from earlier visits (and queues the photos that were still waiting).
async function restoreKeptItems() {
  const kept = await keptItems();
  for (const record of kept) {
    state.nextId = Math.max(state.nextId, record.id + 1);
    const item = showItem(record);
    item.kept = true;
    if (record.status === 'completed' && record.result && record.alpha) {
      showResult(item, record.result, { width: record.resultWidth, height: record.resultHeight });
      item.downloaded = record.downloaded;
      setStatus(item, 'completed', `${record.resultWidth}×${record.resultHeight}, kept from an earlier visit`);
    } else {
      setStatus(item, 'pending');
    }
  }
  document.body.dataset.restored = String(kept.length);
  pump();
}

function button(text, label, onClick, className = 'secondary') {
  const element = Object.assign(document.createElement('button'), { type: 'button', className, textContent: text });
  element.setAttribute('aria-label', label);
  element.onclick = onClick;
  return element;
}

function renderItem(item) {
  const root = document.createElement('li');
  root.className = 'item';
  root.dataset.id = String(item.id);
  const thumb = Object.assign(document.createElement('button'), { type: 'button', className: 'thumb', disabled: true });
  thumb.setAttribute('aria-label', `Open ${item.name}`);
  const image = Object.assign(document.createElement('img'), { alt: '', src: item.inputUrl, className: 'before', draggable: false });
  // Formats the browser cannot show (TIFF) or broken files: a neutral placeholder, not a broken icon.
  image.addEventListener('error', () => {
    if (image.src !== item.inputUrl) return;
    image.hidden = true;
    thumb.classList.add('no-preview');
  });
  thumb.append(image);
  thumb.onclick = () => openViewer(item);
  const info = document.createElement('div');
  info.className = 'item-info';
  const title = Object.assign(document.createElement('p'), { className: 'name', textContent: item.name });
  // Not a live region: the page-wide announcer says when each item starts and ends.
  const status = Object.assign(document.createElement('p'), { className: 'status' });
  const progress = Object.assign(document.createElement('progress'), { max: 100, value: 0 });
  progress.setAttribute('aria-label', `Progress for ${item.name}`);
  const actions = document.createElement('div');
  actions.className = 'actions';
  const download = Object.assign(document.createElement('a'), { className: 'button', textContent: 'Download', hidden: true });
  download.addEventListener('click', () => markDownloaded(item));
  // Dragging the link out gives the file itself (Chromium's DownloadURL), not a link to it.
  download.addEventListener('dragstart', (event) => {
    if (item.result) event.dataTransfer.setData('DownloadURL', `${item.result.type}:${item.resultName}:${item.resultUrl}`);
  });
  const edit = button('Open', `Open ${item.name} to compare, zoom, touch up and export`, () => openViewer(item));
  const cancel = button('Cancel', `Cancel ${item.name}`, () => cancelItem(item));
  const retry = button('Retry', `Retry ${item.name}`, () => retryItem(item));
  const remove = button('Remove', `Remove ${item.name}`, () => removeItem(item));
  actions.append(download, edit, cancel, retry, remove);
  info.append(title, status, progress, actions);
  root.append(thumb, info);
  return { root, thumb, image, status, progress, download, edit, cancel, retry, remove };
}

function setStatus(item, status, message = '', code = null) {
  const previous = item.status;
  item.status = status;
  item.message = message;
  item.el.root.dataset.status = status;
  item.el.cancel.hidden = !(status === 'pending' || status === 'processing');
  item.el.retry.hidden = !(status === 'cancelled' || (status === 'failed' && !PERMANENT_ERRORS.has(code)));
  item.el.remove.hidden = status === 'processing';
  item.el.edit.hidden = status !== 'completed';
  item.el.thumb.disabled = status !== 'completed';
  showStatusText(item);
  // Nothing to keep of a photo that failed or was cancelled (Retry keeps it again).
  if (status === 'failed' || status === 'cancelled') forget(item.id).catch(() => {});
  if (status !== previous || status === 'failed') {
    if (status === 'processing') announce(`${item.name}: removing the background`);
    if (status === 'completed' || status === 'failed') announce(`${item.name}: ${STATUS_TEXT[status]}${message ? `, ${message}` : ''}`);
  }
  updateQueueButtons();
}

function showStatusText(item) {
  let text = STATUS_TEXT[item.status];
  if (item.status === 'processing') {
    text += ` ${Math.round(item.percent)}%`;
    if (item.secondsLeft != null) text += ` · about ${Math.max(1, Math.round(item.secondsLeft))} s left`;
  }
  item.el.status.textContent = `${text}${item.message ? `: ${item.message}` : ''}`;
}

function updateQueueButtons() {
  const done = state.items.filter((i) => i.status === 'completed').length;
  $('download-all').disabled = !done;
  $('download-all').textContent = done ? `Download all (${done})` : 'Download all';
  $('clear-all').disabled = !state.items.length;
  $('queue-empty').hidden = state.items.length > 0;
}

// Progress from the engine: stage starts, and during inference the fraction of the graph done
// (weighted by each node's time in the previous image). Time left comes from that fraction.
function onStage(item, stage, fraction) {
  const now = performance.now();
  if (fraction === undefined) {
    item.stage = stage;
    item.stageStarted = now;
    if (stage === 'inference') state.inferences++;
    document.body.dataset.inferences = String(state.inferences);
  }
  let percent = STAGE_PERCENT[stage] ?? item.percent;
  item.secondsLeft = null;
  if (stage === 'inference' && fraction !== undefined) {
    percent += fraction * (STAGE_PERCENT.postprocess - STAGE_PERCENT.inference);
    const elapsed = (now - item.stageStarted) / 1000;
    if (fraction > 0.05 && elapsed > 1) item.secondsLeft = (elapsed * (1 - fraction)) / fraction;
  }
  item.percent = Math.min(99, Math.max(item.percent, percent));
  item.el.progress.value = item.percent;
  showStatusText(item);
}

function pump() {
  if (state.running || !state.modelReady) return;
  const item = state.items.find((i) => i.status === 'pending');
  if (!item) return;
  state.running = item;
  item.percent = 0;
  item.started = performance.now();
  setStatus(item, 'processing');
  const options = engineOptions(item.settings, { withAlpha: true });
  state.engine.process({ file: item.file, options, keep: item.key }, { onStage: (stage, fraction) => onStage(item, stage, fraction) }).then(
    (done) => finishItem(item, done),
    (error) => failItem(item, error),
  );
}

function failItem(item, error) {
  // Cancelled (the worker was stopped) or failed with the model: already marked.
  if (state.running !== item) return;
  state.running = null;
  setStatus(item, 'failed', error.message, error.code);
  pump();
}

function finishItem(item, done) {
  if (state.running !== item) return;
  state.running = null;
  if (item.status !== 'processing') return pump();
  item.alpha = done.alpha;
  item.inputWidth = done.inputWidth;
  item.inputHeight = done.inputHeight;
  item.percent = 100;
  item.secondsLeft = null;
  showResult(item, new Blob([done.bytes], { type: done.mime }), done);
  setStatus(item, 'completed', `${done.width}×${done.height}, ${((performance.now() - item.started) / 1000).toFixed(1)} s`);
  persist(item);
  pump();
}

// A new result file for the item (first run, re-render or kept): link, thumbnail and viewer
// follow it. `done` gives its size and, from a render for the viewer, the full-size view.
function showResult(item, blob, done) {
  if (item.resultUrl) URL.revokeObjectURL(item.resultUrl);
  item.result = blob;
  item.resultUrl = URL.createObjectURL(item.result);
  item.resultName = resultName(item.name, item.settings.output);
  item.resultWidth = done.width;
  item.resultHeight = done.height;
  item.downloaded = false;
  const { image, download, root } = item.el;
  Object.assign(image, { src: item.resultUrl, alt: `Result: ${item.name} without background`, hidden: false, className: 'after checkerboard' });
  item.el.thumb.classList.remove('no-preview');
  Object.assign(download, { href: item.resultUrl, download: item.resultName, hidden: false });
  download.setAttribute('aria-label', `Download ${item.resultName}`);
  root.dataset.width = String(done.width);
  root.dataset.height = String(done.height);
  root.dataset.renders = String(Number(root.dataset.renders || 0) + 1);
  if (done.view) item.view = { pixels: done.view, width: done.inputWidth, height: done.inputHeight };
  viewer.showResult(item);
  viewer.showView(item);
}

function resultName(name, output) {
  const stem = name.replace(/\.[^./]+$/, '') || 'image';
  if (output === 'mask') return `${stem}-mask.png`;
  const extension = { webp: 'webp', jpeg: 'jpg' }[output] || 'png';
  return `${stem}-cutout.${extension}`;
}

// The item made again by the engine from its photo, alpha and strokes, with `settings`.
function composite(item, settings, extra = {}) {
  const options = engineOptions(settings, extra);
  return state.engine.composite({
    key: item.key,
    file: item.file,
    alpha: item.alpha,
    strokes: activeStrokes(item),
    options,
    backgroundFile: settings.backgroundFile,
  });
}

// Renders the item again without inference (strokes or settings changed). One render per item
// at a time; changes made meanwhile are rendered once it returns.
function render(item) {
  if (item.status !== 'completed') return;
  if (item.rendering) {
    item.renderAgain = true;
    return;
  }
  item.rendering = true;
  viewer.busy(item);
  composite(item, item.settings, { withView: viewer.item === item })
    .then(
      (done) => {
        if (!state.items.includes(item)) return;
        showResult(item, new Blob([done.bytes], { type: done.mime }), done);
        persist(item);
      },
      (error) => {
        item.el.status.textContent = `COMPLETED: the new version could not be made: ${error.message}`;
        announce(`${item.name}: ${error.message}`);
        if (viewer.item === item) $('viewer-status').textContent = `Could not update the result: ${error.message}`;
      },
    )
    .finally(() => {
      item.rendering = false;
      if (item.renderAgain || (viewer.item === item && !item.view)) {
        item.renderAgain = false;
        render(item);
      }
    });
}

function openViewer(item) {
  if (item.status !== 'completed') return;
  viewer.open(item);
  render(item); // for the full-size view the viewer paints on
}

function markDownloaded(item) {
  item.downloaded = true;
  persist(item);
}

async function copyResult(item) {
  const status = $('viewer-status');
  try {
    // The clipboard takes PNG only: other formats are rendered as PNG for it.
    let blob = item.result;
    if (blob.type !== 'image/png') {
      const settings = { ...item.settings, output: item.settings.output === 'mask' ? 'mask' : 'png' };
      const done = await composite(item, settings);
      blob = new Blob([done.bytes], { type: 'image/png' });
    }
    await navigator.clipboard.write([new ClipboardItem({ 'image/png': blob })]);
    status.textContent = 'Copied to the clipboard as PNG.';
  } catch (e) {
    status.textContent = `Could not copy: ${e.message}`;
  }
}

async function shareResult(item) {
  try {
    await navigator.share({ files: [new File([item.result], item.resultName, { type: item.result.type })], title: item.resultName });
    markDownloaded(item);
  } catch (e) {
    if (e.name !== 'AbortError') $('viewer-status').textContent = `Could not share: ${e.message}`;
  }
}

const viewer = createViewer({
  edited: render,
  settingsChanged: render,
  downloaded: markDownloaded,
  copy: copyResult,
  share: shareResult,
});

// The Output panel changed: items that keep the defaults take the new ones (rendered again
// without inference); new items start with them.
function onDefaultsChanged() {
  const settings = defaultSettings();
  for (const item of state.items) {
    if (item.customised) continue;
    item.settings = { ...settings, refine: item.settings.refine };
    if (item.status === 'completed') render(item);
  }
}

function cancelItem(item) {
  if (item.status === 'pending') {
    setStatus(item, 'cancelled');
  } else if (item.status === 'processing') {
    // The engine cannot be interrupted mid-call: stop its worker and start a fresh one (the
    // model comes back from this browser's storage).
    setStatus(item, 'cancelled');
    state.running = null;
    restartWorker();
  }
}

function retryItem(item) {
  item.percent = 0;
  setStatus(item, 'pending');
  persist(item);
  if (state.modelError) loadModel();
  pump();
}

function removeItem(item) {
  if (item.status === 'processing') cancelItem(item);
  if (viewer.item === item) $('viewer').close();
  state.items = state.items.filter((i) => i !== item);
  item.el.root.remove();
  URL.revokeObjectURL(item.inputUrl);
  if (item.resultUrl) URL.revokeObjectURL(item.resultUrl);
  state.engine.forget(item.key);
  forget(item.id).catch(() => {});
  announce(`${item.name} removed`);
  updateQueueButtons();
}

function clearAll() {
  const unsaved = state.items.filter((i) => i.status === 'completed' && !i.downloaded).length;
  if (unsaved && !confirm(`Clear all results? ${unsaved} of them ${unsaved === 1 ? 'has' : 'have'} not been downloaded.`)) return;
  for (const item of [...state.items]) removeItem(item);
  forgetAll().catch(() => {});
  announce('All results cleared');
}

function failPending(message) {
  for (const item of state.items) if (item.status === 'pending') setStatus(item, 'failed', message);
  if (state.running) {
    setStatus(state.running, 'failed', message);
    state.running = null;
  }
}

async function downloadAll() {
  const done = state.items.filter((i) => i.status === 'completed');
  const used = new Set();
  const files = [];
  for (const item of done) {
    let name = item.resultName;
    for (let n = 2; used.has(name); n++) name = item.resultName.replace(/(\.[^.]+)$/, `-${n}$1`);
    used.add(name);
    files.push({ name, input: item.result, lastModified: new Date() });
  }
  const zip = await downloadZip(files).blob();
  const link = Object.assign(document.createElement('a'), { href: URL.createObjectURL(zip), download: 'cutouts.zip' });
  link.click();
  for (const item of done) markDownloaded(item);
  setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
}

async function addFromUrl(text) {
  let url;
  try {
    url = new URL(text, location.href);
  } catch {
    return announce(`“${text}” is not a URL.`);
  }
  const name = decodeURIComponent(url.pathname.split('/').pop() || 'image');
  let blob;
  try {
    const response = await fetch(url, { credentials: 'omit' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    blob = await response.blob();
  } catch (e) {
    const item = addItem(new Blob([]), name);
    setStatus(item, 'failed', `could not fetch ${url.href}: ${e.message} (the server may not allow downloads from other sites)`);
    return;
  }
  addItem(blob, name);
  pump();
}

// Photos handed to the installed app: shared to it (the service worker holds them until now) or
// opened with it (the manifest's file_handlers).
async function addHandedFiles() {
  const params = new URLSearchParams(location.search);
  if (params.has('shared') && 'caches' in window) {
    const cache = await caches.open('cutout-shared');
    const files = [];
    for (const request of await cache.keys()) {
      const response = await cache.match(request);
      const name = decodeURIComponent(response.headers.get('X-File-Name') || 'shared-image');
      files.push(new File([await response.blob()], name, { type: response.headers.get('Content-Type') || '' }));
      await cache.delete(request);
    }
    params.delete('shared');
    history.replaceState(null, '', `${location.pathname}${params.size ? `?${params}` : ''}`);
    if (files.length) addFiles(files);
  }
  const launchQueue = /** @type {any} */ (window).launchQueue;
  launchQueue?.setConsumer(async (launch) => {
    if (launch.files?.length) addFiles(await Promise.all(launch.files.map((handle) => handle.getFile())));
  });
}

// Files dropped anywhere on the page are added (never opened by the browser in place of the app).
function acceptDropsAnywhere() {
  const overlay = $('drop-overlay');
  const zone = $('drop-zone');
  const carriesFiles = (event) => [...(event.dataTransfer?.types || [])].includes('Files');
  let depth = 0;
  document.addEventListener('dragenter', (event) => {
    if (!carriesFiles(event)) return;
    depth++;
    overlay.hidden = false;
    zone.classList.add('dragging');
  });
  document.addEventListener('dragleave', (event) => {
    if (!carriesFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) {
      overlay.hidden = true;
      zone.classList.remove('dragging');
    }
  });
  document.addEventListener('dragover', (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
  });
  document.addEventListener('drop', (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    zone.classList.remove('dragging');
    addFiles(event.dataTransfer.files);
  });
}

// ---- wiring -------------------------------------------------------------------------------------

// The service worker makes the app work offline; a new deployment waits until the user accepts
// the reload offered here (models stay cached across updates).
async function registerServiceWorker() {
  if (!('serviceWorker' in navigator) || new URLSearchParams(location.search).has('nosw')) return;
  let updateAccepted = false;
  navigator.serviceWorker.addEventListener('controllerchange', () => {
    if (updateAccepted) location.reload();
  });
  navigator.serviceWorker.addEventListener('message', ({ data }) => {
    if (data?.type === 'version') $('app-version').textContent = `Version ${data.version}.`;
  });
  try {
    const registration = await navigator.serviceWorker.register('sw.js');
    const offer = (waiting) => {
      $('update-banner').hidden = false;
      document.body.dataset.updateReady = 'true';
      $('update-reload').onclick = () => {
        updateAccepted = true;
        waiting.postMessage({ type: 'skip-waiting' });
      };
    };
    if (registration.waiting && navigator.serviceWorker.controller) offer(registration.waiting);
    registration.addEventListener('updatefound', () => {
      const installing = registration.installing;
      installing?.addEventListener('statechange', () => {
        if (installing.state === 'installed' && navigator.serviceWorker.controller) offer(installing);
      });
    });
    (await navigator.serviceWorker.ready).active?.postMessage({ type: 'version' });
    document.body.dataset.offlineReady = 'true';
    // Look for a new deployment when the app comes back to the foreground.
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') registration.update().catch(() => {});
    });
  } catch (e) {
    console.warn('Cutout: offline support is unavailable:', e);
  }
}

async function fetchJson(path, fallback) {
  try {
    const response = await fetch(path);
    return response.ok ? await response.json() : fallback;
  } catch {
    return fallback;
  }
}

async function main() {
  document.body.dataset.inferences = '0';
  // Site owners may edit both files in the deployed site without rebuilding the engine.
  state.config = await fetchJson('cutout.config.json', {});
  state.manifest = await fetchJson('models.json', null); // else the engine's own copy
  $('file-input').addEventListener('change', (e) => {
    const input = /** @type {HTMLInputElement} */ (e.target);
    addFiles(input.files);
    input.value = '';
  });
  acceptDropsAnywhere();
  const zone = $('drop-zone');
  zone.tabIndex = 0;
  zone.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      $('file-input').click();
    }
  });
  document.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files || [])];
    if (files.length) addFiles(files);
  });
  $('url-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = $('url-input').value.trim();
    if (text) addFromUrl(text);
    $('url-input').value = '';
  });
  $('model-select').addEventListener('change', () => {
    state.model = null;
    showModelDetails();
    loadOrAsk();
  });
  $('model-file').addEventListener('change', (e) => {
    const file = /** @type {HTMLInputElement} */ (e.target).files[0];
    if (!file) return;
    const entry = state.manifest.models.find((m) => m.id === state.manifest.default);
    requestModel(
      { key: `file:${file.name}:${file.size}:${file.lastModified}`, file, sha256: null, entry: { ...entry, sha256: null } },
      `Loading ${file.name}…`,
    );
  });
  $('model-retry').addEventListener('click', () => loadModel());
  $('model-choose').addEventListener('click', () => showFirstRun(selectedModel()));
  $('first-run-accept').addEventListener('click', acceptFirstRun);
  $('first-run-decline').addEventListener('click', declineFirstRun);
  $('download-all').addEventListener('click', downloadAll);
  $('clear-all').addEventListener('click', clearAll);
  $('model-file-button').addEventListener('click', () => $('model-file').click());
  for (const id of ['output-kind', 'bg-enabled', 'bg-colour', 'crop-enabled', 'crop-margin', 'max-side']) $(id).addEventListener('change', onDefaultsChanged);
  // Esc on the first-run card is "Not now".
  $('first-run').addEventListener('cancel', (event) => {
    event.preventDefault();
    declineFirstRun();
  });
  // A result neither downloaded nor kept in this browser would be lost: ask before leaving.
  window.addEventListener('beforeunload', (event) => {
    if (state.items.some((i) => i.status === 'completed' && !i.downloaded && !i.kept)) event.preventDefault();
  });
  restoreKeptItems().then(addHandedFiles);
  $('cached-models').addEventListener('toggle', () => listCachedModels());
  state.engine = new EngineClient(createWorker, {
    onFatal: (message) => {
      setModelStatus(message, 'error');
      restartWorker();
    },
    onError: (message) => setModelStatus(`The engine could not start: ${message}.`, 'error'),
  });
  startWorker();
  registerServiceWorker();
}

main();
