// The result viewer: one result large, with a before/after split, zoom and pan, a backdrop, the
// touch-up brush and the result's own export settings. It only shows pixels and collects
// strokes: the worker applies the strokes and renders every file (app.js asks it).

const MAX_ZOOM = 4;
const SPLIT_STEP = 0.05;

/**
 * @typedef {object} ViewerHooks
 * @property {(item: any) => void} edited the item's strokes changed: render it again
 * @property {(item: any) => void} settingsChanged the item's export settings changed
 * @property {(item: any) => void} downloaded the user downloaded the item's result
 * @property {(item: any) => Promise<void>} copy put the result on the clipboard
 * @property {(item: any) => Promise<void>} share hand the result to the system's share sheet
 */

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));

/** The strokes in effect: those after the last reset. */
export function activeStrokes(item) {
  const last = item.history.map((entry) => entry.mode).lastIndexOf('reset');
  return item.history.slice(last + 1);
}

/** @param {ViewerHooks} hooks */
export function createViewer(hooks) {
  const dialog = $('viewer');
  const stage = $('viewer-stage');
  const canvas = /** @type {HTMLCanvasElement} */ ($('viewer-after'));
  const before = /** @type {HTMLImageElement} */ ($('viewer-before'));
  const split = $('viewer-split');
  const brush = $('viewer-brush');
  const contents = [$('viewer-after-content'), $('viewer-before-content')];
  let item = null;
  let view = { scale: 1, x: 0, y: 0, fitted: true };
  let splitAt = 0.5;
  let tool = 'compare';
  const pointers = new Map();
  let gesture = null; // {kind: 'pan' | 'split' | 'pinch' | 'stroke', ...}
  let context = null;

  const imageSize = () => ({ width: canvas.width || 1, height: canvas.height || 1 });

  function fitScale() {
    const { width, height } = imageSize();
    const box = stage.getBoundingClientRect();
    return Math.min(box.width / width, box.height / height) || 1;
  }

  function minScale() {
    return Math.min(fitScale(), 1) / 2;
  }

  function applyView() {
    const { width, height } = imageSize();
    for (const content of contents) {
      content.style.width = `${width}px`;
      content.style.height = `${height}px`;
      content.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    }
    $('zoom-level').textContent = `${Math.round(view.scale * 100)}%`;
    stage.dataset.zoom = String(view.scale);
  }

  function fit() {
    const { width, height } = imageSize();
    const box = stage.getBoundingClientRect();
    const scale = fitScale();
    view = { scale, x: (box.width - width * scale) / 2, y: (box.height - height * scale) / 2, fitted: true };
    applyView();
  }

  // Zooms to `scale` keeping the image point under (cx, cy), stage coordinates, where it is.
  function zoomTo(scale, cx, cy) {
    const clamped = Math.min(MAX_ZOOM, Math.max(minScale(), scale));
    const ratio = clamped / view.scale;
    view = { scale: clamped, x: cx - (cx - view.x) * ratio, y: cy - (cy - view.y) * ratio, fitted: false };
    applyView();
  }

  function zoomBy(factor) {
    const box = stage.getBoundingClientRect();
    zoomTo(view.scale * factor, box.width / 2, box.height / 2);
  }

  function setSplit(fraction) {
    splitAt = Math.min(1, Math.max(0, fraction));
    const percent = Math.round(splitAt * 100);
    split.style.left = `${splitAt * 100}%`;
    $('viewer-before-layer').style.clipPath = `inset(0 ${100 - splitAt * 100}% 0 0)`;
    split.setAttribute('aria-valuenow', String(percent));
    split.setAttribute('aria-valuetext', `${percent}% original, ${100 - percent}% result`);
  }

  function setTool(name) {
    tool = name;
    stage.dataset.tool = name;
    const comparing = name === 'compare';
    // Painting shows the result alone; comparing brings the split back.
    split.hidden = !comparing;
    $('viewer-before-layer').hidden = !comparing;
    brush.hidden = true;
    for (const radio of dialog.querySelectorAll('input[name=viewer-tool]')) radio.checked = radio.value === name;
  }

  function setBackdrop(name) {
    stage.dataset.backdrop = name;
    stage.classList.toggle('checkerboard', name === 'checkerboard');
    stage.style.background = name === 'colour' ? $('viewer-backdrop-colour').value : '';
  }

  const stagePoint = (event) => {
    const box = stage.getBoundingClientRect();
    return { x: event.clientX - box.left, y: event.clientY - box.top };
  };
  const imagePoint = ({ x, y }) => /** @type {[number, number]} */ ([(x - view.x) / view.scale, (y - view.y) / view.scale]);

  // ---- brush ----------------------------------------------------------------------------------

  const brushDiameter = () => Number($('brush-size').value);
  const hardness = () => Number($('brush-hardness').value) / 100;

  function showBrush(point) {
    if (tool === 'compare') return;
    brush.hidden = false;
    const size = brushDiameter();
    Object.assign(brush.style, { left: `${point.x}px`, top: `${point.y}px`, width: `${size}px`, height: `${size}px` });
  }

  // A preview of one segment of the stroke on the canvas, until the worker's render replaces it.
  function previewSegment(stroke, a, b) {
    if (!context) return;
    const line = (target, dx = 0, dy = 0) => {
      target.lineCap = 'round';
      target.lineJoin = 'round';
      target.lineWidth = stroke.radius * 2 * (0.6 + 0.4 * stroke.hardness);
      target.beginPath();
      target.moveTo(a[0] - dx, a[1] - dy);
      target.lineTo(b[0] - dx, b[1] - dy);
      target.stroke();
    };
    if (stroke.mode === 'erase') {
      context.save();
      context.globalCompositeOperation = 'destination-out';
      line(context);
      context.restore();
      return;
    }
    if (!before.naturalWidth) return;
    // Restore shows the photo itself under the brush: the segment's shape filled with the photo.
    const reach = Math.ceil(stroke.radius) + 2;
    const left = Math.floor(Math.min(a[0], b[0])) - reach;
    const top = Math.floor(Math.min(a[1], b[1])) - reach;
    const width = Math.ceil(Math.abs(a[0] - b[0])) + 2 * reach;
    const height = Math.ceil(Math.abs(a[1] - b[1])) + 2 * reach;
    const patch = new OffscreenCanvas(width, height);
    const patchContext = patch.getContext('2d');
    line(patchContext, left, top);
    patchContext.globalCompositeOperation = 'source-in';
    patchContext.drawImage(before, -left, -top, canvas.width, canvas.height);
    context.drawImage(patch, left, top);
  }

  function startStroke(point) {
    const at = imagePoint(point);
    const stroke = { mode: tool, radius: brushDiameter() / 2 / view.scale, hardness: hardness(), points: [at] };
    gesture = { kind: 'stroke', stroke };
    previewSegment(stroke, at, at);
  }

  function extendStroke(point) {
    const { stroke } = gesture;
    const at = imagePoint(point);
    const last = stroke.points[stroke.points.length - 1];
    if (Math.hypot(at[0] - last[0], at[1] - last[1]) * view.scale < 1.5) return;
    stroke.points.push(at);
    previewSegment(stroke, last, at);
  }

  function commitStroke() {
    const { stroke } = gesture;
    stroke.points = stroke.points.map(([x, y]) => [Math.round(x * 100) / 100, Math.round(y * 100) / 100]);
    item.history.push(stroke);
    item.future = [];
    updateEditButtons();
    hooks.edited(item);
  }

  // A stroke cut short (a second finger arrived): the canvas goes back to the last render.
  function abandonStroke() {
    if (item?.view) showView(item);
  }

  function undo() {
    if (!item?.history.length) return;
    item.future.push(item.history.pop());
    updateEditButtons();
    hooks.edited(item);
  }

  function redo() {
    if (!item?.future.length) return;
    item.history.push(item.future.pop());
    updateEditButtons();
    hooks.edited(item);
  }

  function reset() {
    if (!item || !activeStrokes(item).length) return;
    item.history.push({ mode: 'reset' });
    item.future = [];
    updateEditButtons();
    hooks.edited(item);
  }

  function updateEditButtons() {
    $('edit-undo').disabled = !item?.history.length;
    $('edit-redo').disabled = !item?.future.length;
    $('edit-reset').disabled = !item || !activeStrokes(item).length;
    dialog.dataset.strokes = String(item ? activeStrokes(item).length : 0);
  }

  // ---- pointers -------------------------------------------------------------------------------

  function pinchState() {
    const [a, b] = [...pointers.values()];
    return { distance: Math.hypot(a.x - b.x, a.y - b.y) || 1, mid: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 } };
  }

  stage.addEventListener('pointerdown', (event) => {
    if (!item || event.button > 0) return;
    stage.setPointerCapture(event.pointerId);
    const point = stagePoint(event);
    pointers.set(event.pointerId, point);
    if (pointers.size === 2) {
      if (gesture?.kind === 'stroke') abandonStroke();
      gesture = { kind: 'pinch', start: pinchState(), scale: view.scale, x: view.x, y: view.y };
      return;
    }
    if (pointers.size > 2) return;
    if (event.target === split) gesture = { kind: 'split' };
    else if (tool === 'compare') gesture = { kind: 'pan', from: point, x: view.x, y: view.y };
    else startStroke(point);
    event.preventDefault();
  });

  stage.addEventListener('pointermove', (event) => {
    const point = stagePoint(event);
    showBrush(point);
    if (!pointers.has(event.pointerId)) return;
    pointers.set(event.pointerId, point);
    if (!gesture) return;
    if (gesture.kind === 'split') setSplit(point.x / stage.getBoundingClientRect().width);
    else if (gesture.kind === 'pan') {
      view = { ...view, x: gesture.x + point.x - gesture.from.x, y: gesture.y + point.y - gesture.from.y, fitted: false };
      applyView();
    } else if (gesture.kind === 'pinch' && pointers.size === 2) {
      const now = pinchState();
      const scale = Math.min(MAX_ZOOM, Math.max(minScale(), (gesture.scale * now.distance) / gesture.start.distance));
      const ratio = scale / gesture.scale;
      view = {
        scale,
        x: now.mid.x - (gesture.start.mid.x - gesture.x) * ratio,
        y: now.mid.y - (gesture.start.mid.y - gesture.y) * ratio,
        fitted: false,
      };
      applyView();
    } else if (gesture.kind === 'stroke') extendStroke(point);
  });

  const release = (event) => {
    if (!pointers.delete(event.pointerId)) return;
    if (gesture?.kind === 'stroke' && event.type === 'pointerup') commitStroke();
    else if (gesture?.kind === 'stroke') abandonStroke();
    if (!pointers.size || gesture?.kind !== 'pinch') gesture = null;
  };
  stage.addEventListener('pointerup', release);
  stage.addEventListener('pointercancel', release);
  stage.addEventListener('pointerleave', () => (brush.hidden = true));

  stage.addEventListener(
    'wheel',
    (event) => {
      if (!item) return;
      event.preventDefault();
      const point = stagePoint(event);
      zoomTo(view.scale * Math.exp(-event.deltaY * 0.0015), point.x, point.y);
    },
    { passive: false },
  );

  // ---- keys -----------------------------------------------------------------------------------

  split.addEventListener('keydown', (event) => {
    const step = event.shiftKey ? 0.01 : SPLIT_STEP;
    const moves = { ArrowLeft: -step, ArrowDown: -step, ArrowRight: step, ArrowUp: step };
    if (event.key in moves) setSplit(splitAt + moves[event.key]);
    else if (event.key === 'Home') setSplit(0);
    else if (event.key === 'End') setSplit(1);
    else return;
    event.preventDefault();
    event.stopPropagation();
  });

  dialog.addEventListener('keydown', (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    const typing = target.matches('input:not([type=radio]):not([type=checkbox]), select, textarea');
    const mod = event.ctrlKey || event.metaKey;
    // Esc closes from any control (the browser's own cancel can be held back, e.g. after a
    // select's change).
    if (event.key === 'Escape') {
      dialog.close();
    } else if (mod && event.key.toLowerCase() === 'z') {
      event.shiftKey ? redo() : undo();
    } else if (mod && event.key.toLowerCase() === 'y') {
      redo();
    } else if (typing || mod) {
      return;
    } else if (event.key === '+' || event.key === '=') zoomBy(1.25);
    else if (event.key === '-' || event.key === '_') zoomBy(0.8);
    else if (event.key === '0') fit();
    else if ((event.key === 'ArrowLeft' || event.key === 'ArrowRight') && tool === 'compare' && !target.matches('input[type=radio]')) {
      setSplit(splitAt + (event.key === 'ArrowLeft' ? -SPLIT_STEP : SPLIT_STEP));
    } else return;
    event.preventDefault();
  });

  // ---- controls -------------------------------------------------------------------------------

  $('zoom-in').addEventListener('click', () => zoomBy(1.25));
  $('zoom-out').addEventListener('click', () => zoomBy(0.8));
  $('zoom-fit').addEventListener('click', fit);
  $('viewer-close').addEventListener('click', () => dialog.close());
  $('edit-undo').addEventListener('click', undo);
  $('edit-redo').addEventListener('click', redo);
  $('edit-reset').addEventListener('click', reset);
  for (const radio of dialog.querySelectorAll('input[name=viewer-tool]')) radio.addEventListener('change', () => setTool(radio.value));
  for (const radio of dialog.querySelectorAll('input[name=viewer-backdrop]')) radio.addEventListener('change', () => setBackdrop(radio.value));
  $('viewer-backdrop-colour').addEventListener('input', () => {
    dialog.querySelector('input[name=viewer-backdrop][value=colour]').checked = true;
    setBackdrop('colour');
  });
  $('viewer-download').addEventListener('click', () => item && hooks.downloaded(item));
  $('viewer-copy').addEventListener('click', () => item && hooks.copy(item));
  $('viewer-share').addEventListener('click', () => item && hooks.share(item));
  new ResizeObserver(() => item && view.fitted && fit()).observe(stage);
  dialog.addEventListener('close', () => {
    if (item) item.view = null; // the page keeps no full-size pixels for closed results
    item = null;
    pointers.clear();
    gesture = null;
    document.body.dataset.viewer = 'closed';
  });

  // Export settings: the item's own from now on (the page's defaults no longer change it).
  const exportControls = ['export-kind', 'export-background', 'export-colour', 'export-crop', 'export-margin', 'export-size'];
  for (const id of exportControls) {
    $(id).addEventListener('change', () => {
      if (!item) return;
      if (id === 'export-background' && $(id).value === 'picture' && !item.settings.backgroundFile) {
        $('export-picture').click();
        return;
      }
      readExportControls();
    });
  }
  $('export-colour').addEventListener('input', () => ($('export-background').value = 'colour'));
  $('export-picture').addEventListener('change', () => {
    const file = $('export-picture').files[0];
    $('export-picture').value = '';
    if (!item) return;
    if (!file) {
      showExportControls(item.settings);
      return;
    }
    item.settings = { ...item.settings, backgroundFile: file };
    readExportControls();
  });

  function readExportControls() {
    const background = $('export-background').value;
    const margin = Math.max(0, Math.min(1000, Number($('export-margin').value) || 0));
    item.settings = {
      ...item.settings,
      output: $('export-kind').value,
      background: background === 'colour' ? $('export-colour').value : null,
      backgroundFile: background === 'picture' ? item.settings.backgroundFile : null,
      crop: $('export-crop').checked ? margin : false,
      maxSide: Number($('export-size').value) || null,
    };
    item.customised = true;
    showExportControls(item.settings);
    hooks.settingsChanged(item);
  }

  function showExportControls(settings) {
    $('export-kind').value = settings.output;
    $('export-background').value = settings.backgroundFile ? 'picture' : settings.background ? 'colour' : 'none';
    if (settings.background) $('export-colour').value = settings.background;
    $('export-crop').checked = settings.crop !== false;
    $('export-margin').value = String(settings.crop === false ? 0 : settings.crop);
    $('export-size').value = settings.maxSide ? String(settings.maxSide) : '';
    const mask = settings.output === 'mask';
    $('export-background').disabled = mask;
    $('export-colour').disabled = mask;
  }

  // ---- results --------------------------------------------------------------------------------

  /** Shows the worker's latest render of the open item (its `view`: RGBA at the photo's size). */
  function showView(shown) {
    if (shown !== item || !shown.view) return;
    const { width, height, pixels } = shown.view;
    const resized = canvas.width !== width || canvas.height !== height;
    if (resized) Object.assign(canvas, { width, height });
    context = canvas.getContext('2d');
    context.putImageData(new ImageData(new Uint8ClampedArray(pixels), width, height), 0, 0);
    if (resized) fit();
    $('viewer-busy').hidden = true;
    dialog.dataset.rendered = String(Number(dialog.dataset.rendered || 0) + 1);
  }

  function showResult(shown) {
    if (shown !== item) return;
    Object.assign($('viewer-download'), { href: shown.resultUrl, download: shown.resultName });
    $('viewer-download').setAttribute('aria-label', `Download ${shown.resultName}`);
    $('viewer-status').textContent = `${shown.resultName}: ${shown.resultWidth}×${shown.resultHeight}, ${(shown.result.size / 1e6).toFixed(2)} MB`;
    $('viewer-share').hidden = !(
      navigator.canShare && navigator.canShare({ files: [new File([shown.result], shown.resultName, { type: shown.result.type })] })
    );
  }

  return {
    /** Opens `opened` (a completed item); app.js then asks the worker for its view. */
    open(opened) {
      item = opened;
      $('viewer-title').textContent = opened.name;
      before.src = opened.inputUrl;
      before.alt = `Original: ${opened.name}`;
      canvas.setAttribute('aria-label', `Result: ${opened.name} without background`);
      canvas.setAttribute('role', 'img');
      Object.assign(canvas, { width: opened.inputWidth, height: opened.inputHeight });
      context = null;
      setTool('compare');
      setSplit(0.5);
      showExportControls(opened.settings);
      updateEditButtons();
      showResult(opened);
      $('viewer-busy').hidden = false;
      dialog.hidden = false;
      if (!dialog.open) dialog.showModal();
      document.body.dataset.viewer = 'open';
      fit();
      split.focus();
    },
    /** The item the viewer shows, or null. */
    get item() {
      return item;
    },
    busy(shown) {
      if (shown === item) $('viewer-busy').hidden = false;
    },
    showView,
    showResult,
  };
}
