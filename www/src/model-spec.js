// What a caller names as a model (a manifest id, a URL, or {url, sha256}) turned into what the
// worker loads: {key, url, sha256, size, entry}. Shared by the page and the npm package.

export function resolveModel(spec, manifest, { modelBaseUrl = null, baseUrl } = {}) {
  const byId = (id) => manifest.models.find((m) => m.id === id);
  const defaultEntry = byId(manifest.default);
  const urlFor = (entry) => (modelBaseUrl ? new URL(entry.file, new URL(modelBaseUrl, baseUrl)).href : entry.url);
  if (spec == null || spec === '') spec = manifest.default;
  if (typeof spec === 'string' && !/^(https?:|blob:|\.{0,2}\/)/.test(spec)) {
    const entry = byId(spec);
    if (!entry) throw new Error(`unknown model '${spec}': known models are ${manifest.models.map((m) => m.id).join(', ')}`);
    const url = urlFor(entry);
    if (!url) throw new Error(`model '${spec}' has no download URL: pass {url, sha256} or set modelBaseUrl to where you host ${entry.file}`);
    return { key: `id:${entry.id}:${url}`, url, sha256: entry.sha256, size: entry.size, entry };
  }
  const given = typeof spec === 'string' ? { url: spec } : spec;
  if (!given.url) throw new Error('a model is a manifest id, a URL or {url, sha256}');
  const url = new URL(given.url, baseUrl).href;
  const sha256 = given.sha256 ? String(given.sha256).toLowerCase() : null;
  if (sha256 && !/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`sha256 '${given.sha256}' is not 64 hex digits`);
  const known = sha256 && manifest.models.find((m) => m.sha256 === sha256);
  const entry = given.entry || known || defaultEntry;
  return { key: `url:${url}`, url, sha256, size: known?.size ?? null, entry };
}
