// Service worker: precaches the app shell (page, worker, styles, the wasm glue) so the app works
// offline after one visit, and serves it cache-first, cross-origin isolated. Of the three wasm
// builds it keeps only those this browser uses, as they are fetched (or, on a first visit that
// it did not control yet, when the page says which one it loaded), so a first visit downloads
// one build. Models are not touched here: the worker keeps them in their own Cache API store,
// which survives app updates.
//
// build.sh replaces the two placeholders: the build's version and the list of shell files.
const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));
const VERSION = '__CUTOUT_VERSION__';
const SHELL_FILES = __CUTOUT_SHELL_FILES__;
const SHELL_CACHE = `cutout-shell-${VERSION}`;
const SHELL_PREFIX = 'cutout-shell-';
const BUILD_CACHE = `cutout-build-${VERSION}`;
const BUILD_PREFIX = 'cutout-build-';
const isBuild = (url) => /\/pkg-[a-z]+\/[^/]+\.wasm$/.test(new URL(url).pathname);

sw.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      // cache: 'reload' bypasses the HTTP cache so a new version never precaches stale files.
      await cache.addAll(SHELL_FILES.map((path) => new Request(path, { cache: 'reload' })));
      // An update fetches the new version of the builds the old one had kept (offline after it).
      const builds = await caches.open(BUILD_CACHE);
      for (const name of await caches.keys()) {
        if (!name.startsWith(BUILD_PREFIX) || name === BUILD_CACHE) continue;
        for (const request of await (await caches.open(name)).keys()) {
          // A build the new version no longer has is simply not kept.
          await builds.add(new Request(request.url, { cache: 'reload' })).catch(() => {});
        }
      }
    })(),
  );
});

sw.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        const old = (name.startsWith(SHELL_PREFIX) && name !== SHELL_CACHE) || (name.startsWith(BUILD_PREFIX) && name !== BUILD_CACHE);
        if (old) await caches.delete(name);
      }
      await sw.clients.claim();
    })(),
  );
});

// Keeps the build the page's worker loaded before this worker controlled it. 'force-cache' takes
// the copy the browser's HTTP cache holds from that load, so it is not downloaded a second time.
async function keepBuild(path) {
  const url = new URL(path, sw.registration.scope).href;
  if (!isBuild(url) || new URL(url).origin !== sw.location.origin) return;
  const builds = await caches.open(BUILD_CACHE);
  if (await builds.match(url)) return;
  const response = await fetch(url, { cache: 'force-cache' });
  if (response.ok) await builds.put(url, response);
}

// The page asks the waiting worker to take over when the user accepts the update.
sw.addEventListener('message', (event) => {
  if (event.data?.type === 'skip-waiting') sw.skipWaiting();
  if (event.data?.type === 'version') event.source?.postMessage({ type: 'version', version: VERSION });
  if (event.data?.type === 'keep-build') event.waitUntil(keepBuild(event.data.path).catch(() => {}));
});

// Cross-origin isolation (COOP + COEP) on everything this worker serves: it gives the page
// shared memory, hence the multi-threaded engine, even on a static host that cannot set headers.
// Cross-origin fetches (a model on a CDN) stay CORS requests, which COEP allows.
function isolated(response) {
  if (!response || response.type === 'opaque' || response.status === 0) return response;
  const headers = new Headers(response.headers);
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

// Photos shared to the installed app (the manifest's share_target) arrive as a POST: they wait
// in their own cache until the page, opened at ?shared, adds them to its queue.
const SHARED_CACHE = 'cutout-shared';
async function receiveShare(request) {
  const form = await request.formData();
  const files = form.getAll('photos').filter((entry) => typeof entry !== 'string');
  const cache = await caches.open(SHARED_CACHE);
  let index = 0;
  for (const file of /** @type {File[]} */ (files)) {
    const headers = { 'Content-Type': file.type || 'application/octet-stream', 'X-File-Name': encodeURIComponent(file.name) };
    await cache.put(new Request(`./shared/${Date.now()}-${index++}`), new Response(file, { headers }));
  }
  return Response.redirect(new URL(`./?shared=${files.length}`, sw.registration.scope).href, 303);
}

sw.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method === 'POST' && url.origin === sw.location.origin && url.href === new URL('./share', sw.registration.scope).href) {
    event.respondWith(receiveShare(request));
    return;
  }
  if (request.method !== 'GET' || url.origin !== sw.location.origin) return;
  const isPage = request.mode === 'navigate';
  const shellPath = isPage ? new URL('./', sw.registration.scope).href : request.url;
  event.respondWith(
    (async () => {
      if (isBuild(request.url)) {
        const builds = await caches.open(BUILD_CACHE);
        const kept = await builds.match(request, { ignoreSearch: true });
        if (kept) return isolated(kept);
        const response = await fetch(request);
        // Kept for offline use where there is room: a full storage quota must not cost the
        // page its engine.
        if (response.ok) event.waitUntil(builds.put(request.url, response.clone()).catch(() => {}));
        return isolated(response);
      }
      const cache = await caches.open(SHELL_CACHE);
      // Shell files are the same whatever their query (?model=..., worker.js?threads=...).
      const cached = await cache.match(isPage ? shellPath : request, { ignoreSearch: true });
      return isolated(cached || (await fetch(request)));
    })(),
  );
});
