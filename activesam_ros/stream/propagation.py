"""Labels for the frames the model skips: the last model labels carried
forward by dense optical flow (OpenCV's DIS on small grey images).

A camera runs faster than the model; the model takes only the newest frame.
A frame the model will not see gets the labels of the camera's last model
frame, warped along the flow from that frame to this one, in milliseconds
on a CPU. The flow is computed at :data:`FLOW_WIDTH` pixels wide, from the
new frame back to the model frame, so every pixel of the new frame looks up
where it came from (nearest label, bilinear score).

It is refused, and the frame goes without (it waits for the model, or is
dropped for a newer one), when its stamp is not a number or earlier than
the model frame's (labels are carried forward in time only), or when it
cannot be trusted (``TemporalConfig``):
the model frame is older than ``propagation_max_age`` seconds (or
``propagation_max_age_periods`` of the camera's model period, when that is
longer: a slow model's labels are older by nature), the median motion
exceeds ``propagation_max_motion`` of the image width, or the model frame
warped onto the new one still differs from it by more than
``scene_change_threshold`` grey levels on average: a new scene (a cut, an
occlusion, a lighting jump), the same measure that makes the temporal
policy refresh.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Optional, Tuple

import cv2
import numpy as np

from ..engine.result import SegmentationResult
from .identities import TrackedObject, carried_objects
from .temporal import TemporalConfig

FLOW_WIDTH = 160
"""Width of the grey images the flow is computed on (height in proportion)."""


@dataclass(frozen=True)
class Flow:
    """How one frame's pixels came from the model frame, and whether to trust it."""

    field: np.ndarray    # (h, w, 2) at flow resolution: new pixel -> model-frame pixel
    motion: float        # median displacement / image width
    residual: float      # mean |new - warped model frame| in grey levels


def small_grey(rgb: np.ndarray) -> np.ndarray:
    """The frame as the flow sees it: grey, FLOW_WIDTH wide."""
    height, width = rgb.shape[:2]
    size = (FLOW_WIDTH, max(8, round(height * FLOW_WIDTH / width)))
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)


@lru_cache(maxsize=8)
def _grid(width: int, height: int) -> np.ndarray:
    """(height, width, 2) pixel coordinates (x, y); shared, never written."""
    return np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)), -1)


