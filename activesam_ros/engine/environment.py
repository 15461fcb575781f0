"""Process settings a front end makes before torch is imported (torch-free).

On a machine without a GPU, TorchDynamo has nothing to do for the engine and
torchvision's pure-PyTorch ``roi_align`` (sam3's geometry encoder uses it
when torchvision's compiled ops are missing, as with PyPI's torchvision on a
CPU torch) would call ``torch.compile`` on first use: seconds of compiling,
a C compiler, and ~155 MB under /tmp. The CLI and the node own their
processes and disable TorchDynamo there (``TORCHDYNAMO_DISABLE=1``); on a
machine with an NVIDIA GPU it stays available for the engine's opt-in
``compile``. A library user decides for their own process (the engine runs
that ``roi_align`` eagerly either way: ``cpu_shims``).
"""

from __future__ import annotations

import os
from pathlib import Path

DYNAMO_VARIABLE = "TORCHDYNAMO_DISABLE"

GPU_DEVICE_FILES = ("/dev/nvidiactl", "/proc/driver/nvidia/version", "/dev/dxg")
"""Files an NVIDIA driver provides (Linux; /dev/dxg: WSL 2)."""


def gpu_present() -> bool:
    """Whether this process may see an NVIDIA GPU, judged without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(Path(path).exists() for path in GPU_DEVICE_FILES)


def set_process_defaults() -> None:
    """Disable TorchDynamo on a machine without a GPU, unless the
    environment already says otherwise."""
    if not gpu_present():
        os.environ.setdefault(DYNAMO_VARIABLE, "1")
