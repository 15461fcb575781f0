"""Image files and encoded images in, checked against the size limit
before a pixel is decoded (a 1 MB PNG can hold 400 megapixels)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np
from PIL import Image

from ..engine.limits import MAX_IMAGE_PIXELS, ImageError, check_image_size


def header_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(width, height) from an encoded image's header, without decoding it;
    None when Pillow does not know the format (OpenCV may still)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError as exc:  # Pillow's own, higher, limit: far beyond ours
        raise ImageError(f"too large: {exc} (the limit is {MAX_IMAGE_PIXELS / 1e6:.1f} MP)") from None
    except Exception:
        return None


def check_encoded(data: bytes, what: str) -> None:
    """Refuse an encoded image whose header announces a size beyond the limit."""
    try:
        size = header_size(data)
    except ImageError as exc:
        raise ImageError(f"{what} is {exc}") from None
    if size is not None:
        check_image_size(*size, what=what)


def decode_rgb(data: bytes, what: str) -> np.ndarray:
    """An encoded image (any format OpenCV reads) as H x W x 3 uint8 RGB."""
    check_encoded(data, what)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise ImageError(f"{what}: not a readable image")
    check_image_size(image.shape[1], image.shape[0], what=what)
    return np.ascontiguousarray(image[:, :, ::-1])


def read_rgb(path: Path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB, or ImageError saying why not."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: {exc.strerror}") from exc
    return decode_rgb(data, str(path))
