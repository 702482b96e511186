#!/usr/bin/env bash
# Builds the deployable static site into www/dist: two wasm builds of the engine (SIMD and
# relaxed SIMD; the worker picks the best the browser validates), wasm-opt'ed, plus the page,
# worker, styles and the model manifest. Prints each .wasm's raw and gzipped size.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
dist="$root/www/dist"
wasm_features="--enable-simd --enable-relaxed-simd --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals --enable-reference-types --enable-multivalue"

command -v wasm-bindgen >/dev/null || { echo "wasm-bindgen is missing: run make tools"; exit 1; }
# wasm-opt from npm's binaryen: Debian's is too old to parse relaxed SIMD.
if [ ! -x "$root/www/node_modules/.bin/wasm-opt" ]; then
  (cd "$root/www" && npm ci --no-audit --no-fund --silent)
fi
wasm_opt="$root/www/node_modules/.bin/wasm-opt"

rm -rf "$dist"
mkdir -p "$dist"
for variant in simd relaxed; do
  flags="-C target-feature=+simd128"
  [ "$variant" = relaxed ] && flags="$flags,+relaxed-simd"
  # One target dir per variant: different RUSTFLAGS would otherwise rebuild everything each time.
  RUSTFLAGS="$flags" CARGO_TARGET_DIR="$target/wasm-$variant" \
    cargo build --quiet -p cutout-wasm --target wasm32-unknown-unknown --release
  out="$dist/pkg-$variant"
  wasm-bindgen --target web --no-typescript --out-dir "$out" \
    "$target/wasm-$variant/wasm32-unknown-unknown/release/cutout_wasm.wasm"
  # shellcheck disable=SC2086
  "$wasm_opt" -O3 $wasm_features "$out/cutout_wasm_bg.wasm" -o "$out/cutout_wasm_bg.wasm"
done

cp "$root"/www/src/*.html "$root"/www/src/*.js "$root"/www/src/*.css "$root"/www/src/*.json "$root"/www/src/*.svg "$dist/"
mkdir -p "$dist/models"
cp "$root/models/manifest.json" "$dist/models/manifest.json"

echo "built $dist"
for variant in simd relaxed; do
  wasm="$dist/pkg-$variant/cutout_wasm_bg.wasm"
  printf '  %-8s %s: %s bytes raw, %s bytes gzipped\n' "$variant" "pkg-$variant/cutout_wasm_bg.wasm" \
    "$(wc -c < "$wasm")" "$(gzip -9 -c "$wasm" | wc -c)"
done
