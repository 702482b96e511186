// Pieces both benchmark scripts (bench.mjs, ab.mjs) share.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, SHARED } from '../tests/browser/harness.mjs';

export const IMAGE = join(SHARED, 'eval/example_input.jpg');

// Each model file's pinned sha256, from the manifest the site ships.
const MANIFEST = JSON.parse(readFileSync(join(ROOT, 'models/manifest.json'), 'utf8'));
export const sha256Of = (file) => MANIFEST.models.find((m) => m.file === file)?.sha256 ?? null;

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// `--name value` from the command line, or the fallback.
export const option = (args, name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
