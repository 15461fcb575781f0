"""The eight benchmarks of the paper: where their files lie, and with which
vocabulary, background threshold and label mapping they are measured.

Layouts are those of the usual mmsegmentation preparation (method doc,
section 6). ``--data-root`` may name the dataset's own top folder (VOC2012,
VOC2010, ADEChallengeData2016) or the folder that holds it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
from PIL import Image

from ..engine.limits import MAX_IMAGE_BYTES, ImageError, InputError, check_image_size
from ..engine.paths import read_regular
from ..engine.vocabulary import Vocabulary, load_vocabulary_file
from ..files.images import read_image
from .metrics import reduce_zero_label


class DatasetError(InputError):
    """Missing or malformed benchmark data; the message names the path."""


@dataclass(frozen=True)
class Sample:
    name: str      # the image's path below the image folder, without suffix
    image: Path
    label: Path


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    folder: str                 # the dataset's own top folder, "" if the root is it
    image_dir: str
    label_dir: str
    image_suffix: str
    label_suffix: str
    split: Optional[str]        # list of image names; None: every image in image_dir
    vocabulary_file: str        # shipped in activesam_ros/vocabularies
    num_classes: int
    background_threshold: float = 0.0
    reduce_zero_label: bool = False

    def base(self, data_root: Union[str, Path]) -> Path:
        """The folder the layout's paths are relative to."""
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"data root {root} does not exist or is not a folder")
        candidates = [root / self.folder, root] if self.folder else [root]
        for base in candidates:
            if (base / self.image_dir).is_dir():
                return base
        expected = " or ".join(str(c / self.image_dir) for c in candidates)
        raise DatasetError(f"{self.title} images not found: expected {expected}")

    def samples(self, data_root: Union[str, Path]) -> List[Sample]:
        """Every (image, ground truth) pair of the split, in a fixed order."""
        base = self.base(data_root)
        image_dir, label_dir = base / self.image_dir, base / self.label_dir
        if not label_dir.is_dir():
            raise DatasetError(f"{self.title} ground truth not found: expected {label_dir}")
        if self.split is None:
            cut = len(self.image_suffix)
            names = sorted(p.relative_to(image_dir).as_posix()[:-cut] for p in image_dir.rglob("*" + self.image_suffix))
        else:
            split = base / self.split
            if not split.is_file():
                raise DatasetError(f"{self.title} split file not found: expected {split}")
            names = [line.strip() for line in split.read_text().splitlines() if line.strip()]
        if not names:
            raise DatasetError(f"no {self.title} images: nothing matches {image_dir}/*{self.image_suffix}")
        samples = [
            Sample(n, image_dir / (n + self.image_suffix), label_dir / (n + self.label_suffix)) for n in names
        ]
        for kind in ("image", "label"):
            missing = [getattr(s, kind) for s in samples if not getattr(s, kind).is_file()]
            if missing:
                raise DatasetError(f"{len(missing)} {kind} file(s) of {self.title} missing, e.g. {missing[0]}")
        return samples

    def vocabulary(self) -> Vocabulary:
        return load_vocabulary_file(Path(self.vocabulary_file).stem)

    def load_label(self, path: Path) -> np.ndarray:
        """Ground truth as class indices of the vocabulary (or 255 = ignore)."""
        label = read_png_ids(path)
        return reduce_zero_label(label) if self.reduce_zero_label else label.astype(np.int64)


def load_image(path: Path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB, by the decoder every front end
    uses (``files.images``: its size checked from the header, before decoding)."""
    try:
        return read_image(path).rgb
    except InputError as exc:
        raise DatasetError(f"cannot read image {path}: {exc}") from exc


def read_png_ids(path: Path) -> np.ndarray:
    """A label map's ids: palette PNGs give their indices, not their colours.
    Read as the images are: a regular file within the limits, its size
    checked from the header before decoding."""
    try:
        data = read_regular(path, MAX_IMAGE_BYTES, f"ground truth {path}", DatasetError)
        with Image.open(io.BytesIO(data)) as image:
            check_image_size(*image.size, what=f"ground truth {path}")
            if image.mode not in ("L", "P", "I", "I;16"):
                raise DatasetError(f"{path} is a {image.mode} image, not a map of label ids")
            return np.asarray(image)
    except (OSError, ImageError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot read ground truth {path}: {exc}") from exc


def _voc(name: str, title: str, classes: int, threshold: float, reduce: bool) -> Benchmark:
    return Benchmark(name, title, "VOC2012", "JPEGImages", "SegmentationClass", ".jpg", ".png",
                     "ImageSets/Segmentation/val.txt", f"{name}.txt", classes, threshold, reduce)


def _context(name: str, title: str, classes: int, threshold: float, reduce: bool) -> Benchmark:
    return Benchmark(name, title, "VOC2010", "JPEGImages", "SegmentationClassContext", ".jpg", ".png",
                     "ImageSets/SegmentationContext/val.txt", f"{name}.txt", classes, threshold, reduce)


def _coco(name: str, title: str, label_suffix: str, classes: int, threshold: float) -> Benchmark:
    return Benchmark(name, title, "", "images/val2017", "annotations/val2017", ".jpg", label_suffix,
                     None, f"{name}.txt", classes, threshold)


BENCHMARKS: Dict[str, Benchmark] = {
    b.name: b
    for b in (
        _voc("voc21", "PASCAL VOC 2012 (21 classes)", 21, 0.4, False),
        _voc("voc20", "PASCAL VOC 2012 (20 classes)", 20, 0.0, True),
        _context("context60", "PASCAL-Context (60 classes)", 60, 0.1, False),
        _context("context59", "PASCAL-Context (59 classes)", 59, 0.0, True),
        _coco("coco_object", "COCO-Object", "_instanceTrainIds.png", 81, 0.4),
        _coco("coco_stuff", "COCO-Stuff", "_labelTrainIds.png", 171, 0.0),
        Benchmark("cityscapes", "Cityscapes", "", "leftImg8bit/val", "gtFine/val", "_leftImg8bit.png",
                  "_gtFine_labelTrainIds.png", None, "cityscapes.txt", 19),
        Benchmark("ade20k", "ADE20K", "ADEChallengeData2016", "images/validation", "annotations/validation",
                  ".jpg", ".png", None, "ade20k.txt", 150, reduce_zero_label=True),
    )
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(BENCHMARKS)}") from None
