// What a caller names as a model (a manifest id, a URL, or {url, sha256}) turned into what the
// worker loads: {key, url, sha256, size, entry, parts}. Shared by the page and the npm package.
//
// `url` is where the model is stored in the Cache API (and, for a one-file model, where it is
// downloaded from). A model published in parts (IMG.LY's CDN layout) also has `parts`: [{url,
// size, sha256}] fetched in order and assembled. A mirror (`modelBaseUrl`) always serves the
// assembled file as `<modelBaseUrl>/<file>`.

/**
 * @param {any} spec
 * @param {{default: string, models: any[]}} manifest
 * @param {{modelBaseUrl?: string | null, baseUrl?: string}} [where] `baseUrl` resolves relative model URLs
 * @returns {import('./protocol.js').ResolvedModel}
 */
export function resolveModel(spec, manifest, { modelBaseUrl = null, baseUrl } = {}) {
  const byId = (id) => manifest.models.find((m) => m.id === id);
  const defaultEntry = byId(manifest.default);
  if (spec == null || spec === '') spec = manifest.default;
  if (typeof spec === 'string' && !/^(https?:|blob:|\.{0,2}\/)/.test(spec)) {
    const entry = byId(spec);
    if (!entry) throw new Error(`unknown model '${spec}': known models are ${manifest.models.map((m) => m.id).join(', ')}`);
    const source = downloadOf(entry, modelBaseUrl, baseUrl);
    if (!source) throw new Error(`model '${spec}' has no download URL: pass {url, sha256} or set modelBaseUrl to where you host ${entry.file}`);
    return { key: `id:${entry.id}:${source.url}`, ...source, sha256: entry.sha256, size: entry.size, entry };
  }
  const given = typeof spec === 'string' ? { url: spec } : spec;
  if (!given.url) throw new Error('a model is a manifest id, a URL or {url, sha256}');
  const url = new URL(given.url, baseUrl).href;
  const sha256 = given.sha256 ? String(given.sha256).toLowerCase() : null;
  if (sha256 && !/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`sha256 '${given.sha256}' is not 64 hex digits`);
  const known = sha256 && manifest.models.find((m) => m.sha256 === sha256);
  const entry = given.entry || known || defaultEntry;
  return { key: `url:${url}`, url, parts: null, sha256, size: known?.size ?? null, entry };
}

// Where the entry's bytes come from: {url, parts}, or null when it has no public download.
export function downloadOf(entry, modelBaseUrl, baseUrl) {
  if (modelBaseUrl) return { url: new URL(entry.file, new URL(modelBaseUrl.replace(/\/?$/, '/'), baseUrl)).href, parts: null };
  if (entry.url) return { url: entry.url, parts: null };
  if (entry.parts_base_url && entry.parts?.length) {
    const parts = entry.parts.map((part) => ({ url: entry.parts_base_url + part.sha256, size: part.size, sha256: part.sha256 }));
    return { url: new URL(entry.file, entry.parts_base_url).href, parts };
  }
  return null;
}

// The model's size in words ("88.2 MB"), or null when the manifest does not know it.
export function sizeText(entry) {
  return entry?.size ? `${(entry.size / 1e6).toFixed(1)} MB` : null;
}
