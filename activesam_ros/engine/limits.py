"""Every input's size limit, in one place (torch-free).

An image or a vocabulary arrives from a file, a rosbag2, a live topic or a
``ros2 param set`` of someone else's; each is checked against these limits
before the work it implies is started, and refused with a reason.
"""

from __future__ import annotations

import numpy as np

MAX_IMAGE_PIXELS = 4096 * 4096
"""Pixels of one input image (16.8 MP: a 12 MP camera fits). The method
fuses every decoded class at the image's own size, so memory grows with
the pixel count; larger images are refused before they are decoded."""

MIN_IMAGE_SIDE = 2
"""The model resizes the whole image; a side of one pixel has nothing to resize."""

MAX_QUERIES = 10_000
"""Text prompts (aliases) of one vocabulary: every one is text-encoded and
kept with its context tokens, and the preview scores every one per frame."""

MAX_ALIAS_CHARS = 200
"""Characters of one class name; SAM 3's text encoder reads 32 tokens."""

MAX_VOCABULARY_FILE_BYTES = 1 << 20
"""Bytes of a vocabulary file (1 MiB: tens of thousands of class lines)."""

MAX_ROLES_FILE_BYTES = 1 << 20
"""Bytes of a class roles file (``activesam labelspace --roles``, the
node's ``labelspace_roles``): which classes are objects, surfaces, dynamic."""

MAX_PATH_BYTES = 4096
"""Bytes of a path a user types (Linux's PATH_MAX)."""

MAX_IMAGE_BYTES = MAX_IMAGE_PIXELS * 8 + (1 << 20)
"""Bytes of one image in any form before it is decoded: an image file, a
CompressedImage's data, a bag message after inflating (135 MB): an image at
the pixel limit stored uncompressed at 16-bit RGBA, plus 1 MiB of headers.
Larger inputs are refused before they are read whole."""

MAX_BAG_METADATA_BYTES = 16 << 20
"""Bytes of an input rosbag2's metadata.yaml (16 MiB: thousands of topics and files)."""

MAX_INFLATED_VIDEO_BYTES = 1 << 30
"""Bytes a gzipped video (``bench --video x.gz``) may inflate to (1 GiB)."""

INFLATE_DISK_RESERVE = 256 << 20
"""Bytes left free on the temporary folder's disk when a compressed file is
inflated there (a file-compressed rosbag2): inflating stops before."""


class InputError(ValueError):
    """An input (file, message, parameter) refused by a limit or a rule; the message says why."""


class ImageError(InputError):
    """An image the engine cannot take; the message says why."""


def check_image_size(width: int, height: int, what: str = "image") -> None:
    """Refuse an image too large to take, by its header, before any pixel is decoded."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(f"{what} is too large: {width}x{height} = {width * height / 1e6:.1f} MP, "
                         f"the limit is {MAX_IMAGE_PIXELS / 1e6:.1f} MP (downscale it first)")


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` if it is an H x W x 3 uint8 RGB array within the limits."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an H x W x 3 RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected uint8 pixels, got {image.dtype}")
    height, width = image.shape[:2]
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        raise ImageError(f"image too small: {width}x{height} (each side needs at least {MIN_IMAGE_SIDE} pixels)")
    check_image_size(width, height)
    return image
