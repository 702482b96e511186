"""Parity: Cutout's alpha vs BRIA's reference pipeline (onnxruntime) on the same model.

Prints mean and max |delta alpha| per image and overall, and fails when the overall mean exceeds
1/255 (the engine issue's bound). Images: the example photo and every DAVIS-2016 frame.
"""

import argparse
import sys
import time

import numpy as np

from common import SHARED, cutout_masks, eval_images, require_model
from reference import Reference

BOUND = 1.0  # mean |delta alpha| in 8-bit levels, i.e. 1/255


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-file", default="isnet_quint8.onnx")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    args = parser.parse_args()
    model = require_model(args.model_file)
    example = SHARED / "eval" / "example_input.jpg"
    images = ([example] if example.is_file() else []) + [img for img, _ in eval_images("davis2016")]
    if args.limit:
        images = images[: args.limit]
    if not images:
        print("*** SKIPPED: no eval images in ../shared/eval ***")
        return 0
    started = time.time()
    ours = cutout_masks(images, model)
    ours_time = time.time() - started
    reference = Reference(str(model))
    started = time.time()
    rows = []
    for image in images:
        ref = reference.alpha(image)
        delta = np.abs(ours[image].astype(np.int16) - ref.astype(np.int16))
        rows.append((image.name, delta.mean(), int(delta.max()), float((delta > 8).mean())))
    ref_time = time.time() - started
    print(f"parity vs BRIA reference pipeline (onnxruntime), model {model.name}, {len(images)} images")
    print(f"{'image':<34} {'mean|da|':>9} {'max|da|':>8} {'>8 levels':>10}")
    for name, mean, worst, share in rows:
        print(f"{name:<34} {mean:9.4f} {worst:8d} {share:10.4%}")
    overall = float(np.mean([r[1] for r in rows]))
    worst = max(r[2] for r in rows)
    print(f"{'ALL':<34} {overall:9.4f} {worst:8d}   (bound: mean <= {BOUND:.1f} level = 1/255)")
    print(f"time: cutout {ours_time:.1f} s, reference {ref_time:.1f} s")
    failed = overall > BOUND
    print(f"parity: {0 if failed else 1} passed, {1 if failed else 0} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
