"""Confusion-matrix metrics used while training (the worker's ``flowcloud-worker eval`` is the
evaluation tool; this is the same arithmetic for a validation pass inside a training run)."""

from __future__ import annotations

import numpy as np

from .cityscapes import IGNORE


def confusion(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """num_classes × num_classes counts, rows = ground truth; IGNORE pixels are skipped."""
    keep = gt != IGNORE
    index = gt[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """IoU of each class; NaN where the class is neither in the ground truth nor predicted."""
    tp = np.diag(matrix).astype(np.float64)
    denom = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


def miou_present(matrix: np.ndarray) -> float:
    """Mean IoU over the classes present in the ground truth."""
    present = matrix.sum(1) > 0
    return float(iou_per_class(matrix)[present].mean()) if present.any() else float("nan")
