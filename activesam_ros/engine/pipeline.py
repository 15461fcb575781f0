"""ActiveSAM: training-free open-vocabulary semantic segmentation on SAM 3.

``ActiveSAM(model, vocabulary, config).segment(rgb)`` runs the method of
the method doc: Contextual Prompt Expansion, the low-resolution presence
preview that picks the active queries, one full-resolution image encode
shared by buckets of prompts, instance/semantic fusion with presence gating,
and margin-aware background calibration.

``mode="exact"`` follows the method step by step at the image's size; like
fast mode, each of its forwards computes the prompt-independent parts once
(``shared_encoding``: the first encoder layer's self-attention over the image
tokens, 34 GFLOP a prompt at 1008 px) and the heads' logits the cheaper way
(``fused_heads``), both equal to sam3's forward to float rounding.
``mode="fast"`` takes the same decisions with less work. Its preview first
screens every query at ``fast_preview_resolution`` (a third of the full
resolution, a quarter of the preview's tokens) and runs the real preview only
on the top ``fast_screen_keep`` (40 %, twice the 20 % kept): the quantile
threshold and the active set are then those of the full preview whenever the
screen ranks the truly present queries within its top 40 %. Each forward
computes its prompt-independent parts once (``shared_encoding``); queries
whose full-resolution presence is below ``fast_presence_floor`` skip the
segmentation heads (their score cannot exceed their presence); the others'
heads compute only the kept instances' masks and fuse them at mask
resolution (``fused_heads``), and only the class scores the labels need are
resized. Its agreement with exact mode is measured, not assumed.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch

from . import fused_heads
from .config import ActiveSAMConfig, ConfigError, require_background_class
from .grounding import Grounder, TextBatch, resize_logits, split_buckets
from .limits import ImageError, check_image  # noqa: F401 - ImageError is part of this module's API
from .model import resolve_device
from .prompt_context import ContextTokens, TextCache, build_context
from .result import SegmentationResult
from .scoring import class_maxima, exact_query_scores, labels_from_scores, quantile_threshold, select_active
from .stopping import StopFlag
from .vocabulary import Vocabulary, canonicalize


class NonFiniteScores(RuntimeError):
    """The model gave NaN or infinite scores (damaged weights, a numeric
    fault on the device): no labels are made from them."""


@dataclass
class PreparedVocabulary:
    """A vocabulary with everything that does not depend on the image."""

    vocabulary: Vocabulary
    canonical: List[str]               # the string encoded for each query
    context: Optional[ContextTokens]   # memory tokens, None if disabled

    @property
    def num_queries(self) -> int:
        return len(self.canonical)


@dataclass(frozen=True)
class InputSizes:
    """The input sizes a config gives on one model."""

    full: int
    preview: int
    screen: int   # fast mode's screening preview


def input_sizes(config: ActiveSAMConfig, grounder: Grounder) -> InputSizes:
    """Full, preview and fast-screen input sizes of a config on a grounder's
    model (None = derived from the model's own); ConfigError if one is invalid."""
    patch = grounder.patch
    full = config.resolution or grounder.native

    def fraction(value: Optional[int], part: float) -> int:
        return value or max(patch, int(round(full * part / patch)) * patch)

    sizes = {
        "resolution": full,
        "preview_resolution": fraction(config.preview_resolution, 2 / 3),
        "fast_preview_resolution": fraction(config.fast_preview_resolution, 1 / 3),
    }
    for name, size in sizes.items():
        if size % patch:
            raise ConfigError(f"{name} must be a multiple of the patch size {patch}, got {size}")
    return InputSizes(sizes["resolution"], sizes["preview_resolution"], sizes["fast_preview_resolution"])


@dataclass(frozen=True)
class _Frame:
    """Everything one frame reads from the engine, taken together under the
    lock: a live reconfiguration can never mix two configs in one frame."""

    prepared: PreparedVocabulary
    config: ActiveSAMConfig
    sizes: InputSizes


def _require_finite(*values: Optional[Union[torch.Tensor, np.ndarray]]) -> None:
    """Raise NonFiniteScores if any presence or score is NaN or infinite."""
    for value in values:
        if value is not None and not bool(torch.isfinite(torch.as_tensor(value)).all()):
            raise NonFiniteScores("the model gave non-finite presences or scores (damaged weights or a numeric "
                                  "fault on the device); no labels were made from them")


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: Dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


class ActiveSAM:
    """The ActiveSAM pipeline on an already built SAM 3 image model."""

    def __init__(
        self,
        model: torch.nn.Module,
        vocabulary: Union[Vocabulary, Sequence[str], str],
        config: Optional[ActiveSAMConfig] = None,
        wrap_grounder: Optional[Callable[[Grounder], Grounder]] = None,
    ):
        """``wrap_grounder`` receives the engine's :class:`Grounder` and returns
        what the engine calls instead (the benchmark times the forwards so)."""
        config = (config or ActiveSAMConfig()).validate()
        spec = resolve_device(config.device, config.dtype)
        self.device, self.dtype = spec.device, spec.dtype
        model_device = next(model.parameters()).device
        if model_device != self.device and not (model_device.type == self.device.type == "cuda" and self.device.index is None):
            model = model.to(self.device)
        grounder = Grounder(model.eval(), self.device, self.dtype)
        self.grounder = wrap_grounder(grounder) if wrap_grounder is not None else grounder
        self._check_mode(config)
        self.text = TextCache(self.grounder)
        self.stop = StopFlag()  # checked before each image encode and bucket: stopping never waits on a frame
        self._lock = threading.Lock()
        self._config, self._sizes = config, input_sizes(config, self.grounder)
        self._prepared = self.prepare(vocabulary, config)

    def check_config(self, config: ActiveSAMConfig) -> ActiveSAMConfig:
        """Raise ConfigError if ``config`` cannot replace the current one;
        changes nothing (callers validate off the worker thread)."""
        config = config.validate()
        if (config.device, config.dtype) != (self.config.device, self.config.dtype):
            raise ConfigError("device and dtype are fixed when the engine is created")
        self._check_mode(config)
        input_sizes(config, self.grounder)
        return config

    def _check_mode(self, config: ActiveSAMConfig) -> None:
        if config.mode == "fast" and not fused_heads.applies(self.grounder.model):
            raise ConfigError("mode 'fast' needs the released SAM 3 segmentation head; use mode 'exact' with this model")

    @property
    def config(self) -> ActiveSAMConfig:
        """The configuration the next frame runs with."""
        return self._config

    @property
    def resolution(self) -> int:
        return self._sizes.full

    @property
    def preview_resolution(self) -> int:
        return self._sizes.preview

    @property
    def fast_preview_resolution(self) -> int:
        return self._sizes.screen

    def _snapshot(self) -> _Frame:
        with self._lock:
            return _Frame(self._prepared, self._config, self._sizes)

    def needs_prepare(self, config: ActiveSAMConfig) -> bool:
        """Whether the prepared vocabulary depends on what ``config`` changes."""
        old = self.config
        return (config.neighbour_tokens, config.hypernym_tokens, config.background_threshold > 0) != (
            old.neighbour_tokens, old.hypernym_tokens, old.background_threshold > 0
        )

    def reconfigure(self, config: ActiveSAMConfig, prepared: Optional[PreparedVocabulary] = None) -> None:
        """Swap in new hyper-parameters between two frames (same model and
        device), all or nothing. When the context tokens depend on the
        change, pass the vocabulary prepared under ``config`` (see
        ``prepare``) or it is prepared here."""
        config = self.check_config(config)
        if prepared is None and self.needs_prepare(config):
            prepared = self.prepare(self.vocabulary, config)
        sizes = input_sizes(config, self.grounder)
        with self._lock:
            self._config, self._sizes = config, sizes
            if prepared is not None:
                self._prepared = prepared

    # -- vocabulary ---------------------------------------------------------

    @property
    def vocabulary(self) -> Vocabulary:
        return self._prepared.vocabulary

    def prepare(self, vocabulary: Union[Vocabulary, Sequence[str], str],
                config: Optional[ActiveSAMConfig] = None) -> PreparedVocabulary:
        """Validate a vocabulary and compute its text encodings and context
        tokens (under ``config``, default the current one); safe to call
        from another thread while ``segment`` runs."""
        vocab = Vocabulary.coerce(vocabulary)
        config = config or self.config
        require_background_class(config, vocab)
        canonical = [canonicalize(q) for q in vocab.queries]
        self.text.batch(canonical)  # warm the cache off the hot path
        context = build_context(self.text, canonical, config.neighbour_tokens, config.hypernym_tokens)
        return PreparedVocabulary(vocab, canonical, context)

    def set_vocabulary(self, vocabulary: Union[Vocabulary, Sequence[str], str, PreparedVocabulary]) -> None:
        """Replace the vocabulary (the model is kept; cached text is reused)."""
        prepared = vocabulary if isinstance(vocabulary, PreparedVocabulary) else self.prepare(vocabulary)
        with self._lock:
            self._prepared = prepared

    # -- the pipeline -------------------------------------------------------

    def _text(self, prepared: PreparedVocabulary, queries: Sequence[int], memory: bool) -> TextBatch:
        text = self.text.batch([prepared.canonical[q] for q in queries])
        if memory and prepared.context is not None:
            text = prepared.context.extend(text, queries)
        return text

    def preview(self, rgb: np.ndarray, frame: Optional[_Frame] = None, watch: Optional[_Stopwatch] = None,
                screen: bool = True) -> torch.Tensor:
        """Presence [N] of every query from the low-resolution preview.

        In fast mode (and ``screen``) the queries the screen drops get
        presence 0: they are below every kept one, so the quantile rule sees
        the same top values.
        """
        frame = frame or self._snapshot()
        cfg, prepared = frame.config, frame.prepared
        watch = watch or _Stopwatch()
        queries = range(prepared.num_queries)
        if screen and cfg.mode == "fast" and cfg.fast_screen_keep < 1:
            with watch("screen"):
                screen = self._presence(self.grounder.encode_image(rgb, frame.sizes.screen), frame, queries)
            keep = max(1, math.ceil(cfg.fast_screen_keep * len(screen)))
            queries = sorted(int(q) for q in torch.topk(screen, keep).indices)
        with watch("preview_encode"):
            image = self.grounder.encode_image(rgb, frame.sizes.preview)
        with watch("preview_decode"):
            presence = torch.zeros(prepared.num_queries)
            presence[list(queries)] = self._presence(image, frame, queries)
            return presence

    def _presence(self, image, frame: _Frame, queries: Sequence[int]) -> torch.Tensor:
        out = []
        for bucket in split_buckets(queries, frame.config.bucket_size):
            self.stop.check()
            g = self.grounder.ground(image, self._text(frame.prepared, bucket, memory=False), heads=False,
                                     share=True)
            out.append(g.presence_logits.float().sigmoid().cpu())
        return torch.cat(out) if out else torch.zeros(0)

    @torch.inference_mode()
    def segment(
        self,
        image: np.ndarray,
        active_queries: Optional[Sequence[int]] = None,
        screen: bool = True,
    ) -> SegmentationResult:
        """Segment one H x W x 3 uint8 RGB image.

        ``active_queries`` skips the preview and decodes exactly these queries
        (temporal reuse). ``screen=False`` runs fast mode's preview without
        its screen, so it chooses as exact mode's does (a stream's rare
        refreshes afford it).
        """
        rgb = check_image(image)
        frame = self._snapshot()  # one consistent vocabulary, config and sizes per frame
        prepared, cfg = frame.prepared, frame.config
        n = prepared.num_queries
        watch = _Stopwatch()
        start = time.perf_counter()
        preview_presence = preview_threshold = None
        if active_queries is not None:
            active = sorted({int(q) for q in active_queries if 0 <= int(q) < n}) or [0]
        elif n > cfg.max_active:
            preview_presence = self.preview(rgb, frame, watch, screen)
            preview_threshold = quantile_threshold(preview_presence, cfg.quantile_alpha)
            active = select_active(preview_presence, cfg.quantile_alpha, cfg.max_active)
        else:
            active = list(range(n))
        self.stop.check()
        with watch("encode"):
            encoded = self.grounder.encode_image(rgb, frame.sizes.full)
        height, width = rgb.shape[:2]
        query_presence = torch.zeros(n)
        slot_scores = []
        scored: List[int] = []
        for bucket in split_buckets(active, cfg.bucket_size):
            self.stop.check()
            text = self._text(prepared, bucket, memory=True)
            if cfg.mode == "exact":
                with watch("decode"):
                    g = self.grounder.ground(encoded, text, share=True)
                query_presence[bucket] = g.presence_logits.float().sigmoid().cpu()
                with watch("fusion"):
                    scores, _ = exact_query_scores(g, cfg.confidence_threshold, height, width)
                slot_scores.append(scores.cpu())
                scored.extend(bucket)
            else:
                with watch("decode"):
                    s = self.grounder.score(encoded, text, cfg.confidence_threshold, cfg.fast_presence_floor)
                query_presence[bucket] = s.presence
                if s.scored:
                    slot_scores.append(s.maps.cpu())
                    scored.extend(bucket[i] for i in s.scored)
        with watch("fusion"):
            query_class = prepared.vocabulary.query_class
            if scored:
                class_scores, classes = class_maxima(torch.cat(slot_scores), [query_class[q] for q in scored])
                if cfg.mode == "fast":
                    class_scores = resize_logits(class_scores[None], height, width)[0]
            else:
                class_scores, classes = torch.zeros(1, height, width), [0]
        with watch("calibration"):
            labels, top = labels_from_scores(
                class_scores, classes, len(prepared.vocabulary),
                prepared.vocabulary.background_index, cfg.background_threshold, cfg.mabc_exponent,
            )
        _require_finite(query_presence, top, preview_presence)
        watch.timings["total"] = time.perf_counter() - start
        return SegmentationResult(
            labels=labels.to(torch.int32).numpy(),
            scores=top.float().numpy(),
            vocabulary=prepared.vocabulary,
            active_queries=active,
            query_presence=query_presence.numpy(),
            preview_presence=None if preview_presence is None else preview_presence.numpy(),
            preview_ran=preview_presence is not None,
            preview_threshold=preview_threshold,
            background_index=prepared.vocabulary.background_index if cfg.background_threshold > 0 else None,
            timings=watch.timings,
        )
