"""What the 3D outputs add to a frame: the CPU time of building and
serialising ``points`` and ``detections_3d`` against the CPU time of the
model frame whose labels they carry.

A real scene with real depth (Middlebury's Motorcycle, ``benchmark.stereo``)
goes through the stream processor as a camera would send it (the node's
defaults: fast mode, temporal reuse), the same frame again and again; per
frame the processor's call is one model frame, and the two 3D outputs are
built from its result, the matched depth image and its objects exactly as
the node builds them (``ros.topics.Depth``), then serialised to CDR (what
publishing does). CPU time is the process's (every thread's), so it counts
the model's threads too.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional

from ..engine.config import ActiveSAMConfig
from ..engine.pipeline import ActiveSAM
from ..ros.messages import make_header
from ..ros.rosbags_types import rosbags_messages, typestore
from ..ros.topics import Depth
from ..stream.depth import DepthImage, depth_metres
from ..stream.parameters import default
from ..stream.runtime import Frame, StreamProcessor
from ..stream.temporal import TemporalConfig
from .stereo import motorcycle, scaled

VOCABULARY = ["motorcycle", "wall", "floor", "shelf", "box", "helmet", "cable", "tool"]
"""Classes of the Motorcycle scene (a workshop): enough for several instances per frame."""


def _cpu(call: Callable[[], object]) -> float:
    start = time.process_time()
    call()
    return time.process_time() - start


def measure_outputs_3d(model, config: ActiveSAMConfig, temporal: TemporalConfig, frames: int = 12,
                       side: int = 384, decimation: Optional[int] = None,
                       progress: Callable[[str], None] = lambda line: None) -> Dict[str, object]:
    """Per-frame CPU seconds of the model frame and of each 3D output (medians), and their ratio."""
    decimation = default("points_decimation") if decimation is None else decimation
    scene = scaled(motorcycle(), side)
    depth = DepthImage(depth_metres(scene.depth_16uc1()), scene.intrinsics, 0.0, "depth_optical")
    processor = StreamProcessor(ActiveSAM(model, VOCABULARY, config), temporal)
    ns, store = rosbags_messages(), typestore()
    header = make_header(ns, 0, 0, "depth_optical")
    processor.process(Frame(scene.rgb, 0.0))  # warm-up: the first frame prepares what later ones reuse
    rows: Dict[str, List[float]] = {"model_frame": [], "points": [], "detections_3d": []}
    sizes: Dict[str, List[int]] = {"points": [], "detections": []}
    for index in range(frames):
        done = []
        rows["model_frame"].append(_cpu(lambda: done.append(processor.process(Frame(scene.rgb, 0.1 * (index + 1))))))
        out = done[0]
        builders = Depth(depth, header, decimation, out.instance_ids, out.objects).builders(ns, scene.rgb, out.result)
        made = {}
        for name in ("points", "detections_3d"):
            def build(name: str = name) -> None:
                message = made[name] = builders[name]()
                store.serialize_cdr(message, message.__msgtype__)
            rows[name].append(_cpu(build))
        sizes["points"].append(made["points"].width)
        sizes["detections"].append(len(made["detections_3d"].detections))
        progress(f"frame {index + 1}/{frames}")
    median = {name: statistics.median(values) for name, values in rows.items()}
    added = median["points"] + median["detections_3d"]
    return {
        "scene": "Middlebury 2014 Motorcycle (scikit-image), ground-truth depth as 16UC1",
        "frame_size": list(scene.rgb.shape[:2]),
        "frames": frames,
        "points_decimation": decimation,
        "cpu_ms_per_frame": {name: round(1000 * value, 3) for name, value in median.items()},
        "added_fraction": round(added / median["model_frame"], 4) if median["model_frame"] else None,
        "points_per_frame": int(statistics.median(sizes["points"])),
        "detections_per_frame": statistics.median(sizes["detections"]),
    }


def outputs_3d_table(report: Dict[str, object]) -> str:
    """The report as a markdown table (stderr)."""
    cpu = report["cpu_ms_per_frame"]
    lines = ["| CPU per frame | ms |", "| --- | --- |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in cpu.items()]
    lines.append(f"| points + detections_3d / model frame | {100 * report['added_fraction']:.2f} % |")
    return "\n".join(lines)
