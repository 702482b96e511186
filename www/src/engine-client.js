// The one client of the engine's worker (worker.js), shared by the page (app.js) and the npm
// package (index.js): it starts the worker, numbers the requests, routes each reply to its
// request's promise and callbacks, and fails every pending request when the engine stops or dies.
// The messages are typed in protocol.js.
import { STAGES } from './protocol.js';

export { STAGES };

/** @typedef {import('./protocol.js').Reply} Reply */
/** @typedef {import('./protocol.js').ReadyReply} ReadyReply */
/** @typedef {import('./protocol.js').DoneReply} DoneReply */
/** @typedef {import('./protocol.js').ModelInfo} ModelInfo */
/** @typedef {import('./protocol.js').CachedModel} CachedModel */
/** @typedef {import('./protocol.js').ResolvedModel} ResolvedModel */
/** @typedef {import('./protocol.js').ProcessOptions} ProcessOptions */
/** @typedef {import('./protocol.js').Pixels} Pixels */

/**
 * A request in flight: `onReply` sees every reply with its id until it settles the promise.
 * @typedef {{onReply: (reply: any) => void, resolve: (value: any) => void, reject: (error: Error) => void}} Pending
 */

/** A model that could not be loaded; `code` is one of models.js's ModelErrorCode, when known. */
export class ModelLoadError extends Error {
  /** @param {string} message @param {string | null} code */
  constructor(message, code) {
    super(message);
    this.name = 'ModelLoadError';
    this.code = code || undefined;
  }
}

export class EngineClient {
  /**
   * @param {() => Worker} createWorker makes the worker: the caller writes the
   *   `new Worker(new URL('./worker.js', import.meta.url), ...)`, where bundlers look for it
   * @param {object} [hooks]
   * @param {(message: string) => void} [hooks.onFatal] the engine reported it is unusable (a wasm
   *   trap): it is stopped, every pending request has failed; start() makes a fresh one
   * @param {(message: string) => void} [hooks.onError] the worker itself failed (it could not load)
   */
  constructor(createWorker, { onFatal = () => {}, onError = () => {} } = {}) {
    this.createWorker = createWorker;
    this.onFatal = onFatal;
    this.onError = onError;
    /** @type {Worker | null} */
    this.worker = null;
    /** @type {Promise<ReadyReply> | null} */
    this.ready = null;
    /** The key of the model the engine holds (a load of it again needs no round trip). @type {string | null} */
    this.modelKey = null;
    /** @type {Map<number, Pending>} */
    this.pending = new Map();
    this.nextId = 1;
  }

  /** Starts the worker unless it runs; resolves when the engine is instantiated. */
  start() {
    if (this.ready) return this.ready;
    const worker = this.createWorker();
    this.worker = worker;
    worker.onmessage = ({ data }) => this.dispatch(data);
    worker.onerror = (event) => {
      event.preventDefault();
      const message = `the Cutout worker could not start: ${event.message || 'worker error'}`;
      this.stop(new Error(message));
      this.onError(message);
    };
    this.ready = this.request({ type: 'init' }, [], (reply, resolve) => {
      if (reply.type === 'ready') resolve(reply);
    });
    return this.ready;
  }

