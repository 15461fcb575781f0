"""sensor_msgs images <-> numpy arrays, without cv_bridge.

cv_bridge breaks with NumPy 2 on Humble (ros-perception/vision_opencv#535)
and cannot be installed off a ROS machine; this module needs only numpy and
OpenCV, and reads message *fields*, so rclpy's and rosbags' message classes
both work.

Every input becomes H x W x 3 uint8 RGB, the engine's one pixel format.
An image beyond ``engine.limits.MAX_IMAGE_PIXELS`` is refused (ImageError)
from its header fields before its data is read. A CompressedImage is
decoded by ``files.images``, the decoder of image files too (the formats
it accepts, and why, are listed there). 16-bit data (mono16, 16UC1,
rgb16, bayer_*16, 16-bit PNG...) is brought to 8 bits by the same per-frame
min/max contrast stretch (``files.images.to_8bit``): 12-bit cameras and
depth images in millimetres use a small part of the 16-bit range, and
``>> 8`` would leave them nearly black. The price: brightness can change
between frames as the range changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, NamedTuple, Optional, Type

import cv2
import numpy as np

from ..engine.limits import ImageError, check_image_size
from ..files.images import decode_rgb, to_8bit


class UnsupportedImage(ImageError):
    """An image message that cannot be turned into RGB; the message says why."""


@dataclass(frozen=True)
class _Layout:
    """How an encoding stores a pixel, and the OpenCV step to RGB (None: it is RGB)."""

    channels: int
    depth: int  # bytes per channel
    to_rgb: Optional[int]


def _layouts(depth: int, suffix: str) -> Dict[str, _Layout]:
    return {
        f"rgb{suffix}": _Layout(3, depth, None),
        f"bgr{suffix}": _Layout(3, depth, cv2.COLOR_BGR2RGB),
        f"rgba{suffix}": _Layout(4, depth, cv2.COLOR_RGBA2RGB),
        f"bgra{suffix}": _Layout(4, depth, cv2.COLOR_BGRA2RGB),
        f"mono{suffix}": _Layout(1, depth, cv2.COLOR_GRAY2RGB),
        f"{8 * depth}uc1": _Layout(1, depth, cv2.COLOR_GRAY2RGB),
        f"{8 * depth}uc3": _Layout(3, depth, cv2.COLOR_BGR2RGB),  # OpenCV order, as cv_bridge
        f"{8 * depth}uc4": _Layout(4, depth, cv2.COLOR_BGRA2RGB),
        # OpenCV names a Bayer pattern by its second row: ROS rggb is OpenCV BG.
        f"bayer_rggb{suffix}": _Layout(1, depth, cv2.COLOR_BayerBG2RGB),
        f"bayer_bggr{suffix}": _Layout(1, depth, cv2.COLOR_BayerRG2RGB),
        f"bayer_gbrg{suffix}": _Layout(1, depth, cv2.COLOR_BayerGR2RGB),
        f"bayer_grbg{suffix}": _Layout(1, depth, cv2.COLOR_BayerGB2RGB),
    }


_UYVY = _Layout(2, 1, cv2.COLOR_YUV2RGB_UYVY)
_YUYV = _Layout(2, 1, cv2.COLOR_YUV2RGB_YUYV)
LAYOUTS = {
    **_layouts(1, "8"),
    **_layouts(2, "16"),
    # "yuv422" and "yuv422_yuy2" are the older names of uyvy and yuyv.
    "uyvy": _UYVY, "yuv422": _UYVY,
    "yuyv": _YUYV, "yuv422_yuy2": _YUYV,
}
"""Supported encodings (lower case; lookup ignores case, so ``8UC3`` works)."""


def as_uint8(data: Any) -> np.ndarray:
    """A flat uint8 view of bytes, bytearray, array.array (rclpy), memoryview or numpy data."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:  # a plain sequence of ints
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _convert(pixels: np.ndarray, layout: _Layout) -> np.ndarray:
    """(H, W, C) uint8/uint16 pixels of ``layout`` to a new (H, W, 3) uint8 RGB array."""
    if pixels.dtype != np.uint8:
        pixels = to_8bit(pixels)
    if layout.channels == 1:
        pixels = pixels[:, :, 0]
    if layout.to_rgb is None:
        return np.array(pixels, dtype=np.uint8, order="C")
    return cv2.cvtColor(np.ascontiguousarray(pixels), layout.to_rgb)


