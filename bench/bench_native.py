"""Native speed: tract (through the cutout CLI) vs onnxruntime on the same model, same threads.

Inference time only (the CLI's --timings), median of several runs after a warm-up, on the
example photo. Prints a table with the ratio tract / onnxruntime (below 1 = Cutout faster).

    .venv/bin/python bench/bench_native.py [--runs 3] [--threads 1 2] [--models F ...]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

# The BRIA reference and the test helpers live with the parity tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'python'))
from common import CLI, SHARED, find_model  # noqa: E402
from reference import Reference, load_rgb, preprocess  # noqa: E402


def tract_times(model, image, threads, runs, cli=CLI):
    with tempfile.TemporaryDirectory() as out:
        cmd = [str(cli), "--timings", "--quiet", "--threads", str(threads), "--model", str(model),
               "-o", out + "/", "-i"] + [str(image)] * (runs + 1)
        result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"cutout failed:\n{result.stdout}\n{result.stderr}")
    times = [float(t) for t in re.findall(r"inference ([0-9.]+) s", result.stderr)]
    load = float(re.search(r"loaded in ([0-9.]+) s", result.stderr).group(1))
    return times[1:], load  # the first run is the warm-up


def ort_times(model, image, threads, runs):
    started = time.time()
    reference = Reference(str(model), threads=threads)
    load = time.time() - started
    tensor = preprocess(load_rgb(image), reference.size)
    times = []
    for _ in range(runs + 1):
        started = time.time()
        reference.infer(tensor)
        times.append(time.time() - started)
    return times[1:], load


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--models", nargs="+", default=["isnet_quint8.onnx", "isnet_fp16.onnx"])
    args = parser.parse_args()
    image = SHARED / "eval" / "example_input.jpg"
    if not image.is_file():
        print("*** SKIPPED: ../shared/eval/example_input.jpg not found ***")
        return 0
    load = os.getloadavg()
    print(f"native inference, example photo, median of {args.runs} after warm-up "
          f"(load average before: {load[0]:.2f}, {os.cpu_count()} cores)")
    print(f"{'model':<20} {'threads':>7} {'tract s':>8} {'ORT s':>8} {'tract/ORT':>10} {'load tract':>11} {'load ORT':>9}")
    for file in args.models:
        model = find_model(file)
        if model is None:
            print(f"{file:<20} skipped: not found (models/fetch-isnet.sh)")
            continue
        for threads in sorted(set(args.threads)):
            ours, our_load = tract_times(model, image, threads, args.runs)
            theirs, their_load = ort_times(model, image, threads, args.runs)
            a, b = statistics.median(ours), statistics.median(theirs)
            print(f"{file:<20} {threads:>7} {a:>8.2f} {b:>8.2f} {a / b:>10.2f} {our_load:>10.2f}s {their_load:>8.2f}s",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
