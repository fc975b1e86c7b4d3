"""Fine-tune (or train) a segmentation network on a Cityscapes-format folder.

    python -m flowcloud_engines.finetune --data DATA --arch deeplabv3_resnet50 --weights torchvision \\
        --run-dir runs/cityscapes --steps 40000 --batch 8 --crop 768x768 --optimizer sgd --lr 0.01

DATA holds ``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` and
``gtFine/{split}/{city}/*_gtFine_labelIds.png``; label ids map to train ids (or stay label ids
with ``--classes labels``); ignored pixels (255) do not count in the loss.

The run folder keeps ``last.pt`` (written every ``--checkpoint-every`` steps and at the end,
atomically), ``best.pt`` (best validation mIoU), ``log.jsonl`` and ``args.json``. Running the
same command again resumes from ``last.pt`` (model, optimizer, step, random state); ``--restart``
starts over. Progress is a bar with loss and learning rate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import cityscapes, metrics, models
from .export import parse_size


class Dataset:
    """Image/target pairs of one split, decoded once and kept in memory when ``cache``."""

    def __init__(self, root: Path, split: str, classes: str, resize: tuple[int, int] | None, cache: bool) -> None:
        self.samples = cityscapes.find_samples(root, split)
        self.classes = classes
        self.resize = resize
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def get(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        s = self.samples[i]
        rgb = cityscapes.load_rgb(s.image)
        target = cityscapes.target_from_label_ids(cityscapes.load_label_ids(s.label_ids), self.classes)
        if rgb.shape[:2] != target.shape:
            raise ValueError(f"{s.image}: {rgb.shape[1]}x{rgb.shape[0]} but its labels are {target.shape[1]}x{target.shape[0]}")
        if self.resize is not None:
            from PIL import Image

            rgb = np.asarray(Image.fromarray(rgb).resize(self.resize, Image.BILINEAR))
            target = np.asarray(Image.fromarray(target).resize(self.resize, Image.NEAREST))
        if self._cache is not None:
            self._cache[i] = (rgb, target)
        return rgb, target


MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def normalize(rgb: torch.Tensor) -> torch.Tensor:
    """N×H×W×3 uint8 → N×3×H×W normalised float (the manifest's ImageNet mean/std, RGB)."""
    return (rgb.permute(0, 3, 1, 2).float() / 255.0 - MEAN) / STD


def augmented_batch(data: Dataset, batch: int, crop: tuple[int, int], rng: np.random.Generator,
                    scale: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random scale, crop (padded with IGNORE where the image is smaller), horizontal flip,
    brightness/contrast jitter and mild blur or noise (the camera's H.264 softens and adds grain)."""
    cw, ch = crop
    images = np.zeros((batch, ch, cw, 3), np.uint8)
    targets = np.full((batch, ch, cw), cityscapes.IGNORE, np.uint8)
    for b in range(batch):
        rgb, target = data.get(int(rng.integers(len(data))))
        s = rng.uniform(*scale)
        if abs(s - 1.0) > 1e-3:
            from PIL import Image

            size = (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s)))
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
            target = np.asarray(Image.fromarray(target).resize(size, Image.NEAREST))
        h, w = target.shape
        y0 = int(rng.integers(max(1, h - ch + 1)))
        x0 = int(rng.integers(max(1, w - cw + 1)))
        tile_rgb = rgb[y0 : y0 + ch, x0 : x0 + cw]
        tile_t = target[y0 : y0 + ch, x0 : x0 + cw]
        if rng.random() < 0.5:
            tile_rgb, tile_t = tile_rgb[:, ::-1], tile_t[:, ::-1]
        images[b, : tile_t.shape[0], : tile_t.shape[1]] = tile_rgb
        targets[b, : tile_t.shape[0], : tile_t.shape[1]] = tile_t
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    gain = torch.from_numpy(rng.uniform(0.7, 1.3, (batch, 1, 1, 1))).float()
    bias = torch.from_numpy(rng.uniform(-20, 20, (batch, 1, 1, 1))).float()
    x = x * gain + bias
    if rng.random() < 0.5:
        x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    else:
        x = x + torch.from_numpy(rng.normal(0, 3, x.shape)).float()
    x = ((x.clamp(0, 255) / 255.0) - MEAN) / STD
    return x, torch.from_numpy(targets).long()


def class_weights(data: Dataset, num_classes: int, kind: str) -> torch.Tensor | None:
    """Loss weights per class from the training labels: ``none``, or ``inverse-sqrt`` (each
    class weighted by 1/√(pixel share), normalised to a mean of 1 over the classes present and
    capped at 10) so that thin and rare classes (poles, signs, people) are not drowned out."""
    if kind == "none":
        return None
    counts = np.zeros(num_classes, np.int64)
    for i in range(len(data)):
        _, target = data.get(i)
        counts += np.bincount(target[target != cityscapes.IGNORE].ravel(), minlength=num_classes)[:num_classes]
    present = counts > 0
    weights = np.zeros(num_classes)
    weights[present] = 1 / np.sqrt(counts[present] / counts.sum())
    weights[present] /= weights[present].mean()
    return torch.from_numpy(np.minimum(weights, 10.0)).float()


def predict(model: torch.nn.Module, rgb: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """Class map at ``out_size`` (width, height): logits upsampled bilinearly, then argmax."""
    with torch.inference_mode():
        logits = model(normalize(torch.from_numpy(np.array(rgb))[None]))
        up = F.interpolate(logits, size=(out_size[1], out_size[0]), mode="bilinear", align_corners=False)
        return up.argmax(1)[0].numpy().astype(np.uint8)


def validate(model: torch.nn.Module, data: Dataset, num_classes: int, limit: int) -> tuple[float, np.ndarray]:
    """mIoU over the classes present, predicting at the dataset's size and scoring at the labels' size."""
    model.eval()
    matrix = np.zeros((num_classes, num_classes), np.int64)
    for i in range(min(limit, len(data))):
        rgb, _ = data.get(i)
        s = data.samples[i]
        gt = cityscapes.target_from_label_ids(cityscapes.load_label_ids(s.label_ids), data.classes)
        pred = predict(model, rgb, (gt.shape[1], gt.shape[0]))
        matrix += metrics.confusion(gt, pred, num_classes)
    model.train()
    return metrics.miou_present(matrix), metrics.iou_per_class(matrix)


def save_atomically(state: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowcloud_engines.finetune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="Cityscapes-format dataset folder")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--val-split", default="val", help="validated every --val-every steps ('' for none)")
    parser.add_argument("--val-limit", type=int, default=100, help="validate on at most this many images")
    parser.add_argument("--arch", choices=models.ARCHS, default="deeplabv3_resnet50")
    parser.add_argument("--weights", type=models.Weights.parse, default=models.Weights("random", "0"),
                        help="starting weights: random:SEED (default random:0), torchvision, checkpoint:PATH")
    parser.add_argument("--classes", choices=("train", "labels"), default="train")
    parser.add_argument("--run-dir", type=Path, required=True, help="checkpoints and logs go here")
    parser.add_argument("--restart", action="store_true", help="ignore an existing last.pt and start over")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resize", type=parse_size, help="resize every image to WIDTHxHEIGHT first (e.g. the model's input size)")
    parser.add_argument("--crop", type=parse_size, default=(512, 256), help="training crop WIDTHxHEIGHT")
    parser.add_argument("--scale", type=float, nargs=2, default=(0.75, 1.25), metavar=("MIN", "MAX"),
                        help="random rescale range before cropping")
    parser.add_argument("--class-weights", choices=("none", "inverse-sqrt"), default="none",
                        help="loss weight per class: none, or 1/sqrt(pixel share) from the training labels")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    parser.add_argument("--lr", type=float, default=0.01, help="peak learning rate (poly decay, power 0.9)")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--val-every", type=int, default=1000)
    parser.add_argument("--cache", action="store_true", help="keep decoded images in memory")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    num_classes = len(cityscapes.class_table(args.classes))
    train = Dataset(args.data, args.train_split, args.classes, args.resize, args.cache)
    val = Dataset(args.data, args.val_split, args.classes, args.resize, args.cache) if args.val_split else None

    model = models.load(args.arch, num_classes, args.weights).train()
    weights = class_weights(train, num_classes, args.class_weights)
    if weights is not None:
        shown = ", ".join(f"{c.name} {w:.2f}" for c, w in zip(cityscapes.class_table(args.classes), weights) if w > 0)
        print(f"finetune: class weights: {shown}", file=sys.stderr)
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    last = args.run_dir / "last.pt"
    step, best = 0, -1.0
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    if last.exists() and not args.restart:
        state = torch.load(last, map_location="cpu", weights_only=False)
        if state["arch"] != args.arch or state["classes"] != args.classes:
            parser.error(f"{last} is a {state['arch']}/{state['classes']} run; use another --run-dir or --restart")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, best = state["step"], state["best_miou"]
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        print(f"finetune: resuming {last} at step {step}/{args.steps}", file=sys.stderr)
    (args.run_dir / "args.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=2) + "\n")

    def checkpoint(path: Path) -> None:
        save_atomically({
            "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "best_miou": best,
            "arch": args.arch, "classes": args.classes, "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }, path)

    from tqdm import tqdm

    bar = tqdm(total=args.steps, initial=step, disable=args.no_progress, unit="step", dynamic_ncols=True)
    log = (args.run_dir / "log.jsonl").open("a")
    started = time.monotonic()
    while step < args.steps:
        lr = args.lr * (1 - step / args.steps) ** 0.9
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = augmented_batch(train, args.batch, args.crop, rng, tuple(args.scale))
        logits = model(x)
        logits = F.interpolate(logits, size=y.shape[1:], mode="bilinear", align_corners=False)
        loss = F.cross_entropy(logits, y, weight=weights, ignore_index=cityscapes.IGNORE)
        if not math.isfinite(loss.item()):
            if (y != cityscapes.IGNORE).any():
                raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower --lr")
            continue  # a crop with nothing but ignored pixels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}")
        entry = {"step": step, "loss": loss.item(), "lr": lr, "elapsed_s": round(time.monotonic() - started, 1)}
        if val is not None and (step % args.val_every == 0 or step == args.steps):
            miou, _ = validate(model, val, num_classes, args.val_limit)
            entry["val_miou"] = miou
            bar.write(f"finetune: step {step}: val mIoU {miou:.4f} (classes present)")
            if miou > best:
                best = miou
                save_atomically({"model": model.state_dict(), "step": step, "val_miou": miou,
                                 "arch": args.arch, "classes": args.classes}, args.run_dir / "best.pt")
        if args.no_progress and (step % 50 == 0 or step == args.steps):
            print(f"finetune: step {step}/{args.steps} loss {loss.item():.4f} lr {lr:.2e}", file=sys.stderr)
        log.write(json.dumps(entry) + "\n")
        if step % args.checkpoint_every == 0 or step == args.steps:
            log.flush()
            checkpoint(last)
    bar.close()
    log.close()
    if val is None:
        save_atomically({"model": model.state_dict(), "step": step, "arch": args.arch, "classes": args.classes},
                        args.run_dir / "best.pt")
    print(f"finetune: done, {step} steps; best val mIoU {best:.4f}; checkpoints in {args.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
