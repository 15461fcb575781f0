"""Labels in 3D: a registered depth image and the camera's intrinsics turn a
frame's labels into a labelled point cloud and each instance into a 3D box.

Plain arrays in and out (no ROS): the node and the bag processor decode the
depth image and ``CameraInfo`` into a :class:`DepthImage`, and build
``PointCloud2`` and ``Detection3DArray`` messages from what
:func:`project` and :func:`objects_3d` return.

Conventions (after ROS' REP 118 for depth images and image_pipeline's
``depth_image_proc``):

- Depth is along the optical axis: ``16UC1`` in millimetres, ``32FC1`` in
  metres. 0 (either) and NaN or infinite (32FC1) mean no measurement;
  those pixels make no point.
- A pixel ``(u, v)`` of depth ``z`` is the point
  ``x = (u - cx) z / fx``, ``y = (v - cy) z / fy``, ``z`` in the depth
  image's optical frame (x right, y down, z forward), with ``fx fy cx cy``
  from ``CameraInfo.k`` of the depth image.
- Depth registered to the colour camera may have another resolution than
  the colour image, but not another shape: the colour, labels and instance
  ids are sampled at each depth pixel's centre (nearest pixel, never
  interpolated: a label is not a number to average). A depth image whose
  aspect ratio differs from the colour image's by more than
  :data:`ASPECT_TOLERANCE` is refused: it is not the same view.
- Decimation ``n`` keeps every n-th depth pixel along each axis
  (rows and columns 0, n, 2n, ...) for the cloud; the 3D boxes use every
  depth pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

MILLIMETRES, METRES = "16UC1", "32FC1"
"""The depth encodings taken, by their unit (mono16 is read as 16UC1)."""

ASPECT_TOLERANCE = 0.01
"""Relative difference of width/height between the depth and colour images
above which a depth image is refused."""

EDGE_PIXELS = 2
"""A 3D box is measured on an instance's interior: its depth pixels whose
neighbours up to this many pixels away (a square) all belong to it. Mask
edges are where a mask bleeds onto the background or an occluder, whose
depths are far from the object's."""

DEPTH_GATE = 3.0
"""Of an instance's interior points, those whose depth lies more than this
many robust standard deviations (1.4826 x the median absolute deviation)
from their median depth are left out: a mask that bleeds wider than
:data:`EDGE_PIXELS` onto what lies behind or in front still has most of its
pixels on the object, and its median there."""

MIN_DEPTH_GATE = 0.02
"""Metres: the depth gate is never narrower than this either side of the
median (a flat, face-on surface has almost no spread of its own)."""

BOX_QUANTILES = (0.02, 0.98)
"""A 3D box spans these quantiles of the gated points along each axis:
the few points that still lie off the object (depth noise, thin structures)
do not stretch it."""

MIN_OBJECT_POINTS = 10
"""Fewer interior points with depth than this (after falling back to the
whole mask): the instance gets no 3D box."""


class DepthError(ValueError):
    """A depth image or camera info the 3D outputs cannot use; the message says why."""


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera: focal lengths and principal point in pixels, and the image size they belong to."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_k(cls, k: Sequence[float], width: int, height: int) -> "Intrinsics":
        """From CameraInfo's row-major 3x3 ``k``; DepthError when it cannot project."""
        values = [float(v) for v in k]
        if len(values) != 9:
            raise DepthError(f"camera info k must have 9 values, got {len(values)}")
        fx, fy, cx, cy = values[0], values[4], values[2], values[5]
        if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
            raise DepthError(f"camera info k has no usable focal length (fx {fx:g}, fy {fy:g}): "
                             "is the camera calibrated?")
        return cls(fx, fy, cx, cy, int(width), int(height))


@dataclass(frozen=True)
class DepthImage:
    """One depth image in metres (float32, NaN where there is no measurement) and its intrinsics."""

    metres: np.ndarray
    intrinsics: Intrinsics
    stamp: float = 0.0
    frame_id: str = ""

    def __post_init__(self) -> None:
        height, width = self.metres.shape
        info = self.intrinsics
        if (info.width, info.height) != (width, height) and (info.width, info.height) != (0, 0):
            raise DepthError(f"camera info is for a {info.width} x {info.height} image, "
                             f"the depth image is {width} x {height}")


