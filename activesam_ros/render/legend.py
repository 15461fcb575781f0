"""The overlay's legend: which colour is which class, drawn into the image.

rviz has no display for vision_msgs/LabelInfo, so a person looking at the
overlay reads the colours here. One row per class, the name in its colour
(lifted towards white) after a swatch: first the classes that hold pixels in this frame (most
pixels first, a filled swatch), then the other classes the model decoded,
then the rest of the vocabulary in index order (a hollow swatch: not in the
frame). The legend takes at most half the image's height; the rows that do
not fit end in "+N more". The rows scale with the image (1/20 of its
height, 12 to 32 pixels) on a darkened panel in the top-left corner. OpenCV's Hershey font draws ASCII only: other
characters of a name show as '?'.
"""

from __future__ import annotations

from typing import List, Tuple

import cv2
import numpy as np

from ..engine.result import SegmentationResult
from .palette import class_colors

FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_ROW, MAX_ROW = 12, 32
"""Row height in pixels: 1/20 of the image height, clamped to these."""
MAX_HEIGHT_SHARE = 0.5
"""The legend covers at most this share of the image's height."""
PANEL_SHADE = 0.35
"""The panel keeps this share of the image's brightness behind the text."""
TEXT_LIFT = 0.3
"""Names are drawn in their colour moved this far towards white: dark hues stay readable on the panel."""


def legend_entries(result: SegmentationResult) -> List[Tuple[int, bool]]:
    """(class index, holds pixels in this frame) in legend order (module doc);
    the background class of a calibrated result has no colour and no row."""
    classes = len(result.vocabulary)
    counts = result.class_pixels
    skip = {result.background_index} if result.background_index is not None else set()
    present = [int(c) for c in np.argsort(-counts, kind="stable") if counts[c] > 0 and c not in skip]
    decoded = [c for c in result.active_classes if counts[c] == 0 and c not in skip]
    seen = set(present) | set(decoded) | skip
    rest = [c for c in range(classes) if c not in seen]
    return [(c, True) for c in present] + [(c, False) for c in decoded + rest]


def _fit(text: str, width: int, scale: float, thickness: int) -> str:
    """``text``, shortened with '...' until it is at most ``width`` pixels wide."""
    if cv2.getTextSize(text, FONT, scale, thickness)[0][0] <= width:
        return text
    while text and cv2.getTextSize(text + "...", FONT, scale, thickness)[0][0] > width:
        text = text[:-1]
    return text + "..."


def draw_legend(image: np.ndarray, result: SegmentationResult) -> np.ndarray:
    """``image`` (H x W x 3 uint8 RGB, the overlay) with the legend drawn in, in place."""
    height, width = image.shape[:2]
    row = int(np.clip(round(height / 20), MIN_ROW, MAX_ROW))
    pad = max(2, row // 6)
    rows = (int(height * MAX_HEIGHT_SHARE) - 2 * pad) // row
    entries = legend_entries(result)
    if rows < 1 or not entries or width < 4 * row:
        return image
    if len(entries) > rows:
        more = len(entries) - rows + 1
        entries = entries[: rows - 1]
    else:
        more = 0
    scale = 0.55 * row / cv2.getTextSize("A", FONT, 1.0, 1)[0][1]
    thickness = 1 + row // 28
    text_h = cv2.getTextSize("A", FONT, scale, thickness)[0][1]
    swatch = row - 2 * pad
    text_x = 4 * pad + swatch  # from the image's left edge; the panel starts at x = pad
    names = result.vocabulary.names
    colors = class_colors(len(names))
    texts = [_fit(names[c], width - text_x - 2 * pad, scale, thickness) for c, _ in entries]
    if more:
        texts.append(f"+{more} more")
    text_w = max(cv2.getTextSize(t, FONT, scale, thickness)[0][0] for t in texts)
    panel = image[pad:pad + len(texts) * row + pad, pad:min(width, text_x + text_w + 2 * pad)]
    panel[:] = (panel * PANEL_SHADE).astype(np.uint8)
    for i, text in enumerate(texts):
        top = pad + pad // 2 + i * row
        text_color = (220, 220, 220)  # "+N more"
        if i < len(entries):
            index, present = entries[i]
            color = colors[index].astype(float)
            corner = (2 * pad, top + pad)
            cv2.rectangle(image, corner, (corner[0] + swatch - 1, corner[1] + swatch - 1),
                          tuple(int(v) for v in color), cv2.FILLED if present else 1)
            text_color = tuple(int(round(v + (255 - v) * TEXT_LIFT)) for v in color)
        cv2.putText(image, text, (text_x, top + (row + text_h) // 2), FONT, scale, text_color, thickness,
                    cv2.LINE_AA)
    return image
