"""``run_benchmark``: ActiveSAM's speed, overhead, agreement and scaling in one run.

Three sections share one model and one machine state:

- **photographs**: full-vocabulary decoding (every query decoded at full
  resolution, as SAM 3 and SegEarth-OV3 do), ActiveSAM exact and fast, per
  stage, on the scikit-image photographs;
- **video**: the same modes plus temporal reuse (a stream with the fast
  engine) on the synthetic video; per-frame modes run on every
  ``reference_every``-th frame, the stream on all of them;
- **scaling**: fast, exact and temporal reuse for each vocabulary size, with
  a fresh engine per size so its text encodings and peak memory are its own.

Every engine runs each mode on two frames, untimed, before it is timed
(``_warm``): first calls pay for resolution views, fast mode's heads and
allocator pools, which would otherwise land in whichever mode ran first.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from ..engine.config import ActiveSAMConfig
from ..engine.pipeline import ActiveSAM
from ..engine.vocabulary import canonicalize
from ..stream.runtime import StreamProcessor
from ..stream.temporal import TemporalConfig
from .inputs import PHOTOS, SyntheticVideo, class_names, load_photos
from .measure import MemoryProbe, Mode, ModeRecord, TimedGrounder, build_messages, run_frames, timed_engine
from .summary import figures, speedups, summarize

VIDEO_BACKGROUNDS = ("chelsea.png", "coffee.png")


@dataclass(frozen=True)
class BenchPlan:
    """How much the benchmark runs. ``FULL`` is the reference run;
    ``QUICK`` keeps every section but fewer, smaller frames."""

    photos: Tuple[str, ...] = PHOTOS
    photo_side: int = 500            # longer side of the photographs, px
    photo_repeats: int = 3           # passes over the photographs
    video_frames: int = 300
    video_side: int = 500            # video width, px (height 3/4 of it)
    vocabulary_size: int = 150       # |V| of the photographs and the video
    reference_every: int = 1         # per-frame modes on every k-th video frame
    vocabulary_sizes: Tuple[int, ...] = (20, 50, 150, 500, 1000)
    scaling_frames: int = 5          # video frames per per-frame mode and |V|
    scaling_stream_frames: int = 12  # video frames of temporal reuse per |V|


FULL = BenchPlan()
QUICK = BenchPlan(photos=PHOTOS[:1], photo_side=320, photo_repeats=1, video_frames=12, video_side=320,
                  vocabulary_size=60, reference_every=6, vocabulary_sizes=(20, 50, 1000),
                  scaling_frames=1, scaling_stream_frames=2)


def _modes(engine: ActiveSAM, config: ActiveSAMConfig, temporal: TemporalConfig,
           names: Sequence[str]) -> Sequence[Mode]:
    """The named modes over ``engine``'s current vocabulary."""
    queries = len(engine.vocabulary.queries)
    fast = config.replace(mode="fast")
    build: Dict[str, Callable[[], Mode]] = {
        "full_vocabulary": lambda: Mode("full_vocabulary",
                                        config.replace(mode="exact", max_active=max(config.max_active, queries))),
        "exact": lambda: Mode("exact", config.replace(mode="exact")),
        "fast": lambda: Mode("fast", fast),
        "temporal": lambda: Mode("temporal", fast, StreamProcessor(engine, temporal)),
    }
    return [build[name]() for name in names]


def _measure(engine: ActiveSAM, timer: TimedGrounder, modes: Sequence[Mode],
             frames: Sequence[np.ndarray], runs_on: Callable[[Mode, int], bool],
             probe: Optional[MemoryProbe], progress: bool, desc: str) -> Dict[str, ModeRecord]:
    """``run_frames`` with a progress bar on stderr."""
    with tqdm(total=len(frames), desc=desc, unit="frame", disable=not progress, file=sys.stderr, leave=False) as bar:
        return run_frames(engine, timer, modes, frames, runs_on, probe, bar.update)


WARM_FRAMES = 2
"""Frames each mode runs before it is timed: a stream's first frame
refreshes and its second reuses, so both paths are warm."""


