"""Temporal reuse of the active set on a video stream (pure logic, no model).

The method runs its low-resolution preview on every image to pick the
active queries (method doc section 2). On a stream, consecutive frames show
mostly the same things, so one camera's ``ActiveSetTracker`` reuses the
active set between previews:

- **Preview frames** follow the method exactly: the engine runs the preview
  and decodes the queries it selects. A preview runs on a camera's first
  frame, every ``preview_interval`` frames (1 = every frame, the paper's
  per-frame behaviour), on the frame after a scene change, and whenever the
  reused set would be empty.
- **Present**: a query is present on a preview frame when the preview
  selected it; on any other frame when its full-resolution presence (decoded
  or scanned) reaches the threshold, which is ``presence_threshold`` when set
  (> 0), otherwise tau of the last preview (the (1 - alpha) quantile of that
  preview's presences: the bar the preview itself used).
- **Reuse frames** decode, without a preview, the queries present on one of
  the last ``active_ttl`` + 1 frames since the last preview: a query found
  absent stays decoded ``active_ttl`` more frames before it is dropped (no
  flicker). At most ``max_active``, the most recently present first. Without
  the scan below, that is a subset of the last preview's selection, so a
  reuse frame never decodes more than a preview frame.
- **New classes** are found by the next preview, at most ``preview_interval``
  frames away (sooner after a scene change). Optionally (``scan_buckets_per_frame``
  S > 0, off by default) a reuse frame also scores S buckets of inactive
  queries for presence on its full-resolution features (no preview encode,
  no segmentation heads). A cursor walks the query indices round the
  vocabulary, so with I inactive queries and B = ``bucket_size``, a query
  that becomes present is found within ceil(I / (S * B)) frames while the
  active set is steady (ceil(N / (S * B)) however it changes; N queries), and
  decoded from the frame after. The scan is off by default because a
  full-resolution presence forward costs more per prompt than the
  low-resolution preview it saves (measured with ``activesam bench``).
- **Scene change**: after a frame whose pooled full-resolution features are
  further than ``scene_change_threshold`` (cosine distance) from those of the
  last preview frame, the next frame previews.

A vocabulary of at most ``max_active`` queries is decoded whole on every
frame, with no preview: there is nothing to reuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from ..engine.config import ActiveSAMConfig, ConfigError
from ..engine.result import SegmentationResult

_NEVER = np.iinfo(np.int64).min // 2


@dataclass(frozen=True)
class TemporalConfig:
    """How a stream reuses the active set between previews.

    The defaults keep the method's per-frame behaviour (a preview on every
    frame); raise ``preview_interval`` to trade preview work for reuse.
    """

    preview_interval: int = 1
    active_ttl: int = 2
    # Cosine distance of the pooled full-resolution features to the last
    # preview frame's; 0 = off. Not yet tuned on the released model.
    scene_change_threshold: float = 0.1
    scan_buckets_per_frame: int = 0
    # Full-resolution presence that counts as present; 0 = tau of the last preview.
    presence_threshold: float = 0.0

    def errors(self) -> List[str]:
        """Every problem with this configuration, as readable reasons."""
        out = []
        for name, low in (("preview_interval", 1), ("active_ttl", 0), ("scan_buckets_per_frame", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                out.append(f"{name} must be an integer >= {low}, got {value!r}")
        for name, high in (("scene_change_threshold", 2.0), ("presence_threshold", 1.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= high:
                out.append(f"{name} must be a number in [0, {high:g}], got {value!r}")
        return out

    def validate(self) -> "TemporalConfig":
        problems = self.errors()
        if problems:
            raise ConfigError("; ".join(problems))
        return self


@dataclass(frozen=True)
class FramePlan:
    """What one frame asks of the engine.

    ``active_queries`` None lets the engine choose: its preview when
    ``run_preview``, every query otherwise. ``reason`` says why, for logs:
    ``all`` (small vocabulary), ``first``, ``interval``, ``scene_change``,
    ``empty`` (previews) or ``reuse``.
    """

    run_preview: bool
    active_queries: Optional[Tuple[int, ...]]
    scan_queries: Tuple[int, ...]
    reason: str


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return 1.0 - float(a @ b / norm) if norm > 0 else 0.0


class ActiveSetTracker:
    """One camera's temporal state for one vocabulary and engine config.

    Call ``plan()`` before a frame and ``update(plan, result)`` after it; a
    frame that fails is simply not updated (its plan is planned again). The
    state is a few arrays of one entry per query: it does not grow.
    """

    def __init__(self, temporal: TemporalConfig, engine: ActiveSAMConfig, num_queries: int):
        self.temporal = temporal.validate()
        self.engine = engine
        self.num_queries = num_queries
        self.frame = 0                       # index of the next frame
        self.last_preview: Optional[int] = None
        self.tau = 0.0
        self.reference: Optional[np.ndarray] = None  # pooled features at the last preview
        self.scene_changed = False
        self.last_present = np.full(num_queries, _NEVER, dtype=np.int64)
        self.last_presence = np.zeros(num_queries, dtype=np.float32)
        self.cursor = 0                      # next query index the scan looks at

    @property
    def reuses(self) -> bool:
        """False when the vocabulary is small enough to decode whole."""
        return self.num_queries > self.engine.max_active

    def plan(self) -> FramePlan:
        if not self.reuses:
            return FramePlan(False, None, (), "all")
        reason = self._preview_reason()
        if reason:
            return FramePlan(True, None, (), reason)
        active = self._reused()
        if not active:
            return FramePlan(True, None, (), "empty")
        return FramePlan(False, tuple(active), tuple(self._scan(active)), "reuse")

    def _preview_reason(self) -> str:
        if self.last_preview is None:
            return "first"
        if self.scene_changed:
            return "scene_change"
        if self.frame - self.last_preview >= self.temporal.preview_interval:
            return "interval"
        return ""

    def _reused(self) -> List[int]:
        age = (self.frame - 1) - self.last_present  # 0: present on the previous frame
        keep = np.flatnonzero(age <= self.temporal.active_ttl)
        if len(keep) > self.engine.max_active:
            # Most recently present first, then the higher presence.
            order = np.lexsort((-self.last_presence[keep], -self.last_present[keep]))
            keep = keep[order[: self.engine.max_active]]
        return sorted(int(q) for q in keep)

    def _scan(self, active: List[int]) -> List[int]:
        """The next inactive queries from the cursor on, round the vocabulary."""
        count = self.temporal.scan_buckets_per_frame * self.engine.bucket_size
        inactive = np.ones(self.num_queries, dtype=bool)
        inactive[active] = False
        walk = np.roll(np.arange(self.num_queries), -self.cursor)
        return [int(q) for q in walk[inactive[walk]][:count]]

    @property
    def threshold(self) -> float:
        return self.temporal.presence_threshold or self.tau

    def update(self, plan: FramePlan, result: SegmentationResult) -> None:
        """Take in what the engine measured on the frame ``plan`` was for."""
        if not self.reuses:
            self.frame += 1
            return
        if result.preview_ran:
            self.tau = result.preview_threshold
            self.last_preview = self.frame
            self.reference = result.image_embedding
            self.scene_changed = False
            # The preview is authoritative: what it did not select is gone.
            self.last_present[:] = _NEVER
            present = np.asarray(result.active_queries, dtype=np.int64)
            self._mark(present, result.preview_presence[present])
        else:
            decoded = np.asarray(result.active_queries, dtype=np.int64)
            self._mark_above(decoded, result.query_presence[decoded])
            if result.scanned_queries:
                self._mark_above(np.asarray(result.scanned_queries, dtype=np.int64), result.scan_presence)
            threshold = self.temporal.scene_change_threshold
            if threshold > 0 and self.reference is not None and result.image_embedding is not None:
                self.scene_changed = cosine_distance(result.image_embedding, self.reference) > threshold
        if plan.scan_queries:
            self.cursor = (plan.scan_queries[-1] + 1) % self.num_queries
        self.frame += 1

    def _mark_above(self, queries: np.ndarray, presence: np.ndarray) -> None:
        hit = presence >= self.threshold
        self._mark(queries[hit], presence[hit])

    def _mark(self, queries: np.ndarray, presence: np.ndarray) -> None:
        self.last_present[queries] = self.frame
        self.last_presence[queries] = presence
