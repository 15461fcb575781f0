"""bfloat16 against float32: how often the labels agree, per frame.

The engine runs bfloat16 as autocast over float32 weights (on CUDA by
default). Here the same autocast runs on the CPU, for every stage or for
one stage at a time (``STAGES``: the text encoder, the image encoder, the
grounding forwards), so a stage that loses agreement shows by itself. A
stage run in bfloat16 hands float32 tensors on, as the rest of the frame
runs without autocast. CPU and CUDA autocast cast the same kinds of
operations (matrix products, convolutions) to bfloat16, not exactly the
same list.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch

from ..engine.config import ActiveSAMConfig
from ..engine.grounding import EncodedImage, Grounder
from ..engine.pipeline import ActiveSAM
from ..engine.vocabulary import Vocabulary
from .video import agreement

STAGES = ("text", "encode", "decode")
"""Stages that can run in bfloat16 on their own."""

VARIANTS = {"all": STAGES, **{stage: (stage,) for stage in STAGES}, "encode+decode": ("encode", "decode")}
"""Which stages run in bfloat16, by name ("encode+decode": all but the text
encoder, which runs once per vocabulary and costs nothing per frame)."""


def _float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: _float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_float32(v) for v in value)
    return value


class MixedPrecisionGrounder(Grounder):
    """The engine's Grounder with bfloat16 autocast on the named stages only (any device)."""

    def __init__(self, model: torch.nn.Module, device: torch.device, stages: Sequence[str]):
        super().__init__(model, device, torch.bfloat16)
        self.low = frozenset(stages)
        self._stage = ""

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._stage in self.low)

    @contextlib.contextmanager
    def _running(self, stage: str) -> Iterator[None]:
        before, self._stage = self._stage, stage
        try:
            yield
        finally:
            self._stage = before

    def encode_text(self, strings):
        with self._running("text"):
            return _float32(super().encode_text(strings))

    def encode_image(self, rgb, resolution=None) -> EncodedImage:
        with self._running("encode"):
            image = super().encode_image(rgb, resolution)
        image.backbone_out = _float32(image.backbone_out)
        return image

    # The grounding forwards: the decoder (ground and score call it too) and the two heads.
    def decode(self, *args, **kwargs):
        with self._running("decode"):
            return super().decode(*args, **kwargs)

    def instance_logits(self, *args, **kwargs):
        with self._running("decode"):
            return super().instance_logits(*args, **kwargs)

    def fused_scores(self, *args, **kwargs):
        with self._running("decode"):
            return super().fused_scores(*args, **kwargs)


def _labels(model, vocabulary, config: ActiveSAMConfig, frames: Sequence[np.ndarray],
            stages: Optional[Sequence[str]]) -> List[np.ndarray]:
    wrap = None if stages is None else (lambda g: MixedPrecisionGrounder(g.model, g.device, stages))
    engine = ActiveSAM(model, vocabulary, config.replace(dtype="float32"), wrap_grounder=wrap)
    return [engine.segment(frame).labels for frame in frames]


def measure_precision(model: torch.nn.Module, frames: Sequence[np.ndarray], vocabularies: Dict[str, Vocabulary],
                      config: ActiveSAMConfig, modes: Sequence[str] = ("exact", "fast"), threshold: float = 0.99,
                      progress: Optional[Callable[[str], None]] = None) -> List[Dict[str, Any]]:
    """Per vocabulary and mode: agreement of bfloat16 everywhere with float32
    on every frame, and, where it falls below ``threshold``, of each stage
    alone in bfloat16."""
    rows = []
    for name, vocabulary in vocabularies.items():
        for mode in modes:
            cfg = config.replace(mode=mode)
            reference = _labels(model, vocabulary, cfg, frames, None)
            variants = ["all"]
            while variants:
                variant = variants.pop(0)
                labels = _labels(model, vocabulary, cfg, frames, VARIANTS[variant])
                per_frame = [agreement(a, b) for a, b in zip(labels, reference)]
                row = {"vocabulary": name, "mode": mode, "bfloat16": variant, "frames": len(frames),
                       "agreement_mean": float(np.mean(per_frame)), "agreement_worst": float(np.min(per_frame)),
                       "agreement_per_frame": [round(a, 4) for a in per_frame]}
                rows.append(row)
                if progress is not None:
                    progress(f"{name} {mode} bfloat16 {variant}: {100 * row['agreement_mean']:.1f} % "
                             f"(worst {100 * row['agreement_worst']:.1f} %)")
                if variant == "all" and row["agreement_mean"] < threshold:
                    variants += [v for v in VARIANTS if v != "all"]
    return rows


def precision_table(rows: Sequence[Dict[str, Any]]) -> str:
    lines = ["| vocabulary | mode | in bfloat16 | frames | agreement mean | worst |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['vocabulary']} | {r['mode']} | {r['bfloat16']} | {r['frames']} | "
                     f"{100 * r['agreement_mean']:.2f} % | {100 * r['agreement_worst']:.2f} % |")
    return "\n".join(lines)
