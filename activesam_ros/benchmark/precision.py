"""bfloat16 against float32: how often the labels agree, per frame.

The engine runs the stages named in ``engine.precision.REDUCED`` in
bfloat16 (autocast over float32 weights) and the others in float32. Here
the same autocast runs on any device for three ways of running a frame:
``default`` (the engine's rule), ``all`` (every stage in bfloat16) and,
where ``all`` agrees on less than the threshold, each stage alone, so a
stage that loses agreement shows by itself. CPU and CUDA autocast cast the
same kinds of operations (matrix products, convolutions) to bfloat16, not
exactly the same list.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..engine.config import ActiveSAMConfig
from ..engine.grounding import Grounder
from ..engine.pipeline import ActiveSAM
from ..engine.precision import REDUCED, STAGES
from ..engine.vocabulary import Vocabulary
from .video import agreement

PRECISION_THRESHOLD = 0.99
"""Below this agreement of every stage in bfloat16, each stage alone is measured too."""

VARIANTS: Dict[str, Sequence[str]] = {"default": REDUCED, "all": STAGES, **{stage: (stage,) for stage in STAGES}}
"""The stages each measured variant runs in bfloat16 ("default": the engine's rule)."""


def labels_in(model: torch.nn.Module, vocabulary: Vocabulary, config: ActiveSAMConfig,
              frames: Sequence[np.ndarray], stages: Optional[Sequence[str]]) -> List[np.ndarray]:
    """The labels of ``frames`` with ``stages`` in bfloat16 (None: float32 throughout)."""
    wrap = None if stages is None else (
        lambda g: Grounder(g.model, g.device, torch.bfloat16, compile=g.compile, reduced=stages))
    engine = ActiveSAM(model, vocabulary, config.replace(dtype="float32"), wrap_grounder=wrap)
    return [engine.segment(frame).labels for frame in frames]


def measure_precision(model: torch.nn.Module, frames: Sequence[np.ndarray], vocabularies: Dict[str, Vocabulary],
                      config: ActiveSAMConfig, modes: Sequence[str] = ("exact", "fast"),
                      threshold: float = PRECISION_THRESHOLD,
                      progress: Optional[Callable[[str], None]] = None) -> List[Dict[str, Any]]:
    """Per vocabulary and mode: agreement with float32 on every frame of the
    engine's rule and of bfloat16 everywhere, and, where the latter falls
    below ``threshold``, of each stage alone in bfloat16."""
    rows = []
    for name, vocabulary in vocabularies.items():
        for mode in modes:
            cfg = config.replace(mode=mode)
            reference = labels_in(model, vocabulary, cfg, frames, None)
            variants = ["default", "all"]
            while variants:
                variant = variants.pop(0)
                labels = labels_in(model, vocabulary, cfg, frames, VARIANTS[variant])
                per_frame = [agreement(a, b) for a, b in zip(labels, reference)]
                row = {"vocabulary": name, "mode": mode, "variant": variant, "bfloat16": list(VARIANTS[variant]),
                       "frames": len(frames), "agreement_mean": float(np.mean(per_frame)),
                       "agreement_worst": float(np.min(per_frame)),
                       "agreement_per_frame": [round(a, 4) for a in per_frame]}
                rows.append(row)
                if progress is not None:
                    progress(f"{name} {mode} bfloat16 {variant} ({'+'.join(row['bfloat16'])}): "
                             f"{100 * row['agreement_mean']:.1f} % (worst {100 * row['agreement_worst']:.1f} %)")
                if variant == "all" and row["agreement_mean"] < threshold:
                    variants += [stage for stage in STAGES if (stage,) != tuple(REDUCED)]
    return rows


def precision_table(rows: Sequence[Dict[str, Any]]) -> str:
    lines = ["| vocabulary | mode | variant | in bfloat16 | frames | agreement mean | worst |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['vocabulary']} | {r['mode']} | {r['variant']} | {', '.join(r['bfloat16'])} | "
                     f"{r['frames']} | {100 * r['agreement_mean']:.2f} % | {100 * r['agreement_worst']:.2f} % |")
    return "\n".join(lines)
