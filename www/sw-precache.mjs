#!/usr/bin/env node
// Fills in the built service worker (dist/sw.js): its version, a hash of every shell file (so each
// deployment with any change is detected as an update), and the list of files it precaches.
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
const sw = readFileSync(join(dist, 'sw.js'), 'utf8')
  .replace('__CUTOUT_VERSION__', version)
  .replace('__CUTOUT_SHELL_FILES__', JSON.stringify(['./', ...files], null, 2));
writeFileSync(join(dist, 'sw.js'), sw);
console.log(`service worker version ${version}: ${files.length + 1} shell files precached`);
