"""Fine-tuning on a Cityscapes-format folder: it learns, checkpoints and resumes."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flowcloud_engines import cityscapes, finetune, metrics


def write_dataset(root: Path, count: int = 4) -> None:
    """Two-class toy scenes: sky (23) above road (7), a car (26), and an unlabeled strip (0)."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(count):
            labels = np.full((32, 64), 7, np.uint8)
            horizon = int(rng.integers(8, 16))
            labels[:horizon] = 23
            x = int(rng.integers(0, 40))
            labels[horizon : horizon + 8, x : x + 20] = 26
            labels[-2:] = 0
            colours = {7: (128, 64, 128), 23: (70, 130, 180), 26: (0, 0, 142), 0: (0, 0, 0)}
            rgb = np.zeros((32, 64, 3), np.uint8)
            for label_id, colour in colours.items():
                rgb[labels == label_id] = colour
            key = f"toy_{i:06d}_000019"
            for folder, suffix, image in (("leftImg8bit", "leftImg8bit", rgb), ("gtFine", "gtFine_labelIds", labels)):
                path = root / folder / split / "toy" / f"{key}_{suffix}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(path)


def run(data: Path, run_dir: Path, steps: int, *extra: str) -> None:
    args = ["--data", str(data), "--arch", "demo", "--run-dir", str(run_dir), "--steps", str(steps),
            "--batch", "4", "--crop", "64x32", "--scale", "1", "1", "--optimizer", "adamw", "--lr", "3e-3",
            "--checkpoint-every", "5", "--val-every", "1000", "--no-progress", "--cache", *extra]
    assert finetune.main(args) == 0


def test_learns_checkpoints_and_resumes(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    run(tmp_path / "data", run_dir, 10)
    first = torch.load(run_dir / "last.pt", weights_only=False)
    assert first["step"] == 10
    run(tmp_path / "data", run_dir, 60)  # resumes at 10
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, 61)), "a resumed run continues the step count"
    assert torch.load(run_dir / "last.pt", weights_only=False)["step"] == 60
    assert log[-1]["val_miou"] > 0.5, log[-1]
    assert np.mean([e["loss"] for e in log[-5:]]) < 0.5 * np.mean([e["loss"] for e in log[:5]])
    assert (run_dir / "best.pt").exists()


def test_mismatched_run_dir_is_refused(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", count=2)
    run(tmp_path / "data", tmp_path / "run", 5)
    with pytest.raises(SystemExit):
        run(tmp_path / "data", tmp_path / "run", 6, "--classes", "labels")


def test_missing_ground_truth_is_named(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", count=2)
    gt = next((tmp_path / "data" / "gtFine" / "train").rglob("*.png"))
    gt.unlink()
    with pytest.raises(FileNotFoundError, match=gt.name):
        cityscapes.find_samples(tmp_path / "data", "train")


def test_label_ids_map_to_train_ids() -> None:
    ids = np.array([0, 7, 8, 11, 17, 23, 24, 26, 33, 34, 255], np.uint8)
    assert cityscapes.LABEL_TO_TRAIN[ids].tolist() == [255, 0, 1, 2, 5, 10, 11, 13, 18, 255, 255]
    assert cityscapes.TRAIN_TO_LABEL[cityscapes.LABEL_TO_TRAIN[ids[1:9]]].tolist() == ids[1:9].tolist()


def test_confusion_metrics_by_hand() -> None:
    gt = np.array([0, 0, 1, 1, 255], np.uint8)
    pred = np.array([0, 1, 1, 1, 0], np.uint8)
    m = metrics.confusion(gt, pred, 3)
    assert m.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    iou = metrics.iou_per_class(m)
    assert iou[0] == pytest.approx(1 / 2) and iou[1] == pytest.approx(2 / 3) and np.isnan(iou[2])
    assert metrics.miou_present(m) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_inverse_sqrt_class_weights_favour_rare_classes(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", count=3)
    data = finetune.Dataset(tmp_path / "data", "train", "train", None, cache=False)
    weights = finetune.class_weights(data, 19, "inverse-sqrt")
    road, sky, car = weights[0].item(), weights[10].item(), weights[13].item()
    assert car > sky > road > 0, weights
    present = weights[weights > 0]
    assert len(present) == 3 and present.mean().item() == pytest.approx(1.0)
    assert finetune.class_weights(data, 19, "none") is None
