"""Parity report: do two backends (or precisions) compute the same logits on the same inputs?

    python -m flowcloud_engines.parity MODEL.onnx --reference torch:ARCH:WEIGHTS \\
        --candidate onnxruntime [--candidate torch-fp16:ARCH:WEIGHTS] [--images DIR] [--json F]

Backends:
- ``onnxruntime``: MODEL.onnx on ONNX Runtime's CPU provider (FP32);
- ``torch:ARCH:WEIGHTS`` / ``torch-fp16:ARCH:WEIGHTS``: the PyTorch network (weights as for
  ``export --weights``), in FP32 or FP16;
- ``logits:DIR``: logits another backend saved, one ``{index}.npy`` per input (e.g. from a GPU
  run), in the order the inputs are listed.

Inputs are the first ``--count`` ``*.png`` under ``--images`` resized to the manifest's input
size and normalised as the manifest says, or seeded random normalised tensors.

For each candidate: max |Δlogit|, mean |Δlogit|, argmax agreement %, and the channel-order check:
the candidate is run again on the same inputs with the R and B planes swapped; a correct
pipeline agrees with the reference far better in the manifest's order than swapped.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import cityscapes, models
from .manifest import Manifest

Backend = Callable[[np.ndarray], np.ndarray]  # N×3×H×W float32 → N×C×h×w float32


@dataclass
class Agreement:
    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement_pct: float


@dataclass
class CandidateReport:
    candidate: str
    straight: Agreement
    channels_swapped: Agreement | None  # None for saved logits, which cannot be re-run
    channel_order_ok: bool | None


def compare(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    if reference.shape != candidate.shape:
        raise ValueError(f"logit shapes differ: reference {reference.shape}, candidate {candidate.shape}")
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    agree = (reference.argmax(axis=1) == candidate.argmax(axis=1)).mean() * 100
    return Agreement(float(diff.max()), float(diff.mean()), float(agree))


def preprocess(rgb: np.ndarray, manifest: Manifest) -> np.ndarray:
    """RGB8 H×W×3 → 3×h×w float32: bilinear resize, scale to 0..1, normalise, plane order."""
    from PIL import Image

    img = Image.fromarray(rgb).resize((manifest.input_width, manifest.input_height), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(manifest.mean, np.float32)) / np.asarray(manifest.std, np.float32)
    if manifest.channel_order == "bgr":
        x = x[..., ::-1]
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def inputs(manifest: Manifest, images: Path | None, count: int, seed: int) -> np.ndarray:
    if images is None:
        rng = np.random.default_rng(seed)
        shape = (count, 3, manifest.input_height, manifest.input_width)
        return rng.standard_normal(shape).astype(np.float32)
    files = sorted(images.rglob("*.png"))[:count]
    if not files:
        raise FileNotFoundError(f"{images}: no .png files")
    return np.stack([preprocess(cityscapes.load_rgb(f), manifest) for f in files])


def make_backend(spec: str, model: Path, manifest: Manifest) -> Backend:
    kind, _, rest = spec.partition(":")
    if kind == "onnxruntime":
        import onnxruntime as ort

        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

        def run_ort(x: np.ndarray) -> np.ndarray:
            return np.concatenate([session.run(None, {manifest.input_name: x[i : i + 1]})[0] for i in range(len(x))])

        return run_ort
    if kind in ("torch", "torch-fp16"):
        import torch

        arch, _, weights = rest.partition(":")
        net = models.load(arch, len(cityscapes.class_table(manifest.classes)), models.Weights.parse(weights))
        dtype = torch.float16 if kind == "torch-fp16" else torch.float32
        net = net.to(dtype)

        def run_torch(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return np.concatenate(
                    [net(torch.from_numpy(x[i : i + 1]).to(dtype)).float().numpy() for i in range(len(x))]
                )

        return run_torch
    if kind == "logits":
        folder = Path(rest)

        def run_saved(x: np.ndarray) -> np.ndarray:
            # Saved logits cannot follow a channel swap: the order check is not made for them.
            saved = [np.load(folder / f"{i}.npy") for i in range(len(x))]
            return np.stack([s.reshape(s.shape[-3:]) for s in saved])

        return run_saved
    raise ValueError(f"backend {spec!r}: expected onnxruntime, torch:ARCH:WEIGHTS, torch-fp16:ARCH:WEIGHTS or logits:DIR")


def report(reference: Backend, candidates: dict[str, Backend], x: np.ndarray) -> list[CandidateReport]:
    ref = reference(x)
    swapped = np.ascontiguousarray(x[:, ::-1])
    out = []
    for name, backend in candidates.items():
        straight = compare(ref, backend(x))
        if name.startswith("logits:"):
            out.append(CandidateReport(name, straight, None, None))
            continue
        crossed = compare(ref, backend(swapped))
        order_ok = (straight.argmax_agreement_pct > crossed.argmax_agreement_pct
                    and straight.max_abs_diff < crossed.max_abs_diff)
        out.append(CandidateReport(name, straight, crossed, order_ok))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowcloud_engines.parity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="an .onnx file with its manifest next to it")
    parser.add_argument("--reference", required=True, help="the backend the others are compared with")
    parser.add_argument("--candidate", action="append", required=True, help="a backend to check (repeatable)")
    parser.add_argument("--images", type=Path, help="a folder of PNG images (default: random tensors)")
    parser.add_argument("--count", type=int, default=4, help="how many inputs (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--max-abs-diff", type=float, help="fail (exit 1) if any candidate's max |Δlogit| exceeds this")
    parser.add_argument("--min-agreement", type=float, help="fail (exit 1) if any candidate's argmax agreement %% is below this")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)

    manifest = Manifest.read(args.model)
    x = inputs(manifest, args.images, args.count, args.seed)
    reference = make_backend(args.reference, args.model, manifest)
    candidates = {spec: make_backend(spec, args.model, manifest) for spec in args.candidate}
    results = report(reference, candidates, x)

    print(f"parity     {args.model}: {len(x)} inputs {x.shape[2]}x{x.shape[3]}, reference {args.reference}")
    print(f"{'candidate':<40} {'max |Δ|':>10} {'mean |Δ|':>10} {'argmax %':>9} {'swapped max |Δ|':>16} {'swapped %':>10} {'order':>6}")
    failed = False
    for r in results:
        s = r.channels_swapped
        swapped = f"{s.max_abs_diff:>16.2e} {s.argmax_agreement_pct:>10.3f}" if s else f"{'-':>16} {'-':>10}"
        order = {True: "ok", False: "WRONG", None: "-"}[r.channel_order_ok]
        print(f"{r.candidate:<40} {r.straight.max_abs_diff:>10.2e} {r.straight.mean_abs_diff:>10.2e} "
              f"{r.straight.argmax_agreement_pct:>9.3f} {swapped} {order:>6}")
        failed |= r.channel_order_ok is False
        failed |= args.max_abs_diff is not None and r.straight.max_abs_diff > args.max_abs_diff
        failed |= args.min_agreement is not None and r.straight.argmax_agreement_pct < args.min_agreement
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
