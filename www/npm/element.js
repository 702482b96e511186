// <cutout-image src="photo.jpg" model="isnet-fp16"> shows the cutout of `src`, with progress and a
// download button. Style it with ::part(image | progress | status | download | figure).
import { removeBackground } from './index.js';

const template = `
  <style>
    :host { display: inline-block; }
    figure { margin: 0; display: grid; gap: 6px; }
    img { max-width: 100%; background: repeating-conic-gradient(#ccc 0 25%, #fff 0 50%) 0 0 / 16px 16px; }
    progress { width: 100%; }
    [hidden] { display: none !important; }
  </style>
  <figure part="figure">
    <img part="image" alt="" hidden>
    <progress part="progress" max="1" value="0"></progress>
    <span part="status" role="status" aria-live="polite"></span>
    <a part="download" download hidden>Download</a>
  </figure>`;

export class CutoutImage extends HTMLElement {
  static observedAttributes = ['src', 'model', 'sha256', 'output', 'background', 'crop', 'no-refine'];

  constructor() {
    super();
    this.attachShadow({ mode: 'open' }).innerHTML = template;
    this.parts = Object.fromEntries(['image', 'progress', 'status', 'download'].map((p) => [p, this.shadowRoot.querySelector(`[part=${p}]`)]));
    this.controller = null;
    this.objectUrl = null;
  }

  attributeChangedCallback() {
    if (this.isConnected) queueMicrotask(() => this.render());
  }

  connectedCallback() {
    this.render();
  }

  disconnectedCallback() {
    this.controller?.abort();
  }

  async render() {
    const src = this.getAttribute('src');
    if (!src || this.rendering === this.settingsKey()) return;
    this.rendering = this.settingsKey();
    this.controller?.abort();
    const controller = (this.controller = new AbortController());
    const { image, progress, status, download } = this.parts;
    image.hidden = download.hidden = true;
    progress.hidden = false;
    progress.value = 0;
    status.textContent = 'Removing the background…';
    const modelAttr = this.getAttribute('model');
    const sha256 = this.getAttribute('sha256');
    const model = modelAttr && sha256 ? { url: modelAttr, sha256 } : modelAttr || undefined;
    try {
      const blob = await removeBackground(src, {
        model,
        // Any other value is refused by the engine with a message naming the valid ones.
        output: /** @type {'png' | 'webp' | 'mask'} */ (this.getAttribute('output') || 'png'),
        background: this.getAttribute('background') || null,
        crop: this.hasAttribute('crop') ? Number(this.getAttribute('crop')) || true : false,
        refine: !this.hasAttribute('no-refine'),
        signal: controller.signal,
        onProgress: ({ stage, loaded, total }) => {
          progress.value = total ? loaded / total : 0;
          status.textContent = stage === 'download' ? `Downloading the model… ${Math.round((100 * loaded) / (total || 1))}%` : `Working: ${stage}`;
        },
      });
      if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = URL.createObjectURL(blob);
      image.src = download.href = this.objectUrl;
      image.alt = this.getAttribute('alt') || 'Image with the background removed';
      const stem =
        src
          .split('/')
          .pop()
          .replace(/\.[^.]*$/, '') || 'image';
      download.download = `${stem}-cutout.${blob.type === 'image/webp' ? 'webp' : 'png'}`;
      image.hidden = download.hidden = false;
      progress.hidden = true;
      status.textContent = '';
      this.dispatchEvent(new CustomEvent('cutout-done', { detail: { blob } }));
    } catch (error) {
      if (error.name === 'AbortError') return;
      progress.hidden = true;
      status.textContent = `Failed: ${error.message}`;
      this.rendering = null;
      this.dispatchEvent(new CustomEvent('cutout-error', { detail: { error } }));
    }
  }

  settingsKey() {
    return CutoutImage.observedAttributes.map((a) => this.getAttribute(a)).join('|');
  }
}

if (!customElements.get('cutout-image')) customElements.define('cutout-image', CutoutImage);
