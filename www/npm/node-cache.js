// Where Node keeps models: the `cutout` CLI's cache ($CUTOUT_CACHE_DIR, else
// $XDG_CACHE_HOME/cutout, else ~/.cache/cutout). Shared by node.js and its engine thread.
import { homedir } from 'node:os';
import { join } from 'node:path';

export function cacheDir() {
  if (process.env.CUTOUT_CACHE_DIR) return process.env.CUTOUT_CACHE_DIR;
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'cutout');
}
