"""``activesam bench --gpu``: the measurements a first run on a GPU needs, in
one command (a few minutes on one GPU at SAM 3's released size).

- **forwards**: the image encode at the full input size, and one bucket of
  prompts through the decoder, the heads and the labels (``segment`` of a
  prefetched frame, the image's prompt-independent part already done) at
  each bucket size, in exact and fast mode: milliseconds, and per prompt;
- **frames**: a synthetic camera video through the four ways of running a
  stream (per-frame exact, per-frame fast, stream reuse, reuse with
  propagation: ``benchmark.video.policies``) for each vocabulary:
  milliseconds per camera frame, the share of frames the model ran on, peak
  device memory, and for one per-frame exact and fast frame the host
  synchronisations (``host_syncs``), the aten operations and, on CUDA, the
  kernels launched and the synchronising runtime calls (torch.profiler);
- **agreement**: the labels of the compute dtype (bfloat16 on CUDA, in the
  stages ``engine.precision.REDUCED`` names) against float32, per mode.

Times are medians (forwards) or means (frames) of wall time with the device
synchronised around each call. Without CUDA the same code runs on the CPU
(in float32 unless ``--dtype bfloat16``: the two then agree by
construction), which is how the test suite keeps it working.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..engine.config import ActiveSAMConfig
from ..engine.pipeline import ActiveSAM
from ..engine.vocabulary import load_vocabulary_file
from ..stream.runtime import MODEL, Frame, StreamProcessor
from ..stream.temporal import TemporalConfig
from .host_syncs import HostSyncs
from .inputs import SyntheticVideo, class_names, load_photos
from .measure import MemoryProbe
from .run import VIDEO_BACKGROUNDS, environment
from .video import agreement, policies

VOCABULARY_TITLES = {"ade20k": "ADE20K-150", "voc21": "VOC-21"}


@dataclass(frozen=True)
class GpuPlan:
    """How much ``--gpu`` measures. ``GPU`` is the reference run; ``GPU_QUICK``
    the same sections with the least that still means something."""

    buckets: Tuple[int, ...] = (1, 8, 32)
    vocabularies: Tuple[str, ...] = ("ade20k", "voc21")
    width: int = 640                 # camera frame, px
    height: int = 480
    frames: int = 16                 # video frames per way of running a stream
    fps: float = 15.0
    model_every: int = 4             # the propagation policy's model cadence
    repeats: int = 5                 # timed calls per forward (median)
    agreement_frames: int = 4
    warm_frames: int = 2             # untimed frames through each way of running a stream first


GPU = GpuPlan()
GPU_QUICK = GpuPlan(buckets=(1, 8), vocabularies=("voc21",), width=160, height=120, frames=4, model_every=2,
                    repeats=1, agreement_frames=1, warm_frames=1)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one call, the device synchronised at both ends."""
    _synchronize(device)
    start = time.perf_counter()
    fn()
    _synchronize(device)
    return time.perf_counter() - start


