// Model files in the browser's Cache API: fetched once with byte-accurate progress, verified with
// SubtleCrypto before anything is stored, served from the cache on later visits with no network
// request. Nothing partial or unverified is ever stored.

export const MODEL_CACHE = 'cutout-models-v1';
const HASH_HEADER = 'x-cutout-sha256';

export async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

const megabytes = (n) => `${(n / 1e6).toFixed(1)} MB`;

async function openCache() {
  if (!self.caches) return null; // e.g. an insecure origin: work without a cache
  try {
    return await caches.open(MODEL_CACHE);
  } catch {
    return null;
  }
}

// The bytes of `model` ({url, sha256, size, entry}), from the cache when a verified copy is there.
export async function fetchModel(model, { onProgress = () => {}, onWarning = () => {} } = {}) {
  const cache = await openCache();
  const cached = cache && (await cache.match(model.url));
  if (cached) {
    const bytes = new Uint8Array(await cached.arrayBuffer());
    const actual = await sha256Hex(bytes);
    const stored = cached.headers.get(HASH_HEADER);
    if (stored && actual !== stored) {
      await cache.delete(model.url); // damaged in storage: fetch it again
    } else if (!model.sha256 || actual === model.sha256.toLowerCase()) {
      onProgress(bytes.length, bytes.length);
      return { bytes, fromCache: true };
    }
    // Otherwise the stored file is fine but not the one asked for: leave it and download.
  }
  const bytes = await download(model, onProgress);
  const actual = await sha256Hex(bytes);
  if (model.sha256 && actual !== model.sha256.toLowerCase()) {
    throw new Error(
      `Model file hash mismatch: expected sha256 ${model.sha256}, got ${actual}. ` +
        `The file at ${model.url} is not the expected model (corrupt, incomplete or replaced); nothing was stored.`,
    );
  }
  if (!model.sha256) onWarning(`The model at ${model.url} has no pinned sha256 (got ${actual}); it is used unverified.`);
  if (cache) {
    try {
      const headers = { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length), [HASH_HEADER]: actual, 'x-cutout-id': model.entry?.id || '' };
      await cache.put(model.url, new Response(bytes, { headers }));
    } catch (e) {
      onWarning(`Could not keep the model for offline use (${e.name === 'QuotaExceededError' ? 'browser storage is full' : e.message}); it will be downloaded again next time.`);
    }
  }
  return { bytes, fromCache: false };
}

async function download(model, onProgress) {
  let response;
  try {
    response = await fetch(model.url, { cache: 'no-store' });
  } catch (e) {
    throw new Error(`Could not download the model from ${model.url}: the network is unreachable or the server refused (${e.message}). Retry when online.`);
  }
  if (!response.ok) throw new Error(`Could not download the model: HTTP ${response.status} ${response.statusText} from ${model.url}.`);
  const announced = Number(response.headers.get('content-length')) || 0;
  const total = announced || model.size || 0;
  const chunks = [];
  let loaded = 0;
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      onProgress(loaded, total);
    }
  } catch (e) {
    throw new Error(`The model download was interrupted after ${megabytes(loaded)}${total ? ` of ${megabytes(total)}` : ''} (${e.message}). Nothing was stored; retry to download it again.`);
  }
  if (announced && loaded !== announced) {
    throw new Error(`The model download was cut after ${megabytes(loaded)} of ${megabytes(announced)}. Nothing was stored; retry to download it again.`);
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
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
