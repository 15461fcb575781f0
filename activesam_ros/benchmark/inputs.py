"""The benchmark's inputs: real photographs, a synthetic video and
vocabularies of any size, all reproducible without a download.

The photographs ship inside the scikit-image wheel. The video is drawn
frame by frame from two of them (a slow pan, shapes crossing it, and a cut
to the other photograph halfway, so scene-change previews happen), the same
pixels on every machine. Vocabularies are prefixes of one list of real class
names: the paper's benchmark lists when they sit beside the checkout, the
package's own vocabulary files, then those names with a modifier ("small
chair") when more are needed.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from ..engine.vocabulary import BACKGROUND, Vocabulary, canonicalize, load_vocabulary_file, shipped_names
from ..evaluation.datasets import load_image

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg")

# The paper's class lists, read in place when the project's shared folder
# sits beside the checkout (reference data: never copied into the package).
PAPER_VOCABULARIES = Path(__file__).resolve().parents[3] / "shared" / "vocabularies"

MODIFIERS = ("small", "large", "wooden", "metal", "red", "old", "broken", "plastic")


class InputError(RuntimeError):
    """An input the benchmark needs is missing; the message says how to get it."""


def photo_path(name: str) -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the benchmark's photographs ship in scikit-image: pip install scikit-image")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / name


def downscale(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` with its longer side at most ``max_side`` (area resampling)."""
    scale = max_side / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def load_photos(names: Sequence[str], max_side: int) -> Dict[str, np.ndarray]:
    """The named scikit-image photographs as H x W x 3 uint8 RGB."""
    return {name: downscale(load_image(photo_path(name)), max_side) for name in names}


class SyntheticVideo:
    """``frames`` deterministic frames of ``width`` x ``height``.

    The first half pans over ``backgrounds[0]``, the second over
    ``backgrounds[1]`` (a cut); four filled shapes move on slow Lissajous
    paths in front. The motion per frame is the same at any length
    (``PATH_FRAMES``): a short video is the start of the long one, not the
    whole path squeezed into a few frames, which would move every frame as
    far as a scene change. Frames are drawn on demand, so a long video costs
    no memory.
    """

    # kind, RGB colour, size (fraction of the height), x/y cycles per video, phase
    SHAPES = (
        ("circle", (230, 40, 40), 0.16, 1.0, 2.0, 0.0),
        ("rectangle", (40, 90, 230), 0.22, 2.0, 1.0, 1.3),
        ("triangle", (250, 210, 30), 0.20, 1.5, 1.0, 2.1),
        ("ellipse", (40, 200, 90), 0.14, 1.0, 1.5, 3.7),
    )
    PAN = 1.25  # the background is this much larger than the frame
    PATH_FRAMES = 300  # frames of one pass along the paths (the full benchmark's video)

    def __init__(self, backgrounds: Sequence[np.ndarray], frames: int, width: int, height: int):
        if len(backgrounds) != 2 or frames < 1:
            raise ValueError("a synthetic video needs two backgrounds and at least one frame")
        self.frames, self.width, self.height = frames, width, height
        self._backgrounds = [self._cover(b) for b in backgrounds]

    def _cover(self, rgb: np.ndarray) -> np.ndarray:
        scale = self.PAN * max(self.width / rgb.shape[1], self.height / rgb.shape[0])
        size = (math.ceil(rgb.shape[1] * scale), math.ceil(rgb.shape[0] * scale))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)

    def __len__(self) -> int:
        return self.frames

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self.frames:
            raise IndexError(index)
        t = index / self.PATH_FRAMES
        background = self._backgrounds[0 if index < self.frames // 2 else 1]
        slack_x, slack_y = background.shape[1] - self.width, background.shape[0] - self.height
        pan = 0.5 - 0.5 * math.cos(4 * math.pi * t)
        x0, y0 = int(slack_x * pan), int(slack_y * (1 - pan))
        frame = np.ascontiguousarray(background[y0 : y0 + self.height, x0 : x0 + self.width])
        for kind, colour, size, fx, fy, phase in self.SHAPES:
            r = int(size * self.height / 2)
            cx = int(self.width * (0.5 + 0.35 * math.sin(2 * math.pi * fx * t + phase)))
            cy = int(self.height * (0.5 + 0.35 * math.sin(2 * math.pi * fy * t + 2 * phase)))
            if kind == "circle":
                cv2.circle(frame, (cx, cy), r, colour, -1, cv2.LINE_AA)
            elif kind == "rectangle":
                cv2.rectangle(frame, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour, -1)
            elif kind == "triangle":
                points = np.array([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], dtype=np.int32)
                cv2.fillPoly(frame, [points], colour, cv2.LINE_AA)
            else:
                cv2.ellipse(frame, (cx, cy), (r, r // 2), 30.0, 0.0, 360.0, colour, -1, cv2.LINE_AA)
        return frame


def _list_names() -> Tuple[List[str], List[str]]:
    """Every distinct first alias of the known class lists, and where they came from."""
    vocabularies: List[Tuple[str, Vocabulary]] = []
    if PAPER_VOCABULARIES.is_dir():
        vocabularies += [(f"paper:{p.name}", Vocabulary.from_file(p)) for p in sorted(PAPER_VOCABULARIES.glob("*.txt"))]
    vocabularies += [(f"package:{name}.txt", load_vocabulary_file(name)) for name in shipped_names()]
    names: Dict[str, str] = {}
    for _, vocabulary in vocabularies:
        for name in vocabulary.names:
            if name.lower() != BACKGROUND:
                names.setdefault(canonicalize(name).lower(), name)
    return list(names.values()), [source for source, _ in vocabularies]


def class_names(count: int) -> Tuple[List[str], Dict[str, object]]:
    """``count`` distinct class names and a description of their sources.

    Smaller vocabularies are prefixes of larger ones, as when a user grows a
    vocabulary; names beyond the lists are "<modifier> <name>".
    """
    names, sources = _list_names()
    real = len(names)
    for modifier in MODIFIERS:
        if len(names) >= count:
            break
        names += [f"{modifier} {name}" for name in names[:real]]
    if len(names) < count:
        raise ValueError(f"at most {len(names)} class names can be generated, asked for {count}")
    return names[:count], {"files": sources, "listed": min(real, count), "generated": max(0, count - real)}
