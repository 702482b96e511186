/** A model: a manifest id (see `models`), a URL, or a URL pinned by sha256. In Node also {path}. */
export type ModelSpec = string | URL | { url: string; sha256?: string } | { path: string; sha256?: string };

export type ImageInput =
  Blob | File | ImageData | HTMLImageElement | HTMLCanvasElement | ImageBitmap | OffscreenCanvas | URL | string | Uint8Array | ArrayBuffer;

export interface Progress {
  /** 'download' (the model), then 'decode' | 'preprocess' | 'inference' | 'postprocess' | 'encode' | 'done'. */
  stage: string;
  /** Of `total`: stages done, plus during inference the fraction of the graph's work done. */
  loaded: number;
  total: number;
}

export interface Options {
  model?: ModelSpec;
  /** Result format: PNG cutout (default), lossless WebP cutout, JPEG (on `background`, white by default), or the grey mask as PNG. */
  output?: 'png' | 'webp' | 'jpeg' | 'mask';
  /** JPEG quality, 1-100 (default 90). */
  quality?: number;
  /** Fill the background with a colour ('#rrggbb', '#rrggbbaa', 'white', ...). */
  background?: string | null;
  /** Crop to the subject: true, or a margin in pixels. */
  crop?: boolean | number;
  /** Scale the result down so that its longer side is at most this many pixels. */
  maxSide?: number;
  /** Largest image accepted, in pixels (default 50 000 000). */
  maxPixels?: number;
  /**
   * Edge refinement (default true): the mask follows the photo's edges at full size and
   * semi-transparent pixels get the subject's colour, not the old background's. false gives the
   * reference pipeline's values.
   */
  refine?: boolean;
  /** Where manifest models are hosted (`<base>/<file>`), instead of their default URLs. */
  modelBaseUrl?: string | null;
  onProgress?: (progress: Progress) => void;
  signal?: AbortSignal;
  /** Node only: also write the result here (never over an existing file unless `overwrite`). */
  savePath?: string;
  overwrite?: boolean;
}

export interface ModelEntry {
  id: string;
  name: string;
  /** The licence in one line; show it before the download. */
  licence: string;
  licence_url?: string;
  /** Who hosts the file, in words. */
  source?: string;
  /** The official host refuses anonymous downloads: only a mirror (modelBaseUrl) serves it. */
  gated: boolean;
  /** One-file download URL, or null for a model published in parts. */
  url: string | null;
  parts_base_url?: string;
  parts?: { sha256: string; size: number }[];
  file: string;
  size: number | null;
  /** Pinned sha256 of the (assembled) file; null: trusted on first download. */
  sha256: string | null;
}

/** Removes the background; resolves to the result image. Calls queue; errors are `Error`s. */
export function removeBackground(input: ImageInput, options?: Options): Promise<Blob>;
/** The 8-bit alpha mask (255 = subject) as a grey PNG. */
export function segment(input: ImageInput, options?: Omit<Options, 'output' | 'background' | 'crop'>): Promise<Blob>;
/** Downloads (or loads from the cache) and prepares a model ahead of the first image. */
export function preload(model?: ModelSpec, options?: Pick<Options, 'onProgress' | 'signal' | 'modelBaseUrl'>): Promise<void>;
/** Deletes every cached model. */
export function clearModelCache(): Promise<boolean>;
/** Package-wide defaults. */
export function configure(options: { modelBaseUrl?: string | null }): void;
/** The built-in model manifest. */
export const models: { schema: number; default: string; models: ModelEntry[] };
