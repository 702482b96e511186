// Model files in the browser's Cache API: fetched once with byte-accurate progress, verified with
// SubtleCrypto before anything is stored, served from the cache on later visits with no network
// request. Nothing partial or unverified is ever stored. A model nobody pinned is trusted on
// first download: its hash is recorded, and a later, different file from the same URL is refused.

export const MODEL_CACHE = 'cutout-models-v1';
// Hashes recorded at first download of unpinned models, one small entry per model URL.
const TRUST_CACHE = 'cutout-trust-v1';
const HASH_HEADER = 'x-cutout-sha256';

// Errors the page tells apart without reading message text.
export const ModelErrorCode = {
  refused: 'model-refused', // 401/403: gated or private
  notFound: 'model-not-found',
  cors: 'model-no-cors',
  offline: 'model-offline',
  unreachable: 'model-unreachable', // no answer we may read: host down, or no CORS under COEP
  cut: 'model-cut',
  mismatch: 'model-hash-mismatch',
  http: 'model-http',
};

export class ModelError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ModelError';
    this.code = code;
  }
}

export async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

const megabytes = (n) => `${(n / 1e6).toFixed(1)} MB`;

async function openCache(name = MODEL_CACHE) {
  if (!self.caches) return null; // e.g. an insecure origin: work without a cache
  try {
    return await caches.open(name);
  } catch {
    return null;
  }
}

async function recordedHash(url) {
  const trust = await openCache(TRUST_CACHE);
  const record = trust && (await trust.match(url));
  return record ? (await record.text()).trim() : null;
}

async function recordHash(url, sha256) {
  const trust = await openCache(TRUST_CACHE);
  await trust?.put(url, new Response(sha256, { headers: { 'content-type': 'text/plain' } }));
}

// The bytes of `model` ({url, parts, sha256, size, entry}), from the cache when a verified copy is
// there. `onWarning` hears about what is worth saying but not fatal (storage full, trusted anew).
/**
 * @param {import('./protocol.js').ResolvedModel} model
 * @param {{onProgress?: (loaded: number, total: number) => void, onWarning?: (message: string) => void}} [callbacks]
 * @returns {Promise<{bytes: Uint8Array, fromCache: boolean, stored: boolean, sha256: string}>}
 *   `stored`: the model is in the Cache API (for a download: it could be written there).
 */
export async function fetchModel(model, { onProgress = () => {}, onWarning = () => {} } = {}) {
  const cache = await openCache();
  const pinned = model.sha256 ? model.sha256.toLowerCase() : null;
  const trusted = pinned ? null : await recordedHash(model.url);
  const expected = pinned || trusted;
  const cached = cache && (await cache.match(model.url));
  if (cached) {
    const bytes = new Uint8Array(await cached.arrayBuffer());
    const actual = await sha256Hex(bytes);
    const stored = cached.headers.get(HASH_HEADER);
    if (stored && actual !== stored) {
      await cache.delete(model.url); // damaged in storage: fetch it again
    } else if (!expected || actual === expected) {
      onProgress(bytes.length, bytes.length);
      return { bytes, fromCache: true, stored: true, sha256: actual };
    }
    // Otherwise the stored file is fine but not the one asked for: leave it and download.
  }
  const bytes = model.parts?.length ? await downloadParts(model, onProgress) : await download(model.url, model.size, onProgress);
  const actual = await sha256Hex(bytes);
  if (expected && actual !== expected) {
    const why = pinned
      ? `The file at ${model.url} is not the expected model (corrupt, incomplete or replaced)`
      : `This URL served a file with sha256 ${trusted} on its first download (trusted on first download); it now serves a different one. If the change is expected, pass the new sha256 explicitly`;
    throw new ModelError(ModelErrorCode.mismatch, `Model file hash mismatch: expected sha256 ${expected}, got ${actual}. ${why}; nothing was stored.`);
  }
  if (!expected) {
    await recordHash(model.url, actual);
    onWarning(
      `The model at ${model.url} has no pinned sha256: its sha256 ${actual} is recorded now (trusted on first download), and a different file from this URL will be refused.`,
    );
  }
  let stored = false;
  if (cache) {
    try {
      const headers = {
        'content-type': 'application/octet-stream',
        'content-length': String(bytes.length),
        [HASH_HEADER]: actual,
        'x-cutout-id': model.entry?.id || '',
      };
      await cache.put(model.url, new Response(bytes, { headers }));
      stored = true;
    } catch (e) {
      onWarning(
        `Could not keep the model for offline use (${e.name === 'QuotaExceededError' ? 'browser storage is full: delete other models or site data' : e.message}); it will be downloaded again next time.`,
      );
    }
  }
  return { bytes, fromCache: false, stored, sha256: actual };
}

