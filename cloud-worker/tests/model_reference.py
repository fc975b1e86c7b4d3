"""An independent computation of what `flowcloud-worker eval --model` predicts, for tests/eval.rs.

For every IMAGES/**/*_leftImg8bit.png: resize to the manifest's input size (bilinear,
align_corners=False, as torch.nn.functional.interpolate), normalise with the manifest's mean and
std, order the planes as it says, run the model with ONNX Runtime's Python API, upsample the
logits to the image size (bilinear, align_corners=False), take the argmax and turn it into
Cityscapes label ids with cityscapesScripts' own label table. Everything is in float64 numpy
except the model itself, so a pixel can differ from the Rust result only where two logits are
within rounding of each other.

Compares each class map with PREDICTIONS/{city}/{key}_labelIds.png and prints, as JSON, the
number of images and pixels and how many pixels agree.

Usage: python model_reference.py MODEL.onnx IMAGES_DIR PREDICTIONS_DIR
"""

import glob
import json
import os
import sys
import tomllib

import numpy as np
import onnxruntime
from PIL import Image
from cityscapesscripts.helpers.labels import labels


def taps(n_in, n_out):
    s = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    i0 = np.floor(s).astype(np.int64)
    return i0, np.minimum(i0 + 1, n_in - 1), s - i0


def resize(planes, out_h, out_w):
    """Bilinear resize of C×H×W planes, align_corners=False."""
    _, h, w = planes.shape
    y0, y1, fy = taps(h, out_h)
    x0, x1, fx = taps(w, out_w)
    rows = planes[:, y0, :] * (1 - fy)[None, :, None] + planes[:, y1, :] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx


def main():
    model, images_dir, predictions_dir = sys.argv[1:4]
    with open(os.path.splitext(model)[0] + ".toml", "rb") as f:
        manifest = tomllib.load(f)
    assert manifest["classes"] == "cityscapes-train", manifest["classes"]
    train_to_label = np.zeros(256, dtype=np.uint8)
    for label in labels:
        if 0 <= label.trainId < 255:
            train_to_label[label.trainId] = label.id
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    mean = np.array(manifest["mean"], dtype=np.float64)[:, None, None]
    std = np.array(manifest["std"], dtype=np.float64)[:, None, None]
    order = [0, 1, 2] if manifest["channel_order"] == "rgb" else [2, 1, 0]

    images = sorted(glob.glob(os.path.join(images_dir, "**", "*_leftImg8bit.png"), recursive=True))
    pixels = agreeing = 0
    for path in images:
        key = os.path.basename(path)[: -len("_leftImg8bit.png")]
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
        h, w, _ = rgb.shape
        planes = resize(rgb.transpose(2, 0, 1), manifest["input_height"], manifest["input_width"])
        x = ((planes / 255.0 - mean) / std)[order][None].astype(np.float32)
        (logits,) = session.run([manifest["output_name"]], {manifest["input_name"]: x})
        classes = resize(logits[0].astype(np.float64), h, w).argmax(axis=0)
        expected = train_to_label[classes]
        city = key.split("_")[0]
        got = np.asarray(Image.open(os.path.join(predictions_dir, city, key + "_labelIds.png")))
        pixels += expected.size
        agreeing += int((got == expected).sum())
    json.dump({"images": len(images), "pixels": pixels, "agreeing": agreeing}, sys.stdout)


if __name__ == "__main__":
    main()
