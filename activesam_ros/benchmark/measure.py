"""Timing and memory instruments, and the interleaved loop over frames and modes.

Every frame is run by every mode that runs on it before the next frame, in
an order rotated per frame, so the modes share the machine's load over time
and their ratios stay meaningful on a busy machine. Per mode and frame the
loop records the wall time of the call, the time of the model forwards it
made (timed by a wrapper around the engine's grounder, not by a patch), the
engine's stage timings, the time to build the ROS messages of the result,
the peak memory, and the label agreement with the exact mode on that frame.
"""

from __future__ import annotations

import gc
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import psutil
import torch

from ..engine.config import ActiveSAMConfig
from ..engine.grounding import Grounder
from ..engine.pipeline import ActiveSAM
from ..engine.release import trim_heap
from ..engine.result import SegmentationResult
from ..ros import messages
from ..ros.rosbags_types import rosbags_messages
from ..stream.parameters import default
from ..stream.runtime import Frame, StreamProcessor

REFERENCE = "exact"  # the mode every other mode's labels are compared with


class TimedGrounder:
    """Delegates to a :class:`Grounder` and adds up the seconds spent in
    each of its model forwards (``encode_image``; ``ground``, the preview's
    decoder; ``decode``, a frame's decoder; its heads: exact mode's
    ``instance_logits``, fast mode's ``fused_scores`` with the fusion at
    mask size; ``score``; ``encode_text``), so the benchmark can tell the
    model's time from the pipeline's. On CUDA each forward is synchronised
    at both ends, or its time would land in whatever reads its output first."""

    FRAME_FORWARDS = ("encode_image", "ground", "score", "decode", "instance_logits", "fused_scores")

    def __init__(self, inner: Grounder):
        self._inner = inner
        self._cuda = inner.device.type == "cuda"
        self.seconds: Dict[str, float] = defaultdict(float)

    def __getattr__(self, name: str) -> Any:
        if name in self.FRAME_FORWARDS or name == "encode_text":
            forward = getattr(self._inner, name)
            return lambda *args, **kwargs: self._timed(name, forward, *args, **kwargs)
        return getattr(self._inner, name)

    def _timed(self, kind: str, forward: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._cuda:
            torch.cuda.synchronize(self._inner.device)
        start = time.perf_counter()
        try:
            return forward(*args, **kwargs)
        finally:
            if self._cuda:
                torch.cuda.synchronize(self._inner.device)
            self.seconds[kind] += time.perf_counter() - start

    @property
    def image_forward_seconds(self) -> float:
        """Seconds in the per-frame forwards (image encodes, decoders and heads)."""
        return sum(self.seconds[kind] for kind in self.FRAME_FORWARDS)


def timed_engine(model: torch.nn.Module, vocabulary: Sequence[str],
                 config: ActiveSAMConfig) -> Tuple[ActiveSAM, TimedGrounder]:
    """An engine whose model forwards (its text cache's too) are timed."""
    engine = ActiveSAM(model, vocabulary, config, wrap_grounder=TimedGrounder)
    return engine, engine.grounder


class MemoryProbe:
    """Peak memory of this process during a call, in bytes.

    On CUDA: the allocator's peak (``max_memory_allocated``). On Linux CPUs:
    the resident set's high-water mark, reset before the call through
    ``/proc/self/clear_refs`` so it is the call's own peak. Elsewhere the
    resident set after the call (``method`` says which).
    """

    _STATUS = Path("/proc/self/status")
    _CLEAR = Path("/proc/self/clear_refs")

    def __init__(self, device: torch.device):
        self.device = device
        self._process = psutil.Process()
        if device.type == "cuda":
            self.method = "cuda max_memory_allocated"
        elif self._resettable():
            self.method = "VmHWM (resident high-water mark, reset per call)"
        else:
            self.method = "RSS after the call"

    def _resettable(self) -> bool:
        try:
            self._CLEAR.write_text("5")
            return "VmHWM" in self._STATUS.read_text()
        except OSError:
            return False

    def current(self) -> int:
        """Memory in use now, after returning freed memory to the system."""
        gc.collect()
        if self.device.type == "cuda":
            return int(torch.cuda.memory_allocated(self.device))
        trim_heap()
        return int(self._process.memory_info().rss)

    def reset(self) -> None:
        """Start a new peak. On a CPU the allocator first returns the pages
        it holds free (text encoding leaves tens of MiB of them), so the
        peak is what the call itself needs, not what earlier work left."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.method.startswith("VmHWM"):
            trim_heap()
            self._CLEAR.write_text("5")

    def peak(self) -> int:
        """The peak since :meth:`reset`."""
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.method.startswith("VmHWM"):
            match = re.search(r"VmHWM:\s+(\d+)\s+kB", self._STATUS.read_text())
            if match:
                return 1024 * int(match.group(1))
        return int(self._process.memory_info().rss)


@dataclass
class Mode:
    """One way of segmenting a frame: a per-frame engine configuration, or
    a stream with temporal reuse (``stream`` set) made with that config."""

    name: str
    config: ActiveSAMConfig
    stream: Optional[StreamProcessor] = None

    def run(self, engine: ActiveSAM, rgb: np.ndarray) -> Tuple[SegmentationResult, str]:
        """Segment one frame; returns the result and the frame's kind:
        ``refresh`` / ``reuse`` for a stream, ``frame`` otherwise."""
        if self.stream is None:
            return engine.segment(rgb), "frame"
        out = self.stream.process(Frame(rgb, camera="bench"))
        return out.result, "refresh" if out.plan.refresh else "reuse"


@dataclass
class Sample:
    """What one mode measured on one frame."""

    kind: str
    wall: float                 # seconds in the mode's call
    forward: float              # seconds of model forwards within it
    messages: float             # seconds to build the frame's ROS messages
    stages: Dict[str, float]    # the engine's stage timings
    decoded: int                # queries decoded at full resolution
    peak_bytes: Optional[int]   # peak memory during the call (None: not probed)


@dataclass
class ModeRecord:
    samples: List[Sample] = field(default_factory=list)
    agreement: List[float] = field(default_factory=list)  # per reference frame


def build_messages(rgb: np.ndarray, result: SegmentationResult, threshold: float) -> None:
    """Every message the node publishes per frame (labels, colour labels,
    label info, active classes, overlay with its default legend), built with
    rosbags' classes."""
    ns = rosbags_messages()
    header = messages.make_header(ns, 0, 0, "camera")
    messages.labels_image(ns, result, header)
    messages.label_info(ns, result.vocabulary, header, threshold)
    messages.active_classes(ns, result, header)
    messages.color_labels_image(ns, result, header)
    messages.overlay_image(ns, rgb, result, header, default("overlay_alpha"), default("overlay_legend"))


def run_frames(
    engine: ActiveSAM,
    timer: TimedGrounder,
    modes: Sequence[Mode],
    frames: Sequence[np.ndarray],
    runs_on: Callable[[Mode, int], bool],
    probe: Optional[MemoryProbe] = None,
    progress: Optional[Callable[[], None]] = None,
) -> Dict[str, ModeRecord]:
    """Run each frame through the modes ``runs_on(mode, index)`` selects,
    in an order rotated per frame; returns what each mode measured."""
    records = {mode.name: ModeRecord() for mode in modes}
    for index in range(len(frames)):
        rgb = frames[index]
        selected = [mode for mode in modes if runs_on(mode, index)]
        shift = index % max(1, len(selected))
        labels: Dict[str, np.ndarray] = {}
        for mode in selected[shift:] + selected[:shift]:
            if engine.config != mode.config:
                engine.reconfigure(mode.config)
            if probe is not None:
                probe.reset()
            forward = timer.image_forward_seconds
            start = time.perf_counter()
            result, kind = mode.run(engine, rgb)
            wall = time.perf_counter() - start
            forward = timer.image_forward_seconds - forward
            peak = probe.peak() if probe is not None else None
            start = time.perf_counter()
            build_messages(rgb, result, mode.config.confidence_threshold)
            built = time.perf_counter() - start
            records[mode.name].samples.append(
                Sample(kind, wall, forward, built, dict(result.timings), len(result.active_queries), peak)
            )
            labels[mode.name] = result.labels
        if REFERENCE in labels:
            for name, other in labels.items():
                if name != REFERENCE:
                    records[name].agreement.append(float(np.mean(other == labels[REFERENCE])))
        if progress is not None:
            progress()
    return records
