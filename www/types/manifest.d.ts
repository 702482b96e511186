// package.sh generates manifest.js (the model manifest, models/manifest.json) into the package.
import type { ModelEntry } from '../npm/index.js';
declare const manifest: { schema: number; default: string; models: ModelEntry[] };
export default manifest;
