"""Peak memory of SAM 3's stages, measured, and the fit behind
``engine.memory_model``.

What is measured: the operating system's high-water mark of the process's
resident memory (``VmHWM``), reset before each stage through
``/proc/self/clear_refs``, minus the resident memory when the stage starts:
the most memory the stage held at once on top of the model and whatever
its inputs already held (tensors, the allocator's and the kernels' scratch).
Workers run with a fixed glibc mmap threshold (``MALLOC_MMAP_THRESHOLD_``)
so every large block goes back to the system when freed and resident
memory follows what is really live. Linux only.

Each grounding forward runs as on an accelerator, where the memory model is
used: autocast in the compute dtype (on the CPU too) over every stage
(``precision.STAGES``) and fast mode's heads
over the whole bucket at once (the engine chunks them on a CPU only).

A plan is a list of points (stage, resolution, K prompts); one worker
process per compute dtype builds the model once and measures every point,
one JSON line each. ``fit`` turns the points into ``StageFit`` coefficients
and checks them on the points held out.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from ..engine.memory_model import STAGES, StageFit, tokens

MMAP_THRESHOLD = 65536
"""glibc serves blocks of this size or more with their own mapping, returned when freed."""

FRAME_SIZE = (480, 640)
"""Height and width of the camera frame the exact stage fuses at (VGA)."""

PROMPTS = ("person", "car", "tree", "building", "road", "sky", "chair", "table", "dog", "cat", "bicycle",
           "window", "door", "floor", "wall", "grass")
"""Text prompts of the grounding forwards (K of them, in this order)."""


@dataclass(frozen=True)
class Point:
    """One measurement: a stage at an input size with K prompts."""

    stage: str            # "encode" or one of STAGES
    resolution: int
    prompts: int = 0      # 0 for the image encode
    held_out: bool = False  # measured to check the fit, not fitted on


def _grid(stage: str, resolutions: Sequence[int], fit_ks: Sequence[int],
          held: Dict[int, Sequence[int]]) -> List[Point]:
    out = [Point(stage, r, k) for r in resolutions for k in fit_ks]
    out += [Point(stage, r, k, held_out=True) for r, ks in held.items() for k in ks]
    return out


def released_plan() -> List[Point]:
    """The points measured on the released architecture: every encode at the
    full (1008, 644), preview (672) and screen (336) sizes; exact and fast
    decodes at 1008 and 644; the preview's presence-only decode at 672 and
    336; K = 1, 2, 4, 8 fitted, K = 12 (decodes) and 16 (presence) held out.
    About 15 minutes per dtype on 2 cores."""
    encodes = [Point("encode", r) for r in (1008, 672, 644, 336)]
    return (encodes
            + _grid("exact", (1008, 644), (1, 2, 4, 8), {1008: (12,), 644: (6,)})
            + _grid("fast", (1008, 644), (1, 2, 4, 8), {1008: (12,), 644: (6,)})
            + _grid("presence", (672, 336), (1, 2, 4, 8), {672: (16,)})
            + [Point("instances", 1008, 1)])


def tiny_plan(resolution: int = 224) -> List[Point]:
    """A plan for the tiny model (seconds): each stage at two sizes, K = 1, 2, 4 and 3 held out."""
    small = resolution // 2
    return ([Point("encode", resolution), Point("encode", small)]
            + [p for stage in STAGES for p in _grid(stage, (resolution, small), (1, 2, 4), {resolution: (3,)})]
            + [Point("instances", resolution, 1)])


# -- inside a worker -----------------------------------------------------------------


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1))


def resident_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def measure_peak(fn: Callable[[], Any]) -> tuple:
    """(fn's result, the most resident memory it added at once, seconds)."""
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts at the current size
    before = resident_bytes()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    return out, _status_kib("VmHWM") * 1024 - before, seconds


def accelerator_like_grounder(model, dtype_name: str):
    """The engine's Grounder on the CPU, running as it does on an
    accelerator (see the module doc)."""
    import torch

    from ..engine import fused_heads
    from ..engine.grounding import Grounder
    from ..engine.precision import STAGES

    class WholeBucketHeads(fused_heads.FusedHeads):
        @staticmethod
        def chunk_size(k, channels, height, width, device):
            return k

    class AcceleratorLike(Grounder):
        @property
        def fused_heads(self):
            if self._fused is None:
                self._fused = WholeBucketHeads(self.model)
            return self._fused

    return AcceleratorLike(model, torch.device("cpu"), getattr(torch, dtype_name), reduced=STAGES)


def _frame() -> "Any":
    import numpy as np

    rng = np.random.default_rng(0)
    height, width = FRAME_SIZE
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def run_points(grounder, points: Sequence[Point], emit: Callable[[Dict[str, Any]], None]) -> None:
    """Measure ``points`` (grouped by resolution, encode first) with ``grounder``."""
    from ..engine.grounding import TextBatch
    from ..engine.scoring import exact_query_scores

    rgb = _frame()
    height, width = FRAME_SIZE
    texts: Dict[int, TextBatch] = {}

    def text(k: int) -> TextBatch:
        if k not in texts:
            prompts = [PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" {i}") for i in range(k)]
            out = grounder.encode_text(prompts)
            texts[k] = TextBatch(out["language_features"], out["language_mask"])
        return texts[k]

    stages = {
        # Fused at the frame size with no instance above the threshold: what
        # does not depend on the scores (the instances' part is "instances").
        "exact": lambda image, t: exact_query_scores(grounder.ground(image, t, share=True), 1.0, height, width),
        "fast": lambda image, t: grounder.score(image, t, 0.3, 0.0),
        "presence": lambda image, t: grounder.ground(image, t, heads=False, share=True),
    }
    def at_resolution(resolution: int, at: Sequence[Point]) -> None:
        for k in {1} | {p.prompts for p in at if p.prompts}:
            text(k)
        base = resident_bytes()
        image, peak, seconds = measure_peak(lambda: grounder.encode_image(rgb, resolution))
        retained = resident_bytes() - base
        for p in at:
            if p.stage == "encode":
                emit({**asdict(p), "peak_bytes": peak, "retained_bytes": retained, "seconds": seconds})
        for stage in dict.fromkeys(p.stage for p in at if p.stage in stages):
            stages[stage](image, text(1))  # first calls build what later ones reuse (fast heads, tables)
        for p in at:
            if p.stage == "instances":
                # Every object query's mask fused at the frame size (the most
                # an image with many instances can keep), on top of the decode's outputs.
                g = grounder.ground(image, text(p.prompts), share=True)
                _, peak, seconds = measure_peak(lambda: exact_query_scores(g, -1.0, height, width))
                emit({**asdict(p), "peak_bytes": peak, "seconds": seconds, "frame_pixels": height * width,
                      "queries": int(g.pred_logits.shape[1])})
                del g
            elif p.stage != "encode":
                _, peak, seconds = measure_peak(lambda: stages[p.stage](image, text(p.prompts)))
                emit({**asdict(p), "peak_bytes": peak, "seconds": seconds})

    for resolution in dict.fromkeys(p.resolution for p in points):
        at_resolution(resolution, [p for p in points if p.resolution == resolution])


