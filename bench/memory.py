"""Memory: peak resident memory of the native CLI and of the npm package in Node, and the
site's wasm memory in Chromium (the page's worker, its default build and threads), on the
example photo and on a 50 MP photo made from it, beside onnxruntime's resident memory on the
same model (the native peer). Prints MB and the CLI's ratio to onnxruntime; the targets (issue
18): CLI <= 1000 MB at 50 MP, wasm <= 500 MB for one 1024x1024 inference, Node and the browser
run 50 MP without running out of memory.

    .venv/bin/python bench/memory.py [--models isnet_quint8.onnx isnet_fp16.onnx] [--no-node] [--no-browser]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'python'))
from common import CLI, ROOT, SHARED, find_model  # noqa: E402
from PIL import Image  # noqa: E402

# The largest photo the default pixel limit (50 000 000) takes with the example's aspect.
BIG_SIZE = (5760, 8676)

# Runs `removeBackground` from the built package (www/package) on one photo and reports the
# process's peak RSS and the engine's wasm memory.
NODE_RUN = """
const [pkg, model, photo] = process.argv.slice(1);
const { removeBackground } = await import(pkg);
const blob = await removeBackground(photo, { model: { path: model } });
const { maxRSS } = process.resourceUsage();
console.log(JSON.stringify({ type: blob.type, size: blob.size, maxRssMb: maxRSS / 1024 }));
"""

PEER_RUN = """
import resource, sys
sys.path.insert(0, sys.argv[3])
from reference import Reference, load_rgb, preprocess
reference = Reference(sys.argv[1], threads=2)
reference.infer(preprocess(load_rgb(sys.argv[2]), reference.size))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def peak_rss_mb(cmd):
    """Runs `cmd` alone in a child and returns (its peak RSS in MB, its stdout)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(r.stderr)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
        "print(r.returncode)\n"
        "print(r.stdout)\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True)
    rss, code, *stdout = out.stdout.split("\n")
    if int(code) != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({code}):\n{out.stderr}")
    return float(rss), "\n".join(stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["isnet_quint8.onnx", "isnet_fp16.onnx"])
    parser.add_argument("--no-node", action="store_true", help="skip the npm package in Node")
    parser.add_argument("--no-browser", action="store_true", help="skip the site in Chromium")
    args = parser.parse_args()
    example = SHARED / "eval" / "example_input.jpg"
    if not example.is_file():
        print("*** SKIPPED: ../shared/eval/example_input.jpg not found ***")
        return 0
    package = ROOT / "www" / "package" / "node.js"
    site_built = (ROOT / "www" / "dist" / "worker.js").is_file()
    with tempfile.TemporaryDirectory() as work:
        big = Path(work) / "big.jpg"
        Image.open(example).convert("RGB").resize(BIG_SIZE, Image.LANCZOS).save(big, quality=92)
        photos = [("example 933x1405", example), (f"{BIG_SIZE[0]}x{BIG_SIZE[1]} (50 MP)", big)]
        print(f"peak resident memory, MB (load {os.getloadavg()[0]:.1f})")
        print(f"{'model':20} {'photo':22} {'CLI':>7} {'Node':>7} {'wasm':>7} {'onnxruntime':>12} {'CLI/ort':>8}")
        for name in args.models:
            model = find_model(name)
            if model is None:
                print(f"*** SKIPPED {name}: not found (models/fetch-isnet.sh) ***")
                continue
            peer, _ = peak_rss_mb([sys.executable, "-c", PEER_RUN, model, example, ROOT / "tests" / "python"])
            for label, photo in photos:
                cli, _ = peak_rss_mb([CLI, "--quiet", "--force", "--model", model, "-i", photo, "-o", Path(work) / "out.png"])
                node = "-"
                if not args.no_node and package.is_file():
                    env_cache = {"CUTOUT_CACHE_DIR": work}
                    out = subprocess.run(
                        ["node", "--input-type=module", "-e", NODE_RUN, package.as_uri(), str(model), str(photo)],
                        capture_output=True, text=True, env={**os.environ, **env_cache},
                    )
                    if out.returncode != 0:
                        node = "failed"
                        print(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "node failed")
                    else:
                        node = f"{json.loads(out.stdout.strip().splitlines()[-1])['maxRssMb']:.0f}"
                wasm = "-"
                if not args.no_browser and site_built:
                    out = subprocess.run(["node", ROOT / "bench" / "memory-browser.mjs", model, photo],
                                         capture_output=True, text=True)
                    if out.returncode != 0:
                        wasm = "failed"
                        print(out.stderr.strip()[-2000:] or "the browser run failed")
                    else:
                        wasm = f"{json.loads(out.stdout.strip().splitlines()[-1])['memoryMb']:.0f}"
                print(f"{name:20} {label:22} {cli:7.0f} {node:>7} {wasm:>7} {peer:12.0f} {cli / peer:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
