"""Objects on a real video: id switches of persistent ids against per-frame
matching, and the CPU time the instances and ids add to a frame's labels.

``activesam bench --video FILE --objects`` runs the stream (fast mode, the
temporal flags) over the frames with the model on every frame, and again
with the model on every ``model_every``-th frame (the frames between
propagated). On each run's model frames it counts id switches:

- **Same object** on two consecutive model frames: a pair of instances of
  the same class whose masks overlap by IoU >= :data:`SAME_OBJECT_IOU`,
  paired greedily, highest IoU first, each instance once (overlap is all a
  video without annotations tells).
- **Switch**: a same-object pair whose two ids differ.

The ids compared, on the same model frames:

- ``persistent``: the stream's own (``stream.identities``: matching against
  every live object's last known pixels, carried by the optical flow
  between model frames; unseen objects kept for ``object_max_unseen``);
- ``greedy``: per-frame greedy matching, the way a tracker without memory
  does it: each instance, in the engine's order, takes the id of the
  previous model frame's instance it overlaps most (any class, any
  overlap) that no earlier instance took, else a new id;
- ``index``: no matching at all, the instance's place in the frame's list.

On the propagated frames it counts ids that are not ids of the model frame
they were carried from (by construction none).

The added cost is process CPU time per model frame (one thread, frames
interleaved so that the machine's load drifts alike): the engine with its
instances on against off, plus the ids (``IdentityTracker.update``) and
the messages of ``~/detections`` and ``~/instances`` (built with rosbags'
classes), against the frame with its instances off. Random weights make
random objects: their ids measure the matching, not a detector.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..engine.config import ActiveSAMConfig
from ..engine.pipeline import ActiveSAM
from ..engine.result import SegmentationResult
from ..engine.vocabulary import Vocabulary
from ..ros import messages
from ..ros.rosbags_types import rosbags_messages
from ..stream.identities import IdentityTracker, greedy_pairs, mask_iou
from ..stream.runtime import MODEL, Frame, FrameResult, StreamProcessor
from ..stream.temporal import TemporalConfig
from .video import read_video

SAME_OBJECT_IOU = 0.5
"""Two instances of one class on consecutive model frames overlapping this
much are the same object (module doc)."""


def same_object_pairs(before: SegmentationResult, after: SegmentationResult) -> List[Tuple[int, int]]:
    """(index in ``before.instances``, index in ``after.instances``) of the
    same-object pairs of two model frames (module doc)."""
    if not before.instances or not after.instances:
        return []
    iou = mask_iou(before.instance_map, after.instance_map, len(before.instances), len(after.instances))
    old = np.array([-1] + [i.class_index for i in before.instances])
    new = np.array([-1] + [i.class_index for i in after.instances])
    return [(r - 1, c - 1) for r, c in greedy_pairs(iou, old[:, None] == new[None, :], SAME_OBJECT_IOU)]


class GreedyIds:
    """Per-frame greedy matching (module doc): ids for one camera's model frames."""

    def __init__(self) -> None:
        self._previous: Optional[SegmentationResult] = None
        self._ids: List[int] = []
        self._next = 1

    def update(self, result: SegmentationResult) -> List[int]:
        ids: List[int] = []
        previous = self._previous
        if previous is not None and previous.instances and result.instances:
            iou = mask_iou(result.instance_map, previous.instance_map, len(result.instances), len(previous.instances))
        taken = set()
        for k in range(len(result.instances)):
            choice = None
            if previous is not None and previous.instances:
                for column in np.argsort(-iou[k + 1], kind="stable"):
                    if iou[k + 1, column] <= 0:
                        break
                    if column not in taken:
                        choice = int(column)
                        break
            if choice is None:
                ids.append(self._next)
                self._next += 1
            else:
                taken.add(choice)
                ids.append(self._ids[choice - 1])
        self._previous, self._ids = result, ids
        return ids


def count_switches(results: Sequence[SegmentationResult], ids: Sequence[Sequence[int]],
                   classes: Optional[Sequence[int]] = None) -> Dict[str, int]:
    """Same-object pairs between consecutive model frames, and the switches
    among them, for one id scheme (``ids[t][k]``: instance k's id on model
    frame t); only pairs of ``classes`` when given."""
    pairs = switches = 0
    for t in range(1, len(results)):
        for old, new in same_object_pairs(results[t - 1], results[t]):
            if classes is not None and results[t].instances[new].class_index not in classes:
                continue
            pairs += 1
            switches += ids[t - 1][old] != ids[t][new]
    return {"pairs": pairs, "switches": switches}


