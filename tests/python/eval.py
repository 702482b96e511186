"""Quality: IoU (alpha thresholded at 0.5) and MAE against ground-truth masks, for Cutout and for
BRIA's reference pipeline on the same model, side by side.

    .venv/bin/python tests/python/eval.py [--sets davis2016 sod300] [--limit N] [--model-file F]
"""

import argparse
import sys
import time

import numpy as np
from PIL import Image

from common import cutout_masks, eval_images, require_model
from reference import Reference


def scores(alpha, truth):
    """(IoU at threshold 0.5, mean absolute error in [0, 1])."""
    ours = alpha >= 128
    theirs = truth >= 128
    union = np.logical_or(ours, theirs).sum()
    iou = np.logical_and(ours, theirs).sum() / union if union else 1.0
    mae = np.abs(alpha.astype(np.float32) - truth.astype(np.float32)).mean() / 255.0
    return float(iou), float(mae)


def load_truth(path, size):
    truth = Image.open(path).convert("L")
    if truth.size != size:  # humanseg's pseudo masks are smaller than their images
        truth = truth.resize(size, Image.NEAREST)
    return np.asarray(truth)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", nargs="+", default=["davis2016", "sod300"])
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--model-file", default="isnet_quint8.onnx")
    args = parser.parse_args()
    model = require_model(args.model_file)
    reference = Reference(str(model))
    rows = []
    for name in args.sets:
        pairs = eval_images(name)
        if args.limit:
            pairs = pairs[: args.limit]
        if not pairs:
            print(f"*** {name}: no images found, skipped ***")
            continue
        started = time.time()
        ours = cutout_masks([image for image, _ in pairs], model)
        ours_time = time.time() - started
        started = time.time()
        totals = {"cutout": [], "reference": []}
        for image, mask in pairs:
            alpha = ours[image]
            truth = load_truth(mask, (alpha.shape[1], alpha.shape[0]))
            totals["cutout"].append(scores(alpha, truth))
            totals["reference"].append(scores(reference.alpha(image), truth))
        ref_time = time.time() - started
        mean = {k: np.mean(v, axis=0) for k, v in totals.items()}
        rows.append((name, len(pairs), mean["cutout"], mean["reference"], ours_time, ref_time))
        print(f"{name}: done ({len(pairs)} images)", flush=True)
    print(f"\nquality vs ground truth, model {model.name} (IoU at alpha 0.5, MAE in [0,1])")
    print(f"{'set':<26} {'n':>4} {'Cutout IoU':>11} {'ref IoU':>8} {'Cutout MAE':>11} {'ref MAE':>8}")
    for name, n, ours, ref, _, _ in rows:
        print(f"{name:<26} {n:>4} {ours[0]:>11.4f} {ref[0]:>8.4f} {ours[1]:>11.4f} {ref[1]:>8.4f}")
    for name, n, _, _, ours_time, ref_time in rows:
        print(f"{name}: Cutout {ours_time / n:.2f} s/image, reference {ref_time / n:.2f} s/image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
