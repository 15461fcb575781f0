"""How much memory SAM 3 needs: the model, and the peak of each stage the
engine runs, as a function of the input size, the prompts per forward and
the compute dtype.

The coefficients are fitted to peaks measured at the released size
(``activesam bench --memory``; docs/memory.md has the measurements and the
check on prompt counts the fit did not see). A stage's peak is what it
holds at once on top of the model and its inputs:

    fixed + per_token * T + per_token_squared * T**2 + K * (per_prompt + per_prompt_token * T)

with T the image tokens (``(resolution / patch) ** 2``) and K the prompts
of the forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

STAGES = ("exact", "fast", "presence")
"""Grounding forwards: exact mode's decode (sam3's heads, fused at the
frame's size), fast mode's decode (fused score maps), and the preview's
presence-only decode."""

PATCH = 14
"""The released ViT's patch size."""

MARGIN = 0.2
"""Share of a predicted peak kept free on top of it when a bucket is
fitted to free memory: CUDA's allocator rounds and fragments, and the fit
is within a few percent (docs/memory.md)."""


def tokens(resolution: int, patch: int = PATCH) -> float:
    """Image tokens of the ViT at ``resolution`` px."""
    return float((resolution // patch) ** 2)


@dataclass(frozen=True)
class StageFit:
    """A stage's peak in bytes (see the module doc)."""

    fixed: float = 0.0
    per_token: float = 0.0
    per_token_squared: float = 0.0
    per_prompt: float = 0.0
    per_prompt_token: float = 0.0

    def bytes(self, image_tokens: float, prompts: int = 0) -> float:
        return (self.fixed + self.per_token * image_tokens + self.per_token_squared * image_tokens ** 2
                + prompts * (self.per_prompt + self.per_prompt_token * image_tokens))


@dataclass(frozen=True)
class FrameShape:
    """What one frame runs: its input sizes and how many prompts each step sees."""

    resolution: int          # the full-resolution encode and decode
    preview_resolution: int
    screen_resolution: int   # fast mode's screening preview
    queries: int             # the vocabulary's queries
    active: int              # queries decoded at full resolution
    bucket: int              # prompts per grounding forward at most
    frame_pixels: int        # the camera frame's height x width (exact mode fuses there)
    kept: int = 5            # object queries above the confidence threshold per prompt (exact mode)


@dataclass(frozen=True)
class MemoryModel:
    """Fitted peaks for one compute dtype (bytes; see the module doc)."""

    dtype: str
    weights_bytes: float             # the image model's tensors as loaded (float32)
    encode: StageFit
    features_per_token: float        # what an encoded image holds while its prompts decode
    stages: Mapping[str, StageFit]   # STAGES
    instances_per_query_pixel: float  # exact mode: one prompt's object masks fused at the frame size
    num_queries: int = 200           # object queries per prompt (sam3's decoder)

    def encode_bytes(self, resolution: int) -> float:
        """Peak of an image encode on top of the model."""
        return max(0.0, self.encode.bytes(tokens(resolution)))

    def forward_bytes(self, stage: str, resolution: int, prompts: int, frame_pixels: int = 0,
                      kept: Optional[int] = None) -> float:
        """Peak of one grounding forward of ``prompts`` prompts on top of the
        model: the encoded image it reads, its own peak and, in exact mode,
        the fusion of one prompt's ``kept`` object masks at the frame size
        (None: all of them, the most an image full of instances keeps)."""
        t = tokens(resolution)
        out = self.features_per_token * t + max(0.0, self.stages[stage].bytes(t, prompts))
        if stage == "exact":
            out += self.instances_per_query_pixel * (self.num_queries if kept is None else kept) * frame_pixels
        return out

    def steps(self, mode: str, frame: FrameShape, reuse: bool = False) -> Dict[str, float]:
        """Peak of each step of one frame on top of the model. ``reuse``: a
        stream frame that decodes the previous active set (no preview)."""
        f = frame
        decode = "exact" if mode == "exact" else "fast"
        out = {"encode": self.encode_bytes(f.resolution),
               "decode": self.forward_bytes(decode, f.resolution, min(f.bucket, f.active), f.frame_pixels, f.kept)}
        if reuse or f.queries <= f.active:
            return out
        previewed = f.queries
        if mode == "fast":
            out["screen_encode"] = self.encode_bytes(f.screen_resolution)
            out["screen"] = self.forward_bytes("presence", f.screen_resolution, min(f.bucket, f.queries))
            previewed = math.ceil(SCREEN_KEEP * f.queries)
        out["preview_encode"] = self.encode_bytes(f.preview_resolution)
        out["preview"] = self.forward_bytes("presence", f.preview_resolution, min(f.bucket, previewed))
        return out

    def frame_bytes(self, mode: str, frame: FrameShape, reuse: bool = False) -> float:
        """Peak memory of one frame, the model included."""
        return self.weights_bytes + max(self.steps(mode, frame, reuse).values())

    def largest_bucket(self, free_bytes: float, stage: str, resolution: int, frame_pixels: int = 0,
                       margin: float = MARGIN, limit: int = 256, kept: Optional[int] = None) -> int:
        """The most prompts per forward whose peak, plus ``margin`` of it,
        fits ``free_bytes`` (memory free beside the loaded model); 0 when
        not even one prompt fits."""
        best = 0
        for k in range(1, limit + 1):
            if self.forward_bytes(stage, resolution, k, frame_pixels, kept) * (1 + margin) > free_bytes:
                break
            best = k
        return best


SCREEN_KEEP = 0.4
"""Fast mode's default share of queries the screen passes on (``fast_screen_keep``)."""


def from_fit(dtype: str, fitted: Mapping[str, object]) -> MemoryModel:
    """A MemoryModel from ``benchmark.memory.fit``'s entry for one dtype."""
    stages = {name: StageFit(**coefficients) for name, coefficients in fitted["stages"].items()}  # type: ignore[union-attr]
    return MemoryModel(
        dtype=dtype,
        weights_bytes=float(fitted["model_tensor_bytes"]),  # type: ignore[arg-type]
        encode=stages.pop("encode"),
        features_per_token=float(fitted["features_per_token"]),  # type: ignore[arg-type]
        stages=stages,
        instances_per_query_pixel=float(fitted["instances_per_query_pixel"]),  # type: ignore[arg-type]
    )


RELEASED: Dict[str, Dict[str, object]] = {
    "float32": {
        "stages": {
            "encode": {"fixed": 1.90194e+07, "per_token": 44124.9, "per_token_squared": 1.90104,
                      "per_prompt": 0, "per_prompt_token": 0},
            "exact": {"fixed": -1.29977e+06, "per_token": 31725.9, "per_token_squared": 0,
                      "per_prompt": 1.82035e+06, "per_prompt_token": 37292.5},
            "fast": {"fixed": -477539, "per_token": 31488.2, "per_token_squared": 0,
                      "per_prompt": 1.97459e+06, "per_prompt_token": 38335.6},
            "presence": {"fixed": -3.32809e+06, "per_token": 6490.28, "per_token_squared": 0,
                      "per_prompt": 5.85075e+06, "per_prompt_token": 18415.5},
        },
        "features_per_token": 43008,
        "instances_per_query_pixel": 8.055,
        "model_tensor_bytes": 3371476184,
    },
}
"""``bench --memory --model released``'s fit (docs/memory.md), per compute
dtype measured: held-out prompt counts within 1.8 %."""


def released(dtype: str = "float32") -> MemoryModel:
    """The released model's memory model in ``dtype`` (one of ``RELEASED``)."""
    if dtype not in RELEASED:
        raise KeyError(f"no memory measurement for {dtype}: measured {', '.join(RELEASED)}")
    return from_fit(dtype, RELEASED[dtype])
