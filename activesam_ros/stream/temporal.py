"""Temporal reuse on a video stream: refresh the active set, or reuse it.

The method picks the classes to decode anew on every image (its preview,
method doc section 2; or every class of a vocabulary small enough to decode
whole). On a stream, consecutive frames show mostly the same things, so one
camera's :class:`ActiveSetTracker` plans each frame as one of two kinds:

- **Refresh**: the method's full work. The engine runs its preview when the
  vocabulary has more than ``max_active`` queries and decodes what it
  selects, or decodes every query of a smaller vocabulary. In a stream that
  reuses, the refresh's preview skips fast mode's screen: refreshes are
  rare, and the screen's picks are what reuse frames would inherit (on a
  real video they cost up to 5 points of agreement with per-frame exact).
- **Reuse**: only the classes present recently are decoded, by the queries
  the last refresh decoded for them: no preview, and fewer decodes.

**Present** is read off the label image, never off presences computed at
two resolutions: a class is present on a frame when it wins at least
``present_fraction`` of the frame's pixels (any pixel, by default) and was
decoded on it (background calibration labels pixels of a class it may not
have decoded). A class stays decoded until it has been absent from the
labels for ``active_ttl`` frames in a row (a refresh forgets what it did not
decode). The decoded set of a reuse frame is thus a subset of what the last
refresh decoded: it cannot grow, and because a class is dropped only after
``active_ttl`` frames without a single pixel, it cannot collapse either.

**Refreshes** happen on a camera's first frame, every ``refresh_interval``
frames, every ``refresh_period`` seconds of the frames' stamps but never
sooner than ``refresh_min_interval`` frames after the last refresh (a model
slower than a frame per ``refresh_period`` would otherwise refresh on every
frame and never reuse), and when the set is stale:
- a scene change, on the frame itself: the frame, aligned to the last
  refresh frame by optical flow (``propagation``), still differs from it by
  more than ``scene_change_threshold`` grey levels on average: a cut, a new
  view. The image decides, before the model runs and with any weights (the
  random test model's pooled features hardly move at a cut);
- weak labels, on the next frame: the mean score of the winning class of a
  reuse frame fell by more than ``stale_score_drop`` (a fraction) below the
  last refresh frame's. Pixels of something the decoded set does not name
  are won weakly, by whichever decoded class fits least badly; both
  frames' scores are full-resolution decodes, so they compare.

So a class that enters the view is decoded at the latest on the next
refresh: within k model frames, that is k model periods of stamps, where
k = min(``refresh_interval``, max(``refresh_min_interval``,
``refresh_period`` / model period, rounded up)). With the defaults: 8
frames (0.27 s) at 30 model frames/s, 8 (0.8 s) at 10, 3 (1 s) at 3, and 3
at any slower rate (3 s at 1, 6 s at 0.5, 10 s at 0.3 model frames/s); at
once when its entry changes the scene, a frame later when it weakens the
labels.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Deque, List, Optional, Sequence, Tuple

import numpy as np

from ..engine.config import integer_error, number_error, validated
from ..engine.result import SegmentationResult

_NEVER = np.iinfo(np.int64).min // 2

REFRESH_REASONS = ("first", "interval", "period", "scene_change", "stale", "empty")
"""Why a frame refreshes; a reuse frame's reason is ``reuse``."""

PERIOD_WINDOW = 5
"""A camera's model period: medians of its last this many intervals after refresh and after reuse frames."""


