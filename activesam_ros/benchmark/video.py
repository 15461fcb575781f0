"""Temporal policies on a real video: speed and agreement with per-frame exact.

``activesam bench --video FILE`` runs the same frames through:

- ``exact``: per-frame exact ActiveSAM (the paper: refresh every frame), the reference;
- ``fast``: per-frame fast mode;
- ``reuse``: the stream defaults (fast mode, refresh/reuse as ``TemporalConfig()``);
- ``propagation``: the defaults, the model on every ``model_every``-th frame
  (a device running at that fraction of the camera rate), the frames
  between labelled by propagation (or by the model when it refuses).

Per policy and vocabulary: frames/s of model output and of published labels
(process CPU time of one thread, so other jobs on the machine do not skew the
ratios: several threads spin while they wait and bill that time too), mean
and worst-frame label agreement with per-frame exact, classes decoded per
model frame, and, beside them, the model's own agreement between
consecutive per-frame exact frames (random weights flicker: every temporal
method's agreement is bounded by it).
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import cv2
import numpy as np
import torch

from ..engine.config import ActiveSAMConfig
from ..engine.limits import MAX_INFLATED_VIDEO_BYTES, check_image_size
from ..engine.pipeline import ActiveSAM
from ..engine.vocabulary import Vocabulary
from ..files.inflate import InflateError, disk_room, inflate_file
from ..stream.runtime import MODEL, Frame, StreamProcessor
from ..stream.temporal import TemporalConfig

REFERENCE = "exact"


class VideoError(RuntimeError):
    """A video that cannot be read; the message says why."""


def read_video(path: Path, frames: int, max_side: int) -> tuple:
    """Up to ``frames`` frames of a video file (``.gz`` too) as RGB, scaled so
    the longer side is at most ``max_side``; and its frame rate."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as folder:
        if path.suffix == ".gz":  # OpenCV's own sample videos ship gzipped
            plain = Path(folder) / path.stem
            limit = min(MAX_INFLATED_VIDEO_BYTES, disk_room(Path(folder)))
            try:
                inflate_file(path, plain, "gzip", limit, str(path))
            except InflateError as exc:
                raise VideoError(str(exc)) from None
            path = plain
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise VideoError(f"{path}: OpenCV cannot open it as a video")
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        out: List[np.ndarray] = []
        while len(out) < frames:
            ok, bgr = capture.read()
            if not ok:
                break
            check_image_size(bgr.shape[1], bgr.shape[0], what=str(path))
            scale = max_side / max(bgr.shape[:2])
            if scale < 1:
                bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            out.append(np.ascontiguousarray(bgr[:, :, ::-1]))
        capture.release()
    if len(out) < 2:
        raise VideoError(f"{path}: fewer than two frames could be read")
    return out, float(fps)


@dataclass(frozen=True)
class Policy:
    """One way of running a stream: an engine config, a temporal config,
    and the model on every ``model_every``-th frame (1: every frame)."""

    name: str
    config: ActiveSAMConfig
    temporal: TemporalConfig
    model_every: int = 1


def policies(base: ActiveSAMConfig, temporal: TemporalConfig, model_every: int) -> List[Policy]:
    """The four policies of the module doc, built on ``base`` and the stream defaults ``temporal``."""
    per_frame = replace(temporal, refresh_interval=1, propagate=False)
    return [
        Policy(REFERENCE, base.replace(mode="exact"), per_frame),
        Policy("fast", base.replace(mode="fast"), per_frame),
        Policy("reuse", base.replace(mode="fast"), replace(temporal, propagate=False)),
        Policy("propagation", base.replace(mode="fast"), replace(temporal, propagate=True), model_every),
    ]


@dataclass
class Run:
    """What one policy did on every frame."""

    labels: List[np.ndarray]
    sources: List[str]
    decoded_classes: List[int]       # per model frame
    reasons: List[str]               # per model frame: why it refreshed, or "reuse"
    model_seconds: float = 0.0       # process CPU time in model frames
    propagation_seconds: float = 0.0


