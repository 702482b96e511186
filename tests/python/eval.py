"""Quality against ground-truth masks, per eval set and model, for BRIA's reference pipeline
(onnxruntime), Cutout raw (refinement off: the reference's values) and Cutout refined (the
default), side by side:

- IoU (alpha thresholded at 0.5) and MAE, in [0, 1];
- edge MAE: the MAE in a band around the true edge (1% of the image diagonal, at least 3 px);
- JPEG/PNG IoU: the IoU between the masks of a photo's JPEG and of the same pixels saved as PNG
  (decoded by another decoder: 1-level differences); 1.0 is a perfectly stable model;
- spill: the ground-truth subject composited over magenta and cut out again; how much magenta
  (min(R, B) - G beyond the photo's own, in levels) the semi-transparent pixels of the result
  near the true edge (the edge MAE's band) still show, weighted by their alpha. Lower is better.
  Semi-transparent pixels far from the edge are mask errors, which IoU and MAE count.

    .venv/bin/python tests/python/eval.py [--sets ...] [--models ...] [--limit N] [--markdown F]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from common import ROOT, TARGET, eval_images, find_model
from reference import Reference

SETS = ["davis2016", "sod300", "humanseg_removebg_pseudo"]
MODELS = ["isnet_fp16.onnx", "isnet_quint8.onnx"]
PIPELINES = ["reference", "raw", "refined"]
MAGENTA = np.array([255, 0, 255], np.float32)
EVAL_MASKS = TARGET / "release" / "examples" / "eval_masks"


def iou(a, b):
    a, b = a >= 128, b >= 128
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def mae(alpha, truth, where=None):
    error = np.abs(alpha.astype(np.float32) - truth.astype(np.float32)) / 255.0
    return float(error[where].mean() if where is not None else error.mean())


def edge_band(truth):
    """Pixels within 1% of the diagonal (at least 3 px) of the true subject's edge."""
    subject = truth >= 128
    width = max(3.0, 0.01 * float(np.hypot(*truth.shape)))
    distance = np.where(
        subject, ndimage.distance_transform_edt(subject), ndimage.distance_transform_edt(~subject)
    )
    return distance <= width


def magenta(colours):
    return np.clip(np.minimum(colours[..., 0], colours[..., 2]) - colours[..., 1], 0, None)


def spill(alpha, colours, photo, band):
    """Mean magenta beyond the photo's own in the semi-transparent pixels of `band`, weighted by
    alpha."""
    partial = (alpha > 0) & (alpha < 255) & band
    if not partial.any():
        return 0.0
    weight = alpha[partial].astype(np.float32) / 255.0
    excess = np.clip(magenta(colours[partial]) - magenta(photo[partial]), 0, None)
    return float((weight * excess).sum() / weight.sum())


def load_truth(path, size):
    truth = Image.open(path).convert("L")
    if truth.size != size:  # humanseg's pseudo masks are smaller than their images
        truth = truth.resize(size, Image.NEAREST)
    return np.asarray(truth)


def evenly(items, limit):
    if not limit or len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def cutout_outputs(model, photos, work):
    """Runs the eval_masks example over `photos`: [(raw mask, refined mask, refined RGB)]."""
    out = Path(work) / "out"
    out.mkdir()
    result = subprocess.run(
        [str(EVAL_MASKS), str(model), str(out), *map(str, photos)], capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"eval_masks failed ({result.returncode}):\n{result.stderr}")
    read = lambda n, kind, mode: np.asarray(Image.open(out / f"{n}.{kind}.png").convert(mode))
    return [
        (read(n, "raw", "L"), read(n, "refined", "L"), read(n, "cutout", "RGB").astype(np.float32))
        for n in range(len(photos))
    ]


