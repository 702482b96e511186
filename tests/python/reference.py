"""BRIA's RMBG-1.4 reference pipeline, reimplemented with numpy + Pillow on onnxruntime.

BRIA's own code (utilities.py / example_inference.py in briaai/RMBG-1.4) does, with PyTorch:
    im = float32 tensor (C, H, W) of the RGB image
    im = F.interpolate(im[None], size=(1024, 1024), mode="bilinear").type(torch.uint8)
    im = normalize(im / 255.0, mean=[0.5, 0.5, 0.5], std=[1.0, 1.0, 1.0])
    result = model(im)[0]
    result = F.interpolate(result, size=(H, W), mode="bilinear")
    result = (result - result.min()) / (result.max() - result.min())
    alpha = (result * 255).astype(uint8)
PyTorch's bilinear (align_corners=False, no antialias) is reproduced exactly below in float32, so
this runs without PyTorch. The one liberty: EXIF orientation is applied, as Cutout does.
"""

import sys

import numpy as np
from PIL import Image, ImageOps


def _taps(in_len, out_len):
    """PyTorch's area_pixel_compute_source_index + linear weights, in float32."""
    scale = np.float32(in_len) / np.float32(out_len)
    dst = np.arange(out_len, dtype=np.float32)
    src = np.maximum(scale * (dst + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.minimum(src.astype(np.int64), in_len - 1)
    lam = np.clip(src - i0.astype(np.float32), np.float32(0), np.float32(1)).astype(np.float32)
    i1 = np.where(i0 < in_len - 1, i0 + 1, i0)
    return i0, i1, (np.float32(1) - lam).astype(np.float32), lam


def torch_bilinear(planes, out_h, out_w):
    """F.interpolate(x[None], size=(out_h, out_w), mode="bilinear", align_corners=False)[0]
    for a float32 array shaped (C, H, W)."""
    planes = planes.astype(np.float32, copy=False)
    _, in_h, in_w = planes.shape
    x0, x1, wx0, wx1 = _taps(in_w, out_w)
    rows = planes[:, :, x0] * wx0 + planes[:, :, x1] * wx1
    y0, y1, wy0, wy1 = _taps(in_h, out_h)
    return rows[:, y0, :] * wy0[:, None] + rows[:, y1, :] * wy1[:, None]


def load_rgb(path):
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return np.asarray(im.convert("RGB"))


def preprocess(rgb, size=(1024, 1024), mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0)):
    planes = rgb.transpose(2, 0, 1).astype(np.float32)
    resized = torch_bilinear(planes, size[0], size[1])
    as_u8 = resized.astype(np.uint8)  # truncation, like .type(torch.uint8)
    x = as_u8.astype(np.float32) / np.float32(255.0)
    mean = np.asarray(mean, dtype=np.float32)[:, None, None]
    std = np.asarray(std, dtype=np.float32)[:, None, None]
    return ((x - mean) / std)[None].astype(np.float32)


def postprocess(mask, height, width):
    resized = torch_bilinear(mask.reshape(1, *mask.shape[-2:]), height, width)[0]
    lo, hi = resized.min(), resized.max()
    if hi > lo:
        resized = (resized - lo) / (hi - lo)
    return (resized * np.float32(255)).astype(np.uint8)


class Reference:
    def __init__(self, model_path, threads=None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        shape = self.session.get_inputs()[0].shape
        self.size = (shape[2], shape[3]) if all(isinstance(d, int) for d in shape[2:]) else (1024, 1024)

    def infer(self, tensor):
        return self.session.run([self.output_name], {self.input_name: tensor})[0]

    def alpha(self, path):
        """The 8-bit alpha mask BRIA's pipeline produces for the image at `path`."""
        rgb = load_rgb(path)
        raw = self.infer(preprocess(rgb, self.size))
        return postprocess(raw, rgb.shape[0], rgb.shape[1])


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: reference.py MODEL.onnx IMAGE OUT_MASK.png")
    Image.fromarray(Reference(sys.argv[1]).alpha(sys.argv[2])).save(sys.argv[3])
