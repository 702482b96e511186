#!/usr/bin/env bash
# Lighthouse 12 (npm) on the built site served by www/serve.mjs with the IS-Net model mounted,
# desktop then phone: prints each category's score, the cumulative layout shift and any
# accessibility audit that did not pass.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
models="${CUTOUT_SHARED_DIR:-$root/../shared}/models"
[ -f "$models/isnet_quint8.onnx" ] || models="$root/target/models"
export CHROME_PATH="${CHROMIUM:-$(command -v chromium)}"
port=8793
node "$root/www/serve.mjs" --port $port --mount "/models=$models" > /dev/null &
server=$!
trap 'kill $server' EXIT
sleep 1
page="http://127.0.0.1:$port/?model=/models/isnet_quint8.onnx&sha256=7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a"
for form in desktop mobile; do
  preset=()
  [ $form = desktop ] && preset=(--preset=desktop)
  report="$root/target/lighthouse-$form.json"
  npx --yes lighthouse@12.8.2 "$page" "${preset[@]}" --only-categories=accessibility,performance,best-practices \
    --chrome-flags="--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync --no-first-run" \
    --output=json --output-path="$report" --quiet
  node -e '
    const [form, path] = process.argv.slice(1);
    const r = require(path);
    const scores = Object.entries(r.categories).map(([k, v]) => `${k} ${Math.round(v.score * 100)}`).join(", ");
    console.log(`${form}: ${scores}; CLS ${r.audits["cumulative-layout-shift"].displayValue}`);
    for (const ref of r.categories.accessibility.auditRefs) {
      const audit = r.audits[ref.id];
      if (audit.score !== null && audit.score < 1) console.log(`  accessibility: ${audit.id}: ${audit.title}`);
    }' "$form" "$report"
done