class LabelPropagator:
    """One camera's anchor (its last model frame) and the flow from it.

    ``anchor`` runs on the worker after each model frame, ``propagate`` on
    whichever thread hands over a skipped frame; a lock keeps the pair
    consistent. The state is one model result and one small grey image.
    """

    def __init__(self, config: TemporalConfig):
        self.config = config.validate()
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._flow_lock = threading.Lock()  # one DIS object, one caller at a time
        self._lock = threading.Lock()
        self._result: Optional[SegmentationResult] = None
        self._grey: Optional[np.ndarray] = None
        self._stamp = 0.0
        self._context: Any = None
        self._max_age = self.config.propagation_max_age
        self._objects: Tuple[TrackedObject, ...] = ()
        self._ids: Optional[np.ndarray] = None

    def anchor(self, rgb: np.ndarray, result: SegmentationResult, stamp: float, context: Any = None,
               grey: Optional[np.ndarray] = None, max_age: Optional[float] = None,
               objects: Tuple[TrackedObject, ...] = (), instance_ids: Optional[np.ndarray] = None) -> None:
        """A model frame: the labels later frames are carried forward from
        (``context``: the caller's, e.g. its header, returned with them;
        ``grey``: its ``small_grey``, if the caller has it), for at most
        ``max_age`` seconds (default ``propagation_max_age``; the runtime
        passes ``ActiveSetTracker.propagation_age_limit``); its persistent
        ``objects`` and id image are carried with the labels."""
        grey = small_grey(rgb) if grey is None else grey
        max_age = self.config.propagation_max_age if max_age is None else max_age
        with self._lock:
            self._result, self._grey, self._stamp, self._context = result, grey, stamp, context
            self._max_age = max_age
            self._objects, self._ids = objects, instance_ids

    def flow(self, grey: np.ndarray, anchor: np.ndarray) -> Flow:
        """The flow from ``grey`` back to ``anchor`` (two ``small_grey``
        images), with its motion and the residual after aligning them."""
        if grey.shape != anchor.shape:  # a resized stream: nothing aligns
            return Flow(np.zeros(grey.shape + (2,), np.float32), 1.0, 255.0)
        with self._flow_lock:
            field = self._dis.calc(grey, anchor, None)
        warped = cv2.remap(anchor, _grid(grey.shape[1], grey.shape[0]) + field, None, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        motion = float(np.median(np.linalg.norm(field, axis=-1))) / grey.shape[1]
        residual = float(np.mean(np.abs(warped.astype(np.float32) - grey)))
        return Flow(field, motion, residual)

    def refusal(self, flow: Flow, age: float, max_age: Optional[float] = None) -> str:
        """Why labels carried along ``flow`` over ``age`` seconds are not to
        be trusted (older than ``max_age``, default ``propagation_max_age``); "" if they are."""
        c = self.config
        if age > (c.propagation_max_age if max_age is None else max_age):
            return f"model frame {age:.2f} s old"
        if flow.motion > c.propagation_max_motion:
            return f"motion {flow.motion:.2f} of the width"
        if c.scene_change_threshold > 0 and flow.residual > c.scene_change_threshold:
            return f"residual {flow.residual:.1f} grey levels"
        return ""

    def propagate(self, rgb: np.ndarray, stamp: float) -> "Propagated":
        """The anchor's labels carried to this frame, or the reason they are not."""
        started = time.perf_counter()
        with self._lock:
            result, anchor, anchor_stamp, context = self._result, self._grey, self._stamp, self._context
            max_age, objects, ids = self._max_age, self._objects, self._ids
        if result is None:
            return Propagated(None, anchor_stamp, None, "no model frame yet")
        if rgb.shape[:2] != result.labels.shape:
            return Propagated(None, anchor_stamp, context, "the image size changed")
        age = stamp - anchor_stamp
        if not math.isfinite(age) or age < 0:
            why = "its stamp is not a number" if not math.isfinite(age) else \
                f"it is stamped {-age:.3f} s before the model frame"
            return Propagated(None, anchor_stamp, context, why)
        flow = self.flow(small_grey(rgb), anchor)
        why = self.refusal(flow, age, max_age)
        if why:
            return Propagated(None, anchor_stamp, context, why)
        maps = flow_maps(flow.field, *result.labels.shape)
        labels, scores = warp(result, flow.field, maps)
        instance_map = instance_ids = None
        if result.instance_map is not None:
            instance_map = remap_nearest(result.instance_map, maps)
        if ids is not None:
            instance_ids = remap_nearest(ids, maps)
            objects = carried_objects(objects, instance_ids)
        timings = {"propagation": time.perf_counter() - started}
        carried = replace(result, labels=labels, scores=scores, preview_ran=False, timings=timings,
                          instance_map=instance_map)
        return Propagated(carried, anchor_stamp, context, "", flow, objects, instance_ids)


@dataclass(frozen=True)
class Propagated:
    """What ``propagate`` made: a result, or ``refused`` saying why not."""

    result: Optional[SegmentationResult]
    model_stamp: float
    model_context: Any
    refused: str
    flow: Optional[Flow] = None
    objects: Tuple[TrackedObject, ...] = ()     # the model frame's objects left on this frame
    instance_ids: Optional[np.ndarray] = None   # its id image carried like the labels


def flow_maps(field: np.ndarray, height: int, width: int) -> np.ndarray:
    """(height, width, 2) source pixel of every pixel of a frame, from a
    flow-resolution ``field``."""
    scale_x, scale_y = width / field.shape[1], height / field.shape[0]
    full = cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)
    full[..., 0] *= scale_x
    full[..., 1] *= scale_y
    return _grid(width, height) + full


def remap_nearest(image: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """An index image (values below 65536) moved along ``maps``, each pixel
    taking its source's value, in its own dtype."""
    moved = cv2.remap(image.astype(np.uint16, copy=False), maps, None, cv2.INTER_NEAREST,
                      borderMode=cv2.BORDER_REPLICATE)
    return moved.astype(image.dtype, copy=False)


def warp(result: SegmentationResult, field: np.ndarray, maps: Optional[np.ndarray] = None) -> tuple:
    """Labels (nearest) and scores (bilinear) of ``result`` moved along a
    flow-resolution ``field`` (or its ``flow_maps``) to a frame of the same size."""
    maps = flow_maps(field, *result.labels.shape) if maps is None else maps
    labels = remap_nearest(result.labels, maps)
    scores = cv2.remap(result.scores.astype(np.float32), maps, None, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return labels, scores
