// The messages between the engine's Web Worker (worker.js) and its clients (engine-client.js, used
// by the page and the npm package; the benchmark page posts them by hand). Every request carries
// an `id`; every reply to it echoes that id. `fatal` has none: the engine is unusable after it and
// every pending request fails.

/** The engine's stages of one image, in order (the `stage` replies name them). */
/**
 * The engine's stable code for an error the wasm API threw (its `name`, kebab-case like
 * 'hash-mismatch'), or null for any other error (JavaScript's own are named 'TypeError', ...).
 * @param {unknown} error
 * @returns {string | null}
 */
export function errorCode(error) {
  const name = error instanceof Error ? error.name : null;
  return name && /^[a-z]+(-[a-z]+)*$/.test(name) ? name : null;
}

/**
 * The engine's options from the npm API's (index.d.ts's Options): only what the engine reads.
 * @param {Record<string, any>} options
 * @returns {ProcessOptions}
 */
export function engineOptions(options) {
  return {
    output: options.output || 'png',
    quality: options.quality,
    background: options.background || null,
    crop: options.crop ?? false,
    maxSide: options.maxSide,
    maxPixels: options.maxPixels,
    refine: options.refine ?? true,
  };
}

export const STAGES = /** @type {const} */ (['decode', 'preprocess', 'inference', 'postprocess', 'encode']);

/** @typedef {(typeof STAGES)[number]} Stage */

/**
 * A model as the worker loads it: what model-spec.js's resolveModel returns, or a local file.
 * @typedef {object} ResolvedModel
 * @property {string} key identifies the model: a load of the same key reuses the engine
 * @property {string} [url] where it is downloaded from and stored in the Cache API
 * @property {{url: string, size: number, sha256: string}[] | null} [parts] a model published in parts, fetched in order
 * @property {string | null} sha256 the pinned hash, or null (trusted on first download)
 * @property {number | null} [size]
 * @property {Record<string, any>} entry the manifest entry it is (or is assumed to be)
 * @property {File} [file] a model file the user picked, instead of a download
 */

/**
 * Decoded RGBA pixels; the buffer is transferred to the worker.
 * @typedef {{buffer: ArrayBuffer, width: number, height: number}} Pixels
 */

/**
 * What the engine is asked to produce (the Rust side's ProcessOptions).
 * @typedef {object} ProcessOptions
 * @property {'png' | 'webp' | 'jpeg' | 'mask'} output
 * @property {number} [quality] JPEG quality, 1-100 (default 90)
 * @property {string | null} [background] fill colour, or null for transparency (JPEG: white)
 * @property {boolean | number} [crop] crop to the subject: true, or a margin in pixels
 * @property {number} [maxSide] scale the result down to at most this many pixels on its longer side
 * @property {number} [maxPixels] largest image accepted (default 50 000 000)
 * @property {boolean} [refine] edge refinement (default true); false gives the reference's values
 * @property {boolean} [withMask] also return the mask as a PNG
 * @property {boolean} [withAlpha] also return the final alpha, a byte per pixel at the input's size
 * @property {boolean} [withView] also return the cutout as RGBA at the input's size (no crop, no background)
 */

/**
 * One drag of the touch-up brush, in the photo's pixels (the engine's edit::Stroke).
 * @typedef {{mode: 'erase' | 'restore', radius: number, hardness: number, points: [number, number][]}} Stroke
 */

// ---- client -> worker -----------------------------------------------------------------------

/** @typedef {{type: 'init', id: number}} InitRequest */
/** @typedef {{type: 'load-model', id: number, model: ResolvedModel}} LoadModelRequest */
/**
 * An encoded image (`file`), or pixels decoded by the caller (`pixels`). With `keep`, the worker
 * keeps the decoded photo under that key for the `composite` requests that follow.
 * @typedef {{type: 'process', id: number, file?: Blob, pixels?: Pixels, options: ProcessOptions, keep?: string}} ProcessRequest
 */
/**
 * A result made again without inference, from the photo (`file`, or the one kept under `key`),
 * the `alpha` its process returned, touch-up `strokes` and `options`; `backgroundFile` is a
 * picture to put behind the subject.
 * @typedef {{type: 'composite', id: number, key: string, file: Blob, alpha: ArrayBuffer, strokes: Stroke[], options: ProcessOptions, backgroundFile?: Blob | null}} CompositeRequest
 */
/** The worker drops the photo kept under `key`; no reply. @typedef {{type: 'forget', id: number, key: string}} ForgetRequest */
/** @typedef {{type: 'list-models', id: number}} ListModelsRequest */
/** @typedef {{type: 'delete-model', id: number, url: string}} DeleteModelRequest */
/** Per-op inference times on decoded pixels (the benchmark's --profile). @typedef {{type: 'profile', id: number, pixels: Pixels}} ProfileRequest */
/** @typedef {InitRequest | LoadModelRequest | ProcessRequest | CompositeRequest | ForgetRequest | ListModelsRequest | DeleteModelRequest | ProfileRequest} Request */

