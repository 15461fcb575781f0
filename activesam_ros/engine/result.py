"""What one call of ``ActiveSAM.segment`` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .vocabulary import Vocabulary

LABEL_ENCODINGS = ("mono", "32SC1")
"""How a result's labels are written as a labels image, the default first
(the rule: ``render.labels``; the choice: the ``label_encoding`` parameter)."""


@dataclass(frozen=True)
class Instance:
    """One object the fusion kept on a frame: an object query of a decoded
    prompt whose object score passed the confidence threshold and that wins
    at least one pixel (``SegmentationResult.instance_map``)."""

    class_index: int                  # vocabulary line
    score: float                      # object score: sigmoid(logit) * presence
    box: Tuple[int, int, int, int]    # x0, y0, x1, y1 in label-image pixels, x1/y1 exclusive


@dataclass
class SegmentationResult:
    """Labels and the evidence behind them, for one image.

    ``labels[y, x]`` is the index of a vocabulary line (class). Where the
    vocabulary has a background class and calibration is on, background
    pixels carry ``background_index``.

    ``instance_map[y, x]`` names the instance of class ``labels[y, x]``
    whose mask (probability above one half) covers the pixel with the
    highest sigmoid(mask) * object score; pixels no such instance covers,
    and the background class's, are 0.
    """

    labels: np.ndarray                 # (H, W) int32 class index
    scores: np.ndarray                 # (H, W) float32 score of the winning class
    vocabulary: Vocabulary
    active_queries: List[int]          # decoded at full resolution, index order
    query_presence: np.ndarray         # (N,) full-resolution presence; 0 where not decoded
    preview_presence: Optional[np.ndarray]  # (N,) preview presence, None if no preview ran
    preview_ran: bool
    background_index: Optional[int]    # set when background calibration was applied
    timings: Dict[str, float] = field(default_factory=dict)  # seconds per stage
    preview_threshold: Optional[float] = None  # tau of the preview's quantile rule
    bucket_size: int = 0       # prompts per grounding forward that made it (at most)
    bucket_halvings: int = 0   # times it ran out of device memory and was tried with half the bucket
    instances: Tuple[Instance, ...] = ()
    # (H, W) int32: 1 + index into ``instances``, 0 = none; None when instances are off
    instance_map: Optional[np.ndarray] = None

    @property
    def active_classes(self) -> List[int]:
        """Classes with at least one decoded query, in index order."""
        query_class = self.vocabulary.query_class
        return sorted({query_class[q] for q in self.active_queries})

    @property
    def class_pixels(self) -> np.ndarray:
        """(C,) pixels each class wins in the label image (a calibrated background included)."""
        classes = len(self.vocabulary)
        return np.bincount(self.labels.ravel(), minlength=classes)[:classes]

    @property
    def class_presence(self) -> np.ndarray:
        """(C,) per class: the max full-resolution presence over its queries."""
        out = np.zeros(len(self.vocabulary), dtype=np.float32)
        np.maximum.at(out, np.asarray(self.vocabulary.query_class), self.query_presence)
        return out
