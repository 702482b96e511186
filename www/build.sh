#!/usr/bin/env bash
# Builds the deployable static site into www/dist: three wasm builds of the engine (SIMD,
# relaxed SIMD, and relaxed SIMD with threads; the worker picks the best the browser and page
# allow), wasm-opt'ed, plus the page, worker, styles and the model manifest. Prints each .wasm's
# raw and gzipped size.
#   www/build.sh               full build
#   www/build.sh --shell-only  refresh the page, worker and service worker, keep the wasm builds
set -euo pipefail
shell_only=false
[ "${1:-}" = --shell-only ] && shell_only=true
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
dist="$root/www/dist"
wasm_features="--enable-simd --enable-relaxed-simd --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-threads"

command -v wasm-bindgen >/dev/null || { echo "wasm-bindgen is missing: run make tools"; exit 1; }
# wasm-opt from npm's binaryen (Debian's is too old to parse relaxed SIMD) and the vendored
# libraries below, installed when package-lock.json changed (the same stamp as the Makefile's).
if [ ! "$root/www/node_modules/.installed" -nt "$root/www/package-lock.json" ]; then
  (cd "$root/www" && npm ci --no-audit --no-fund --silent && touch node_modules/.installed)
fi
wasm_opt="$root/www/node_modules/.bin/wasm-opt"

if $shell_only; then
  [ -f "$dist/pkg-simd/cutout_wasm_bg.wasm" ] || { echo "no wasm build in $dist yet: run without --shell-only"; exit 1; }
  find "$dist" -maxdepth 1 -type f -delete
  rm -rf "$dist/icons" "$dist/vendor"
else
rm -rf "$dist"
mkdir -p "$dist"
for variant in simd relaxed threads; do
  cargo=(cargo)
  extra=()
  case $variant in
    simd) flags="-C target-feature=+simd128" ;;
    relaxed) flags="-C target-feature=+simd128,+relaxed-simd" ;;
    threads)
      # Shared memory needs std rebuilt with atomics (-Zbuild-std) and a maximum size.
      flags="-C target-feature=+simd128,+relaxed-simd,+atomics,+bulk-memory,+mutable-globals"
      # Current nightlies no longer imply shared memory from +atomics: ask the linker for it,
      # and export the thread-local storage hooks wasm-bindgen's thread support calls.
      for arg in --shared-memory --import-memory --max-memory=4294967296 --export=__wasm_init_tls \
        --export=__tls_size --export=__tls_align --export=__tls_base; do
        flags="$flags -C link-arg=$arg"
      done
      # -Z build-std is unstable; RUSTC_BOOTSTRAP lets the stable compiler take it. Not nightly:
      # its codegen ran our Winograd loops slower (docs/performance.md).
      cargo=(env RUSTC_BOOTSTRAP=1 cargo)
      # The rebuilt std at opt-level 3 as the prebuilt one (not the profile's "z" for "*"); set
      # here, since natively cargo warns that these packages match nothing.
      extra=(--features threads -Z build-std=panic_abort,std)
      for crate in std core alloc dlmalloc compiler_builtins; do
        extra+=(--config "profile.wasm-release.package.$crate.opt-level=3")
      done ;;
  esac
  # One target dir per variant: different RUSTFLAGS would otherwise rebuild everything each time.
  # The wasm-release profile (Cargo.toml) optimises everything but the hot crates for size.
  RUSTFLAGS="$flags" CARGO_TARGET_DIR="$target/wasm-$variant" \
    "${cargo[@]}" build --quiet -p cutout-wasm --target wasm32-unknown-unknown --profile wasm-release "${extra[@]}"
  out="$dist/pkg-$variant"
  wasm-bindgen --target web --no-typescript --out-dir "$out" \
    "$target/wasm-$variant/wasm32-unknown-unknown/wasm-release/cutout_wasm.wasm"
  if [ "$variant" = threads ]; then
    # wasm-bindgen-rayon's pool workers load the glue with import('../../..'): a directory only
    # bundlers resolve, and a dynamic import that makes bundlers split the worker (which Vite's
    # default worker format refuses). A static import of the file works everywhere; the cycle
    # (glue -> helpers -> glue) is fine for ES modules, the glue is only used once initialised.
    helpers=("$out"/snippets/wasm-bindgen-rayon-*/src/workerHelpers.js)
    grep -q "const pkg = await import('../../..');" "${helpers[0]}" || { echo "unexpected ${helpers[0]}: update build.sh"; exit 1; }
    sed -i -e "s#const pkg = await import('../../..');#const pkg = glue;#" \
      -e "1i import * as glue from '../../../cutout_wasm.js';" "${helpers[0]}"
  fi
  # -O1: as fast in Chromium as -O3, smaller, and a quarter of the build time
  # (docs/performance.md).
  # shellcheck disable=SC2086
  "$wasm_opt" -O1 $wasm_features "$out/cutout_wasm_bg.wasm" -o "$out/cutout_wasm_bg.wasm"
done
fi

cp "$root"/www/src/*.html "$root"/www/src/*.js "$root"/www/src/*.css "$root"/www/src/*.json \
  "$root"/www/src/*.svg "$root"/www/src/*.webmanifest "$dist/"
cp -r "$root/www/src/icons" "$dist/icons"
# The model list, editable by site owners without rebuilding (the engine has its own copy too).
cp "$root/models/manifest.json" "$dist/models.json"
# Libraries served from the site itself (no third-party request at run time), with their licences:
# wasm-feature-detect (the worker's and the Node engine's wasm feature probes) and client-zip
# (the page's "Download all").
modules="$root/www/node_modules"
mkdir -p "$dist/vendor"
cp "$modules/wasm-feature-detect/dist/esm/index.js" "$dist/vendor/wasm-feature-detect.js"
cp "$modules/wasm-feature-detect/LICENSE" "$dist/vendor/wasm-feature-detect.LICENSE.txt"
cp "$modules/client-zip/index.js" "$dist/vendor/client-zip.js"
cp "$modules/client-zip/LICENSE.txt" "$dist/vendor/client-zip.LICENSE.txt"

# The service worker precaches every shell file; its version is a hash of them all.
node "$root/www/sw-precache.mjs" "$dist"

echo "built $dist"
for variant in simd relaxed threads; do
  wasm="$dist/pkg-$variant/cutout_wasm_bg.wasm"
  printf '  %-8s %s: %s bytes raw, %s bytes gzipped\n' "$variant" "pkg-$variant/cutout_wasm_bg.wasm" \
    "$(wc -c < "$wasm")" "$(gzip -9 -c "$wasm" | wc -c)"
done
