"""Persistent object identities: the instances of one camera's model frames
matched over time, so that an object keeps its id.

The engine numbers a frame's instances afresh (``SegmentationResult``:
``instances`` and ``instance_map``, 1 + index). :class:`IdentityTracker`
gives each a persistent id:

- **Matching**: a new instance takes the id of the live object of the same
  class whose last known pixels overlap it most, by mask IoU (intersection
  over union of the pixel sets), if that IoU is at least
  ``object_match_iou``; pairs are taken greedily, highest IoU first, each
  object and each instance at most once. A class change is a new object.
  An object's last known pixels are those of the last model frame that
  saw it, or, when labels are propagated, of the last propagated frame
  (``carried``): the optical flow has moved them to where the object is now.
- **Survival**: an object not matched on a model frame lives on, unseen,
  for ``object_max_unseen`` model frames, and can be matched again.
- **Ids** are 16-bit (the ``instances`` image is mono16): 1, 2, 3, ... in
  the order objects appear on the camera, 0 meaning none. After 65535
  (:data:`MAX_ID`) the count wraps to 1, skipping ids still alive: an id
  names another object only after the count has gone round, that is after
  at least 65535 - L newer objects, L the objects alive when it comes round
  (the live ones keep theirs).

Pure numpy; one per camera, its state one id image and a table of the live
objects. ``update`` runs on the worker after each model frame, ``carried``
on whichever thread propagates a frame: a lock keeps them apart.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..engine.result import SegmentationResult

MAX_ID = 65535
"""The largest id: ids are uint16, 0 = no object; the count wraps after it."""


@dataclass(frozen=True)
class TrackedObject:
    """One object on a frame, under its persistent id."""

    id: int                           # 1 ... MAX_ID
    class_index: int                  # vocabulary line
    score: float                      # object score on the model frame that saw it last
    box: Tuple[int, int, int, int]    # x0, y0, x1, y1 in image pixels, x1/y1 exclusive


@dataclass
class _Live:
    class_index: int
    unseen: int = 0     # model frames since it was last matched


def mask_iou(previous: np.ndarray, current: np.ndarray, previous_count: int, current_count: int) -> np.ndarray:
    """IoU [previous_count + 1, current_count + 1] between the pixel sets of two
    label images (values 0 ... count, 0 = none; row and column 0 unused),
    from one joint histogram."""
    width = current_count + 1
    joint = np.bincount(previous.ravel().astype(np.int64) * width + current.ravel(),
                        minlength=(previous_count + 1) * width).reshape(previous_count + 1, width)
    area_previous, area_current = joint.sum(1), joint.sum(0)
    union = area_previous[:, None] + area_current[None, :] - joint
    iou = np.divide(joint, union, out=np.zeros(joint.shape, dtype=np.float64), where=union > 0)
    iou[0, :] = iou[:, 0] = 0
    return iou


def greedy_pairs(iou: np.ndarray, allowed: np.ndarray, threshold: float) -> List[Tuple[int, int]]:
    """(row, column) pairs, highest IoU first, each row and column once, every
    pair ``allowed`` with IoU >= threshold (> 0)."""
    candidates = np.argwhere(allowed & (iou >= threshold) & (iou > 0))
    order = np.argsort(-iou[candidates[:, 0], candidates[:, 1]], kind="stable")
    rows, columns, pairs = set(), set(), []
    for r, c in candidates[order]:
        if r not in rows and c not in columns:
            rows.add(r)
            columns.add(c)
            pairs.append((int(r), int(c)))
    return pairs


def boxes(ids: np.ndarray, wanted: Sequence[int]) -> Dict[int, Tuple[int, int, int, int]]:
    """Bounding box (x0, y0, x1, y1, exclusive) of each id in ``wanted`` that
    has a pixel in the id image ``ids``; one pass over the image."""
    if not len(wanted):
        return {}
    lookup = np.zeros(MAX_ID + 1, dtype=np.int32)
    lookup[np.asarray(wanted, dtype=np.int64)] = np.arange(1, len(wanted) + 1)
    compact = lookup[ids]
    height, width = ids.shape
    rows = np.zeros((len(wanted) + 1, height), dtype=bool)
    columns = np.zeros((len(wanted) + 1, width), dtype=bool)
    rows[compact, np.arange(height)[:, None]] = True
    columns[compact, np.arange(width)[None, :]] = True
    out = {}
    for index, ident in enumerate(wanted, start=1):
        ys, xs = np.flatnonzero(rows[index]), np.flatnonzero(columns[index])
        if len(ys):
            out[int(ident)] = (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)
    return out


def carried_objects(objects: Sequence[TrackedObject], ids: np.ndarray) -> Tuple[TrackedObject, ...]:
    """A model frame's objects on a frame its id image was carried to: those
    with a pixel left, their boxes from the carried pixels."""
    found = boxes(ids, [o.id for o in objects])
    return tuple(TrackedObject(o.id, o.class_index, o.score, found[o.id]) for o in objects if o.id in found)


class IdentityTracker:
    """One camera's live objects and their last known pixels."""

    def __init__(self, match_iou: float, max_unseen: int, last_id: int = 0):
        """``last_id``: the last id an earlier tracker of the camera issued
        (the count goes on from there, so no id comes back sooner)."""
        self.match_iou = match_iou
        self.max_unseen = max_unseen
        self._lock = threading.Lock()
        self._live: Dict[int, _Live] = {}
        self._pixels: Optional[np.ndarray] = None   # uint16 last known id per pixel
        self._last_id = last_id
        self._stamp = -float("inf")                 # of the model frame last matched

    @property
    def last_id(self) -> int:
        """The last id issued (0: none yet)."""
        return self._last_id

    @property
    def live(self) -> int:
        """Objects alive now, seen or not."""
        return len(self._live)

    def _new_id(self) -> int:
        """The next id after the last one issued, wrapping after MAX_ID, never one alive."""
        if len(self._live) >= MAX_ID:
            raise RuntimeError(f"more than {MAX_ID - 1} objects alive on one camera")
        ident = self._last_id
        while True:
            ident = ident % MAX_ID + 1
            if ident not in self._live:
                self._last_id = ident
                return ident

    def update(self, result: SegmentationResult, stamp: float = 0.0
               ) -> Tuple[Tuple[TrackedObject, ...], np.ndarray]:
        """A model frame's instances under persistent ids: its objects, in
        the order of ``result.instances``, and the id image (uint16)."""
        instances, found = result.instances, result.instance_map
        if found is None:
            raise ValueError("the result has no instance map (the engine's instances are off)")
        with self._lock:
            self._stamp = stamp
            pixels = self._pixels
            if pixels is not None and pixels.shape != found.shape:  # a resized stream starts afresh
                self._live.clear()
                pixels = None
            assigned = np.zeros(len(instances) + 1, dtype=np.uint16)
            if pixels is not None and self._live and instances:
                live = sorted(self._live)
                compact = np.zeros(MAX_ID + 1, dtype=np.int32)
                compact[live] = np.arange(1, len(live) + 1)
                iou = mask_iou(compact[pixels], found, len(live), len(instances))
                live_class = np.array([-1] + [self._live[i].class_index for i in live])
                new_class = np.array([-1] + [inst.class_index for inst in instances])
                for row, column in greedy_pairs(iou, live_class[:, None] == new_class[None, :], self.match_iou):
                    assigned[column] = live[row - 1]
            for ident in self._live.values():
                ident.unseen += 1
            for column in range(1, len(instances) + 1):
                if not assigned[column]:
                    assigned[column] = self._new_id()
                    self._live[int(assigned[column])] = _Live(instances[column - 1].class_index)
                self._live[int(assigned[column])].unseen = 0
            for ident in [i for i, obj in self._live.items() if obj.unseen > self.max_unseen]:
                del self._live[ident]
            ids = assigned[found]
            self._remember(ids)
        objects = tuple(TrackedObject(int(assigned[k + 1]), inst.class_index, inst.score, inst.box)
                        for k, inst in enumerate(instances))
        return objects, ids

    def carried(self, ids: np.ndarray, model_stamp: float) -> None:
        """A propagated frame's id image, carried from the model frame
        stamped ``model_stamp``: where the flow moved the objects, their
        last known pixels from now on (unless a later model frame came)."""
        with self._lock:
            if self._pixels is not None and self._pixels.shape == ids.shape and model_stamp >= self._stamp:
                self._remember(ids)

    def _remember(self, ids: np.ndarray) -> None:
        """Last known pixels: ``ids``'s, and elsewhere those of live objects
        ``ids`` does not show (lock held)."""
        if self._pixels is None or self._pixels.shape != ids.shape:
            self._pixels = ids.copy()
            return
        keep = np.zeros(MAX_ID + 1, dtype=bool)
        keep[list(self._live)] = True
        keep &= np.bincount(ids.ravel(), minlength=MAX_ID + 1) == 0
        keep[0] = False
        self._pixels = np.where((ids == 0) & keep[self._pixels], self._pixels, ids).astype(np.uint16)