// ---- worker -> client -----------------------------------------------------------------------

/**
 * The engine is instantiated: `variant` is the wasm build in use, loaded from `wasmUrl`;
 * `notice` says why it runs on fewer threads than it could (a thread pool that did not start).
 * @typedef {{type: 'ready', id: number, variant: 'simd' | 'relaxed' | 'threads', threads: number, notice?: string, manifest: any, wasmUrl: string, instantiateMs: number}} ReadyReply
 */
/** Model download progress, in bytes (`total` 0 when unknown). @typedef {{type: 'model-progress', id: number, loaded: number, total: number}} ModelProgressReply */
/** @typedef {{type: 'model-status', id: number, state: 'warning' | 'compiling', message: string}} ModelStatusReply */
/**
 * @typedef {object} ModelInfo
 * @property {string} key
 * @property {boolean} [cached]
 * @property {boolean} [reused] the engine already had this model
 * @property {boolean} [fromCache] read from the Cache API, not downloaded
 * @property {boolean} [stored] in the Cache API for the next visit (false: storage full or unavailable)
 * @property {number} [bytes]
 * @property {number} [fetchMs]
 * @property {number} [compileMs]
 * @property {string} [variant]
 * @property {number} [memoryBytes]
 * @property {any} [phases]
 */
/** @typedef {{type: 'model-ready', id: number, info: ModelInfo}} ModelReadyReply */
/** `code` is one of models.js's ModelErrorCode, or null. @typedef {{type: 'model-error', id: number, key: string, message: string, code: string | null}} ModelErrorReply */
/** A stage begins; during inference, `fraction` of the graph's work is done. @typedef {{type: 'stage', id: number, stage: Stage, fraction?: number}} StageReply */
/**
 * The result (and the mask, alpha and view when asked for), transferred; `memoryBytes` is the
 * engine's footprint. `width` and `height` are the result's; alpha and view have the input's
 * (`inputWidth` x `inputHeight`).
 * @typedef {{type: 'done', id: number, bytes: ArrayBuffer, mime: string, width: number, height: number, mask: ArrayBuffer | null, alpha?: ArrayBuffer | null, view?: ArrayBuffer | null, inputWidth: number, inputHeight: number, memoryBytes: number}} DoneReply
 */
/** `code` is the engine's stable error code (Rust's `Error::code()`, e.g. 'not-an-image'), or null. @typedef {{type: 'failed', id: number, message: string, code: string | null}} FailedReply */
/**
 * @typedef {object} CachedModel
 * @property {string} url
 * @property {string | null} [id]
 * @property {number} size
 */
/** The models stored in this browser. @typedef {{type: 'models', id: number, list: CachedModel[]}} ModelsReply */
/** @typedef {{type: 'profiled', id: number, ops: {op: string, calls: number, seconds: number}[]}} ProfiledReply */
/** The engine is unusable (a wasm trap, or it could not start): restart the worker. @typedef {{type: 'fatal', message: string}} FatalReply */
/**
 * @typedef {ReadyReply | ModelProgressReply | ModelStatusReply | ModelReadyReply | ModelErrorReply | StageReply | DoneReply | FailedReply | ModelsReply | ProfiledReply | FatalReply} Reply
 */

// ---- Node: node.js <-> its engine thread (node-engine.js, a worker_threads worker) ----------
// The same engine without a browser: the thread reads and downloads models itself (to the CLI's
// disk cache) and takes encoded images only.

/** @typedef {{type: 'load', spec: any, modelBaseUrl: string | null}} NodeLoadRequest */
/** @typedef {{type: 'process', id: number, bytes: Uint8Array, options: ProcessOptions}} NodeProcessRequest */
/** @typedef {NodeLoadRequest | NodeProcessRequest} NodeRequest */
/** @typedef {{type: 'progress', stage: 'download', loaded: number, total: number}} NodeProgressReply */
/** @typedef {{type: 'loaded'}} NodeLoadedReply */
/** During inference, `fraction` of the graph's work is done. @typedef {{type: 'stage', id: number, stage: Stage, fraction?: number}} NodeStageReply */
/** @typedef {{type: 'done', id: number, bytes: Uint8Array, mime: string}} NodeDoneReply */
/** `id` is null for a failed load; `code` as in FailedReply. @typedef {{type: 'failed', id: number | null, message: string, code: string | null}} NodeFailedReply */
/** @typedef {NodeProgressReply | NodeLoadedReply | NodeStageReply | NodeDoneReply | NodeFailedReply} NodeReply */
