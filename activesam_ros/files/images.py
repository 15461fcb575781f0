"""The one decoder of encoded images: image files (``segment``, ``eval``)
and CompressedImage messages (the node, ``bag``) alike, so the same bytes
give the same pixels everywhere.

Accepted are the formats whose size is read from the header before any
pixel is decoded (:data:`FORMATS`): PNG, JPEG, WebP, BMP and PNM
(PBM/PGM/PPM). The format is told by its signature, Pillow reads the
header (the size, nothing else), the size is checked against
``engine.limits``, and only then does OpenCV decode; the decoded size must
be the one the header announced. Other formats OpenCV would read (Radiance
HDR, OpenEXR, TIFF, JPEG 2000, ...) are refused: their headers are not
read here, or they hold float, 32-bit or multi-page data that no bound
covers.

Pixels are taken as stored:
- **bit depth**: 16-bit images (PNG, PGM/PPM) are brought to 8 bits by a
  per-image min/max stretch (:func:`to_8bit`): 12-bit cameras and depth in
  millimetres use a small part of the 16-bit range, and ``>> 8`` would
  leave them nearly black; a constant image falls back to ``>> 8``;
- **orientation**: an EXIF orientation tag is reported, not applied (as
  image_transport decodes a CompressedImage), so label pixel (x, y) is the
  stored pixel (x, y);
- **alpha** is dropped; grey becomes three equal channels.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import cv2
import numpy as np
from PIL import Image

from ..engine.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, ImageError, check_image_size
from ..engine.paths import read_regular

_Sniff = Callable[[bytes], bool]
FORMATS: Dict[str, Tuple[_Sniff, Tuple[str, ...]]] = {
    "PNG": (lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"), ("PNG",)),
    "JPEG": (lambda b: b.startswith(b"\xff\xd8\xff"), ("JPEG", "MPO")),  # MPO: a camera's multi-picture JPEG
    "WebP": (lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP", ("WEBP",)),
    "BMP": (lambda b: b.startswith(b"BM"), ("BMP", "DIB")),
    "PNM": (lambda b: len(b) > 2 and b[0:1] == b"P" and b[1:2] in b"123456" and b[2:3].isspace(), ("PPM",)),
}
"""Accepted formats: name -> (signature test, the names Pillow gives them)."""

ACCEPTED = ", ".join(FORMATS)
EXIF_ORIENTATION = 0x0112


class ImageHeader(NamedTuple):
    """What an encoded image's header says."""

    format: str        # a key of FORMATS
    width: int
    height: int
    orientation: int   # EXIF orientation, 1 (as stored) when absent


class Decoded(NamedTuple):
    rgb: np.ndarray    # H x W x 3 uint8 RGB
    header: ImageHeader


def sniff(data: bytes) -> Optional[str]:
    """The accepted format whose signature ``data`` starts with, or None."""
    head = bytes(data[:16])
    return next((name for name, (test, _) in FORMATS.items() if test(head)), None)


def read_header(data: bytes, what: str) -> ImageHeader:
    """The header of an encoded image of an accepted format, its size
    checked against the limits; ImageError saying why not."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"{what} has {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}")
    name = sniff(data)
    if name is None:
        raise ImageError(f"{what} is not an image of an accepted format ({ACCEPTED}: formats whose size is "
                         "read from the header before decoding)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                size, pillow_format = image.size, image.format
                orientation = _orientation(image)
    except Image.DecompressionBombError as exc:  # Pillow's own, higher, limit: far beyond ours
        raise ImageError(f"{what} is too large: {exc} (the limit is {MAX_IMAGE_PIXELS / 1e6:.1f} MP)") from None
    except Exception as exc:  # Pillow raises many kinds on a damaged header
        raise ImageError(f"{what}: damaged {name} header ({' '.join(str(exc).split()) or type(exc).__name__})") \
            from None
    if pillow_format not in FORMATS[name][1]:
        raise ImageError(f"{what} starts like {name} but its header reads as {pillow_format}")
    check_image_size(*size, what=what)
    return ImageHeader(name, int(size[0]), int(size[1]), orientation)


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # damaged EXIF: the pixels are what counts
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """uint16 pixels to uint8 by the per-image min/max stretch of the module doc."""
    lo, hi = int(pixels.min()), int(pixels.max())
    if hi == lo:
        return (pixels >> 8).astype(np.uint8)
    scaled = (pixels.astype(np.float32) - lo) * (255.0 / (hi - lo)) + 0.5
    return scaled.astype(np.uint8)


_TO_RGB = {(1, False): cv2.COLOR_GRAY2RGB, (1, True): cv2.COLOR_GRAY2RGB,
           (3, False): cv2.COLOR_BGR2RGB, (3, True): None,
           (4, False): cv2.COLOR_BGRA2RGB, (4, True): cv2.COLOR_RGBA2RGB}


def decode(data: bytes, what: str, rgb_order: bool = False) -> Decoded:
    """An encoded image as H x W x 3 uint8 RGB, with its header; ImageError
    (one line, naming ``what``) for anything this module refuses. OpenCV
    stores colour as BGR; ``rgb_order`` says the data holds RGB instead
    (a CompressedImage whose format says ``compressed rgb``)."""
    header = read_header(data, what)
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageError(f"{what}: OpenCV cannot decode it ({' '.join(str(exc).split())[-120:]})") from None
    if pixels is None:
        raise ImageError(f"{what}: damaged {header.format} data, OpenCV cannot decode it")
    if pixels.shape[:2] != (header.height, header.width):
        raise ImageError(f"{what} decodes to {pixels.shape[1]}x{pixels.shape[0]}, its header says "
                         f"{header.width}x{header.height}")
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
    channels = pixels.shape[2]
    if (channels, rgb_order) not in _TO_RGB or pixels.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"{what} decodes to {channels} channel(s) of {pixels.dtype}")
    if pixels.dtype == np.uint16:
        pixels = to_8bit(pixels)
    code = _TO_RGB[channels, rgb_order]
    rgb = np.array(pixels, dtype=np.uint8, order="C") if code is None else cv2.cvtColor(pixels, code)
    return Decoded(rgb, header)


def decode_rgb(data: bytes, what: str, rgb_order: bool = False) -> np.ndarray:
    """:func:`decode`'s pixels alone."""
    return decode(data, what, rgb_order).rgb


def read_image(path: "os.PathLike[str] | str") -> Decoded:
    """An image file (a regular file of at most MAX_IMAGE_BYTES, of an
    accepted format) decoded by :func:`decode`."""
    return decode(read_regular(path, MAX_IMAGE_BYTES, str(path), ImageError), str(path))
