"""`make bench-ab-native OTHER=path/to/cutout`: the CLI built here ("new") against another build of
it ("old", e.g. one built from the commit before a change), alternating old and new on each model
and thread count, so that a change smaller than this shared machine's drift still shows. Each
turn runs one warm-up and `--runs` photos in one process (the model loaded once); prints the
median inference time of each and new / old, and the peak resident memory of each (the largest
turn's, from the kernel's rusage).

    .venv/bin/python bench/ab_native.py OLD_CLI [--turns 3] [--runs 3] [--threads 1 2] [--models F ...]
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'python'))
from bench_native import tract_times  # noqa: E402
from common import CLI, SHARED, find_model  # noqa: E402


def peak_rss_mb_of(run):
    """Runs `run()` in a child process and returns (its result, the child's peak RSS in MB)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, json.dumps(run()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        result = json.loads(pipe.read())
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        sys.exit("a benchmark turn failed")
    # The grandchild (the CLI) is the largest process the child waited for.
    return result, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("old", help="the other build's cutout binary")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--models", nargs="+", default=["isnet_fp16.onnx", "isnet_quint8.onnx"])
    args = parser.parse_args()
    image = SHARED / "eval" / "example_input.jpg"
    if not image.is_file():
        print("*** SKIPPED: ../shared/eval/example_input.jpg not found ***")
        return 0
    if not os.access(args.old, os.X_OK):
        sys.exit(f"{args.old} is not an executable cutout binary")
    builds = {"old": args.old, "new": str(CLI)}
    load = os.getloadavg()
    print(f"native inference, example photo, {args.turns} alternating turns of {args.runs} photos "
          f"after a warm-up (load average before: {load[0]:.2f}, {os.cpu_count()} cores)")
    print(f"{'model':<20} {'threads':>7} {'old s':>7} {'new s':>7} {'new/old':>8} "
          f"{'old MB':>7} {'new MB':>7}")
    for file in args.models:
        model = find_model(file)
        if model is None:
            print(f"{file:<20} skipped: not found (models/fetch-isnet.sh)")
            continue
        for threads in sorted(set(args.threads)):
            times = {name: [] for name in builds}
            peaks = {name: 0.0 for name in builds}
            for _ in range(args.turns):
                for name, cli in builds.items():
                    def turn():
                        return tract_times(model, image, threads, args.runs, cli=cli)[0]
                    ran, peak = peak_rss_mb_of(turn)
                    times[name] += ran
                    peaks[name] = max(peaks[name], peak)
            old, new = statistics.median(times["old"]), statistics.median(times["new"])
            print(f"{file:<20} {threads:>7} {old:>7.2f} {new:>7.2f} {new / old:>8.3f} "
                  f"{peaks['old']:>7.0f} {peaks['new']:>7.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
