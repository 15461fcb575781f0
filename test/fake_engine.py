"""A stand-in for ``ActiveSAM`` with presences the test chooses, so the
runtime's threading and the temporal policy are tested fast and exactly."""

from __future__ import annotations

import threading
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from activesam_ros.engine import PreparedVocabulary
from activesam_ros.engine.config import ActiveSAMConfig, ConfigError
from activesam_ros.engine.result import SegmentationResult
from activesam_ros.engine.scoring import quantile_threshold, select_active
from activesam_ros.engine.vocabulary import Vocabulary, VocabularyError


def fake_result(
    vocabulary: Vocabulary,
    config: ActiveSAMConfig,
    presence: np.ndarray,
    active_queries: Optional[Sequence[int]] = None,
    shape: tuple = (4, 4),
) -> SegmentationResult:
    """What the engine returns when every query's presence (preview and full
    resolution alike) is ``presence``: the same active-set rule and fields."""
    presence = np.asarray(presence, dtype=np.float32)
    n = len(vocabulary.queries)
    preview = None
    if active_queries is not None:
        active = sorted(set(int(q) for q in active_queries))
    elif n > config.max_active:
        preview = presence
        active = select_active(torch.from_numpy(presence), config.quantile_alpha, config.max_active)
    else:
        active = list(range(n))
    decoded = np.zeros(n, dtype=np.float32)
    decoded[active] = presence[active]
    return SegmentationResult(
        labels=np.zeros(shape, dtype=np.int32),
        scores=np.zeros(shape, dtype=np.float32),
        vocabulary=vocabulary,
        active_queries=active,
        query_presence=decoded,
        preview_presence=preview,
        preview_ran=preview is not None,
        preview_threshold=None if preview is None else quantile_threshold(torch.from_numpy(presence), config.quantile_alpha),
        background_index=None,
    )


class FakeEngine:
    """The calls the runtime makes on the engine.

    ``presence(rgb, n)`` gives every query's presence for an image (default:
    the first query of each bucket present). ``hold()`` makes each
    ``segment`` wait for one ``release()``; ``started`` is released when a
    ``segment`` begins. An image whose first pixel is ``FAIL`` raises.
    """

    FAIL = 255

    def __init__(self, vocabulary, config: Optional[ActiveSAMConfig] = None,
                 presence: Optional[Callable[[np.ndarray, int], np.ndarray]] = None):
        self.config = config or ActiveSAMConfig()
        self.presence = presence or (lambda rgb, n: (np.arange(n) % 8 == 0).astype(np.float32))
        self.started = threading.Semaphore(0)
        self._gate: Optional[threading.Semaphore] = None
        self.prepare_gate: Optional[threading.Event] = None
        self.preparing = threading.Event()
        self.overlaps: List[str] = []  # swaps that happened where they must not
        self.calls = 0
        self.configs_seen: List[ActiveSAMConfig] = []
        self._prepared = self.prepare(vocabulary)

    @property
    def vocabulary(self) -> Vocabulary:
        return self._prepared.vocabulary

    def hold(self) -> None:
        self._gate = threading.Semaphore(0)

    def release(self, frames: int = 1) -> None:
        for _ in range(frames):
            self._gate.release()

    def unhold(self) -> None:
        """Let every frame through from now on (also one waiting now)."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.release()

    def prepare(self, vocabulary, config: Optional[ActiveSAMConfig] = None) -> PreparedVocabulary:
        vocab = Vocabulary.coerce(vocabulary)
        if (config or self.config).background_threshold > 0 and vocab.background_index is None:
            raise VocabularyError("needs a background class")
        self.preparing.set()
        try:
            if self.prepare_gate is not None:
                self.prepare_gate.wait()
            return PreparedVocabulary(vocab, list(vocab.queries), None)
        finally:
            self.preparing.clear()

    def set_vocabulary(self, prepared: PreparedVocabulary) -> None:
        self._prepared = prepared

    def check_config(self, config: ActiveSAMConfig) -> ActiveSAMConfig:
        if (config.device, config.dtype) != (self.config.device, self.config.dtype):
            raise ConfigError("device and dtype are fixed when the engine is created")
        if config.resolution is not None and config.resolution % 14:
            raise ConfigError("resolution must be a multiple of the patch size 14")
        return config.validate()

    def needs_prepare(self, config: ActiveSAMConfig) -> bool:
        return config.hypernym_tokens != self.config.hypernym_tokens

    def reconfigure(self, config: ActiveSAMConfig, prepared: Optional[PreparedVocabulary] = None) -> None:
        if self.preparing.is_set():
            self.overlaps.append("reconfigure")
        self.config = self.check_config(config)
        if prepared is not None:
            self._prepared = prepared

    def segment(self, image: np.ndarray, active_queries=None, screen: bool = True) -> SegmentationResult:
        prepared, config = self._prepared, self.config
        self.started.release()
        if self._gate is not None:
            self._gate.acquire()
        self.calls += 1
        self.configs_seen.append(config)
        if self._prepared is not prepared:
            self.overlaps.append("vocabulary swapped during a frame")
        if image[0, 0, 0] == self.FAIL:
            raise RuntimeError("engine failure on purpose")
        n = len(prepared.vocabulary.queries)
        return fake_result(prepared.vocabulary, config, self.presence(image, n),
                           active_queries, image.shape[:2])
