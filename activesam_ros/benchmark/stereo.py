"""A real scene with real depth: Middlebury 2014's Motorcycle, as scikit-image ships it.

The dataset's ``calib.txt`` for Motorcycle (vision.middlebury.edu/stereo/data/scenes2014/)
gives, for the full-size images (2964 x 2000 pixels)::

    cam0=[3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1]
    doffs=124.343  baseline=193.001  vmin=23  vmax=245

with depth (mm) = baseline * f / (d + doffs) for a disparity ``d`` in
pixels; ``vmin``/``vmax`` bound the scene's disparities, so its depths lie
within [baseline f / (vmax + doffs), baseline f / (vmin + doffs)].
scikit-image ships the left image and the ground-truth disparity reduced
by 4 (``downscale_local_mean``, its docstring says); the factor is read
here from the shipped image's width. Focal length, doffs and disparities
scale by it; a reduced pixel ``j`` averages full pixels ``4j .. 4j + 3``,
whose centre is ``4j + 1.5``, so the principal point maps as
``(c - 1.5) / 4``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

from ..stream.depth import Intrinsics, on_depth_grid
from .inputs import InputError

FULL_SIZE = (2964, 2000)
"""calib.txt's width and height."""
FOCAL, CX, CY = 3979.911, 1244.772, 1019.507
DOFFS = 124.343
BASELINE_MM = 193.001
VMIN, VMAX = 23, 245


@dataclass(frozen=True)
class StereoScene:
    """The left image, its ground-truth depth and the camera, at the shipped size."""

    rgb: np.ndarray        # (H, W, 3) uint8
    depth_mm: np.ndarray   # (H, W) float64 millimetres, NaN where there is no ground truth
    intrinsics: Intrinsics
    scale: float           # shipped / full size

    @property
    def depth_range_m(self) -> Tuple[float, float]:
        """The scene's depth range (metres) that calib.txt's vmax and vmin imply."""
        return (BASELINE_MM * FOCAL / (VMAX + DOFFS) / 1000, BASELINE_MM * FOCAL / (VMIN + DOFFS) / 1000)

    def depth_16uc1(self) -> np.ndarray:
        """The ground truth as a 16UC1 depth image: millimetres, 0 = none."""
        out = np.zeros(self.depth_mm.shape, dtype=np.uint16)
        known = np.isfinite(self.depth_mm)
        out[known] = np.round(self.depth_mm[known]).astype(np.uint16)
        return out

    def depth_32fc1(self) -> np.ndarray:
        """The ground truth as a 32FC1 depth image: metres, NaN = none."""
        return (self.depth_mm / 1000).astype(np.float32)


def motorcycle() -> StereoScene:
    """Middlebury's Motorcycle left view with depth from its ground-truth disparity (module doc)."""
    try:
        from skimage import data
    except ImportError:
        raise InputError("the stereo scene ships in scikit-image: pip install scikit-image") from None
    left, _, disparity = data.stereo_motorcycle()
    scale = left.shape[1] / FULL_SIZE[0]
    if abs(left.shape[0] / FULL_SIZE[1] - scale) > 0.01:
        raise InputError(f"scikit-image's Motorcycle is {left.shape[1]} x {left.shape[0]}, not a reduced "
                         f"{FULL_SIZE[0]} x {FULL_SIZE[1]}")
    focal = FOCAL * scale
    known = np.isfinite(disparity)
    depth = np.full(disparity.shape, np.nan)
    depth[known] = BASELINE_MM * focal / (disparity[known].astype(np.float64) + DOFFS * scale)
    centre = (1 / scale - 1) / 2  # a reduced pixel's centre in full pixels: 1.5 at a factor of 4
    intrinsics = Intrinsics(focal, focal, (CX - centre) * scale, (CY - centre) * scale, left.shape[1], left.shape[0])
    return StereoScene(np.ascontiguousarray(left), depth, intrinsics, scale)


def scaled(scene: StereoScene, max_side: int) -> StereoScene:
    """``scene`` with its longer side at most ``max_side``: colour by area,
    depth by the pixel nearest each new pixel's centre (depths are not
    averaged across edges; ``stream.depth.on_depth_grid``), the intrinsics
    scaled about pixel centres."""
    factor = max_side / max(scene.rgb.shape[:2])
    if factor >= 1:
        return scene
    height, width = round(scene.rgb.shape[0] * factor), round(scene.rgb.shape[1] * factor)
    sx, sy = width / scene.rgb.shape[1], height / scene.rgb.shape[0]
    rgb = cv2.resize(scene.rgb, (width, height), interpolation=cv2.INTER_AREA)
    depth = on_depth_grid(scene.depth_mm, (height, width))
    info = scene.intrinsics
    intrinsics = Intrinsics(info.fx * sx, info.fy * sy, (info.cx + 0.5) * sx - 0.5, (info.cy + 0.5) * sy - 0.5,
                            width, height)
    return StereoScene(rgb, depth, intrinsics, scene.scale * sx)
