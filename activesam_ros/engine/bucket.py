"""How many text prompts one grounding forward takes (``bucket_size``):
chosen for the device's free memory when it is 0 (auto), and halved when a
forward runs out of memory.

Auto, on CUDA: the largest bucket of at most :data:`AUTO_MAX_BUCKET`
prompts whose predicted peak (``memory_model``, fitted at the released
size), plus ``memory_model.MARGIN`` (20 %) of it, fits what torch can
still allocate on the device (``torch.cuda.mem_get_info``'s free memory
plus the blocks torch holds cached and unused), for the frame's decode at
its resolution and size and for its preview. It is decided per frame, so a bucket follows the
memory other processes take or give back.

Auto, on a CPU: :data:`AUTO_MAX_BUCKET`. There the engine computes the
heads one prompt at a time (``fused_heads``), so a bucket's peak is its
decoder's, well below the accelerator figures of docs/memory.md; torch
reports no free host memory; and the method's reference bucket is 32.

Out of memory (any bucket, auto or set): the frame is tried again with
half the bucket, and later frames keep the smaller one until
``bucket_size`` is set again. Below one prompt the frame is dropped
(:class:`FrameOutOfMemory`). Torch-free at import (the stream room catches
that error); the device is asked only when a frame runs on CUDA.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Optional

from .memory_model import MARGIN, RELEASED, FrameShape, released

log = logging.getLogger(__name__)

AUTO = 0
"""``bucket_size`` 0: chosen per frame (the default)."""

AUTO_MAX_BUCKET = 32
"""The largest bucket auto picks: the method's reference value, and the
CPU's (module doc)."""


def planned(bucket_size: int) -> int:
    """The bucket ``bucket_size`` runs with where memory allows (what the
    counted work per frame assumes)."""
    return bucket_size if bucket_size != AUTO else AUTO_MAX_BUCKET


class FrameOutOfMemory(RuntimeError):
    """A frame that did not fit the device's memory even at one prompt per
    forward (or whose image encode did not fit): dropped. ``halvings``:
    how often the bucket was halved on the way."""

    def __init__(self, message: str, halvings: int = 0):
        super().__init__(message)
        self.halvings = halvings


def free_bytes(device: Any) -> Optional[float]:
    """What torch can still allocate on a CUDA ``device`` (a torch.device):
    the driver's free memory plus the blocks torch's allocator holds cached
    and unused. None off CUDA."""
    if device.type != "cuda":
        return None
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return float(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def auto_bucket(free: Optional[float], mode: str, resolution: int, preview_resolution: int,
                frame_pixels: int, dtype: str) -> int:
    """The auto rule: the bucket for ``free`` bytes (None: not a CUDA
    device), in ``mode`` at ``resolution`` for a frame of ``frame_pixels``,
    the preview at ``preview_resolution``, in the compute ``dtype`` (its
    own fit when measured, float32's otherwise). At least 1: a frame that
    cannot fit one prompt still tries, and is dropped if it runs out."""
    if free is None:
        return AUTO_MAX_BUCKET
    model = released(dtype if dtype in RELEASED else "float32")
    decode = model.largest_bucket(free, "exact" if mode == "exact" else "fast", resolution, frame_pixels,
                                  MARGIN, AUTO_MAX_BUCKET, FrameShape.kept)
    preview = model.largest_bucket(free, "presence", preview_resolution, 0, MARGIN, AUTO_MAX_BUCKET)
    return max(1, min(decode, preview))


class Buckets:
    """The bucket each frame runs with: ``bucket_size``, or the auto
    rule's; at most what an out-of-memory error left. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._configured: Optional[int] = None
        self._cap: Optional[int] = None
        self._warned = False
        self.halvings = 0                # since the engine was made
        self.last: Optional[int] = None  # the bucket that made the last frame

    def size(self, configured: int, auto: Callable[[], int]) -> int:
        """The bucket of the next frame under ``bucket_size`` = ``configured``
        (``auto()`` asked when it is AUTO). A new ``bucket_size`` lifts the cap."""
        with self._lock:
            if configured != self._configured:
                self._configured, self._cap = configured, None
            cap = self._cap
        size = configured if configured != AUTO else auto()
        return size if cap is None else min(size, cap)

    def halve(self, size: int, queries: int, halvings: int) -> int:
        """After an out-of-memory error at bucket ``size`` in a frame of
        ``queries`` prompts (its forwards are no wider than both) that was
        halved ``halvings`` times already: the bucket to try it again with,
        kept for later frames. FrameOutOfMemory below one prompt."""
        widest = max(1, min(size, queries))
        if widest == 1:
            raise FrameOutOfMemory("out of device memory even at one prompt per forward: the frame is dropped "
                                   "(a smaller resolution, or memory freed by other processes, needs less)",
                                   halvings)
        smaller = widest // 2
        with self._lock:
            self._cap = smaller
            self.halvings += 1
            first, self._warned = not self._warned, True
        if first:
            log.warning("out of device memory at %d prompts per forward: the frame runs again with %d, and later "
                        "frames keep it (set bucket_size to try a larger one again; docs/memory.md)", widest, smaller)
        else:
            log.info("out of device memory at %d prompts per forward: now %d", widest, smaller)
        return smaller

    def made(self, size: int) -> None:
        """A frame was made with bucket ``size``."""
        with self._lock:
            self.last = size

    def report(self) -> Dict[str, Optional[int]]:
        """What a benchmark report says of the buckets its frames ran with."""
        with self._lock:
            return {"bucket_size_last": self.last, "bucket_halvings": self.halvings}