def _median_ms(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    fn()  # warm: views, heads, allocator pools, compiled graphs
    return 1000 * statistics.median(_timed(fn, device) for _ in range(repeats))


SYNCHRONIZING_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


def count_frame(fn: Callable[[], Any], device: torch.device) -> Dict[str, Optional[int]]:
    """What one call asks of the device: host synchronisations (counted by
    ``HostSyncs``), aten operations, and on CUDA the kernels launched and the
    runtime calls that make the host wait (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        with HostSyncs(device) as syncs:
            fn()
        _synchronize(device)
    events = prof.events()
    cuda = device.type == "cuda"
    return {
        "host_syncs": syncs.total,
        "aten_ops": sum(1 for e in events if e.name.startswith("aten::")),
        "kernel_launches": sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA) if cuda else None,
        "synchronizing_calls": sum(1 for e in events if e.name in SYNCHRONIZING_CALLS) if cuda else None,
    }


def measure_forwards(engine: ActiveSAM, rgb: np.ndarray, plan: GpuPlan) -> Dict[str, Any]:
    """The image encode, and one bucket of K prompts per mode and bucket size."""
    device, grounder = engine.device, engine.grounder
    pixels = grounder.upload(rgb)
    encode = _median_ms(lambda: grounder.encode_image(pixels, engine.resolution), device, plan.repeats)
    names, _ = class_names(max(plan.buckets))
    base = engine.config
    rows = []
    for bucket in plan.buckets:
        engine.set_vocabulary(names[:bucket])
        row: Dict[str, Any] = {"bucket": bucket}
        for mode in ("exact", "fast"):
            engine.reconfigure(base.replace(mode=mode, bucket_size=bucket, max_active=max(bucket, base.max_active)))
            queries = list(range(bucket))
            ahead = engine.prefetch(rgb, queries)
            ms = _median_ms(lambda a=ahead, q=queries: engine.segment(rgb, q, prefetched=a), device, plan.repeats)
            row[f"{mode}_ms"], row[f"{mode}_ms_per_prompt"] = ms, ms / bucket
        rows.append(row)
    engine.reconfigure(base)
    return {"image_encode_ms": encode, "resolution": engine.resolution, "grounding": rows}


def _run_policy(engine: ActiveSAM, policy, video: SyntheticVideo, plan: GpuPlan, probe: MemoryProbe
                ) -> Tuple[Dict[str, Any], List[np.ndarray]]:
    """Every video frame through a fresh stream under ``policy``: mean
    milliseconds per frame, model frames, peak memory; and the labels."""
    engine.reconfigure(policy.config)
    warm = StreamProcessor(engine, policy.temporal)
    for index in range(min(plan.warm_frames, len(video))):
        warm.label(Frame(video[index], stamp=index / plan.fps, camera="warm"), policy.model_every)
    processor = StreamProcessor(engine, policy.temporal)
    probe.reset()
    seconds, labels, model = [], [], 0
    for index in range(len(video)):
        frame = Frame(video[index], stamp=index / plan.fps, camera="bench")
        out: List[Any] = []
        seconds.append(_timed(lambda f=frame, o=out: o.append(processor.label(f, policy.model_every)), engine.device))
        model += out[0].source == MODEL
        labels.append(out[0].result.labels)
    return {"ms_per_frame": 1000 * statistics.fmean(seconds), "model_fraction": model / len(video),
            "peak_memory_bytes": probe.peak()}, labels


def _agreement(model: torch.nn.Module, engine: ActiveSAM, vocabulary, video: SyntheticVideo,
               plan: GpuPlan) -> Dict[str, float]:
    """Per mode: the share of pixels whose label is the same in the compute
    dtype and in float32."""
    out = {}
    for mode in ("exact", "fast"):
        config = engine.config.replace(mode=mode)
        engine.reconfigure(config)
        reference = ActiveSAM(model, vocabulary, config.replace(dtype="float32"))
        frames = [video[i] for i in range(min(plan.agreement_frames, len(video)))]
        out[mode] = statistics.fmean(agreement(engine.segment(f).labels, reference.segment(f).labels) for f in frames)
        del reference
    return out


def measure_frames(model: torch.nn.Module, engine: ActiveSAM, video: SyntheticVideo, plan: GpuPlan,
                   temporal: TemporalConfig) -> Dict[str, Any]:
    """Per vocabulary: the four ways of running a stream, counted frames, agreement."""
    probe = MemoryProbe(engine.device)
    base = engine.config
    out = {}
    for name in plan.vocabularies:
        vocabulary = load_vocabulary_file(name)
        engine.set_vocabulary(vocabulary)
        modes: Dict[str, Any] = {}
        reference: Optional[List[np.ndarray]] = None
        for policy in policies(base, temporal, plan.model_every):
            modes[policy.name], labels = _run_policy(engine, policy, video, plan, probe)
            reference = labels if reference is None else reference
            modes[policy.name]["agreement_with_exact"] = statistics.fmean(
                agreement(a, b) for a, b in zip(labels, reference))
            if policy.model_every == 1 and policy.temporal.refresh_interval == 1:  # the per-frame modes
                modes[policy.name]["counts"] = count_frame(lambda: engine.segment(video[0]), engine.device)
        out[name] = {"title": VOCABULARY_TITLES.get(name, name), "classes": len(vocabulary),
                     "queries": len(vocabulary.queries), "modes": modes,
                     "bf16_fp32_agreement": _agreement(model, engine, vocabulary, video, plan)}
        engine.reconfigure(base)
    return out


def run_gpu_bench(model: torch.nn.Module, model_description: str, random_weights: bool,
                  config: ActiveSAMConfig = ActiveSAMConfig(), temporal: TemporalConfig = TemporalConfig(),
                  plan: GpuPlan = GPU) -> Dict[str, Any]:
    """Every section of ``plan`` on ``model`` (JSON-ready)."""
    started = time.perf_counter()
    engine = ActiveSAM(model, ["object"], config)
    backgrounds = load_photos(VIDEO_BACKGROUNDS, 2 * plan.width)
    video = SyntheticVideo([backgrounds[n] for n in VIDEO_BACKGROUNDS], plan.frames, plan.width, plan.height)
    report: Dict[str, Any] = {
        "schema": "activesam-bench-gpu/1",
        "plan": asdict(plan),
        "environment": environment(engine.device),
        "model": {"description": model_description, "random_weights": random_weights,
                  "parameters": sum(p.numel() for p in model.parameters())},
        "config": config.as_dict(),
        "dtype": str(engine.dtype).replace("torch.", ""),
        "autocast": engine.dtype != torch.float32,
        "reduced_stages": sorted(engine.grounder.precision.reduced) if engine.dtype != torch.float32 else [],
        "temporal": asdict(temporal),
        "forwards": measure_forwards(engine, video[0], plan),
        "frames": measure_frames(model, engine, video, plan, temporal),
    }
    report.update(engine.buckets.report())  # a bucket halved for memory: the rows ran with fewer prompts
    report["wall_seconds"] = time.perf_counter() - started
    return report


def _number(value: Optional[float], digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


FORWARD_HEADER = "| forward at {resolution} px | ms | ms per prompt |"
FRAME_HEADER = ("| frame ({width}x{height}) | vocabulary | ms per frame | model frames | peak memory (MiB) | "
                "host syncs | kernel launches | agreement with exact | bf16 vs fp32 |")


def gpu_tables(report: Dict[str, Any]) -> str:
    """The report as the two markdown tables of the GPU page."""
    env, forwards = report["environment"], report["forwards"]
    plan = report["plan"]
    lines = [f"{report['model']['description']}, {env['device_name']} ({env['device']}), {report['dtype']}, "
             f"torch {env['torch']}, sam3 {env['sam3']}", "",
             FORWARD_HEADER.format(resolution=forwards["resolution"]), "| --- | ---: | ---: |",
             f"| image encode | {_number(forwards['image_encode_ms'])} | |"]
    for mode in ("exact", "fast"):
        for row in forwards["grounding"]:
            lines.append(f"| {mode}: {row['bucket']} prompt(s) | {_number(row[f'{mode}_ms'])} | "
                         f"{_number(row[f'{mode}_ms_per_prompt'])} |")
    lines += ["", FRAME_HEADER.format(width=plan["width"], height=plan["height"]),
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for entry in report["frames"].values():
        for mode, row in entry["modes"].items():
            counts = row.get("counts", {})
            agreement_fp32 = entry["bf16_fp32_agreement"].get(mode if mode in ("exact", "fast") else "", None)
            lines.append(
                f"| {mode} | {entry['title']} | {_number(row['ms_per_frame'])} | {row['model_fraction']:.0%} | "
                f"{_number(row['peak_memory_bytes'] / 2**20, 0)} | {counts.get('host_syncs', '–')} | "
                f"{counts.get('kernel_launches') or '–'} | {row['agreement_with_exact']:.1%} | "
                f"{'–' if agreement_fp32 is None else f'{agreement_fp32:.1%}'} |")
    return "\n".join(lines)

