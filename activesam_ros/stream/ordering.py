"""Label stamps that never go backwards, per camera.

A camera faster than the model hands the model only its newest frame; the
frames it replaces meanwhile get labels carried forward from the last model
frame at once (``propagation``). So while the model works on frame F
(stamp t0), frames stamped t1 > t0 can be published first, and F's own
labels would then go out after them, stamped earlier: a synchroniser or a
mapper that expects stamp order drops them, or worse.

The rule here: per camera, labels are published only if their stamp is not
earlier than that of the last labels published for the camera. A model
frame that finishes after a later frame's labels went out is **withheld**:
its labels are not published, but they still become the labels the next
frames are carried from (the runtime anchors propagation on every model
frame), so they reach consumers through those frames. A propagated frame
stamped before the last published one (a camera whose stamps go back) is
withheld alike. Withheld frames are counted (``StreamStats.withheld``).
Equal stamps pass; a stamp that is not a number is published without
moving the mark. The mark survives parameter changes: the order holds
across a new vocabulary too.
"""

from __future__ import annotations

import math
from typing import Dict


class StampOrder:
    """The stamp of the last labels published per camera. Not thread-safe:
    the caller holds one lock across :meth:`admit` and the publishing."""

    def __init__(self) -> None:
        self._last: Dict[str, float] = {}

    def admit(self, camera: str, stamp: float) -> bool:
        """Whether labels stamped ``stamp`` may be published for ``camera``
        now; if so, ``stamp`` becomes the camera's mark."""
        last = self._last.get(camera)
        if last is not None and stamp < last:
            return False
        if math.isfinite(stamp):
            self._last[camera] = stamp
        return True

    def last(self, camera: str) -> float:
        """The camera's mark (-inf before its first published labels)."""
        return self._last.get(camera, -math.inf)
