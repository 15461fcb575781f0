"""Which stages of a frame run in the reduced compute dtype.

A frame passes five stages: the text encoder (once per vocabulary), the
image encoder's ViT trunk, its neck (the feature pyramid's convolutions),
the grounding forward (prompt encoding, fusion encoder, decoder) and the
segmentation heads. With a reduced compute dtype (bfloat16, the default on
CUDA; ``--dtype bfloat16`` on the CPU) the stages named in ``REDUCED`` run
under autocast to it over the float32 weights, and every other stage runs
in float32. A stage run in the reduced dtype hands float32 tensors on.

Only the trunk is reduced: the image encode is a frame's largest single
forward, and of the stages alone in bfloat16 the grounding forward (which
decides which classes are present) loses the most label agreement with
float32. The per-prompt work then runs in float32: the price of labels that
agree (measured: ``activesam bench --video --precision``,
docs/performance.md).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, ContextManager, FrozenSet

import torch

STAGES = ("text", "trunk", "neck", "decode", "heads")
"""A frame's stages, in order."""

REDUCED = ("trunk",)
"""The stages that run in the reduced compute dtype; the others run in float32."""


def as_float32(value: Any) -> Any:
    """``value`` (a tensor, or dicts, lists and tuples of them) with every
    floating-point tensor in float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: as_float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(as_float32(v) for v in value)
    return value


@dataclass(frozen=True)
class Precision:
    """The compute dtype and the stages that run in it (``REDUCED`` by default)."""

    dtype: torch.dtype = torch.float32
    reduced: FrozenSet[str] = field(default_factory=lambda: frozenset(REDUCED))

    def __post_init__(self) -> None:
        unknown = set(self.reduced) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stages {sorted(unknown)}: the stages are {', '.join(STAGES)}")
        object.__setattr__(self, "reduced", frozenset(self.reduced))

    def low(self, stage: str) -> bool:
        """Whether ``stage`` runs in the reduced dtype."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}: the stages are {', '.join(STAGES)}")
        return self.dtype != torch.float32 and stage in self.reduced

    def autocast(self, device: torch.device, stage: str) -> ContextManager[Any]:
        """The autocast ``stage`` runs under on ``device``: to the reduced
        dtype, or turned off (float32) inside a reduced stage around it."""
        if self.low(stage):
            return torch.autocast(device.type, dtype=self.dtype)
        if self.dtype == torch.float32:
            return contextlib.nullcontext()  # nothing around it is reduced (any device, the meta device too)
        return torch.autocast(device.type, enabled=False)

    def hand_on(self, stage: str, value: Any) -> Any:
        """What ``stage`` passes to the next stage: float32 tensors."""
        return as_float32(value) if self.low(stage) else value


class StageModule(torch.nn.Module):
    """A module of the model run as one stage: under that stage's autocast
    inside whatever stage calls it, handing float32 on. Shares every weight
    with the module it runs."""

    def __init__(self, module: torch.nn.Module, precision: Precision, device: torch.device, stage: str):
        super().__init__()
        self.module = module
        self.precision, self.device, self.stage = precision, device, stage

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self.precision.autocast(self.device, self.stage):
            out = self.module(*args, **kwargs)
        return self.precision.hand_on(self.stage, out)
