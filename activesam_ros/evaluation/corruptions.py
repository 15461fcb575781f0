"""Four ImageNet-C corruptions (Hendrycks & Dietterich, ICLR 2019), as in the
paper's robustness table: Gaussian noise, motion blur, JPEG compression and
fog, at severities 1-5 with ImageNet-C's parameters.

Every random draw comes from a generator seeded by the caller, so a
corrupted image depends only on (image, corruption, severity, seed).
"""

from __future__ import annotations

import io
from typing import Callable, Dict, Sequence, Union

import cv2
import numpy as np
from PIL import Image

Seed = Union[int, Sequence[int]]

# ImageNet-C's parameters, one entry per severity 1..5.
NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)                         # of the [0, 1] range
MOTION_BLUR = ((10, 3.0), (15, 5.0), (15, 8.0), (15, 12.0), (20, 15.0))  # ImageMagick radius, sigma
JPEG_QUALITY = (25, 18, 15, 10, 7)
FOG = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))  # strength, roughness decay


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    # ImageNet-C truncates (np.uint8 of the float image) rather than rounds.
    return (np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8)


def gaussian_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive white noise, independent per pixel and channel."""
    unit = image / 255.0
    return _to_uint8(unit + rng.normal(0.0, NOISE_STD[severity - 1], size=image.shape))


def motion_kernel(radius: int, sigma: float, angle_degrees: float) -> np.ndarray:
    """ImageMagick's motion blur as a 2-D kernel: 2 * radius + 1 taps with
    one-sided Gaussian weights, stepping one pixel at a time along the angle."""
    taps = np.arange(2 * radius + 1)
    weights = np.exp(-(taps**2) / (2.0 * sigma**2))
    angle = np.deg2rad(angle_degrees)
    dx = np.rint(taps * np.cos(angle)).astype(int)
    dy = np.rint(taps * np.sin(angle)).astype(int)
    centre = 2 * radius
    kernel = np.zeros((2 * centre + 1, 2 * centre + 1))
    np.add.at(kernel, (centre + dy, centre + dx), weights)
    return kernel / kernel.sum()


def motion_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur along a line at a random angle in [-45, 45) degrees."""
    radius, sigma = MOTION_BLUR[severity - 1]
    kernel = motion_kernel(radius, sigma, rng.uniform(-45.0, 45.0))
    blurred = cv2.filter2D(image.astype(np.float32) / 255.0, -1, kernel.astype(np.float32),
                           borderType=cv2.BORDER_REPLICATE)
    return _to_uint8(blurred)


def jpeg_compression(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A JPEG round trip at low quality (no randomness; ``rng`` is unused)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY[severity - 1])
    with Image.open(buffer) as decoded:
        return np.array(decoded.convert("RGB"))


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """A size x size cloud texture in [0, 1] by the diamond-square algorithm on
    a torus. ImageNet-C's generator draws its displacement as wibble * U(-wibble,
    wibble) and divides wibble by ``decay`` per level, so each finer level's
    displacement shrinks by ``decay`` squared; this keeps that texture."""
    if size < 2 or size & (size - 1):
        raise ValueError(f"size must be a power of two >= 2, got {size}")
    grid = np.zeros((size, size))
    step, amplitude = size, 100.0
    while step >= 2:
        half = step // 2
        corners = grid[::step, ::step]
        right, down = np.roll(corners, -1, axis=1), np.roll(corners, -1, axis=0)
        centres = (corners + right + down + np.roll(down, -1, axis=1)) / 4
        grid[half::step, half::step] = centres + rng.uniform(-amplitude, amplitude, centres.shape)
        centres = grid[half::step, half::step]
        # Diamond points on the corners' rows lie between two corners (left,
        # right) and two centres (above, below); on the centres' rows, between
        # two corners (above, below) and two centres (left, right).
        edge_h = (corners + right + centres + np.roll(centres, 1, axis=0)) / 4
        edge_v = (corners + down + centres + np.roll(centres, 1, axis=1)) / 4
        grid[::step, half::step] = edge_h + rng.uniform(-amplitude, amplitude, edge_h.shape)
        grid[half::step, ::step] = edge_v + rng.uniform(-amplitude, amplitude, edge_v.shape)
        step, amplitude = half, amplitude / decay**2
    grid -= grid.min()
    return grid / grid.max()


def fog(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A plasma-fractal haze added to the image, then contrast compressed."""
    strength, decay = FOG[severity - 1]
    height, width = image.shape[:2]
    size = 1 << max(1, (max(height, width) - 1).bit_length())
    haze = plasma_fractal(size, decay, rng)[:height, :width, None]
    unit = image / 255.0
    peak = unit.max()
    return _to_uint8((unit + strength * haze) * peak / (peak + strength))


CORRUPTIONS: Dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": gaussian_noise,
    "motion_blur": motion_blur,
    "jpeg_compression": jpeg_compression,
    "fog": fog,
}


def corrupt(image: np.ndarray, corruption: str, severity: int, seed: Seed = 0) -> np.ndarray:
    """``image`` (H x W x 3 uint8 RGB) under one corruption at severity 1-5."""
    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}; choose one of {', '.join(CORRUPTIONS)}")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1 to 5, got {severity}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {image.dtype} {image.shape}")
    return CORRUPTIONS[corruption](image, severity, np.random.default_rng(seed))
