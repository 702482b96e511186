#!/usr/bin/env bash
# Assembles the npm package `cutout-wasm` into www/package/ from the built site (make build):
# the package's API files, the site's worker and model cache (the same code), the manifest and
# the wasm builds. `npm pack www/package` makes the tarball.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dist="$root/www/dist"
out="$root/www/package"
[ -f "$dist/pkg-simd/cutout_wasm_bg.wasm" ] || { echo "build the site first: make build"; exit 1; }
rm -rf "$out"
mkdir -p "$out"
cp "$root"/www/npm/* "$out/"
cp "$root/www/src/worker.js" "$root/www/src/engine-client.js" "$root/www/src/protocol.js" "$root/www/src/models.js" \
  "$root/www/src/model-spec.js" "$out/"
# The wasm feature probes, vendored as in the site: a file beside the worker, so the package works
# unbundled from node_modules too (a bare import would need a bundler or an import map).
mkdir -p "$out/vendor"
cp "$dist/vendor/wasm-feature-detect.js" "$dist/vendor/wasm-feature-detect.LICENSE.txt" "$out/vendor/"
printf '// The model manifest (generated from models/manifest.json).\nexport default %s;\n' \
  "$(cat "$root/models/manifest.json")" > "$out/manifest.js"
for variant in simd relaxed threads; do
  mkdir -p "$out/pkg-$variant"
  cp "$dist/pkg-$variant/cutout_wasm.js" "$dist/pkg-$variant/cutout_wasm_bg.wasm" "$out/pkg-$variant/"
  # The threads build's pool workers (wasm-bindgen-rayon's helper script).
  [ -d "$dist/pkg-$variant/snippets" ] && cp -r "$dist/pkg-$variant/snippets" "$out/pkg-$variant/"
done
(cd "$out" && npm pack --dry-run --json 2>/dev/null | node -e '
  const [p] = JSON.parse(require("fs").readFileSync(0, "utf8"));
  console.log(`package ${p.name}@${p.version}: ${p.entryCount} files, ${p.size} bytes packed, ${p.unpackedSize} bytes unpacked`);')
