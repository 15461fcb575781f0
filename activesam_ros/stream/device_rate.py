"""A recording replayed as a device that takes ``period`` seconds per model
frame would run it, on the frames' stamp clock.

``StreamRuntime`` gives the model each camera's newest frame whenever the
model is free; a frame still waiting when a newer one of its camera arrives
gets the camera's last model labels carried forward (``propagation``), or
is dropped. Here the model's cost is not measured but given: a model frame
taken at stamp ``t`` is done at ``t + period``, and only then do its labels
become what later frames are carried from. The same frames are model frames
whatever the load of the machine that replays them, so a slow device's
behaviour (which frames reuse, which are labelled, how old the labels are)
is measured deterministically on any computer. Cameras with a waiting frame
are served in turn, as by the runtime; when the recording ends, the model
finishes the frames still waiting.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from .runtime import Frame, FrameResult, StreamProcessor

Outcome = Tuple[Frame, Optional[FrameResult]]
"""A frame and its result: a model or propagated one, or None (dropped, or the engine failed)."""


def replay(processor: StreamProcessor, frames: Iterable[Frame], period: float) -> Iterator[Outcome]:
    """Every frame's outcome under a model that takes ``period`` stamp
    seconds per frame, in the order the outcomes are known. Frames must
    come in stamp order (a frame stamped before the one before it is taken
    as arriving with it)."""
    if not (isinstance(period, (int, float)) and math.isfinite(period) and period > 0):
        raise ValueError(f"the model period must be a number of seconds > 0, got {period!r}")
    waiting: Dict[str, Frame] = {}
    cameras: List[str] = []   # served in turn, in the order of their first frame
    served = -1
    busy: Optional[Tuple[Frame, float]] = None  # the frame in the model, and when it is done
    now = -math.inf

    def take(at: float) -> Optional[Tuple[Frame, float]]:
        nonlocal served
        for step in range(1, len(cameras) + 1):
            index = (served + step) % len(cameras)
            if cameras[index] in waiting:
                served = index
                return waiting.pop(cameras[index]), at + period
        return None

    def finish(job: Tuple[Frame, float]) -> Outcome:
        try:
            return job[0], processor.process(job[0])
        except Exception:  # counted as failed by the processor; the device goes on
            return job[0], None

    for frame in frames:
        now = max(now, frame.stamp)
        while busy is not None and busy[1] <= now:
            yield finish(busy)
            busy = take(busy[1])
        replaced = waiting.pop(frame.camera, None)
        if replaced is not None:
            yield replaced, processor.propagate(replaced)
        if frame.camera not in cameras:
            cameras.append(frame.camera)
        waiting[frame.camera] = frame
        if busy is None:
            busy = take(now)
    while busy is not None:
        yield finish(busy)
        busy = take(busy[1])
