"""Depth images paired with colour frames by stamp, without ROS.

A camera's depth images arrive on their own topic, at their own times; a
colour frame takes the depth image whose stamp is nearest its own, if that
is at most ``depth_tolerance`` seconds away. The last :data:`KEEP` depth
images are kept (a fixed amount of memory, whatever the rates), so a frame
finds its depth image when the depth arrives after the colour image; and
when a frame arrives, the depth image nearest it so far is held for it
(:meth:`DepthPairing.hold`, at most :data:`HELD` frames), so a frame that
waits for a slow model still finds its depth image after newer ones have
pushed it out of the last :data:`KEEP`. Intrinsics come from the camera info
last received (they change rarely; image_transport's camera subscriber pairs
them by stamp, which the node does not need).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, Optional, Tuple

import numpy as np

from .depth import DepthError, DepthImage, Intrinsics, size_problem

KEEP = 16
"""Depth images kept per camera (about half a second at 30 Hz)."""
HELD = 8
"""Frames per camera whose depth image is held from their arrival until their outputs are made."""


@dataclass(frozen=True)
class _Depth:
    stamp: float
    metres: np.ndarray
    frame_id: str
    context: Any


class DepthPairing:
    """One camera's recent depth images and its intrinsics; thread-safe."""

    def __init__(self, keep: int = KEEP):
        self._lock = threading.Lock()
        self._images: Deque[_Depth] = deque(maxlen=keep)
        self._held: Dict[float, _Depth] = {}  # by frame stamp, oldest first
        self._intrinsics: Optional[Intrinsics] = None

    def add_depth(self, metres: np.ndarray, stamp: float, frame_id: str = "", context: Any = None) -> None:
        """A depth image in metres (``stream.depth.depth_metres``); ``context`` comes back with it (its header)."""
        with self._lock:
            self._images.append(_Depth(stamp, metres, frame_id, context))

    def add_intrinsics(self, intrinsics: Intrinsics) -> None:
        with self._lock:
            self._intrinsics = intrinsics

    def hold(self, stamp: float, tolerance: float) -> None:
        """A frame stamped ``stamp`` arrived: keep the depth image nearest it,
        if one is within ``tolerance``, until :meth:`match` takes it."""
        with self._lock:
            best = min(self._images, key=lambda d: abs(d.stamp - stamp), default=None)
            if best is None or not abs(best.stamp - stamp) <= tolerance:
                return
            self._held.pop(stamp, None)
            self._held[stamp] = best
            while len(self._held) > HELD:
                del self._held[next(iter(self._held))]

    def match(self, stamp: float, shape: Tuple[int, int], tolerance: float) -> Tuple[Optional[DepthImage], Any, str]:
        """(depth image, its context, "") for a colour frame stamped ``stamp``
        of (height, width) ``shape``, or (None, None, why not): the nearest
        of the last depth images and the one held for the frame."""
        with self._lock:
            held = self._held.pop(stamp, None)
            images, intrinsics = list(self._images) + ([held] if held else []), self._intrinsics
        if not images:
            return None, None, "no depth image received"
        best = min(images, key=lambda d: abs(d.stamp - stamp))
        if not abs(best.stamp - stamp) <= tolerance:
            return None, None, (f"no depth image within {tolerance:g} s of the frame (nearest "
                                f"{best.stamp - stamp:+.3f} s)")
        if intrinsics is None:
            return None, None, "no camera info received"
        problem = size_problem(shape, best.metres.shape)
        if problem:
            return None, None, problem
        try:
            image = DepthImage(best.metres, intrinsics, best.stamp, best.frame_id)
        except DepthError as exc:
            return None, None, str(exc)
        return image, best.context, ""