// A fetch that failed before any response: offline, a host that does not allow this site (no
// CORS headers), or a host that is down. A no-cors request tells the middle case apart: it
// succeeds (opaquely) when the host answered but withheld CORS.
async function unreachable(url, error) {
  if (self.navigator && navigator.onLine === false) {
    return new ModelError(
      ModelErrorCode.offline,
      `You are offline: the model could not be downloaded from ${url}. Connect and retry; once downloaded, it works offline.`,
    );
  }
  let answered = false;
  try {
    await fetch(url, { mode: 'no-cors', cache: 'no-store', method: 'HEAD' });
    answered = true;
  } catch {
    answered = false;
  }
  const host = new URL(url).host;
  if (answered) {
    return new ModelError(
      ModelErrorCode.cors,
      `${host} answered but does not allow downloads from this site (no CORS header Access-Control-Allow-Origin), so the browser withheld the model. ` +
        `Fix: serve the model from a host that sends that header, or from this site itself (modelBaseUrl in cutout.config.json).`,
    );
  }
  // A cross-origin isolated page cannot read even an opaque answer from a host without
  // Cross-Origin-Resource-Policy, so here a missing CORS header and a host that is down look alike.
  return new ModelError(
    ModelErrorCode.unreachable,
    `Could not download the model from ${url}: either ${host} does not allow downloads from this site (no CORS header Access-Control-Allow-Origin) or it is unreachable (${error.message}). ` +
      `If the host is up, serve the model from a host that sends that header, or from this site itself (modelBaseUrl in cutout.config.json).`,
  );
}

async function request(url) {
  let response;
  try {
    response = await fetch(url, { cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    throw await unreachable(url, e);
  }
  if (response.ok) return response;
  const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
  if (response.status === 401 || response.status === 403) {
    throw new ModelError(
      ModelErrorCode.refused,
      `Could not download the model: ${status} from ${url}. The host refuses anonymous downloads (a gated model needs an account that accepted its terms). ` +
        `Self-host the file (modelBaseUrl in cutout.config.json, or ?model=<your URL>&sha256=…) or choose an open model.`,
    );
  }
  if (response.status === 404 || response.status === 410) {
    throw new ModelError(
      ModelErrorCode.notFound,
      `Could not download the model: ${status} from ${url}. There is no such file there (moved or removed); choose another model.`,
    );
  }
  throw new ModelError(ModelErrorCode.http, `Could not download the model: ${status} from ${url}. Retry later or choose another model.`);
}

// Streams one response into `chunks`, calling onBytes(n) as bytes arrive; returns the byte count.
async function readBody(response, url, expectedTotal, onBytes, chunks) {
  const announced = Number(response.headers.get('content-length')) || 0;
  const total = announced || expectedTotal || 0;
  let loaded = 0;
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      if (expectedTotal && loaded > expectedTotal)
        throw new ModelError(ModelErrorCode.mismatch, `${url} sent more than the expected ${expectedTotal} bytes: not the expected model; nothing was stored.`);
      onBytes(value.length);
    }
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw new ModelError(
      ModelErrorCode.cut,
      `The model download was interrupted after ${megabytes(loaded)}${total ? ` of ${megabytes(total)}` : ''} (${e.message}). Nothing was stored; retry to download it again.`,
    );
  }
  if ((announced && loaded !== announced) || (expectedTotal && loaded !== expectedTotal)) {
    throw new ModelError(
      ModelErrorCode.cut,
      `The model download was cut after ${megabytes(loaded)} of ${megabytes(total)}. Nothing was stored; retry to download it again.`,
    );
  }
  return loaded;
}

function concat(chunks, length) {
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

async function download(url, size, onProgress) {
  const response = await request(url);
  const total = Number(response.headers.get('content-length')) || size || 0;
  const chunks = [];
  let loaded = 0;
  const length = await readBody(response, url, size, (n) => onProgress((loaded += n), total), chunks);
  return concat(chunks, length);
}

// Parts one after another (each verified against its own sha256), assembled into one file.
async function downloadParts(model, onProgress) {
  const total = model.parts.reduce((sum, part) => sum + part.size, 0);
  const chunks = [];
  let loaded = 0;
  for (const [index, part] of model.parts.entries()) {
    const response = await request(part.url);
    const partChunks = [];
    const length = await readBody(response, part.url, part.size, (n) => onProgress((loaded += n), total), partChunks);
    const bytes = concat(partChunks, length);
    const actual = await sha256Hex(bytes);
    if (actual !== part.sha256) {
      throw new ModelError(
        ModelErrorCode.mismatch,
        `Model file hash mismatch in part ${index + 1} of ${model.parts.length} (${part.url}): expected sha256 ${part.sha256}, got ${actual}. The host serves a different file; nothing was stored.`,
      );
    }
    chunks.push(bytes);
  }
  return concat(chunks, total);
}

export async function listCachedModels() {
  const cache = await openCache();
  if (!cache) return [];
  const list = [];
  for (const request of await cache.keys()) {
    const response = await cache.match(request);
    list.push({
      url: request.url,
      id: response.headers.get('x-cutout-id') || '',
      size: Number(response.headers.get('content-length')) || 0,
      sha256: response.headers.get(HASH_HEADER) || '',
    });
  }
  return list;
}

export async function deleteCachedModel(url) {
  const cache = await openCache();
  if (cache) await cache.delete(url);
}