def depth_metres(raw: np.ndarray) -> np.ndarray:
    """A depth image's pixels in metres, float32, NaN where there is no
    measurement: uint16 is millimetres (0: none), float32 metres (0, NaN,
    infinite or negative: none)."""
    if raw.ndim != 2:
        raise DepthError(f"a depth image has one channel, got shape {raw.shape}")
    if raw.dtype == np.uint16:
        out = raw.astype(np.float32) / np.float32(1000.0)
        out[raw == 0] = np.nan
        return out
    if raw.dtype == np.float32:
        out = raw.astype(np.float32, copy=True)
        out[~(np.isfinite(out) & (out > 0))] = np.nan
        return out
    raise DepthError(f"depth must be uint16 millimetres ({MILLIMETRES}) or float32 metres ({METRES}), got {raw.dtype}")


def size_problem(image: Tuple[int, int], depth: Tuple[int, int]) -> Optional[str]:
    """Why a depth image of (height, width) ``depth`` cannot serve a colour
    image of ``image``, or None (same size, or same shape at another resolution)."""
    (h, w), (dh, dw) = image, depth
    if (h, w) == (dh, dw):
        return None
    if abs((dw / dh) / (w / h) - 1) > ASPECT_TOLERANCE:
        return (f"the depth image ({dw} x {dh}) and the colour image ({w} x {h}) have different aspect "
                "ratios: it is not registered to this camera")
    return None


def _nearest_indices(target: int, source: int) -> np.ndarray:
    """For each of ``target`` pixel centres along an axis, the nearest of ``source`` pixels."""
    return np.minimum(((np.arange(target) + 0.5) * (source / target)).astype(np.intp), source - 1)


def on_depth_grid(array: np.ndarray, depth_shape: Tuple[int, int]) -> np.ndarray:
    """A per-pixel array of the colour image (labels, ids, rgb) sampled at
    the depth pixels' centres (nearest); itself when the sizes are equal."""
    if array.shape[:2] == tuple(depth_shape):
        return array
    rows = _nearest_indices(depth_shape[0], array.shape[0])
    cols = _nearest_indices(depth_shape[1], array.shape[1])
    return array[rows[:, None], cols[None, :]]


def _xyz(depth: DepthImage, rows: np.ndarray, cols: np.ndarray, z: np.ndarray) -> np.ndarray:
    info = depth.intrinsics
    out = np.empty((z.size, 3), dtype=np.float32)
    out[:, 0] = (cols.astype(np.float32) - np.float32(info.cx)) * z / np.float32(info.fx)
    out[:, 1] = (rows.astype(np.float32) - np.float32(info.cy)) * z / np.float32(info.fy)
    out[:, 2] = z
    return out


@dataclass(frozen=True)
class Cloud:
    """Points of one frame: one per decimated depth pixel with a measurement."""

    xyz: np.ndarray       # (N, 3) float32 metres, optical frame
    rgb: np.ndarray       # (N, 3) uint8
    label: np.ndarray     # (N,) uint16: the labels image's value at the point's pixel
    instance: np.ndarray  # (N,) uint16: instance id, 0 = none
    pixel: np.ndarray     # (N, 2) intp: (row, column) of the point in the depth image

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


def _check(depth: DepthImage, image_shape: Tuple[int, int]) -> None:
    problem = size_problem(tuple(image_shape[:2]), depth.metres.shape)
    if problem:
        raise DepthError(problem)


def project(depth: DepthImage, rgb: np.ndarray, labels: np.ndarray,
            instance_ids: Optional[np.ndarray] = None, decimation: int = 1) -> Cloud:
    """The labelled cloud of a frame: every ``decimation``-th depth pixel
    along each axis that has a measurement, with the colour, label and
    instance id of its pixel (module doc). DepthError when the depth image
    does not fit the colour image."""
    if decimation < 1:
        raise DepthError(f"decimation must be at least 1, got {decimation}")
    _check(depth, labels.shape)
    shape = depth.metres.shape
    z_grid = depth.metres[::decimation, ::decimation]
    rows, cols = np.nonzero(np.isfinite(z_grid))
    rows, cols = rows * decimation, cols * decimation
    if labels.shape[:2] == shape:  # same size: the colour image's own pixels
        pick_rows, pick_cols = rows, cols
    else:
        image_shape = labels.shape[:2]
        pick_rows = _nearest_indices(shape[0], image_shape[0])[rows]
        pick_cols = _nearest_indices(shape[1], image_shape[1])[cols]
    ids = (instance_ids[pick_rows, pick_cols].astype(np.uint16) if instance_ids is not None
           else np.zeros(rows.size, dtype=np.uint16))
    return Cloud(
        xyz=_xyz(depth, rows, cols, depth.metres[rows, cols]),
        rgb=np.ascontiguousarray(rgb[pick_rows, pick_cols, :3], dtype=np.uint8),
        label=labels[pick_rows, pick_cols].astype(np.uint16),
        instance=ids,
        pixel=np.stack([rows, cols], axis=1),
    )


