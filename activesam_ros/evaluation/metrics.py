"""Semantic segmentation metrics, as mmsegmentation's IoUMetric defines them.

One confusion matrix is accumulated over the whole split (not per image):
per-class IoU = intersection / union, mIoU = mean over the classes whose
union is not empty (a class absent from both ground truth and prediction is
NaN and left out), aAcc = correctly labelled pixels / labelled pixels.
Pixels whose ground truth is the ignore index take no part.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255


def reduce_zero_label(label: np.ndarray) -> np.ndarray:
    """Ground truth id 0 ("other") becomes ignored and every other id moves
    down by one, so that id 1 is class 0 of the vocabulary."""
    label = label.astype(np.int64)
    out = label - 1
    out[label == 0] = IGNORE_INDEX
    out[label == IGNORE_INDEX] = IGNORE_INDEX
    return out


class ConfusionMatrix:
    """``matrix[g, p]`` counts pixels of ground-truth class g predicted as p."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, prediction: np.ndarray, label: np.ndarray) -> None:
        """Add one image: ``prediction`` holds class indices, ``label`` class
        indices or the ignore index (already reduced if the dataset asks)."""
        if prediction.shape != label.shape:
            raise ValueError(f"prediction {prediction.shape} and label {label.shape} differ in shape")
        keep = label != self.ignore_index
        gt = label[keep].astype(np.int64)
        pred = prediction[keep].astype(np.int64)
        n = self.num_classes
        for name, values in (("label", gt), ("prediction", pred)):
            bad = values[(values < 0) | (values >= n)]
            if bad.size:
                raise ValueError(f"{name} holds class id {int(bad[0])}, outside 0..{n - 1} (and not ignored)")
        self.matrix += np.bincount(gt * n + pred, minlength=n * n).reshape(n, n)

    @property
    def intersection(self) -> np.ndarray:
        return np.diag(self.matrix)

    @property
    def union(self) -> np.ndarray:
        return self.matrix.sum(0) + self.matrix.sum(1) - self.intersection

    def iou(self) -> np.ndarray:
        """(C,) IoU per class; NaN where the class is in neither GT nor prediction."""
        union = self.union
        return np.where(union > 0, self.intersection / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        """Mean IoU over the classes that occur; NaN before any labelled pixel."""
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def aacc(self) -> float:
        """Overall pixel accuracy over labelled pixels."""
        total = self.matrix.sum()
        return float(self.intersection.sum() / total) if total else float("nan")
