"""The label image as pixels: one rule for the node, the bag and the CLI's PNGs.

Pixel = class index (the vocabulary line); uint8 while the vocabulary has at
most 254 classes, uint16 beyond. Unlabeled is the dtype's maximum, 255 or
65535: with background calibration on, every pixel of the class named
``background`` (calibrated, or won outright). One value for "nothing
recognised", whether and wherever the vocabulary has a ``background`` line,
so a consumer needs no vocabulary to find it; it is also the ignore value of
the benchmarks' ground truth. Without calibration ``background`` is an
ordinary class. (docs/node.md, "Label images".)
"""

from __future__ import annotations

import numpy as np

from ..engine.result import SegmentationResult

MONO8_MAX_CLASSES = 254
"""More classes than this need 16-bit labels: 255 is uint8's unlabeled value."""
MONO16_MAX_CLASSES = 65535


def unlabeled_value(classes: int) -> int:
    """The value of an unlabeled pixel in the labels image of ``classes`` classes."""
    return int(np.iinfo(label_dtype(classes)).max)


def label_dtype(classes: int) -> type:
    """uint8 for at most 254 classes, uint16 up to 65535; ValueError beyond."""
    if classes > MONO16_MAX_CLASSES:
        raise ValueError(f"{classes} classes do not fit a 16-bit labels image")
    return np.uint8 if classes <= MONO8_MAX_CLASSES else np.uint16


def label_array(result: SegmentationResult) -> np.ndarray:
    """The labels image's pixels: class indices, unlabeled = the dtype's maximum."""
    dtype = label_dtype(len(result.vocabulary))
    out = result.labels.astype(dtype)
    if result.background_index is not None:
        out[result.labels == result.background_index] = unlabeled_value(len(result.vocabulary))
    return out
