"""The README's edge picture: the same crop of a cutout composited over blue, without and with
edge refinement. The photo is scikit-image's "chelsea" (CC0, Stefan van der Walt; in the
scikit-image wheel as skimage/data/chelsea.png).

    .venv/bin/python tests/python/edge_picture.py chelsea.png MODEL.onnx docs/images/edge-refinement.png
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from common import CLI

CROP = (290, 20, 440, 200)
SCALE = 2


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    photo, model, out = sys.argv[1:]
    panels = []
    with tempfile.TemporaryDirectory() as work:
        for name, extra in [("raw", ["--no-refine"]), ("refined", [])]:
            path = Path(work) / f"{name}.png"
            cmd = [str(CLI), "-q", "-i", photo, "-o", str(path), "-m", model, "--bg", "#1e50ff", *extra]
            subprocess.run(cmd, check=True)
            panel = Image.open(path).convert("RGB").crop(CROP)
            panels.append(panel.resize((panel.width * SCALE, panel.height * SCALE), Image.NEAREST))
    width, height = panels[0].size
    picture = Image.new("RGB", (2 * width + 8, height + 28), (255, 255, 255))
    for i, (panel, label) in enumerate(zip(panels, ["--no-refine (the reference)", "refined (default)"])):
        picture.paste(panel, (i * (width + 8), 28))
        ImageDraw.Draw(picture).text((i * (width + 8) + 6, 8), label, fill=(0, 0, 0))
    picture.save(out, optimize=True)


if __name__ == "__main__":
    main()
