"""Memory handed back once a model is dropped: CUDA's cached blocks, the C heap's free pages.

Dropping the last reference frees a model's tensors inside the process, but
CUDA's caching allocator keeps the blocks for reuse and glibc keeps freed
heap pages: neither shows as free to the rest of the robot until returned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from typing import Union

import torch

_LIBC = ctypes.util.find_library("c")
_MALLOC_TRIM = getattr(ctypes.CDLL(_LIBC), "malloc_trim", None) if _LIBC else None


def trim_heap() -> None:
    """Return the C heap's free pages to the system (glibc; a no-op elsewhere)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def release_memory(device: Union[str, torch.device]) -> None:
    """After a model on ``device`` was dropped: collect it, then hand its memory back."""
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    trim_heap()
