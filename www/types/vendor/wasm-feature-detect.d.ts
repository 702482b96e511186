// build.sh vendors the library's ESM build here.
export * from 'wasm-feature-detect';