@dataclass(frozen=True)
class TemporalConfig:
    """How a stream refreshes and reuses the active set.

    ``refresh_interval=1`` refreshes every frame: the paper's per-frame
    behaviour. The defaults were chosen from measurements on real video
    (``activesam bench --video``; docs/streams.md, "Measured").
    """

    refresh_interval: int = 8
    refresh_period: float = 1.0          # seconds of frame stamps; 0 = off
    # ... but never sooner than this many model frames after the last
    # refresh: a slow model (one frame per second or less) keeps reusing.
    refresh_min_interval: int = 3
    active_ttl: int = 2
    present_fraction: float = 0.0        # share of a frame's pixels a class must win; 0 = one pixel
    # Mean grey-level difference (0..255) left after aligning a frame to a
    # reference frame by optical flow above which it is a new scene: the next
    # frame refreshes, and labels are not carried into it. 0 = never.
    scene_change_threshold: float = 12.0
    stale_score_drop: float = 0.2        # relative drop of the mean winning score; 0 = off
    # Frames the model skips get its last labels carried by optical flow
    # (stream.propagation), unless one of these bounds says not to trust it.
    propagate: bool = True
    propagation_max_age: float = 2.0        # seconds from the model frame's stamp ...
    # ... or this many of the camera's model periods (stamp seconds between
    # its model frames), whichever is longer: a slow model's labels are
    # older by nature, two periods just before the next model frame is done.
    propagation_max_age_periods: float = 3.0
    propagation_max_motion: float = 0.15    # median flow, as a fraction of the image width
    # Persistent object ids (stream.identities): an instance keeps a live
    # object's id when their masks overlap by this IoU, same class; an
    # object unseen for more than object_max_unseen model frames is gone.
    object_match_iou: float = 0.2
    object_max_unseen: int = 5

    def errors(self) -> List[str]:
        """Every problem with this configuration, as readable reasons."""
        out = [
            integer_error("refresh_interval", self.refresh_interval, 1),
            number_error("refresh_period", self.refresh_period, 0, 3600),
            integer_error("refresh_min_interval", self.refresh_min_interval, 1, 1000),
            integer_error("active_ttl", self.active_ttl, 0),
            number_error("present_fraction", self.present_fraction, 0, 1),
            number_error("scene_change_threshold", self.scene_change_threshold, 0, 255),
            number_error("stale_score_drop", self.stale_score_drop, 0, 1),
            "" if isinstance(self.propagate, bool) else f"propagate must be true or false, got {self.propagate!r}",
            number_error("propagation_max_age", self.propagation_max_age, 0, 60, low_open=True),
            number_error("propagation_max_age_periods", self.propagation_max_age_periods, 0, 100),
            number_error("propagation_max_motion", self.propagation_max_motion, 0, 1, low_open=True),
            number_error("object_match_iou", self.object_match_iou, 0, 1, low_open=True),
            integer_error("object_max_unseen", self.object_max_unseen, 0, 1000),
        ]
        return [problem for problem in out if problem]

    def validate(self) -> "TemporalConfig":
        return validated(self)

    @property
    def reuses(self) -> bool:
        """False when every frame refreshes (the paper's per-frame behaviour)."""
        return self.refresh_interval > 1

    def propagation_age_limit(self, model_period: float) -> float:
        """Seconds a model frame's labels may be carried forward on a camera
        whose model frames come ``model_period`` stamp seconds apart (0: not
        known yet)."""
        return max(self.propagation_max_age, self.propagation_max_age_periods * model_period)


@dataclass(frozen=True)
class FramePlan:
    """What one frame asks of the engine.

    ``active_queries`` None lets the engine choose (a refresh: its preview,
    or every query); otherwise exactly these queries are decoded (reuse).
    ``reason`` says why: one of :data:`REFRESH_REASONS`, or ``reuse``.
    """

    refresh: bool
    active_queries: Optional[Tuple[int, ...]]
    reason: str


class ModelPeriod:
    """How far apart (stamp seconds) a camera's model frames come, when the
    model takes longest: the interval after a model frame is how long the
    model took on it (the model then takes the camera's newest frame), and a
    refresh takes longer than a reuse frame, so the intervals after each
    kind are kept apart and the longer of their medians over the last
    :data:`PERIOD_WINDOW` is the period (a median, so that one pause of the
    camera or one jump of its stamps does not move it); 0 until two model
    frames are seen. With several cameras on one device it is the device's
    time per frame times the cameras it serves."""

    def __init__(self) -> None:
        self._after: Tuple[Deque[float], Deque[float]] = (deque(maxlen=PERIOD_WINDOW), deque(maxlen=PERIOD_WINDOW))
        self._last: Optional[Tuple[float, bool]] = None

    def add(self, stamp: float, refreshed: bool) -> None:
        """A model frame of the camera, stamped ``stamp``, a refresh or not.
        A stamp that is not finite is ignored; one at or before the last
        adds no interval."""
        if not math.isfinite(stamp):
            return
        if self._last is not None and stamp > self._last[0]:
            self._after[self._last[1]].append(stamp - self._last[0])
        self._last = (stamp, bool(refreshed))

    @property
    def seconds(self) -> float:
        return max((float(np.median(kind)) for kind in self._after if kind), default=0.0)


