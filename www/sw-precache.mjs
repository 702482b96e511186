#!/usr/bin/env node
// Fills in the built service worker (dist/sw.js): its version, a hash of every shell file (so each
// deployment with any change is detected as an update), and the list of files it precaches: all
// but the wasm builds, of which it keeps only the one the browser uses, when it is first fetched.
//   node www/sw-precache.mjs www/dist
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const dist = process.argv[2];
if (!dist) throw new Error('usage: node www/sw-precache.mjs <dist dir>');
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name !== 'sw.js') files.push(relative(dist, path));
  }
})(dist);
const hash = createHash('sha256');
for (const file of files) hash.update(file).update(readFileSync(join(dist, file)));
const version = hash.digest('hex').slice(0, 12);
const isBuild = (file) => /^pkg-[a-z]+\/.*\.wasm$/.test(file);
const shell = files.filter((file) => !isBuild(file));
const sw = readFileSync(join(dist, 'sw.js'), 'utf8')
  .replace('__CUTOUT_VERSION__', version)
  .replace('__CUTOUT_SHELL_FILES__', JSON.stringify(['./', ...shell], null, 2));
writeFileSync(join(dist, 'sw.js'), sw);
console.log(`service worker version ${version}: ${shell.length + 1} shell files precached, ${files.length - shell.length} wasm builds kept on use`);
