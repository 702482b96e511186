// Service worker: precaches the app shell (page, worker, the wasm builds) so the app works
// offline after one visit, and serves it cache-first, cross-origin isolated. Models are not
// touched here: the worker keeps them in their own Cache API store, which survives app updates.
//
// build.sh replaces the two placeholders: the build's version and the list of shell files.
const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));
const VERSION = '__CUTOUT_VERSION__';
const SHELL_FILES = __CUTOUT_SHELL_FILES__;
const SHELL_CACHE = `cutout-shell-${VERSION}`;
const SHELL_PREFIX = 'cutout-shell-';

sw.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      // cache: 'reload' bypasses the HTTP cache so a new version never precaches stale files.
      await cache.addAll(SHELL_FILES.map((path) => new Request(path, { cache: 'reload' })));
    })(),
  );
});

sw.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(SHELL_PREFIX) && name !== SHELL_CACHE) await caches.delete(name);
      }
      await sw.clients.claim();
    })(),
  );
});

// The page asks the waiting worker to take over when the user accepts the update.
sw.addEventListener('message', (event) => {
  if (event.data?.type === 'skip-waiting') sw.skipWaiting();
  if (event.data?.type === 'version') event.source?.postMessage({ type: 'version', version: VERSION });
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

sw.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== sw.location.origin) return;
  const isPage = request.mode === 'navigate';
  const shellPath = isPage ? new URL('./', sw.registration.scope).href : request.url;
  event.respondWith(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      // Shell files are the same whatever their query (?model=..., worker.js?threads=...).
      const cached = await cache.match(isPage ? shellPath : request, { ignoreSearch: true });
      return isolated(cached || (await fetch(request)));
    })(),
  );
});