def evaluate(model, reference, pairs):
    """Per-image scores of each pipeline, and the seconds Cutout and the reference took."""
    with tempfile.TemporaryDirectory() as work:
        photos, pngs, composites, composite_colours, truths, originals = [], [], [], [], [], []
        for n, (image, mask) in enumerate(pairs):
            rgb = np.asarray(Image.open(image).convert("RGB"))
            truth = load_truth(mask, (rgb.shape[1], rgb.shape[0]))
            png = Path(work) / f"{n}.png"
            Image.fromarray(rgb).save(png)
            a = truth.astype(np.float32)[..., None] / 255.0
            composite = Path(work) / f"{n}.magenta.png"
            colours = (a * rgb + (1 - a) * MAGENTA).round().astype(np.uint8)
            Image.fromarray(colours).save(composite)
            composite_colours.append(colours.astype(np.float32))
            photos.append(image)
            pngs.append(png)
            composites.append(composite)
            truths.append(truth)
            originals.append(rgb.astype(np.float32))
        started = time.time()
        outputs = cutout_outputs(model, photos + pngs + composites, work)
        cutout_time = time.time() - started
        count = len(pairs)
        jpeg, png, over_magenta = outputs[:count], outputs[count : 2 * count], outputs[2 * count :]
        started = time.time()
        reference_masks = [reference.alpha(p) for p in photos]
        reference_magenta = [reference.alpha(p) for p in composites]
        reference_time = time.time() - started

    rows = {p: [] for p in PIPELINES}
    for i, truth in enumerate(truths):
        band = edge_band(truth)
        (raw, refined, _), (raw_png, refined_png, _) = jpeg[i], png[i]
        magenta_raw, magenta_refined, magenta_colours = over_magenta[i]
        for name, alpha, stable, spilled in [
            ("reference", reference_masks[i], None, spill(reference_magenta[i], composite_colours[i], originals[i], band)),
            ("raw", raw, iou(raw, raw_png), spill(magenta_raw, composite_colours[i], originals[i], band)),
            ("refined", refined, iou(refined, refined_png), spill(magenta_refined, magenta_colours, originals[i], band)),
        ]:
            rows[name].append((iou(alpha, truth), mae(alpha, truth), mae(alpha, truth, band), stable, spilled))
    return rows, cutout_time / (3 * count), reference_time / (2 * count)


def summary(scores):
    columns = list(zip(*scores))
    mean = lambda values: None if values[0] is None else float(np.mean(values))
    return [mean(list(c)) for c in columns]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=SETS)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--limit", type=int, default=40, help="images per set, evenly spaced (0: all)")
    parser.add_argument("--markdown", type=Path, help="also write the table here, as Markdown")
    args = parser.parse_args()
    if not EVAL_MASKS.is_file():
        sys.exit(f"{EVAL_MASKS} is missing: run `cargo build --release --features multithread --example eval_masks -p cutout`")
    header = f"{'set':<26} {'n':>4}  {'pipeline':<9} {'IoU':>7} {'MAE':>7} {'edge MAE':>9} {'JPEG/PNG IoU':>13} {'spill':>7}"
    markdown = ["| model | set | n | pipeline | IoU | MAE | edge MAE | JPEG/PNG IoU | spill |", "|---|---|---|---|---|---|---|---|---|"]
    report = []
    for model_file in args.models:
        model = find_model(model_file)
        if model is None:
            print(f"*** SKIPPED {model_file}: not in ../shared/models or target/models ***", flush=True)
            continue
        reference = Reference(str(model))
        report.append(f"\nmodel {model_file}\n{header}")
        for name in args.sets:
            pairs = evenly(eval_images(name), args.limit)
            if not pairs:
                print(f"*** {name}: no images found, skipped ***", flush=True)
                continue
            rows, cutout_seconds, reference_seconds = evaluate(model, reference, pairs)
            print(f"{model_file} {name}: {len(pairs)} images, Cutout {cutout_seconds:.2f} s/image, reference {reference_seconds:.2f} s/image", flush=True)
            for i, pipeline in enumerate(PIPELINES):
                m_iou, m_mae, m_edge, m_stable, m_spill = summary(rows[pipeline])
                stable = "-" if m_stable is None else f"{m_stable:.4f}"
                lead = f"{name:<26} {len(pairs):>4}" if i == 0 else " " * 31
                report.append(f"{lead}  {pipeline:<9} {m_iou:>7.4f} {m_mae:>7.4f} {m_edge:>9.4f} {stable:>13} {m_spill:>7.2f}")
                markdown.append(f"| {model_file.removesuffix('.onnx')} | {name} | {len(pairs)} | {pipeline} | {m_iou:.4f} | {m_mae:.4f} | {m_edge:.4f} | {stable} | {m_spill:.2f} |")
    print("\n".join(report))
    print("\nIoU at alpha 0.5; MAE and edge MAE in [0, 1]; spill in levels (0-255). Reference and raw differ only by the JPEG decoder.")
    if args.markdown:
        args.markdown.write_text("\n".join(markdown) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
