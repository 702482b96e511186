// build.sh puts wasm-bindgen's glue here.
export * from '../cutout-wasm-glue.js';
export { default } from '../cutout-wasm-glue.js';
