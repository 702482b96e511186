// The page: input, queue and results. All pixel work happens in worker.js, reached through
// engine-client.js (the npm package's client too).
import { EngineClient, ModelLoadError } from './engine-client.js';
import { downloadOf, resolveModel, sizeText } from './model-spec.js';
// client-zip, vendored into the site by build.sh: stored entries (PNG and WebP are compressed already), ZIP64 past 4 GB.
import { downloadZip } from './vendor/client-zip.js';

// The page's elements by id; typed loosely: each is the input, select, progress... index.html has.
const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const STAGE_PERCENT = { decode: 2, preprocess: 6, inference: 8, postprocess: 92, encode: 96 };

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
  expectedInferenceMs: 20000,
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
    `Engine: tract, WebAssembly ${ready.variant === 'simd' ? 'SIMD' : 'relaxed SIMD'}, ` + `${ready.threads} thread${ready.threads === 1 ? '' : 's'}.`;
  document.body.dataset.threads = String(ready.threads);
  document.body.dataset.variant = ready.variant;
  if (!$('model-select').options.length) fillModelSelect();
  listCachedModels().then((listed) => listed && loadOrAsk());
}

function onModelProgress(loaded, total) {
  const bar = $('model-progress');
  bar.hidden = false;
  bar.max = total || 1;
  bar.value = total ? loaded : 0;
  setModelStatus(`Downloading the model: ${mb(loaded)}${total ? ` of ${mb(total)}` : ''}`);
}

function onModelReady(info) {
  state.modelReady = true;
  state.modelError = null;
  $('model-progress').hidden = true;
  $('model-retry').hidden = true;
  $('model-choose').hidden = true;
  const how = info.reused ? '' : info.fromCache ? ' (from this browser’s storage)' : ' (downloaded and stored for next time)';
  setModelStatus(`Model ready${how}.`, 'ok');
  document.body.dataset.modelReady = 'true';
  document.body.dataset.modelFromCache = String(Boolean(info.fromCache));
  if (info.compileMs) document.body.dataset.modelCompileMs = String(Math.round(info.compileMs));
  listCachedModels();
  pump();
}

function onModelError(error) {
  state.modelReady = false;
  state.modelError = error.message;
  $('model-progress').hidden = true;
  setModelStatus(error.message, 'error');
  $('model-retry').hidden = false;
  $('model-choose').hidden = false;
  document.body.dataset.modelReady = 'false';
  document.body.dataset.modelError = error.code || 'model-error';
  failPending(`the model could not be loaded: ${error.message}`);
  listCachedModels();
}

// Inference is one long call: remember when it started, to estimate its progress.
function onStage(item, stage) {
  const now = performance.now();
  if (stage === 'inference') item.inferenceStarted = now;
  if (stage === 'postprocess' && item.inferenceStarted) state.expectedInferenceMs = now - item.inferenceStarted;
  item.stage = stage;
  item.stageStarted = now;
  setPercent(item, STAGE_PERCENT[stage] ?? item.percent);
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
    $('first-run').hidden = true;
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
  $('first-run').hidden = false;
  $('model-choose').hidden = true;
  document.body.dataset.firstRun = 'shown';
  setModelStatus('Choose a model to download.');
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
  $('first-run').hidden = true;
  document.body.dataset.firstRun = 'accepted';
  loadModel();
}