def run_policy(engine: ActiveSAM, policy: Policy, frames: Sequence[np.ndarray], fps: float) -> Run:
    """Every frame through a fresh StreamProcessor under ``policy``."""
    engine.reconfigure(policy.config)
    processor = StreamProcessor(engine, policy.temporal)
    run = Run([], [], [], [])
    for index, rgb in enumerate(frames):
        frame = Frame(rgb, stamp=index / fps, frame_id=str(index), camera="video")
        started = time.process_time()
        out = processor.label(frame, policy.model_every)
        seconds = time.process_time() - started
        if out.source == MODEL:
            run.model_seconds += seconds
            run.decoded_classes.append(len(out.result.active_classes))
            run.reasons.append(out.plan.reason)
        else:
            run.propagation_seconds += seconds
        run.labels.append(out.result.labels)
        run.sources.append(out.source)
    return run


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def summarize(run: Run, reference: Run) -> Dict[str, Any]:
    per_frame = [agreement(a, b) for a, b in zip(run.labels, reference.labels)]
    model_frames = sum(source == MODEL for source in run.sources)
    total = run.model_seconds + run.propagation_seconds
    return {
        "frames": len(run.labels),
        "model_frames": model_frames,
        "refresh_frames": sum(reason != "reuse" for reason in run.reasons),
        "refresh_reasons": dict(Counter(run.reasons)),
        "model_fps": model_frames / run.model_seconds if run.model_seconds else None,
        "published_fps": len(run.labels) / total if total else None,
        "cpu_seconds": total,
        "agreement_mean": float(np.mean(per_frame)),
        "agreement_worst": float(np.min(per_frame)),
        "agreement_per_frame": [round(a, 4) for a in per_frame],
        "decoded_classes_mean": float(np.mean(run.decoded_classes)),
    }


def measure_video(model: Any, path: Path, vocabularies: Dict[str, Vocabulary], base: ActiveSAMConfig,
                  temporal: TemporalConfig = TemporalConfig(), model_every: int = 4, frames: int = 40,
                  max_side: int = 384, progress: Optional[Any] = None) -> Dict[str, Any]:
    """The video section of the benchmark report (see the module doc)."""
    video, fps = read_video(path, frames, max_side)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(model, video, fps, path, vocabularies, base, temporal, model_every, progress)
    finally:
        torch.set_num_threads(threads)


def _measure(model: Any, video: List[np.ndarray], fps: float, path: Path, vocabularies: Dict[str, Vocabulary],
             base: ActiveSAMConfig, temporal: TemporalConfig, model_every: int,
             progress: Optional[Any]) -> Dict[str, Any]:
    engine = ActiveSAM(model, next(iter(vocabularies.values())), base)
    out: Dict[str, Any] = {"file": str(path), "frames": len(video), "fps": fps,
                           "size": [int(video[0].shape[1]), int(video[0].shape[0])],
                           "model_every": model_every, "temporal": asdict(temporal), "vocabularies": {}}
    for name, vocabulary in vocabularies.items():
        engine.set_vocabulary(vocabulary)
        engine.segment(video[0])  # warm-up: first-call costs belong to no policy
        runs = {}
        for policy in policies(base, temporal, model_every):
            runs[policy.name] = run_policy(engine, policy, video, fps)
            if progress is not None:
                progress(f"{name}: {policy.name}")
        reference = runs[REFERENCE]
        consecutive = [agreement(a, b) for a, b in zip(reference.labels[1:], reference.labels[:-1])]
        rows = {policy: summarize(run, reference) for policy, run in runs.items()}
        exact_fps = rows[REFERENCE]["published_fps"]
        for row in rows.values():
            row["speedup_vs_exact"] = row["published_fps"] / exact_fps if exact_fps else None
        out["vocabularies"][name] = {
            "classes": len(vocabulary),
            "model_consecutive_agreement_mean": float(np.mean(consecutive)),
            "model_consecutive_agreement_worst": float(np.min(consecutive)),
            "policies": rows,
        }
    out.update(engine.buckets.report())
    return out


def markdown_table(title: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A title line, then a Markdown table of ``header`` and ``rows``."""
    lines = [title, "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def video_table(report: Dict[str, Any]) -> str:
    """The video section as a Markdown table (docs/streams.md's)."""
    rows = []
    for name, vocab in report["vocabularies"].items():
        own = (f"{100 * vocab['model_consecutive_agreement_mean']:.1f} % "
               f"(worst {100 * vocab['model_consecutive_agreement_worst']:.1f} %)")
        for policy, row in vocab["policies"].items():
            rows.append([f"{name} ({vocab['classes']})", policy, f"{row['model_fps']:.2f}",
                         f"{row['published_fps']:.2f}", f"{row['speedup_vs_exact']:.2f}",
                         f"{100 * row['agreement_mean']:.1f} %", f"{100 * row['agreement_worst']:.1f} %",
                         f"{row['decoded_classes_mean']:.1f}", own])
    return markdown_table(f"{report['file']}: {report['frames']} frames at {report['size'][0]}x{report['size'][1]}, "
                          f"{report['fps']:g} fps; model: {report.get('model', '?')}",
                          ["vocabulary", "policy", "model frames/s", "labels/s", "x exact", "agreement mean", "worst",
                           "classes decoded", "exact's own consecutive agreement"], rows)
