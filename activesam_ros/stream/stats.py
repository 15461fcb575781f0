"""Counters and recent rates of a frame stream, per camera and in total.

Counts are totals since the start. Rates (input, model, output) are over
the last :data:`RATE_WINDOW` seconds of the clock, so they fall to zero
when frames stop coming: a camera that stopped never shows the rate it had.
Latency, label age, refresh rate and the active-class count are over the
last ``window`` events. A long run keeps a fixed amount of state per camera.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, NamedTuple, Optional, Tuple

RATE_WINDOW = 10.0
"""Seconds the input, model and output rates are counted over."""
RATE_BINS = 20
"""Bins of that window (a rate counts whole bins: it spans 9.5 to 10 s)."""


@dataclass(frozen=True)
class StreamStats:
    """A snapshot for diagnostics. Rates in frames per second; latency in
    seconds from arrival to result; ``label_age`` how much older (stamp
    seconds) the model frame behind a published label image is than the
    frame it labels (0 for model frames), over recent outputs; the refresh
    and preview rates are fractions of recent model frames."""

    received: int = 0
    processed: int = 0    # segmented by the model
    propagated: int = 0   # labelled by carrying a model frame's labels forward
    dropped: int = 0      # never labelled: superseded by a newer frame, or waiting (or in progress) at stop
    failed: int = 0       # the engine raised on the frame
    rejected: int = 0     # arrived while the stream was not running
    withheld: int = 0     # model frames not published: a later frame's labels were out first (they anchor propagation)
    without_depth: int = 0  # labelled frames of a camera with depth that had no matching depth image (2D outputs only)
    out_of_memory: int = 0    # dropped: out of device memory even at one prompt per forward (not counted as failed)
    bucket_halvings: int = 0  # frames run again with half the bucket after running out of device memory
    bucket_size_last: int = 0  # prompts per forward of the last model frame (at most; 0: none yet)
    input_rate: float = 0.0
    model_rate: float = 0.0
    output_rate: float = 0.0   # model and propagated outputs together
    latency_mean: float = 0.0
    latency_last: float = 0.0
    label_age_mean: float = 0.0
    label_age_max: float = 0.0
    refresh_rate: float = 0.0
    preview_rate: float = 0.0
    active_classes_mean: float = 0.0
    active_classes_last: int = 0
    since_input: Optional[float] = None   # seconds since the last frame arrived (None: none yet)
    since_output: Optional[float] = None  # seconds since the last labels were made (None: none yet)


class _Rate:
    """Events per second over the last RATE_WINDOW seconds, in RATE_BINS
    fixed bins (a fixed amount of state, whatever the rate)."""

    def __init__(self) -> None:
        self.width = RATE_WINDOW / RATE_BINS
        self.bins: List[Optional[int]] = [None] * RATE_BINS
        self.counts = [0] * RATE_BINS
        self.last: Optional[float] = None

    def add(self, at: float) -> None:
        self.last = at if self.last is None else max(self.last, at)
        index = math.floor(at / self.width)
        slot = index % RATE_BINS
        if self.bins[slot] != index:
            self.bins[slot], self.counts[slot] = index, 0
        self.counts[slot] += 1

    def rate(self, now: float, start: Optional[float]) -> float:
        """The rate at ``now`` of a stream that began at ``start`` (its first event of any kind)."""
        if start is None:
            return 0.0
        current = math.floor(now / self.width)
        oldest = current - RATE_BINS + 1
        count = sum(c for b, c in zip(self.bins, self.counts) if b is not None and oldest <= b <= current)
        span = min(now - start, now - oldest * self.width)
        return count / span if span > 0 else 0.0

    def since(self, now: float) -> Optional[float]:
        return None if self.last is None else max(0.0, now - self.last)


class _ModelFrame(NamedTuple):
    at: float
    latency: float
    refreshed: bool
    previewed: bool
    active_classes: int


class _Output(NamedTuple):
    at: float
    latency: float
    age: float


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


class _Window:
    def __init__(self, window: int):
        self.counts = dict(received=0, processed=0, propagated=0, dropped=0, failed=0, rejected=0, withheld=0,
                           without_depth=0, out_of_memory=0, bucket_halvings=0)
        self.bucket_last = 0
        self.inputs, self.models, self.outs = _Rate(), _Rate(), _Rate()
        self.start: Optional[float] = None  # the first event's time: rates count from there
        self.model: Deque[_ModelFrame] = deque(maxlen=window)
        self.outputs: Deque[_Output] = deque(maxlen=window)

    def snapshot(self, now: float) -> StreamStats:
        model, out = self.model, self.outputs
        return StreamStats(
            **self.counts,
            bucket_size_last=self.bucket_last,
            input_rate=self.inputs.rate(now, self.start),
            model_rate=self.models.rate(now, self.start),
            output_rate=self.outs.rate(now, self.start),
            since_input=self.inputs.since(now),
            since_output=self.outs.since(now),
            latency_mean=_mean(o.latency for o in out),
            latency_last=out[-1].latency if out else 0.0,
            label_age_mean=_mean(o.age for o in out),
            label_age_max=max((o.age for o in out), default=0.0),
            refresh_rate=_mean(m.refreshed for m in model),
            preview_rate=_mean(m.previewed for m in model),
            active_classes_mean=_mean(m.active_classes for m in model),
            active_classes_last=model[-1].active_classes if model else 0,
        )


class StreamStatistics:
    """Thread-safe: the caller's thread counts arrivals and propagated
    outputs, the worker model results."""

    def __init__(self, window: int = 64, clock: Callable[[], float] = time.monotonic):
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._total = _Window(window)
        self._cameras: Dict[str, _Window] = {}

    def _windows(self, camera: str) -> Tuple[_Window, _Window]:
        if camera not in self._cameras:
            self._cameras[camera] = _Window(self.window)
        windows = self._total, self._cameras[camera]
        for window in windows:
            if window.start is None:
                window.start = self.clock()
        return windows

    def count(self, camera: str, what: str, times: int = 1) -> None:
        """Count a ``dropped``, ``failed``, ``rejected``, ``withheld``,
        ``without_depth`` or ``out_of_memory`` frame, or ``times`` ``bucket_halvings``."""
        with self._lock:
            for w in self._windows(camera):
                w.counts[what] += times

    def received(self, camera: str, at: float) -> None:
        with self._lock:
            for w in self._windows(camera):
                w.counts["received"] += 1
                w.inputs.add(at)

    def processed(self, camera: str, latency: float, refreshed: bool, previewed: bool, active_classes: int,
                  output: bool = True, bucket_size: int = 0) -> None:
        """A model frame was segmented (``refreshed``: it did the method's full
        work) with ``bucket_size`` prompts per forward at most, its labels
        published unless ``output`` is False (withheld)."""
        now = self.clock()
        with self._lock:
            for w in self._windows(camera):
                w.counts["processed"] += 1
                w.bucket_last = bucket_size
                w.models.add(now)
                w.model.append(_ModelFrame(now, latency, refreshed, previewed, active_classes))
                if output:
                    w.outs.add(now)
                    w.outputs.append(_Output(now, latency, 0.0))

    def propagated(self, camera: str, latency: float, age: float) -> None:
        """A frame got a model frame's labels carried ``age`` seconds forward."""
        now = self.clock()
        with self._lock:
            for w in self._windows(camera):
                w.counts["propagated"] += 1
                w.outs.add(now)
                w.outputs.append(_Output(now, latency, age))

    def snapshot(self, camera: Optional[str] = None) -> StreamStats:
        """One camera's statistics, or all cameras' together (``None``)."""
        now = self.clock()
        with self._lock:
            window = self._total if camera is None else self._cameras.get(camera)
            return window.snapshot(now) if window else StreamStats()

    @property
    def cameras(self) -> Tuple[str, ...]:
        with self._lock:
            return tuple(self._cameras)
