"""Export a segmentation network to ONNX (opset 17, one static input size) with its manifest.

    python -m flowcloud_engines.export --arch deeplabv3_resnet50 --weights random:0 \\
        --size 520x520 --out engines/build/deeplabv3-520.onnx

The graph takes ``input`` (1×3×H×W float, normalised RGB) and returns ``logits``
(1×classes×⌈H/8⌉×⌈W/8⌉): the final bilinear upsample is left to the worker, which fuses it
with the argmax. The ONNX file is checked with onnx's checker before the manifest is written.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

from . import cityscapes, models
from .manifest import Manifest

OPSET = 17


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` → (width, height)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 520x520") from None
    if not (8 <= w <= 8192 and 8 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"size {text!r}: each side must be 8..8192")
    return w, h


def export(model: torch.nn.Module, width: int, height: int, out: Path) -> None:
    """Writes ``model`` as ONNX with a static 1×3×height×width input and checks the file."""
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(1, 3, height, width)
    with warnings.catch_warnings():
        # The TorchScript-based exporter is the one that writes opset 17 directly.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model.eval(),
            (dummy,),
            str(out),
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(str(out), full_check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowcloud_engines.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=models.ARCHS, default="deeplabv3_resnet50")
    parser.add_argument("--weights", type=models.Weights.parse, default=models.Weights("random", "0"),
                        help="random:SEED (default random:0), torchvision, or checkpoint:PATH")
    parser.add_argument("--classes", choices=("train", "labels"), default="train",
                        help="19 Cityscapes train ids (default) or the 34 label ids")
    parser.add_argument("--size", type=parse_size, default=(520, 520), help="input WIDTHxHEIGHT (default 520x520)")
    parser.add_argument("--name", help="model name in the manifest (default: the file name)")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write; the manifest goes next to it")
    args = parser.parse_args(argv)

    if args.out.suffix != ".onnx":
        parser.error(f"--out {args.out}: must end in .onnx")
    num_classes = len(cityscapes.class_table(args.classes))
    model = models.load(args.arch, num_classes, args.weights)
    width, height = args.size
    export(model, width, height, args.out)
    manifest = Manifest(
        name=args.name or args.out.stem,
        input_width=width,
        input_height=height,
        classes=args.classes,
        source=f"{args.arch}, weights: {args.weights.describe()}",
        output_stride=models.output_stride(args.arch),
    )
    manifest_path = manifest.write(
        args.out, f"Manifest of {args.out.name}, written by flowcloud_engines.export (opset {OPSET})."
    )
    size_mb = args.out.stat().st_size / 1e6
    print(f"export: {args.out} ({size_mb:.1f} MB, {args.arch}, {width}x{height}, {num_classes} classes), manifest {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
