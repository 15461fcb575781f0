"""Segmentation results built by hand (no model needed), for the tests of
what is drawn and published from a result."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from activesam_ros.engine.result import SegmentationResult
from activesam_ros.engine.vocabulary import Vocabulary

H, W = 5, 7
RNG = np.random.default_rng(3)
VOCAB = ["car, automobile", "person", "tree", "background"]


def make_result(lines: Sequence[str], labels: np.ndarray, *,
                presence: Optional[Sequence[float]] = None, active: Sequence[int] = (),
                background: Optional[int] = None) -> SegmentationResult:
    """A result as the engine would return it, built by hand (no model needed)."""
    vocabulary = Vocabulary.from_lines(lines)
    if presence is None:
        presence = np.zeros(len(vocabulary.queries))
    return SegmentationResult(
        labels=labels.astype(np.int32),
        scores=RNG.random(labels.shape, dtype=np.float32),
        vocabulary=vocabulary,
        active_queries=list(active),
        query_presence=np.asarray(presence, np.float32),
        preview_presence=None,
        preview_ran=False,
        background_index=background,
    )


def random_labels(classes: int) -> np.ndarray:
    labels = RNG.integers(0, classes, (H, W))
    labels.flat[:classes] = np.arange(classes)[: H * W]  # every class present when it fits
    return labels
