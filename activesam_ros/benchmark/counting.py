"""Counting the work of SAM 3 forwards without doing it.

``count(fn)`` runs ``fn`` (an engine call: ``Grounder.encode_image``,
``encode_text``, ``ground``, ``score``) under torch's
``FlopCounterMode`` and returns its floating-point operations (matrix
products, convolutions, attention: what torch counts) and the bytes its
operations write.

The model it runs is SAM 3's released architecture as sam3's own builder
makes it (``released_sam3``), nothing downloaded. With ``values=False`` its
weights are shapes only (the meta device): an operation that reads one
yields a tensor of the right shape without arithmetic (:class:`ShapeOnly`),
so counting a 1008 px forward takes a second and no memory. Integer
bookkeeping that sam3 computes from sizes (feature-map sizes, coordinate
tables) stays real. Two things need values and get them:

- the geometry encoder samples the image features at the prompt's boxes with
  torchvision's ``roi_align``, which has no meta implementation here: the
  layer norm before it gets random values (512 of the 840 M weights) and the
  image features it reads are real (zeros);
- which prompts and instances pass a threshold (fast mode's presence floor,
  the confidence threshold) depends on scores: a count answers "every
  prompt passes the floor, ``kept`` of the object queries pass the
  confidence", the assumption the report states.

With ``values=True`` the same builder makes the model with random weights
(840 M parameters, about 30 s and 3.4 GB on a CPU) and the forwards really
run; the counts are the same, which ``check_real`` confirms.

torch's counter does not know the CPU kernel behind
``scaled_dot_product_attention`` (``_scaled_dot_product_flash_attention_for_cpu``):
a plain ``FlopCounterMode`` on a CPU misses the ViT's attention (783 GFLOP
at 1008 px). Attention is counted here with torch's own formula for the GPU
kernels, as one fused operation that writes only its output (as flash
attention does on a GPU).

Bytes written are a rough measure of activation traffic: every operation's
new output once, in bfloat16, as if no two operations were fused.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import torch
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map_only

from ..engine import cpu_shims
from ..engine.model import build_released_sam3, fill_text_weights, parameters_on_meta

aten = torch.ops.aten

ACTIVATION_BYTES = 2
"""Bytes per floating-point element written, as in bfloat16 on a GPU."""


class CountError(RuntimeError):
    """A counted call read a value that a shape-only count does not have."""


def _attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


ATTENTION = {aten.scaled_dot_product_attention: _attention,
             # Listed as the overload too: torch splits calls whose overload it does not list.
             aten.scaled_dot_product_attention.default: _attention}
"""torch's formula for its fused attention kernels, applied to the call
itself: on a CPU the kernel it picks is one torch's counter does not list,
and on the meta device the call would be split into its unfused steps
(whose attention matrices a GPU never writes)."""


@dataclass(frozen=True)
class Count:
    """Work of one call: floating-point operations and bytes written."""

    flops: float = 0.0
    bytes: float = 0.0       # every operation's new output once (views and in-place writes excluded)
    attention: float = 0.0   # the part of ``flops`` in scaled_dot_product_attention

    def __add__(self, other: "Count") -> "Count":
        return Count(self.flops + other.flops, self.bytes + other.bytes, self.attention + other.attention)

    def __sub__(self, other: "Count") -> "Count":
        return Count(self.flops - other.flops, self.bytes - other.bytes, self.attention - other.attention)

    def __mul__(self, factor: float) -> "Count":
        return Count(self.flops * factor, self.bytes * factor, self.attention * factor)

    __rmul__ = __mul__

    @property
    def gflop(self) -> float:
        return self.flops / 1e9


def _written(func: Any, out: Any) -> float:
    """Bytes of the new tensors an operation returns (bfloat16 for floats)."""
    if func is aten._unsafe_view.default or any(ret.alias_info is not None for ret in func._schema.returns):
        return 0.0  # a view
    total = 0.0
    for tensor in tree_flatten(out)[0]:
        if isinstance(tensor, torch.Tensor):
            size = ACTIVATION_BYTES if tensor.is_floating_point() else tensor.element_size()
            total += tensor.numel() * size
    return total


class ShapeOnly(TorchDispatchMode):
    """Operations with a meta input run on the meta device (shapes, no
    arithmetic); the rest run for real. Counts the bytes every operation
    writes (``bytes``), the same way for both.

    ``nonzero`` of a meta tensor (which elements pass a threshold) answers
    every element, except for a vector of the ``num_queries`` object
    queries, where the first ``kept`` pass. Any other read of a meta value
    raises :class:`CountError`.
    """

    def __init__(self, num_queries: int = 0, kept: int = 0):
        super().__init__()
        self.num_queries, self.kept = num_queries, kept
        self.bytes = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat = tree_flatten((args, kwargs))[0]
        shape_only = any(isinstance(t, torch.Tensor) and t.is_meta for t in flat)
        if shape_only and func is aten.nonzero.default:
            out = self._passing(args[0])
        elif shape_only and func is aten._local_scalar_dense.default:
            raise CountError("a counted call read the value of a shape-only tensor (a data-dependent step)")
        elif shape_only:
            if func._schema.is_mutable and isinstance(args[0], torch.Tensor) and not args[0].is_meta:
                raise CountError(f"{func} would write shape-only results into a real tensor")
            args, kwargs = tree_map_only(torch.Tensor, lambda t: t if t.is_meta else t.to("meta"), (args, kwargs))
            if "device" in kwargs:
                kwargs["device"] = torch.device("meta")  # a copy to the CPU stays shape-only
            out = func(*args, **kwargs)
        else:
            out = func(*args, **kwargs)
        self.bytes += _written(func, out)
        return out

    def _passing(self, mask: torch.Tensor) -> torch.Tensor:
        if mask.dim() == 1 and mask.numel() == self.num_queries:
            return torch.arange(min(self.kept, mask.numel()))[:, None]
        return torch.nonzero(torch.ones(mask.shape, dtype=torch.bool))


def count(fn: Callable[[], Any], shape_only: Optional[ShapeOnly] = None) -> Tuple[Count, Any]:
    """The work ``fn()`` does, and what it returned. Pass a fresh
    :class:`ShapeOnly` to count a shape-only model; None runs for real."""
    work, _, out = count_by_module(fn, shape_only)
    return work, out


def count_by_module(fn: Callable[[], Any], shape_only: Optional[ShapeOnly] = None
                    ) -> Tuple[Count, Dict[str, float], Any]:
    """``count``, and the FLOPs of each outermost module ``fn`` called (by class name)."""
    probe = shape_only if shape_only is not None else ShapeOnly()
    with cpu_shims.cpu_inference(torch.device("cpu")), probe, \
            flop_counter.FlopCounterMode(display=False, custom_mapping=ATTENTION) as counter:
        out = fn()
    counts = counter.get_flop_counts()
    modules = {name: float(sum(ops.values())) for name, ops in counts.items() if name != "Global" and "." not in name}
    attention = float(counts.get("Global", {}).get(aten.scaled_dot_product_attention, 0))
    return Count(float(counter.get_total_flops()), probe.bytes, attention), modules, out


def _random_(module: torch.nn.Module, seed: int) -> None:
    """Give ``module``'s shape-only parameters random values."""
    generator = torch.Generator().manual_seed(seed)
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None and param.is_meta:
                values = torch.randn(param.shape, generator=generator) * 0.02
                sub._parameters[name] = torch.nn.Parameter(values, requires_grad=False)


def shapes_only(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A copy of ``model`` whose weights are shapes only, as
    ``released_sam3(values=False)`` builds them (for any SAM 3 image model)."""
    copy_ = copy.deepcopy(model)
    for sub in copy_.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None:
                sub._parameters[name] = torch.nn.Parameter(param.detach().to("meta"), requires_grad=False)
    _random_(copy_.geometry_encoder.img_pre_norm, seed)
    return copy_.eval()


def released_sam3(values: bool = False, seed: int = 0) -> torch.nn.Module:
    """SAM 3's released image model, built by sam3 without a checkpoint
    (``engine.model.build_released_sam3``).

    ``values=False``: weights are shapes only, except the geometry
    encoder's input layer norm (random; see the module doc). ``values=True``: every weight
    random (the text encoder's two tensors sam3 leaves uninitialised are
    filled as ``build_tiny_sam3`` fills them: ``fill_text_weights``).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if values:
            model = build_released_sam3()
            fill_text_weights(model.backbone.language_backbone.encoder)
        else:
            with parameters_on_meta():
                model = build_released_sam3()
            _random_(model.geometry_encoder.img_pre_norm, seed)
    return model.eval()
