"""The Cityscapes label table and a reader for Cityscapes-format folders.

A dataset folder holds ``leftImg8bit/{split}/{city}/{key}_leftImg8bit.png`` and
``gtFine/{split}/{city}/{key}_gtFine_labelIds.png`` where ``key`` is ``{city}_{seq}_{frame}``.
Label ids map to the 19 train ids; everything else is ``IGNORE`` (255).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

IGNORE = 255


@dataclass(frozen=True)
class Label:
    id: int
    name: str
    train_id: int
    color: tuple[int, int, int]


# The official table (cityscapesscripts/helpers/labels.py), without the license plate (-1).
LABELS: tuple[Label, ...] = (
    Label(0, "unlabeled", IGNORE, (0, 0, 0)),
    Label(1, "ego vehicle", IGNORE, (0, 0, 0)),
    Label(2, "rectification border", IGNORE, (0, 0, 0)),
    Label(3, "out of roi", IGNORE, (0, 0, 0)),
    Label(4, "static", IGNORE, (0, 0, 0)),
    Label(5, "dynamic", IGNORE, (111, 74, 0)),
    Label(6, "ground", IGNORE, (81, 0, 81)),
    Label(7, "road", 0, (128, 64, 128)),
    Label(8, "sidewalk", 1, (244, 35, 232)),
    Label(9, "parking", IGNORE, (250, 170, 160)),
    Label(10, "rail track", IGNORE, (230, 150, 140)),
    Label(11, "building", 2, (70, 70, 70)),
    Label(12, "wall", 3, (102, 102, 156)),
    Label(13, "fence", 4, (190, 153, 153)),
    Label(14, "guard rail", IGNORE, (180, 165, 180)),
    Label(15, "bridge", IGNORE, (150, 100, 100)),
    Label(16, "tunnel", IGNORE, (150, 120, 90)),
    Label(17, "pole", 5, (153, 153, 153)),
    Label(18, "polegroup", IGNORE, (153, 153, 153)),
    Label(19, "traffic light", 6, (250, 170, 30)),
    Label(20, "traffic sign", 7, (220, 220, 0)),
    Label(21, "vegetation", 8, (107, 142, 35)),
    Label(22, "terrain", 9, (152, 251, 152)),
    Label(23, "sky", 10, (70, 130, 180)),
    Label(24, "person", 11, (220, 20, 60)),
    Label(25, "rider", 12, (255, 0, 0)),
    Label(26, "car", 13, (0, 0, 142)),
    Label(27, "truck", 14, (0, 0, 70)),
    Label(28, "bus", 15, (0, 60, 100)),
    Label(29, "caravan", IGNORE, (0, 0, 90)),
    Label(30, "trailer", IGNORE, (0, 0, 110)),
    Label(31, "train", 16, (0, 80, 100)),
    Label(32, "motorcycle", 17, (0, 0, 230)),
    Label(33, "bicycle", 18, (119, 11, 32)),
)

TRAIN_CLASSES: tuple[Label, ...] = tuple(
    sorted((label for label in LABELS if label.train_id != IGNORE), key=lambda l: l.train_id)
)
NUM_TRAIN_CLASSES = len(TRAIN_CLASSES)  # 19
NUM_LABEL_IDS = len(LABELS)  # 34

# labelIds → trainIds for every byte value (ids above 33 are ignored too).
LABEL_TO_TRAIN = np.full(256, IGNORE, dtype=np.uint8)
for _label in LABELS:
    LABEL_TO_TRAIN[_label.id] = _label.train_id
# trainIds → labelIds (255 → 0, "unlabeled").
TRAIN_TO_LABEL = np.zeros(256, dtype=np.uint8)
for _label in TRAIN_CLASSES:
    TRAIN_TO_LABEL[_label.train_id] = _label.id


def class_table(classes: str) -> tuple[Label, ...]:
    """The classes a model's logit channels stand for: ``train`` (19) or ``labels`` (34)."""
    if classes == "train":
        return TRAIN_CLASSES
    if classes == "labels":
        return LABELS
    raise ValueError(f"unknown class set {classes!r} (expected 'train' or 'labels')")


def target_from_label_ids(label_ids: np.ndarray, classes: str) -> np.ndarray:
    """The training target for a ``labelIds`` image: train ids, or the label ids themselves
    (ids above 33 become IGNORE)."""
    if classes == "train":
        return LABEL_TO_TRAIN[label_ids]
    out = label_ids.copy()
    out[out >= NUM_LABEL_IDS] = IGNORE
    return out


@dataclass(frozen=True)
class Sample:
    key: str
    image: Path
    label_ids: Path


def find_samples(root: Path, split: str) -> list[Sample]:
    """Every (image, labelIds) pair of ``split`` under a Cityscapes-format ``root``, sorted by
    key. Raises ``FileNotFoundError`` naming what is missing."""
    image_dir = root / "leftImg8bit" / split
    gt_dir = root / "gtFine" / split
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: no such folder (expected leftImg8bit/{split}/<city>/)")
    samples = []
    for image in sorted(image_dir.glob("*/*_leftImg8bit.png")):
        key = image.name[: -len("_leftImg8bit.png")]
        gt = gt_dir / image.parent.name / f"{key}_gtFine_labelIds.png"
        if not gt.is_file():
            raise FileNotFoundError(f"{gt}: ground truth for {image} is missing")
        samples.append(Sample(key, image, gt))
    if not samples:
        raise FileNotFoundError(f"{image_dir}: no *_leftImg8bit.png files")
    return samples


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def load_label_ids(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        if img.mode not in ("L", "P"):
            raise ValueError(f"{path}: a labelIds image must be 8-bit grayscale, not {img.mode}")
        return np.asarray(img)