function declineFirstRun() {
  $('first-run').hidden = true;
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
  state.engine
    .loadModel(model, { onProgress: onModelProgress, onStatus: (kind, message) => setModelStatus(message, kind === 'warning' ? 'warning' : '') })
    .then(
      (info) => current() && onModelReady(info),
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

function options() {
  const kind = $('output-kind').value;
  return {
    output: kind,
    background: kind !== 'mask' && $('bg-enabled').checked ? $('bg-colour').value : null,
    crop: $('crop-enabled').checked ? Math.max(0, Number($('crop-margin').value) || 0) : false,
    refine: $('refine-enabled').checked,
  };
}

function addFiles(files) {
  for (const file of files) addItem(file, file.name || 'pasted-image');
  pump();
}

function addItem(file, name) {
  const item = { id: state.nextId++, file, name, status: 'pending', percent: 0, options: options() };
  item.inputUrl = URL.createObjectURL(file);
  item.el = renderItem(item);
  state.items.push(item);
  $('queue').append(item.el.root);
  $('queue-empty').hidden = true;
  if (state.modelError) setStatus(item, 'failed', `the model could not be loaded: ${state.modelError}`);
  else setStatus(item, 'pending');
  return item;
}

function renderItem(item) {
  const root = document.createElement('li');
  root.className = 'item';
  root.dataset.id = String(item.id);
  const figure = document.createElement('div');
  figure.className = 'compare';
  const before = Object.assign(document.createElement('img'), { alt: `Original: ${item.name}`, src: item.inputUrl, className: 'before' });
  const after = Object.assign(document.createElement('img'), { alt: '', className: 'after checkerboard' });
  after.hidden = true;
  // Formats the browser cannot show (TIFF) or broken files: a neutral placeholder, not a broken icon.
  before.addEventListener('error', () => {
    before.hidden = true;
    figure.classList.add('no-preview');
  });
  figure.append(before, after);
  const info = document.createElement('div');
  info.className = 'item-info';
  const title = Object.assign(document.createElement('p'), { className: 'name', textContent: item.name });
  const status = Object.assign(document.createElement('p'), { className: 'status' });
  status.setAttribute('aria-live', 'polite');
  const progress = Object.assign(document.createElement('progress'), { max: 100, value: 0 });
  progress.setAttribute('aria-label', `Progress for ${item.name}`);
  const actions = document.createElement('div');
  actions.className = 'actions';
  const cancel = Object.assign(document.createElement('button'), { type: 'button', className: 'secondary', textContent: 'Cancel' });
  cancel.setAttribute('aria-label', `Cancel ${item.name}`);
  cancel.onclick = () => cancelItem(item);
  const retry = Object.assign(document.createElement('button'), { type: 'button', className: 'secondary', textContent: 'Retry', hidden: true });
  retry.setAttribute('aria-label', `Retry ${item.name}`);
  retry.onclick = () => retryItem(item);
  const download = Object.assign(document.createElement('a'), { className: 'button', textContent: 'Download', hidden: true });
  const toggle = Object.assign(document.createElement('button'), { type: 'button', className: 'secondary', textContent: 'Show original', hidden: true });
  toggle.onclick = () => {
    const showingResult = !after.hidden;
    after.hidden = showingResult;
    before.hidden = !showingResult;
    toggle.textContent = showingResult ? 'Show result' : 'Show original';
  };
  actions.append(download, toggle, cancel, retry);
  info.append(title, status, progress, actions);
  root.append(figure, info);
  return { root, before, after, status, progress, cancel, retry, download, toggle };
}

const STATUS_TEXT = { pending: 'PENDING', processing: 'PROCESSING', completed: 'COMPLETED', failed: 'FAILED', cancelled: 'CANCELLED' };

function setStatus(item, status, message = '') {
  item.status = status;
  item.message = message;
  item.el.root.dataset.status = status;
  const percent = status === 'processing' ? ` ${Math.round(item.percent)}%` : '';
  item.el.status.textContent = `${STATUS_TEXT[status]}${percent}${message ? `: ${message}` : ''}`;
  item.el.progress.hidden = status !== 'processing';
  item.el.cancel.hidden = !(status === 'pending' || status === 'processing');
  item.el.retry.hidden = !(status === 'failed' || status === 'cancelled');
  if (status === 'completed' || status === 'failed') announce(`${item.name}: ${STATUS_TEXT[status]}${message ? `, ${message}` : ''}`);
  $('download-all').disabled = !state.items.some((i) => i.status === 'completed');
}

function setPercent(item, percent) {
  item.percent = Math.min(99, Math.max(item.percent, percent));
  item.el.progress.value = item.percent;
  if (item.status === 'processing') setStatus(item, 'processing');
}

// Inference is one long call in the worker: estimate its progress from the last run's duration.
setInterval(() => {
  const item = state.running;
  if (!item || item.stage !== 'inference') return;
  const elapsed = performance.now() - item.stageStarted;
  const share = 1 - Math.exp(-elapsed / state.expectedInferenceMs);
  setPercent(item, STAGE_PERCENT.inference + share * (STAGE_PERCENT.postprocess - STAGE_PERCENT.inference));
}, 250);

function pump() {
  if (state.running || !state.modelReady) return;
  const item = state.items.find((i) => i.status === 'pending');
  if (!item) return;
  state.running = item;
  item.percent = 0;
  item.started = performance.now();
  setStatus(item, 'processing');
  state.engine.process({ file: item.file, options: item.options }, { onStage: (stage) => onStage(item, stage) }).then(
    (done) => finishItem(item, done),
    (error) => failItem(item, error),
  );
}

function failItem(item, error) {
  // Cancelled (the worker was stopped) or failed with the model: already marked.
  if (state.running !== item) return;
  state.running = null;
  setStatus(item, 'failed', error.message);
  pump();
}

function finishItem(item, data) {
  if (state.running !== item) return;
  state.running = null;
  if (item.status !== 'processing') return pump();
  const blob = new Blob([data.bytes], { type: data.mime });
  item.result = blob;
  item.resultUrl = URL.createObjectURL(blob);
  item.resultName = resultName(item.name, item.options.output);
  item.el.after.src = item.resultUrl;
  item.el.after.alt = `Result: ${item.name} without background`;
  item.el.after.hidden = false;
  item.el.before.hidden = true;
  item.el.toggle.hidden = false;
  Object.assign(item.el.download, { href: item.resultUrl, download: item.resultName, hidden: false });
  item.el.download.setAttribute('aria-label', `Download ${item.resultName}`);
  item.el.root.dataset.width = String(data.width);
  item.el.root.dataset.height = String(data.height);
  item.percent = 100;
  setStatus(item, 'completed', `${data.width}×${data.height}, ${((performance.now() - item.started) / 1000).toFixed(1)} s`);
  pump();
}

function resultName(name, output) {
  const stem = name.replace(/\.[^./]+$/, '') || 'image';
  if (output === 'mask') return `${stem}-mask.png`;
  return `${stem}-cutout.${output === 'webp' ? 'webp' : 'png'}`;
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
  if (state.modelError) loadModel();
  pump();
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
  // Site owners may edit both files in the deployed site without rebuilding the engine.
  state.config = await fetchJson('cutout.config.json', {});
  state.manifest = await fetchJson('models.json', null); // else the engine's own copy
  $('file-input').addEventListener('change', (e) => {
    const input = /** @type {HTMLInputElement} */ (e.target);
    addFiles(input.files);
    input.value = '';
  });
  const zone = $('drop-zone');
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('dragging');
    addFiles(e.dataTransfer.files);
  });
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
