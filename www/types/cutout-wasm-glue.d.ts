// What the page's worker and the Node engine use of wasm-bindgen's glue (crates/cutout-wasm; the
// build runs wasm-bindgen with --no-typescript, so this is written by hand).
export interface Output {
  readonly mime: string;
  readonly width: number;
  readonly height: number;
  takeBytes(): Uint8Array;
  takeMaskPng(): Uint8Array;
  free(): void;
}
export type StageCallback = (stage: string) => void;
export class Engine {
  constructor(model: Uint8Array, entryJson: string);
  processRgba(pixels: Uint8Array | Uint8ClampedArray, width: number, height: number, options: object, onStage?: StageCallback): Output;
  processEncoded(bytes: Uint8Array, options: object, onStage?: StageCallback): Output;
  profile(pixels: Uint8Array, width: number, height: number): { op: string; calls: number; seconds: number }[];
  loadPhases(): unknown;
  free(): void;
}
export function probeDimensions(bytes: Uint8Array, maxPixels: number): unknown;
export function manifestJson(): string;
export function threadsSupported(): boolean;
export function initThreadPool(threads: number): Promise<void>;
export function useThreads(threads: number): number;
export function initSync(options: { module: BufferSource | WebAssembly.Module }): { memory: WebAssembly.Memory };
export default function init(options: { module_or_path: URL | string | Response }): Promise<{ memory: WebAssembly.Memory }>;