def worker(model_name: str, dtype_name: str, points: Sequence[Point], seed: int = 0) -> None:
    """A worker process's work: build the model, measure, one JSON line per point on stdout."""
    import torch

    from ..engine.model import build_model_with_random_weights

    torch.set_grad_enabled(False)
    base = resident_bytes()
    start = time.perf_counter()
    model = build_model_with_random_weights(model_name, seed=seed)
    model_bytes = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))

    def emit(row: Dict[str, Any]) -> None:
        print(json.dumps({"dtype": dtype_name, **row}), flush=True)

    emit({"stage": "model", "resident_bytes": resident_bytes() - base, "tensor_bytes": model_bytes,
          "seconds": time.perf_counter() - start})
    run_points(accelerator_like_grounder(model, dtype_name), points, emit)


# -- the parent --------------------------------------------------------------------


def measure(model_name: str, dtypes: Iterable[str], points: Sequence[Point], threads: int = 2,
            progress: Optional[Callable[[str], None]] = None) -> List[Dict[str, Any]]:
    """Every point in every dtype, one worker process per dtype."""
    if not Path("/proc/self/clear_refs").exists():
        raise RuntimeError("measuring peak memory needs Linux (/proc/self/clear_refs)")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD), OMP_NUM_THREADS=str(threads),
               TORCHDYNAMO_DISABLE=os.environ.get("TORCHDYNAMO_DISABLE", "1"),
               # The workers import this very package, wherever it was imported from.
               PYTHONPATH=os.pathsep.join(filter(None, (str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH")))))
    rows: List[Dict[str, Any]] = []
    for dtype in dtypes:
        spec = json.dumps({"model": model_name, "dtype": dtype, "points": [asdict(p) for p in points]})
        cmd = [sys.executable, "-m", "activesam_ros.benchmark.memory", spec]
        with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                row = json.loads(line)
                rows.append(row)
                if progress is not None:  # the whole row: a long run's log keeps every measurement
                    progress(f"{dtype} {row['stage']} {row.get('resolution', '')} px K={row.get('prompts', 0)}: "
                             f"{row.get('peak_bytes', row.get('resident_bytes', 0)) / 2**20:.0f} MiB "
                             f"{json.dumps(row)}")
        if proc.returncode:
            raise RuntimeError(f"the {dtype} memory worker failed (exit {proc.returncode})")
    return rows


def _solve(rows: Sequence[Dict[str, Any]], columns: Callable[[Dict[str, Any]], List[float]]) -> List[float]:
    """Least squares in bytes: the largest peaks, those that decide whether a
    bucket fits, weigh the most (numpy)."""
    import numpy as np

    a = np.array([columns(r) for r in rows], dtype=float)
    b = np.array([r["peak_bytes"] for r in rows], dtype=float)
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    return [float(c) for c in coef]


def fit(rows: Sequence[Dict[str, Any]], patch: int = 14) -> Dict[str, Any]:
    """Coefficients per dtype and stage, and every point's measured and
    predicted peak (held-out points marked)."""
    out: Dict[str, Any] = {}
    for dtype in sorted({r["dtype"] for r in rows}):
        mine = [r for r in rows if r["dtype"] == dtype]
        fits: Dict[str, StageFit] = {}
        for stage in ("encode",) + STAGES:
            points = [r for r in mine if r["stage"] == stage]
            fitted = [r for r in points if not r["held_out"]]
            if not fitted:
                continue
            if stage == "encode":
                # Per image token, and per token squared (attention over the global blocks).
                c = _solve(fitted, lambda r: [1.0, tokens(r["resolution"], patch), tokens(r["resolution"], patch) ** 2])
                fits[stage] = StageFit(fixed=c[0], per_token=c[1], per_token_squared=c[2])
            else:
                # A part per forward and a part per prompt, each fixed plus per image token.
                sizes = {r["resolution"] for r in fitted}

                def cols(r: Dict[str, Any]) -> List[float]:
                    t, k = tokens(r["resolution"], patch), r["prompts"]
                    return [1.0, t, k, k * t] if len(sizes) > 1 else [1.0, k]

                c = _solve(fitted, cols)
                fits[stage] = (StageFit(fixed=c[0], per_token=c[1], per_prompt=c[2], per_prompt_token=c[3])
                               if len(sizes) > 1 else StageFit(fixed=c[0], per_prompt=c[1]))
        retained = [r for r in mine if r["stage"] == "encode"]
        features = _solve([{**r, "peak_bytes": r["retained_bytes"]} for r in retained],
                          lambda r: [tokens(r["resolution"], patch)]) if retained else [0.0]
        checks = []
        for r in mine:
            if r["stage"] in fits:
                predicted = fits[r["stage"]].bytes(tokens(r["resolution"], patch), r["prompts"])
                checks.append({"stage": r["stage"], "resolution": r["resolution"], "prompts": r["prompts"],
                               "held_out": r["held_out"], "measured_bytes": r["peak_bytes"],
                               "predicted_bytes": round(predicted),
                               "error": round(predicted / max(r["peak_bytes"], 1) - 1, 4)})
        model = next((r for r in mine if r["stage"] == "model"), {})
        instances = [r["peak_bytes"] / (r["frame_pixels"] * r["queries"]) for r in mine if r["stage"] == "instances"]
        out[dtype] = {"stages": {name: asdict(f) for name, f in fits.items()},
                      "features_per_token": features[0],
                      "instances_per_query_pixel": max(instances, default=0.0),
                      "model_tensor_bytes": model.get("tensor_bytes"),
                      "model_resident_bytes": model.get("resident_bytes"),
                      "checks": checks,
                      "worst_held_out_error": max((abs(c["error"]) for c in checks if c["held_out"]), default=None)}
    return out


def main(argv: Sequence[str]) -> int:
    spec = json.loads(argv[0])
    worker(spec["model"], spec["dtype"], [Point(**p) for p in spec["points"]], seed=spec.get("seed", 0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
