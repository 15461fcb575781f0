"""A depth image and its CameraInfo, from message fields (rclpy's or rosbags' classes).

``16UC1`` (and ``mono16``, as depth drivers also label millimetres) is read
as millimetres, ``32FC1`` as metres (REP 118); either endianness. A depth
image larger than ``engine.limits.MAX_IMAGE_PIXELS`` is refused from its
header fields before its data is read, like a colour image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.limits import check_image_size
from ..stream.depth import DepthError, Intrinsics, depth_metres
from .imgconv import pixel_rows

_DTYPES = {"16uc1": "u2", "mono16": "u2", "32fc1": "f4"}
"""Depth encodings (lower case) and their pixel types."""


def depth_to_metres(msg: Any) -> np.ndarray:
    """A sensor_msgs/Image of depth as (H, W) float32 metres, NaN where there is no measurement."""
    encoding = str(msg.encoding)
    kind = _DTYPES.get(encoding.strip().lower())
    if kind is None:
        raise DepthError(f"unsupported depth encoding {encoding!r}: use 16UC1 (millimetres) or 32FC1 (metres)")
    height, width = int(msg.height), int(msg.width)
    if height <= 0 or width <= 0:
        raise DepthError(f"empty {encoding!r} depth image ({width} x {height})")
    check_image_size(width, height, what=f"{encoding!r} depth image")
    dtype = np.dtype((">" if msg.is_bigendian else "<") + kind)
    rows = np.ascontiguousarray(pixel_rows(msg, f"{encoding!r} depth image", width * dtype.itemsize, DepthError))
    return depth_metres(rows.view(dtype).astype(dtype.newbyteorder("=")))


def intrinsics(msg: Any) -> Intrinsics:
    """The pinhole intrinsics of a sensor_msgs/CameraInfo (its ``k``), for its width and height."""
    return Intrinsics.from_k(list(msg.k), int(msg.width), int(msg.height))