def pixel_rows(msg: Any, what: str, row_bytes: int, error: Type[Exception]) -> np.ndarray:
    """The (height, row_bytes) uint8 pixel rows of an Image-like ``msg`` (its
    size already checked); ``error`` when its step or its data fall short."""
    height, step = int(msg.height), int(msg.step)
    if step < row_bytes:
        raise error(f"{what}: step {step} is less than width x pixel size = {row_bytes}")
    buf = as_uint8(msg.data)
    if buf.size < step * height:
        raise error(f"truncated {what}: {buf.size} bytes of data, step x height = {step * height} expected")
    return buf[: step * height].reshape(height, step)[:, :row_bytes]


def image_to_rgb(msg: Any) -> np.ndarray:
    """A sensor_msgs/Image (or any object with its fields) as a new H x W x 3 uint8 RGB array."""
    encoding = msg.encoding
    layout = LAYOUTS.get(encoding.strip().lower())
    if layout is None:
        raise UnsupportedImage(f"unsupported image encoding {encoding!r}")
    height, width = int(msg.height), int(msg.width)
    if height <= 0 or width <= 0:
        raise UnsupportedImage(f"empty {encoding!r} image ({width} x {height})")
    check_image_size(width, height, what=f"{encoding!r} image")
    if layout.channels == 2 and width % 2:  # 4:2:2 shares chroma between pixel pairs
        raise UnsupportedImage(f"{encoding!r} image: odd width {width}")
    rows = pixel_rows(msg, f"{encoding!r} image", width * layout.channels * layout.depth, UnsupportedImage)
    if layout.depth == 2:
        rows = np.ascontiguousarray(rows).view(">u2" if msg.is_bigendian else "<u2")
    return _convert(rows.reshape(height, width, layout.channels), layout)


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """A sensor_msgs/CompressedImage (JPEG, PNG... as image_transport writes it) as RGB.

    image_transport's ``compressed`` publisher stores colour in OpenCV's BGR
    order and says so in ``format`` ("rgb8; jpeg compressed bgr8"); a
    format saying ``compressed rgb`` is taken at its word.
    """
    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        raise UnsupportedImage(
            f"compressed image format {fmt[:80]!r}: compressedDepth is not supported, "
            "subscribe to the raw depth image"
        )
    try:
        return decode_rgb(as_uint8(msg.data), f"compressed image of format {fmt[:80]!r}",
                          rgb_order="compressed rgb" in fmt.lower())
    except ImageError as exc:
        raise UnsupportedImage(str(exc)) from None


class ImageFields(NamedTuple):
    """The sensor_msgs/Image fields (but header) describing one array."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray  # flat, C-contiguous uint8


_OUTPUT_TYPES = {  # encoding: (channels, little-endian dtype)
    "rgb8": (3, np.dtype("u1")),
    "mono8": (1, np.dtype("u1")),
    "mono16": (1, np.dtype("<u2")),
    "32FC1": (1, np.dtype("<f4")),
    "32SC1": (1, np.dtype("<i4")),
}


def rgb_to_image_fields(pixels: np.ndarray, encoding: str) -> ImageFields:
    """Fields of an output image: rgb8 (H, W, 3) uint8, mono8 (H, W) uint8,
    mono16 (H, W) uint16, 32FC1 (H, W) float32 or 32SC1 (H, W) int32; always
    little-endian.

    The dtype must match: a silent cast could wrap label values or lose depth.
    """
    if encoding not in _OUTPUT_TYPES:
        raise UnsupportedImage(
            f"cannot write encoding {encoding!r}; use one of {sorted(_OUTPUT_TYPES)}"
        )
    channels, dtype = _OUTPUT_TYPES[encoding]
    if channels == 1:
        shape_ok = pixels.ndim == 2
    else:
        shape_ok = pixels.ndim == 3 and pixels.shape[2] == channels
    dtype_ok = (pixels.dtype.kind, pixels.itemsize) == (dtype.kind, dtype.itemsize)
    if not (shape_ok and dtype_ok):
        raise ValueError(
            f"{encoding} needs {channels}-channel {dtype.name} pixels, "
            f"got {pixels.dtype} of shape {pixels.shape}"
        )
    height, width = pixels.shape[:2]
    data = np.ascontiguousarray(pixels, dtype=dtype).reshape(-1).view(np.uint8)
    return ImageFields(height, width, encoding, 0, width * channels * dtype.itemsize, data)