class ActiveSetTracker:
    """One camera's temporal state for one vocabulary and engine config.

    Call ``plan(stamp)`` before a frame and ``update(plan, result, stamp)``
    after it; a frame that fails is simply not updated (it is planned
    again). The state is a few arrays of one entry per class: it does not
    grow.
    """

    def __init__(self, temporal: TemporalConfig, query_class: Sequence[int]):
        self.temporal = temporal.validate()
        self.query_class = np.asarray(query_class, dtype=np.int64)
        self.num_classes = int(self.query_class.max()) + 1 if len(self.query_class) else 0
        self.frame = 0                       # index of the next frame
        self.last_refresh: Optional[int] = None
        self.refresh_stamp = 0.0
        self.reference_score = 0.0                    # mean winning score at the last refresh
        self.stale = ""                               # why the next frame refreshes early
        self.last_present = np.full(self.num_classes, _NEVER, dtype=np.int64)
        self.refresh_queries = np.zeros(len(self.query_class), dtype=bool)  # what the last refresh decoded
        self.period = ModelPeriod()

    def plan(self, stamp: float = 0.0, scene_residual: float = 0.0) -> FramePlan:
        """The next frame's plan; ``scene_residual``: how much it differs from
        the last refresh frame after aligning them by optical flow (grey levels)."""
        reason = self._refresh_reason(stamp)
        threshold = self.temporal.scene_change_threshold
        if not reason and threshold > 0 and scene_residual > threshold:
            reason = "scene_change"
        if reason:
            return FramePlan(True, None, reason)
        classes = self._reused()
        if not classes.size:
            return FramePlan(True, None, "empty")
        queries = np.flatnonzero(np.isin(self.query_class, classes) & self.refresh_queries)
        return FramePlan(False, tuple(int(q) for q in queries), "reuse")

    def _refresh_reason(self, stamp: float) -> str:
        if self.last_refresh is None:
            return "first"
        if self.stale:
            return self.stale
        if self.frame - self.last_refresh >= self.temporal.refresh_interval:
            return "interval"
        period = self.temporal.refresh_period
        if (period > 0 and stamp - self.refresh_stamp >= period
                and self.frame - self.last_refresh >= self.temporal.refresh_min_interval):
            return "period"
        return ""

    def _reused(self) -> np.ndarray:
        age = (self.frame - 1) - self.last_present  # 0: present on the previous frame
        return np.flatnonzero(age <= self.temporal.active_ttl)

    def update(self, plan: FramePlan, result: SegmentationResult, stamp: float = 0.0) -> None:
        """Take in what the engine made of the frame ``plan`` was for."""
        floor = max(1, int(np.ceil(self.temporal.present_fraction * result.labels.size)))
        present = result.class_pixels >= floor
        decoded = np.zeros(self.num_classes, dtype=bool)
        decoded[result.active_classes] = True
        if plan.refresh:  # the method's own choice: what it did not decode is gone
            self.last_present[:] = _NEVER
            self.refresh_queries[:] = False
            self.refresh_queries[result.active_queries] = True
        self.last_present[present & decoded] = self.frame
        score = float(result.scores.mean())
        if plan.refresh:
            self.last_refresh, self.refresh_stamp = self.frame, stamp
            self.reference_score = score
            self.stale = ""
        else:
            self.stale = self._staleness(score)
        self.period.add(stamp, plan.refresh)
        self.frame += 1

    @property
    def propagation_age_limit(self) -> float:
        """Seconds the labels of the camera's last model frame may be carried forward."""
        return self.temporal.propagation_age_limit(self.period.seconds)

    def _staleness(self, score: float) -> str:
        drop = self.temporal.stale_score_drop
        if drop > 0 and self.reference_score > 0 and score < (1.0 - drop) * self.reference_score:
            return "stale"
        return ""