def run_ids(engine: ActiveSAM, temporal: TemporalConfig, frames: Sequence[np.ndarray], fps: float,
            model_every: int, person: Sequence[int]) -> Dict[str, Any]:
    """One stream run: switches of each id scheme, and propagated frames' ids."""
    processor = StreamProcessor(engine, temporal)
    greedy = GreedyIds()
    model: List[SegmentationResult] = []
    schemes: Dict[str, List[List[int]]] = {"persistent": [], "greedy": [], "index": []}
    anchor_ids: set = set()
    carried = foreign = 0
    for index, rgb in enumerate(frames):
        out: FrameResult = processor.label(Frame(rgb, stamp=index / fps, frame_id=str(index), camera="video"),
                                           model_every)
        if out.source == MODEL:
            model.append(out.result)
            schemes["persistent"].append([o.id for o in out.objects])
            schemes["greedy"].append(greedy.update(out.result))
            schemes["index"].append(list(range(1, len(out.result.instances) + 1)))
            anchor_ids = {o.id for o in out.objects}
        else:
            carried += 1
            foreign += bool({o.id for o in out.objects} - anchor_ids)
    return {
        "model_every": model_every,
        "frames": len(frames),
        "model_frames": len(model),
        "instances_per_model_frame": float(np.mean([len(r.instances) for r in model])) if model else 0.0,
        "all_objects": {name: count_switches(model, ids) for name, ids in schemes.items()},
        "class_person": {name: count_switches(model, ids, person) for name, ids in schemes.items()},
        "propagated_frames": carried,
        "propagated_frames_with_foreign_ids": foreign,
    }


def added_cost(engine: ActiveSAM, config: ActiveSAMConfig, temporal: TemporalConfig,
               frames: Sequence[np.ndarray]) -> Dict[str, Any]:
    """Process CPU seconds per model frame: labels alone, and what the
    instances, the ids and their messages add (module doc)."""
    ns = rosbags_messages()
    tracker = IdentityTracker(temporal.object_match_iou, temporal.object_max_unseen)
    header = messages.make_header(ns, 0, 0, "camera")
    on, off, ids, outputs = [], [], [], []
    for rgb in frames:
        for instances, into in ((False, off), (True, on)):
            engine.reconfigure(config.replace(instances=instances))
            started = time.process_time()
            result = engine.segment(rgb)
            into.append(time.process_time() - started)
        started = time.process_time()
        objects, image = tracker.update(result)
        ids.append(time.process_time() - started)
        started = time.process_time()
        messages.detections_2d(ns, objects, result.vocabulary, header)
        messages.instances_image(ns, image, image.shape, header)
        outputs.append(time.process_time() - started)
    labels = float(np.median(off))
    engine_added = float(np.median(np.subtract(on, off)))
    total = engine_added + float(np.median(ids)) + float(np.median(outputs))
    return {
        "frames": len(frames),
        "labels_seconds": labels,
        "engine_instances_seconds": engine_added,
        "ids_seconds": float(np.median(ids)),
        "messages_seconds": float(np.median(outputs)),
        "added_seconds": total,
        "added_fraction": total / labels if labels else None,
    }


def measure_objects(model: Any, path: Path, vocabulary: Vocabulary, config: ActiveSAMConfig,
                    temporal: TemporalConfig, model_every: int, frames: int, max_side: int,
                    progress: Optional[Any] = None) -> Dict[str, Any]:
    """The objects section of the benchmark report (module doc)."""
    video, fps = read_video(path, frames, max_side)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        engine = ActiveSAM(model, vocabulary, config.replace(instances=True))
        person = [c for c, name in enumerate(vocabulary.names) if name == "person"]
        runs = []
        for every in sorted({1, model_every}):
            runs.append(run_ids(engine, temporal, video, fps, every, person))
            if progress is not None:
                progress(f"ids, model on every {every} frame(s) done")
        cost = added_cost(engine, config, temporal, video[: min(len(video), 20)])
        if progress is not None:
            progress("added cost done")
    finally:
        torch.set_num_threads(threads)
    return {
        "video": Path(path).name,
        "frame_size": list(video[0].shape[:2]),
        "fps": fps,
        "vocabulary_classes": len(vocabulary),
        "mode": config.mode,
        "resolution": engine.resolution,
        "same_object_iou": SAME_OBJECT_IOU,
        "object_match_iou": temporal.object_match_iou,
        "object_max_unseen": temporal.object_max_unseen,
        "runs": runs,
        "added_cost": cost,
    }


def objects_table(report: Dict[str, Any]) -> str:
    """The report as a markdown table (stderr)."""
    lines = ["| model every | model frames | scheme | switches / same-object pairs (all) | (class person) |",
             "| --- | --- | --- | --- | --- |"]
    for run in report["runs"]:
        for scheme, counts in run["all_objects"].items():
            person = run["class_person"][scheme]
            lines.append(f"| {run['model_every']} | {run['model_frames']} | {scheme} | "
                         f"{counts['switches']} / {counts['pairs']} | {person['switches']} / {person['pairs']} |")
    cost = report["added_cost"]
    lines.append("")
    lines.append(f"labels {1000 * cost['labels_seconds']:.1f} ms CPU per model frame; instances + ids + messages "
                 f"add {1000 * cost['added_seconds']:.1f} ms ({100 * (cost['added_fraction'] or 0):.1f} %)")
    return "\n".join(lines)