  /** Terminates the worker (the engine cannot be interrupted mid-call); pending requests fail with `reason`. */
  stop(reason = new Error('the Cutout engine was stopped')) {
    this.worker?.terminate();
    this.worker = null;
    this.ready = null;
    this.modelKey = null;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const request of pending) request.reject(reason);
  }

  /**
   * Loads a model into the engine (one load at a time, in order of the calls).
   * @param {ResolvedModel} model
   * @param {{onProgress?: (loaded: number, total: number) => void, onStatus?: (state: string, message: string) => void}} [callbacks]
   * @returns {Promise<ModelInfo>} rejects with a ModelLoadError
   */
  async loadModel(model, { onProgress = () => {}, onStatus = () => {} } = {}) {
    await this.start();
    const info = await this.request({ type: 'load-model', model }, [], (reply, resolve, reject) => {
      if (reply.type === 'model-progress') onProgress(reply.loaded, reply.total);
      else if (reply.type === 'model-status') onStatus(reply.state, reply.message);
      else if (reply.type === 'model-ready') resolve(reply.info);
      else if (reply.type === 'model-error') reject(new ModelLoadError(reply.message, reply.code));
    });
    this.modelKey = model.key;
    return info;
  }

  /**
   * Processes one image: encoded (`file`) or decoded pixels, whose buffer is transferred. With
   * `keep`, the worker keeps the decoded photo for `composite` calls under that key.
   * @param {{file?: Blob, pixels?: Pixels, options: ProcessOptions, keep?: string}} input
   * @param {{onStage?: (stage: import('./protocol.js').Stage, fraction?: number) => void}} [callbacks]
   * @returns {Promise<DoneReply>}
   */
  async process({ file, pixels, options, keep }, { onStage = () => {} } = {}) {
    await this.start();
    return this.request({ type: 'process', file, pixels, options, keep }, pixels ? [pixels.buffer] : [], (reply, resolve, reject) => {
      if (reply.type === 'stage') onStage(reply.stage, reply.fraction);
      else if (reply.type === 'done') resolve(reply);
      else if (reply.type === 'failed') reject(Object.assign(new Error(reply.message), { code: reply.code }));
    });
  }

  /**
   * Makes a result again without inference (see protocol.js's CompositeRequest); `alpha` is
   * copied, not transferred, so the caller keeps it.
   * @param {{key: string, file: Blob, alpha: ArrayBuffer, strokes: import('./protocol.js').Stroke[], options: ProcessOptions, backgroundFile?: Blob | null}} input
   * @returns {Promise<DoneReply>}
   */
  async composite({ key, file, alpha, strokes, options, backgroundFile = null }) {
    await this.start();
    return this.request({ type: 'composite', key, file, alpha, strokes, options, backgroundFile }, [], (reply, resolve, reject) => {
      if (reply.type === 'done') resolve(reply);
      else if (reply.type === 'failed') reject(Object.assign(new Error(reply.message), { code: reply.code }));
    });
  }

  /** Lets the worker drop the photo it kept under `key`. @param {string} key */
  forget(key) {
    this.worker?.postMessage({ type: 'forget', id: this.nextId++, key });
  }

  /** The models stored in this browser's Cache API. @returns {Promise<CachedModel[]>} */
  async listModels() {
    await this.start();
    return this.request({ type: 'list-models' }, [], (reply, resolve) => {
      if (reply.type === 'models') resolve(reply.list);
    });
  }

  /** Deletes a stored model; resolves to the models left. @param {string} url @returns {Promise<CachedModel[]>} */
  async deleteModel(url) {
    await this.start();
    return this.request({ type: 'delete-model', url }, [], (reply, resolve) => {
      if (reply.type === 'models') resolve(reply.list);
    });
  }

  /**
   * Posts a request with the next id; `onReply` sees each reply to it until it settles.
   * @param {any} message a protocol.js Request without its id
   * @param {Transferable[]} transfer
   * @param {(reply: any, resolve: (value: any) => void, reject: (error: Error) => void) => void} onReply
   * @returns {Promise<any>}
   */
  request(message, transfer, onReply) {
    const worker = this.worker;
    if (!worker) return Promise.reject(new Error('the Cutout engine is not running'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const settle = (/** @type {Function} */ done) => (/** @type {any} */ value) => {
        this.pending.delete(id);
        done(value);
      };
      this.pending.set(id, { onReply: (reply) => onReply(reply, settle(resolve), settle(reject)), resolve, reject });
      worker.postMessage({ ...message, id }, transfer);
    });
  }

  /** @param {Reply} reply */
  dispatch(reply) {
    if (reply.type === 'fatal') {
      this.stop(new Error(reply.message));
      this.onFatal(reply.message);
      return;
    }
    this.pending.get(reply.id)?.onReply(reply);
  }
}