def _warm(engine: ActiveSAM, timer: TimedGrounder, config: ActiveSAMConfig, temporal: TemporalConfig,
          names: Sequence[str], frames: Sequence[np.ndarray]) -> None:
    """Run the named modes on ``frames`` untimed: first calls build views,
    fused heads and allocator pools that no later frame pays for."""
    run_frames(engine, timer, _modes(engine, config, temporal, names), list(frames)[:WARM_FRAMES],
               lambda mode, i: True)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> Optional[str]:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(device: torch.device) -> Dict[str, Any]:
    """What the numbers were measured on, so runs on two machines can be read side by side."""
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model(),
        "torch": torch.__version__,
        "sam3": _version("sam3"),
        "activesam_ros": _version("activesam_ros"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def _load_average() -> Optional[Tuple[float, ...]]:
    """The machine's load (1, 5, 15 min): other jobs make absolute times noisy."""
    return tuple(round(x, 2) for x in os.getloadavg()) if hasattr(os, "getloadavg") else None


def _text_bytes(engine: ActiveSAM) -> int:
    """Bytes held for the vocabulary's text: the cached encodings of every
    query and hypernym string, and the per-query context tokens."""
    probe = [canonicalize(engine.vocabulary.queries[0])]
    batch = engine.text.batch(probe)
    entry = batch.features.nbytes + batch.mask.nbytes + engine.text.pooled(probe).nbytes
    tokens = engine.config.neighbour_tokens + engine.config.hypernym_tokens
    width = batch.features.shape[-1]
    return len(engine.text) * entry + len(engine.vocabulary.queries) * tokens * (4 * width + 1)


def _engine(model: torch.nn.Module, config: ActiveSAMConfig,
            names: Sequence[str]) -> Tuple[ActiveSAM, TimedGrounder, Dict[str, Any]]:
    """A fresh engine (own text cache) with timed forwards, and what preparing
    ``names`` cost: the one-time text stage (encodings and context tokens)."""
    engine, timer = timed_engine(model, ["object"], config)
    start = time.perf_counter()
    engine.set_vocabulary(names)
    text = {
        "prepare_s": time.perf_counter() - start,
        "text_forward_s": timer.seconds["encode_text"],
        "text_strings": len(engine.text),
        "text_bytes": _text_bytes(engine),
    }
    return engine, timer, text


def _scaling_row(model: torch.nn.Module, config: ActiveSAMConfig, temporal: TemporalConfig,
                 names: Sequence[str], video: SyntheticVideo, plan: BenchPlan,
                 probe: MemoryProbe, progress: bool) -> Dict[str, Any]:
    """Fast, exact and temporal reuse with a fresh engine for ``names``."""
    baseline = probe.current()
    engine, timer, text = _engine(model, config, names)
    kinds = ("fast", "exact", "temporal")
    _warm(engine, timer, config, temporal, kinds, [video[0], video[1]])
    modes = _modes(engine, config, temporal, kinds)  # a fresh stream: its first frame refreshes
    count = max(plan.scaling_frames, plan.scaling_stream_frames)
    records = _measure(engine, timer, modes, [video[i] for i in range(count)],
                       lambda mode, i: mode.stream is not None or i < plan.scaling_frames,
                       probe, progress, f"|V|={len(names)}")
    # A stream's steady state: one refresh per refresh interval.
    steady = {"refresh": 1 / temporal.refresh_interval, "reuse": 1 - 1 / temporal.refresh_interval, "frame": 1.0}
    return {
        "vocabulary_size": len(names),
        **text,
        "baseline_bytes": baseline,
        "modes": {name: summarize(record, steady if name == "temporal" else None, baseline)
                  for name, record in records.items()},
    }


def run_benchmark(
    model: torch.nn.Module,
    model_description: str,
    random_weights: bool,
    config: ActiveSAMConfig = ActiveSAMConfig(),
    temporal: TemporalConfig = TemporalConfig(),
    plan: BenchPlan = FULL,
    progress: bool = False,
) -> Dict[str, Any]:
    """Run every section of ``plan`` on ``model`` and return the report
    (JSON-ready). ``config`` is the base of every mode (its ``mode`` and,
    for full-vocabulary decoding, ``max_active`` are set per mode)."""
    started, load_start = time.perf_counter(), _load_average()
    photos = load_photos(plan.photos, plan.photo_side)
    backgrounds = load_photos(VIDEO_BACKGROUNDS, 2 * plan.video_side)
    video = SyntheticVideo([backgrounds[n] for n in VIDEO_BACKGROUNDS], plan.video_frames,
                           plan.video_side, plan.video_side * 3 // 4)
    names, sources = class_names(max(plan.vocabulary_size, *plan.vocabulary_sizes))
    engine, timer, text = _engine(model, config, names[: plan.vocabulary_size])
    device = engine.device
    probe = MemoryProbe(device)
    first = next(iter(photos.values()))
    engine.reconfigure(config.replace(mode="fast"))
    build_messages(first, engine.segment(first), config.confidence_threshold)  # warm-up, not measured
    _warm(engine, timer, config, temporal, ("full_vocabulary", "exact", "fast", "temporal"), [first, video[0]])

    photo_modes = _modes(engine, config, temporal, ("full_vocabulary", "exact", "fast"))
    photo_records = _measure(engine, timer, photo_modes, list(photos.values()) * plan.photo_repeats,
                             lambda mode, i: True, None, progress, "photographs")
    video_modes = _modes(engine, config, temporal, ("full_vocabulary", "exact", "fast", "temporal"))
    video_records = _measure(engine, timer, video_modes, video,
                             lambda mode, i: mode.stream is not None or i % plan.reference_every == 0,
                             None, progress, "video")
    video_summary = {name: summarize(record) for name, record in video_records.items()}
    buckets = engine.buckets.report()
    del engine, timer, photo_modes, video_modes  # the scaling engines measure memory from here
    rows = [_scaling_row(model, config, temporal, names[:size], video, plan, probe, progress)
            for size in plan.vocabulary_sizes]

    report: Dict[str, Any] = {
        "schema": "activesam-bench/1",
        "plan": asdict(plan),
        "environment": {**environment(device), "load_average_start": load_start},
        "model": {
            "description": model_description,
            "random_weights": random_weights,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "config": config.as_dict(),
        "temporal": asdict(temporal),
        "vocabulary_sources": sources,
        "photos": {
            "images": list(photos), "repeats": plan.photo_repeats, "max_side": plan.photo_side,
            "vocabulary_size": plan.vocabulary_size, "text": text,
            "modes": {name: summarize(record) for name, record in photo_records.items()},
        },
        "video": {
            "frames": plan.video_frames, "width": video.width, "height": video.height,
            "vocabulary_size": plan.vocabulary_size, "reference_every": plan.reference_every,
            "modes": video_summary, "speedups": speedups(video_summary, ("full_vocabulary", "fast")),
        },
        "scaling": {"vocabulary_sizes": list(plan.vocabulary_sizes), "memory_method": probe.method, "rows": rows},
        **buckets,
    }
    report["figures"] = figures(report)
    report["environment"]["load_average_end"] = _load_average()
    report["wall_seconds"] = time.perf_counter() - started
    return report
