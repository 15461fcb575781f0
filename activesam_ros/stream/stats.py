"""Counters and recent rates of a frame stream, per camera and in total.

Counts are totals since the start; rates, latency, preview rate and the
active-class count are over the last ``window`` events, so a long run keeps
a fixed amount of state per camera.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Dict, Optional, Tuple


@dataclass(frozen=True)
class StreamStats:
    """A snapshot for diagnostics. Rates in frames per second, latency in
    seconds from arrival to result, ``preview_rate`` the fraction of recent
    results whose frame ran the preview."""

    received: int = 0
    processed: int = 0
    dropped: int = 0    # never processed: superseded by a newer frame, or waiting at stop
    failed: int = 0     # the engine raised on the frame
    rejected: int = 0   # arrived while the stream was not running
    input_rate: float = 0.0
    output_rate: float = 0.0
    latency_mean: float = 0.0
    latency_last: float = 0.0
    preview_rate: float = 0.0
    active_classes_mean: float = 0.0
    active_classes_last: int = 0


def _rate(times: Deque[float]) -> float:
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


class _Window:
    def __init__(self, window: int):
        self.counts = dict(received=0, processed=0, dropped=0, failed=0, rejected=0)
        self.arrivals: Deque[float] = deque(maxlen=window)
        self.outputs: Deque[Tuple[float, float, bool, int]] = deque(maxlen=window)

    def snapshot(self) -> StreamStats:
        out = self.outputs
        if not out:
            return StreamStats(**self.counts, input_rate=_rate(self.arrivals))
        return StreamStats(
            **self.counts,
            input_rate=_rate(self.arrivals),
            output_rate=_rate(deque(o[0] for o in out)),
            latency_mean=sum(o[1] for o in out) / len(out),
            latency_last=out[-1][1],
            preview_rate=sum(o[2] for o in out) / len(out),
            active_classes_mean=sum(o[3] for o in out) / len(out),
            active_classes_last=out[-1][3],
        )


class StreamStatistics:
    """Thread-safe: the caller's thread counts arrivals, the worker results."""

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

    def processed(self, camera: str, latency: float, preview_ran: bool, active_classes: int) -> None:
        now = self.clock()
        with self._lock:
            for w in self._windows(camera):
                w.counts["processed"] += 1
                w.outputs.append((now, latency, preview_ran, active_classes))

    def snapshot(self, camera: Optional[str] = None) -> StreamStats:
        """One camera's statistics, or all cameras' together (``None``)."""
        with self._lock:
            window = self._total if camera is None else self._cameras.get(camera)
            return window.snapshot() if window else StreamStats()

    @property
    def cameras(self) -> Tuple[str, ...]:
        with self._lock:
            return tuple(self._cameras)
