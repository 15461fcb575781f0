"""What a GPU would wait for, counted on any device.

A CUDA kernel launch returns at once; the host waits for the device only
where it reads a result. ``HostSyncs`` counts every such point while it is
entered, by what torch sees:

- data-dependent operations (``dispatch``): reading a value
  (``.item()``, ``bool(t)``, ``int(t)``: ``_local_scalar_dense``), and
  operations whose output size depends on values (``nonzero``, boolean-mask
  indexing, ``masked_select``, ``unique``, ``repeat_interleave`` without an
  output size);
- transfers (``transfer``): ``.cpu()``, ``.numpy()``, ``.tolist()``,
  ``np.asarray(t)`` of a tensor, ``.to("cpu")`` of a device tensor, and tensors made from
  host data (``torch.tensor(list)``, ``torch.as_tensor(array)``) on the
  counted device (a blocking upload on CUDA).

On a CPU every tensor lives on the host, so the count is what the same code
would make a GPU wait for; it is exact, not timed, and the same on every
run. ``AtenCalls`` counts every aten operation (on a GPU, at least one
kernel launch each).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Optional

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

VALUE_READS = {aten._local_scalar_dense.default, aten.item.default, aten.is_nonzero.default, aten.equal.default}
SIZED_BY_VALUES = {aten.nonzero.default, aten.masked_select.default, aten._unique.default,
                   aten._unique2.default, aten.unique_dim.default, aten.unique_consecutive.default}
INDEXING = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}

_TRANSFERS = {torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.tolist, torch.Tensor.__array__}
_FROM_HOST = {torch.tensor, torch.as_tensor}


def _boolean_index(args: Any) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ())


class _Transfers(TorchFunctionMode):
    def __init__(self, owner: "HostSyncs"):
        super().__init__()
        self.owner = owner

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _TRANSFERS:
            self.owner._note("transfer", func.__name__)
        elif func is torch.Tensor.to and args[0].device.type != "cpu":
            target = kwargs.get("device", args[1] if len(args) > 1 else None)
            if isinstance(target, (str, torch.device)) and torch.device(target).type == "cpu":
                self.owner._note("transfer", "to_cpu")
        elif func in _FROM_HOST and args and not isinstance(args[0], torch.Tensor):
            device = kwargs.get("device")
            if device is not None and torch.device(device) == self.owner.device:
                self.owner._note("transfer", f"{func.__name__}_upload")
        return func(*args, **kwargs)


class _DataDependent(TorchDispatchMode):
    def __init__(self, owner: "HostSyncs"):
        super().__init__()
        self.owner = owner

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in VALUE_READS or func in SIZED_BY_VALUES:
            self.owner._note("dispatch", str(func.overloadpacket.__name__))
        elif func in INDEXING and _boolean_index(args):
            self.owner._note("dispatch", "boolean_index")
        elif func is aten.repeat_interleave.Tensor and (kwargs or {}).get("output_size") is None:
            self.owner._note("dispatch", "repeat_interleave")
        return func(*args, **(kwargs or {}))


class HostSyncs:
    """``with HostSyncs(device) as syncs: ...``; then ``syncs.total`` and
    ``syncs.by_kind`` ({"dispatch:nonzero": 3, "transfer:numpy": 2, ...})."""

    def __init__(self, device: Optional[torch.device] = None):
        self.device = torch.device(device or "cpu")
        self.by_kind: Counter = Counter()
        self._modes = (_Transfers(self), _DataDependent(self))

    def _note(self, kind: str, name: str) -> None:
        self.by_kind[f"{kind}:{name}"] += 1

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def __enter__(self) -> "HostSyncs":
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)


class AtenCalls(TorchDispatchMode):
    """Every aten operation run while entered (``total``, ``by_op``)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_op: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.by_op[str(func.overloadpacket.__name__)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.by_op.values())


def per_prompt(counts: Dict[int, int]) -> float:
    """The slope of a count over the prompts: (c(b) - c(a)) / (b - a) for the
    smallest and largest prompt numbers measured."""
    low, high = min(counts), max(counts)
    return (counts[high] - counts[low]) / (high - low)

