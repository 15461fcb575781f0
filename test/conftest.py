"""Shared fixtures: a tiny SAM 3 (random weights) and real photographs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from activesam_ros.engine.environment import set_process_defaults

set_process_defaults()

PAPER_VOCABULARIES = Path(__file__).resolve().parent / "data" / "vocabularies"
# Photographs that ship inside the scikit-image wheel (a test dependency).
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg")


def paper_vocabulary(name: str) -> list:
    """A class list the paper measured with (test data: test/data/vocabularies, source named there)."""
    path = PAPER_VOCABULARIES / f"{name}.txt"
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def photo_path(name: str) -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-image (test photographs) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / name


def load_photo(name: str, max_side: int = 320) -> np.ndarray:
    """A real photograph as H x W x 3 uint8 RGB, downscaled to ``max_side``."""
    import cv2

    image = cv2.imread(str(photo_path(name)), cv2.IMREAD_COLOR)
    assert image is not None, name
    scale = max_side / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image[:, :, ::-1])


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny SAM 3 at 224 px (fast on a CPU); shared, never mutated."""
    from activesam_ros.model import build_tiny_sam3

    return build_tiny_sam3(seed=0, image_size=224)


@pytest.fixture(scope="session")
def photos():
    return {name: load_photo(name) for name in PHOTOS[:3]}


@pytest.fixture
def tiny_cli(monkeypatch):
    """``--model tiny`` and sam3's own builder both give a 224 px tiny SAM 3,
    so the commands' real loading paths run in seconds."""
    import sam3.model_builder as builder

    from activesam_ros.engine.model import build_tiny_sam3

    monkeypatch.setattr("activesam_ros.engine.model.build_tiny_sam3",
                        lambda seed=0: build_tiny_sam3(seed=seed, image_size=224))
    monkeypatch.setattr(builder, "build_sam3_image_model",
                        lambda bpe_path, device, checkpoint_path, load_from_HF: build_tiny_sam3(image_size=224))
