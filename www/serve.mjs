#!/usr/bin/env node
// A small static file server for the built site (no dependencies): correct MIME types for .wasm
// and .onnx, the page's Content-Security-Policy as a header (so the worker gets it too),
// cross-origin isolation headers (threads), and optional extra directories mounted at a path
// (e.g. self-hosted models).
//
//   node www/serve.mjs [--port 8080] [--root www/dist] [--mount /models=../shared/models]
import { createServer as createHttpServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.bmp': 'image/bmp',
  '.txt': 'text/plain; charset=utf-8',
};

export const CSP =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; connect-src 'self' blob: https:; " +
  "img-src 'self' blob: data:; style-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

function resolveFile(dir, urlPath) {
  const full = normalize(join(dir, urlPath));
  if (full !== dir && !full.startsWith(dir + sep)) return null; // no escaping the root
  try {
    const stat = statSync(full);
    if (stat.isDirectory()) return resolveFile(dir, join(urlPath, 'index.html'));
    return { path: full, size: stat.size };
  } catch {
    return null;
  }
}

// mounts: {'/models': '/abs/dir'}; onRequest(pathname) is told about every request;
// handlers: {'/path': (req, res) => ...} answer exact paths themselves (tests use this);
// headersFor(pathname) adds or (with null) removes response headers (the benchmark uses this).
export function createServer({ root, mounts = {}, onRequest = () => {}, handlers = {}, headersFor = () => ({}) }) {
  const dirs = Object.entries(mounts).map(([prefix, dir]) => [prefix.replace(/\/$/, ''), resolve(dir)]);
  const rootDir = resolve(root);
  return createHttpServer((req, res) => {
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    } catch {
      res.writeHead(400).end('bad request');
      return;
    }
    onRequest(pathname, req);
    if (handlers[pathname]) return handlers[pathname](req, res);
    const mount = dirs.find(([prefix]) => pathname.startsWith(prefix + '/'));
    const file = mount ? resolveFile(mount[1], pathname.slice(mount[0].length)) : resolveFile(rootDir, pathname);
    const headers = {
      'Content-Security-Policy': CSP, 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', 'Cache-Control': 'no-cache',
      // Cross-origin isolation: shared memory for the multi-threaded engine from the first visit.
      ...ISOLATION_HEADERS,
    };
    for (const [name, value] of Object.entries(headersFor(pathname))) {
      if (value === null) delete headers[name];
      else headers[name] = value;
    }
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': MIME[extname(file.path).toLowerCase()] || 'application/octet-stream', 'Content-Length': file.size });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file.path).pipe(res);
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, fallback) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : fallback;
  };
  const mounts = {};
  args.forEach((a, i) => {
    if (a === '--mount') {
      const [prefix, dir] = args[i + 1].split('=');
      mounts[prefix] = dir;
    }
  });
  const here = fileURLToPath(new URL('.', import.meta.url));
  const root = opt('--root', join(here, 'dist'));
  const port = Number(opt('--port', 8080));
  const host = opt('--host', '127.0.0.1');
  createServer({ root, mounts }).listen(port, host, () => {
    console.log(`Cutout is served at http://${host}:${port}/ (from ${root}); press Ctrl+C to stop.`);
    for (const [prefix, dir] of Object.entries(mounts)) console.log(`  ${prefix}/ -> ${dir}`);
  });
}
