"""Counters and recent rates of a frame stream, per camera and in total.

Counts are totals since the start; rates, latency, label age, refresh rate
and the active-class count are over the last ``window`` events, so a long
run keeps a fixed amount of state per camera.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Dict, NamedTuple, Optional, Tuple


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
    dropped: int = 0      # never labelled: superseded by a newer frame, or waiting at stop
    failed: int = 0       # the engine raised on the frame
    rejected: int = 0     # arrived while the stream was not running
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


def _rate(times) -> float:
    times = list(times)
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


class _Window:
    def __init__(self, window: int):
        self.counts = dict(received=0, processed=0, propagated=0, dropped=0, failed=0, rejected=0)
        self.arrivals: Deque[float] = deque(maxlen=window)
        self.model: Deque[_ModelFrame] = deque(maxlen=window)
        self.outputs: Deque[_Output] = deque(maxlen=window)

    def snapshot(self) -> StreamStats:
        model, out = self.model, self.outputs
        return StreamStats(
            **self.counts,
            input_rate=_rate(self.arrivals),
            model_rate=_rate(m.at for m in model),
            output_rate=_rate(o.at for o in out),
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
        return self._total, self._cameras[camera]

    def count(self, camera: str, what: str) -> None:
        """Count a ``dropped``, ``failed`` or ``rejected`` frame."""
        with self._lock:
            for w in self._windows(camera):
                w.counts[what] += 1

    def received(self, camera: str, at: float) -> None:
        with self._lock:
            for w in self._windows(camera):
                w.counts["received"] += 1
                w.arrivals.append(at)

    def processed(self, camera: str, latency: float, refreshed: bool, previewed: bool, active_classes: int) -> None:
        """A model frame was segmented (``refreshed``: it did the method's full work)."""
        now = self.clock()
        with self._lock:
            for w in self._windows(camera):
                w.counts["processed"] += 1
                w.model.append(_ModelFrame(now, latency, refreshed, previewed, active_classes))
                w.outputs.append(_Output(now, latency, 0.0))

    def propagated(self, camera: str, latency: float, age: float) -> None:
        """A frame got a model frame's labels carried ``age`` seconds forward."""
        now = self.clock()
        with self._lock:
            for w in self._windows(camera):
                w.counts["propagated"] += 1
                w.outputs.append(_Output(now, latency, age))

    def snapshot(self, camera: Optional[str] = None) -> StreamStats:
        """One camera's statistics, or all cameras' together (``None``)."""
        with self._lock:
            window = self._total if camera is None else self._cameras.get(camera)
            return window.snapshot() if window else StreamStats()

    @property
    def cameras(self) -> Tuple[str, ...]:
        with self._lock:
            return tuple(self._cameras)
