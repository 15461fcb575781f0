"""The small compatibility shims sam3 needs on a machine without CUDA.

sam3 is written for CUDA machines. Without CUDA four things break (measured;
docs/install.md, "What the CPU path changes in sam3"): PyPI's torchvision
does not import beside a CPU torch, ``sam3.model.edt`` imports triton at
module level, constructors allocate on ``"cuda"``, and every grounding
forward calls ``.pin_memory()``. A fifth costs time: without its compiled
ops, torchvision's pure-PyTorch ``roi_align`` compiles itself with
``torch.compile`` on first use; it is run eagerly instead.

Everything here is inert when CUDA is available, and nothing here patches a
sam3 class: the import fixes run once before sam3 is imported, and the two
runtime fixes are thread-local torch function modes that are entered only
around model calls on a machine without CUDA.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from typing import Iterator

import torch
from torch.overrides import TorchFunctionMode

_IMPORTS_PREPARED = False


def cuda_available() -> bool:
    return torch.cuda.is_available()


def _register_torchvision_nms() -> None:
    """Give torchvision's meta registrations the ``nms`` op they expect.

    A CUDA torchvision wheel cannot load its C++ ops into a CPU torch, and its
    Python side then fails at import on the missing ``torchvision::nms``
    schemas. sam3 never calls nms on images, so a plain CPU kernel suffices.
    """
    try:
        torch.ops.torchvision.nms  # noqa: B018 - probing the registry
        return
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    # Its meta registrations also name qnms; sam3 never calls it.
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

    def nms_cpu(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
        order = scores.argsort(descending=True)
        keep = []
        suppressed = torch.zeros(len(order), dtype=torch.bool, device=dets.device)
        x1, y1, x2, y2 = dets.unbind(1)
        areas = (x2 - x1) * (y2 - y1)
        for rank, i in enumerate(order.tolist()):
            if suppressed[rank]:
                continue
            keep.append(i)
            rest = order[rank + 1 :]
            w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
            h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
            inter = w * h
            iou = inter / (areas[i] + areas[rest] - inter)
            suppressed[rank + 1 :] |= iou > iou_threshold
        return torch.tensor(keep, dtype=torch.long, device=dets.device)

    lib.impl("nms", nms_cpu, "CPU")
    # Keep the library object alive for the life of the process.
    _register_torchvision_nms.library = lib  # type: ignore[attr-defined]


def _eager_roi_align() -> None:
    """Run torchvision's pure-PyTorch ``roi_align`` (its fallback without
    compiled ops) as it is written, not through its compile-on-first-call hook."""
    module = importlib.import_module("torchvision.ops.roi_align")  # the module, not the function of that name
    hook = module._roi_align
    if not module._has_ops() and hasattr(hook, "__wrapped__"):
        module._roi_align = hook.__wrapped__


class _TritonStandIn(types.ModuleType):
    """Enough of triton for ``sam3.model.edt`` to define its (unused) kernel."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "jit":
            return lambda fn=None, **_: fn if fn is not None else (lambda f: f)
        return object


def prepare_sam3_import() -> None:
    """Make ``import sam3`` work on this machine; a no-op with CUDA."""
    global _IMPORTS_PREPARED
    if _IMPORTS_PREPARED or "sam3.model.sam3_image" in sys.modules:
        _IMPORTS_PREPARED = True
        return
    if not cuda_available() and "torchvision" not in sys.modules:
        _register_torchvision_nms()
    _eager_roi_align()
    if importlib.util.find_spec("triton") is None:
        # torch._dynamo caches whether triton exists: import it before the
        # stand-in appears so that torch keeps knowing the truth.
        import torch._dynamo  # noqa: F401

        stand_in = _TritonStandIn("triton")
        stand_in.language = _TritonStandIn("triton.language")  # type: ignore[attr-defined]
        sys.modules["triton"] = stand_in
        sys.modules["triton.language"] = stand_in.language  # type: ignore[attr-defined]
        try:
            import sam3.model.edt  # noqa: F401
        finally:
            del sys.modules["triton"], sys.modules["triton.language"]
    _IMPORTS_PREPARED = True


class _PinMemoryIsIdentity(TorchFunctionMode):
    """``Tensor.pin_memory`` raises without an accelerator; pinning a CPU
    tensor that stays on the CPU changes nothing, so return it as it is."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.pin_memory:
            return args[0]
        return func(*args, **(kwargs or {}))


class _CudaFactoriesOnCpu(TorchFunctionMode):
    """Send tensors that constructors create on ``"cuda"`` to the CPU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        device = kwargs.get("device")
        if device is not None and torch.device(device).type == "cuda":
            kwargs["device"] = "cpu"
        return func(*args, **kwargs)


@contextlib.contextmanager
def cpu_inference(device: torch.device) -> Iterator[None]:
    """Around model calls: the pin_memory fix on a machine without CUDA
    (on the CPU, and on the shape-only ``meta`` device)."""
    if cuda_available():
        yield
        return
    with _PinMemoryIsIdentity():
        yield


@contextlib.contextmanager
def cpu_construction() -> Iterator[None]:
    """Around model construction on a machine without CUDA."""
    if cuda_available():
        yield
        return
    with _CudaFactoriesOnCpu():
        yield
