#!/usr/bin/env bash
# Assembles the IS-Net test models from the npm package @imgly/background-removal-data@1.4.5
# (AGPL-3.0: test and benchmark fixtures only, never bundled). The package stores each model as
# 4 MiB chunks listed in dist/resources.json; this concatenates them and checks the sha256 the
# manifest pins.
#
#   models/fetch-isnet.sh            -> target/models/isnet_quint8.onnx, isnet_fp16.onnx
#   models/fetch-isnet.sh --cache    -> the CLI's model cache, so `cutout --model isnet` works
#   models/fetch-isnet.sh DIR        -> DIR/
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
case "${1:-}" in
  --cache) dest="${CUTOUT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cutout}/models" ;;
  "") dest="$root/target/models" ;;
  *) dest="$1" ;;
esac
mkdir -p "$dest"

need=()
for file in isnet_quint8.onnx isnet_fp16.onnx; do
  [ -f "$dest/$file" ] || need+=("$file")
done
if [ ${#need[@]} -eq 0 ]; then
  echo "IS-Net models already in $dest"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetching @imgly/background-removal-data@1.4.5 from npm (about 136 MB)..."
(cd "$work" && npm pack --silent @imgly/background-removal-data@1.4.5 >/dev/null)
tar xzf "$work"/imgly-background-removal-data-1.4.5.tgz -C "$work"

python3 - "$work/package/dist" "$dest" "$here/manifest.json" "${need[@]}" <<'PY'
import hashlib, json, os, sys
dist, dest, manifest_path, *files = sys.argv[1:]
resources = json.load(open(os.path.join(dist, "resources.json")))
manifest = {m["file"]: m for m in json.load(open(manifest_path))["models"]}
keys = {"isnet_quint8.onnx": "/models/small", "isnet_fp16.onnx": "/models/medium"}
for file in files:
    entry = manifest[file]
    chunks = resources[keys[file]]["chunks"]
    digest = hashlib.sha256()
    partial = os.path.join(dest, file + ".part")
    with open(partial, "wb") as out:
        for chunk in chunks:
            data = open(os.path.join(dist, chunk["hash"]), "rb").read()
            digest.update(data)
            out.write(data)
    actual = digest.hexdigest()
    if actual != entry["sha256"]:
        os.remove(partial)
        sys.exit(f"{file}: sha256 {actual}, expected {entry['sha256']}: not kept")
    os.replace(partial, os.path.join(dest, file))
    print(f"{file}: {entry['size']} bytes, sha256 verified -> {dest}")
PY
