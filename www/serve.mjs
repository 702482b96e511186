#!/usr/bin/env node
// A small static file server for the built site (no dependencies): correct MIME types for .wasm
// and .onnx, the page's Content-Security-Policy as a header (so the worker gets it too),
// cross-origin isolation headers (threads), and optional extra directories mounted at a path
// (e.g. self-hosted models); the site's own files gzipped, as static hosts send them.
//
// With --public-mirror DIR it also plays the public model hosts for the models whose files are
// in DIR: their URLs (IMG.LY's CDN parts, Hugging Face files) are served under
// /public-hosts/<host>/<path> from those files, and the site's models.json points there, so the
// plain URL's first run works offline exactly as it does against the real hosts.
//
//   node www/serve.mjs [--port 8080] [--root www/dist] [--mount /models=../shared/models] [--public-mirror DIR]
import { createServer as createHttpServer } from 'node:http';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';

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

// The site's own files are sent gzipped to browsers that take it, as static hosts do (a wasm
// build is a quarter of its size gzipped); each compressed once per version of the file.
const COMPRESSIBLE = new Set(['.wasm', '.js', '.mjs', '.css', '.html', '.json', '.svg', '.webmanifest', '.txt']);
const gzipped = new Map();
function gzippedBody(file) {
  const key = `${file.path}:${file.size}:${statSync(file.path).mtimeMs}`;
  if (!gzipped.has(key)) gzipped.set(key, gzipSync(readFileSync(file.path)));
  return gzipped.get(key);
}

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

const MIRROR_PREFIX = '/public-hosts/';

// The manifest's public URLs whose files are in `dir`, as local routes: {routes: Map(path ->
// {path, start, end}), manifestFor(origin)}.
function publicMirror(root, dir) {
  const manifest = JSON.parse(readFileSync(join(root, 'models.json'), 'utf8'));
  const routes = new Map();
  const local = (url) => MIRROR_PREFIX + url.replace(/^https?:\/\//, '');
  const mirrored = [];
  for (const entry of manifest.models) {
    const file = join(dir, entry.file);
    if (!existsSync(file)) continue;
    if (entry.url) routes.set(local(entry.url), { path: file });
    let offset = 0;
    for (const part of entry.parts || []) {
      routes.set(local(entry.parts_base_url + part.sha256), { path: file, start: offset, end: offset + part.size - 1 });
      offset += part.size;
    }
    mirrored.push(entry.id);
  }
  const manifestFor = (origin) => {
    const copy = structuredClone(manifest);
    for (const entry of copy.models) {
      if (!mirrored.includes(entry.id)) continue;
      if (entry.url) entry.url = origin + local(entry.url);
      if (entry.parts_base_url) entry.parts_base_url = origin + local(entry.parts_base_url);
    }
    return JSON.stringify(copy);
  };
  return { routes, manifestFor, mirrored };
}

// mounts: {'/models': '/abs/dir'}; onRequest(pathname) is told about every request;
// handlers: {'/path': (req, res) => ...} answer exact paths themselves (tests use this);
// headersFor(pathname) adds or (with null) removes response headers (the benchmark uses this).
// publicMirrorDir: see --public-mirror above.
/**
 * @param {object} options
 * @param {string} options.root
 * @param {Record<string, string>} [options.mounts]
 * @param {(pathname: string, req: import('node:http').IncomingMessage) => void} [options.onRequest]
 * @param {(pathname: string, bytes: number) => void} [options.onSent] told the body's size on the wire of each file sent
 * @param {Record<string, (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void>} [options.handlers]
 * @param {(pathname: string) => Record<string, string | null>} [options.headersFor]
 * @param {string | null} [options.publicMirrorDir]
 */
export function createServer({ root, mounts = {}, onRequest = () => {}, onSent = () => {}, handlers = {}, headersFor = () => ({}), publicMirrorDir = null }) {
  const dirs = Object.entries(mounts).map(([prefix, dir]) => [prefix.replace(/\/$/, ''), resolve(dir)]);
  const rootDir = resolve(root);
  const mirror = publicMirrorDir ? publicMirror(rootDir, resolve(publicMirrorDir)) : null;
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
    if (mirror && pathname === '/models.json') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache' }).end(mirror.manifestFor(`http://${req.headers.host}`));
      return;
    }
    const mirrored = mirror?.routes.get(pathname);
    if (mirrored) {
      const size = mirrored.end === undefined ? statSync(mirrored.path).size : mirrored.end - mirrored.start + 1;
      res.writeHead(200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': size,
        'Access-Control-Allow-Origin': '*',
        'Cache-Control': 'no-cache',
      });
      createReadStream(mirrored.path, { start: mirrored.start, end: mirrored.end }).pipe(res);
      return;
    }
    const mount = dirs.find(([prefix]) => pathname.startsWith(prefix + '/'));
    const file = mount ? resolveFile(mount[1], pathname.slice(mount[0].length)) : resolveFile(rootDir, pathname);
    const headers = {
      'Content-Security-Policy': CSP,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cache-Control': 'no-cache',
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
    const type = MIME[extname(file.path).toLowerCase()] || 'application/octet-stream';
    const gzip = !mount && COMPRESSIBLE.has(extname(file.path).toLowerCase()) && /\bgzip\b/.test(req.headers['accept-encoding'] || '');
    if (gzip) {
      const body = gzippedBody(file);
      res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Encoding': 'gzip', Vary: 'Accept-Encoding', 'Content-Length': body.length });
      if (req.method === 'HEAD') return res.end();
      res.end(body, () => onSent(pathname, body.length));
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Length': file.size });
    if (req.method === 'HEAD') return res.end();
    res.on('finish', () => onSent(pathname, file.size));
    createReadStream(file.path).pipe(res);
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      root: { type: 'string', default: fileURLToPath(new URL('dist', import.meta.url)) },
      mount: { type: 'string', multiple: true, default: [] },
      'public-mirror': { type: 'string' },
    },
  });
  const mounts = {};
  for (const mount of values.mount) {
    const split = mount.indexOf('=');
    if (split < 1) throw new Error(`--mount ${mount}: expected /prefix=directory`);
    mounts[mount.slice(0, split)] = mount.slice(split + 1);
  }
  const { root, host } = values;
  const port = Number(values.port);
  const publicMirrorDir = values['public-mirror'] ?? null;
  const server = createServer({ root, mounts, publicMirrorDir });
  server.listen(port, host, () => {
    console.log(`Cutout is served at http://${host}:${port}/ (from ${root}); press Ctrl+C to stop.`);
    for (const [prefix, dir] of Object.entries(mounts)) console.log(`  ${prefix}/ -> ${dir}`);
    if (publicMirrorDir) {
      const { mirrored } = publicMirror(resolve(root), resolve(publicMirrorDir));
      console.log(
        `  models ${mirrored.join(', ') || '(none)'} come from a local copy of their public hosts (${publicMirrorDir}); the rest from the real hosts`,
      );
    }
  });
}
