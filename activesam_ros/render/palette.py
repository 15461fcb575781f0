"""Class colours: one palette for the overlay, the colour label image and the CLI's PNGs.

The rule: class ``i`` (its vocabulary line) gets colour ``i`` of one fixed
sequence, the same for every vocabulary. The sequence is built by
farthest-point sampling in CIE L*a*b*: the candidates are vivid colours
(HSV hues in 2 degree steps, saturation 1, 0.75 or 0.5, value 1, 0.8 or 0.6,
lightness L* at least 40 so none hides in the black of unlabeled pixels or
in a dark scene), and each next colour is the candidate farthest (CIE76
colour difference) from black and from every colour before it. So neighbours
in a vocabulary differ as much as any two, and the first k classes of any
vocabulary are as far apart as the candidates allow: the smallest colour
difference within the first 10 colours is about 50, within 40 about 25
(a hash of the name, the earlier rule, gave 5 and 1). A vocabulary keeps its
colours as long as its order does; appending classes keeps the earlier
colours. Past the sequence's length (:data:`PALETTE_SIZE`) it repeats.
Unlabeled pixels (background after calibration) are black.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np

from ..engine.result import SegmentationResult

UNLABELED = (0, 0, 0)
"""The colour of pixels without a class (background after calibration)."""

MIN_LIGHTNESS = 40.0
"""CIE L* below which a candidate colour is left out: too dark on black."""

_HUE_STEP = 2
_SATURATIONS = (1.0, 0.75, 0.5)
_VALUES = (1.0, 0.8, 0.6)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB of hue in degrees, saturation and value in [0, 1]."""
    k = (h / 60.0)[:, None] + np.array([5.0, 3.0, 1.0])
    k = np.mod(k, 6.0)
    channel = v[:, None] - (v * s)[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return np.round(channel * 255.0).astype(np.uint8)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) CIE L*a*b* (D65) of (N, 3) uint8 sRGB, in float64."""
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124564, 0.2126729, 0.0193339],
                             [0.3575761, 0.7151522, 0.1191920],
                             [0.1804375, 0.0721750, 0.9503041]])
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


@lru_cache(maxsize=1)
def palette() -> np.ndarray:
    """The whole colour sequence, (PALETTE_SIZE, 3) uint8 RGB (read-only)."""
    hues = np.arange(0, 360, _HUE_STEP, dtype=np.float64)
    grid = [(hues, np.full_like(hues, s), np.full_like(hues, v)) for s in _SATURATIONS for v in _VALUES]
    rgb = _hsv_to_rgb(*(np.concatenate(part) for part in zip(*grid)))
    rgb = np.unique(rgb, axis=0)  # a fixed order, whatever the grid's
    lab = srgb_to_lab(rgb)
    keep = lab[:, 0] >= MIN_LIGHTNESS
    rgb, lab = rgb[keep], lab[keep]
    distance = np.linalg.norm(lab - srgb_to_lab(np.zeros((1, 3), np.uint8)), axis=1)
    order = []
    for _ in range(len(rgb)):
        pick = int(np.argmax(distance))
        order.append(pick)
        distance = np.minimum(distance, np.linalg.norm(lab - lab[pick], axis=1))
        distance[pick] = -1.0
    out = rgb[order]
    out.setflags(write=False)
    return out


PALETTE_SIZE = len(palette())


def class_colors(classes: int) -> np.ndarray:
    """(classes, 3) uint8 RGB: the colour of each class index (module doc)."""
    return palette()[np.arange(classes) % PALETTE_SIZE]


def colorize(labels: np.ndarray, classes: int, background_index: Optional[int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB colour of each pixel's class; background pixels :data:`UNLABELED`."""
    table = class_colors(classes)
    if background_index is not None:
        table[background_index] = UNLABELED
    return np.take(table, labels, axis=0)  # a few times faster than table[labels]


def color_labels(result: SegmentationResult) -> np.ndarray:
    """The colour label image of a result: class colours, unlabeled black."""
    return colorize(result.labels, len(result.vocabulary), result.background_index)