@dataclass(frozen=True)
class Object3D:
    """One instance in 3D, in the depth image's optical frame (metres)."""

    id: int
    centroid: Tuple[float, float, float]  # mean of its interior points inside the box
    center: Tuple[float, float, float]    # the box's centre
    size: Tuple[float, float, float]      # the box's extent along x, y, z
    points: int                           # interior points measured


def interior(ids: np.ndarray, edge: int = EDGE_PIXELS) -> np.ndarray:
    """Where the id is the same in every pixel up to ``edge`` pixels away
    (a (2 edge + 1) square): min and max filters agree there."""
    if edge <= 0:
        return np.ones(ids.shape, dtype=bool)
    kernel = np.ones((2 * edge + 1, 2 * edge + 1), dtype=np.uint8)
    ids = np.ascontiguousarray(ids, dtype=np.uint16)
    low = cv2.erode(ids, kernel, borderType=cv2.BORDER_REPLICATE)
    high = cv2.dilate(ids, kernel, borderType=cv2.BORDER_REPLICATE)
    return low == high


def _gate(z: np.ndarray) -> np.ndarray:
    """The depths within :data:`DEPTH_GATE` robust deviations of their median."""
    median = np.median(z)
    spread = max(DEPTH_GATE * 1.4826 * float(np.median(np.abs(z - median))), MIN_DEPTH_GATE)
    return np.abs(z - median) <= spread


def objects_3d(depth: DepthImage, instance_ids: np.ndarray, wanted: Optional[Sequence[int]] = None,
               edge: int = EDGE_PIXELS, quantiles: Tuple[float, float] = BOX_QUANTILES,
               min_points: int = MIN_OBJECT_POINTS) -> Tuple[Object3D, ...]:
    """Each instance's 3D box and centroid from its masked depth, robust to
    mask edges: measured on the interior (:func:`interior`; the whole mask
    when the interior has fewer than ``min_points`` points with depth),
    gated by depth around their median (:data:`DEPTH_GATE`); the box spans
    ``quantiles`` of the gated points per axis, the centroid is the mean of
    the gated points inside the box. ``wanted``: the ids to measure
    (default: every id > 0 in ``instance_ids``, which has the colour image's
    size). Instances with too few points with depth are left out."""
    _check(depth, instance_ids.shape)
    ids = on_depth_grid(instance_ids, depth.metres.shape)
    valid = np.isfinite(depth.metres)
    inner = interior(ids, edge) & valid
    if wanted is None:
        wanted = [int(i) for i in np.unique(ids) if i]
    rows_all, cols_all = np.nonzero(valid & (ids > 0))
    flat_ids = ids[rows_all, cols_all]
    order = np.argsort(flat_ids, kind="stable")  # one pass groups every instance's pixels
    rows_all, cols_all, flat_ids = rows_all[order], cols_all[order], flat_ids[order]
    flat_inner = inner[rows_all, cols_all]
    out = []
    for object_id in wanted:
        start, stop = np.searchsorted(flat_ids, [object_id, object_id + 1])
        mine = slice(int(start), int(stop))
        chosen = flat_inner[mine]
        if np.count_nonzero(chosen) < min_points:
            chosen = np.ones(stop - start, dtype=bool)
        if np.count_nonzero(chosen) < min_points:
            continue
        rows, cols = rows_all[mine][chosen], cols_all[mine][chosen]
        z = depth.metres[rows, cols]
        gated = _gate(z.astype(np.float64))
        rows, cols = rows[gated], cols[gated]
        xyz = _xyz(depth, rows, cols, z[gated]).astype(np.float64)
        low, high = np.quantile(xyz, quantiles, axis=0)
        inside = np.all((xyz >= low) & (xyz <= high), axis=1)
        centroid = xyz[inside].mean(axis=0) if inside.any() else (low + high) / 2
        out.append(Object3D(int(object_id), tuple(float(v) for v in centroid),
                            tuple(float(v) for v in (low + high) / 2),
                            tuple(float(v) for v in high - low), int(rows.size)))
    return tuple(out)
