"""Parity: Cutout's alpha vs BRIA's reference pipeline (onnxruntime) on the same model.

Two runs over the example photo and every DAVIS-2016 frame:
  * same pixels: each JPEG is decoded once by Pillow and saved as PNG; both pipelines read that PNG.
    This is the engine's parity (resize, normalisation, inference, post-processing) and must be
    within mean |delta alpha| <= 1/255.
  * own decoders: each pipeline decodes the JPEG itself (Cutout: zune-jpeg; reference: Pillow's
    libjpeg-turbo). The decoders differ by +-1..4 levels on ~12% of values, and the quantised
    model's DynamicQuantizeLinear layers amplify that, so this is reported with a looser
    regression bound rather than the 1/255 target.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from common import SHARED, cutout_masks, eval_images, require_model
from reference import Reference

ENGINE_BOUND = 1.0  # mean |delta alpha| in 8-bit levels, i.e. 1/255
DECODER_BOUND = 8.0  # regression bound for the own-decoder run (measured ~4-5)


def compare(images, model, reference, title):
    started = time.time()
    ours = cutout_masks(images, model, extra=["--no-refine"])  # the reference has no refinement
    ours_time = time.time() - started
    started = time.time()
    rows = []
    for image in images:
        ref = reference.alpha(image)
        delta = np.abs(ours[image].astype(np.int16) - ref.astype(np.int16))
        rows.append((Path(image).stem, float(delta.mean()), int(delta.max()), float((delta > 8).mean())))
    ref_time = time.time() - started
    print(f"\n{title}: {len(images)} images, model {model.name}")
    print(f"{'image':<30} {'mean|da|':>9} {'max|da|':>8} {'>8 levels':>10}")
    for name, mean, worst, share in rows:
        print(f"{name:<30} {mean:9.4f} {worst:8d} {share:10.4%}")
    overall = float(np.mean([r[1] for r in rows]))
    print(f"{'ALL':<30} {overall:9.4f} {max(r[2] for r in rows):8d}")
    print(f"time: cutout {ours_time:.1f} s, reference {ref_time:.1f} s", flush=True)
    return overall


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-file", default="isnet_quint8.onnx")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    parser.add_argument(
        "--decoder-images", type=int, default=0,
        help="own-decoder run on only the first N images (0 = all); the same-pixels run uses all",
    )
    args = parser.parse_args()
    model = require_model(args.model_file)
    example = SHARED / "eval" / "example_input.jpg"
    images = ([example] if example.is_file() else []) + [img for img, _ in eval_images("davis2016")]
    if args.limit:
        images = images[: args.limit]
    if not images:
        print("*** SKIPPED: no eval images in ../shared/eval ***")
        return 0
    reference = Reference(str(model))
    with tempfile.TemporaryDirectory() as tmp:
        pngs = []
        for image in images:
            png = Path(tmp) / (image.stem + ".png")
            with Image.open(image) as im:
                ImageOps.exif_transpose(im).convert("RGB").save(png)
            pngs.append(png)
        same = compare(pngs, model, reference, "parity, same decoded pixels (PNG)")
    own_images = images[: args.decoder_images] if args.decoder_images else images
    own = compare(own_images, model, reference, "parity, each pipeline decoding the JPEG itself")
    checks = [
        (f"same pixels: mean {same:.4f} <= {ENGINE_BOUND} level (1/255)", same <= ENGINE_BOUND),
        (f"own decoders: mean {own:.4f} <= {DECODER_BOUND} levels", own <= DECODER_BOUND),
    ]
    print()
    for text, ok in checks:
        print(("ok    " if ok else "FAIL  ") + text)
    failed = sum(not ok for _, ok in checks)
    print(f"parity: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
