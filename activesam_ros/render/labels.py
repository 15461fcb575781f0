"""The label image as pixels: one rule for the node, the bag and the CLI's PNGs.

Pixel = class index (the vocabulary line). Two encodings
(:data:`LABEL_ENCODINGS`, the ``label_encoding`` parameter):

- ``mono`` (the default): uint8 while the vocabulary has at most 254
  classes, uint16 beyond (ROS ``mono8``/``mono16``, what rviz shows).
  Unlabeled is the dtype's maximum, 255 or 65535.
- ``32SC1``: int32 whatever the vocabulary's size, unlabeled -1: the value
  Hydra gives a pixel without a label (its colour decoder and label
  remapper write -1; its semantic integrators skip it without a warning),
  and the "unknown" of semantic_inference's label images. Hydra converts
  every single-channel label image to 32SC1 on arrival, so this one it
  takes as it is.

The panoptic image (:func:`panoptic_array`) holds class and object in one
int32 pixel: ``class_index << 16 | object_id`` (object id 0: no object, the
pixel's class alone), unlabeled -1 as in ``32SC1``. A consumer reads
``class = value >> 16`` and ``id = value & 0xFFFF``.

Unlabeled means: with background calibration on, every pixel of the class
named ``background`` (calibrated, or won outright). One value for "nothing
recognised", whether and wherever the vocabulary has a ``background`` line,
so a consumer needs no vocabulary to find it; the ``mono`` value is also
the ignore value of the benchmarks' ground truth. Without calibration
``background`` is an ordinary class. (docs/node.md, "Label images".)
"""

from __future__ import annotations

import numpy as np

from ..engine.result import LABEL_ENCODINGS, SegmentationResult

MONO8_MAX_CLASSES = 254
"""More classes than this need 16-bit labels: 255 is uint8's unlabeled value."""
MONO16_MAX_CLASSES = 65535

MONO, INT32 = LABEL_ENCODINGS

INT32_UNLABELED = -1
"""The unlabeled value of the ``32SC1`` encoding."""


def _check_encoding(encoding: str) -> None:
    if encoding not in LABEL_ENCODINGS:
        raise ValueError(f"unknown label encoding {encoding!r}; use one of {', '.join(LABEL_ENCODINGS)}")


def label_dtype(classes: int, encoding: str = MONO) -> type:
    """mono: uint8 for at most 254 classes, uint16 up to 65535 (ValueError
    beyond); 32SC1: int32."""
    _check_encoding(encoding)
    if classes > MONO16_MAX_CLASSES:
        raise ValueError(f"{classes} classes do not fit a 16-bit labels image")
    if encoding == INT32:
        return np.int32
    return np.uint8 if classes <= MONO8_MAX_CLASSES else np.uint16


def unlabeled_value(classes: int, encoding: str = MONO) -> int:
    """The value of an unlabeled pixel in the labels image of ``classes`` classes."""
    dtype = label_dtype(classes, encoding)
    return INT32_UNLABELED if encoding == INT32 else int(np.iinfo(dtype).max)


def ros_encoding(classes: int, encoding: str = MONO) -> str:
    """The sensor_msgs/Image encoding of the labels image: mono8, mono16 or 32SC1."""
    dtype = label_dtype(classes, encoding)
    return {np.uint8: "mono8", np.uint16: "mono16", np.int32: "32SC1"}[dtype]


def label_array(result: SegmentationResult, encoding: str = MONO) -> np.ndarray:
    """The labels image's pixels: class indices, unlabeled as the encoding says."""
    classes = len(result.vocabulary)
    out = result.labels.astype(label_dtype(classes, encoding))
    if result.background_index is not None:
        out[result.labels == result.background_index] = unlabeled_value(classes, encoding)
    return out


PANOPTIC_SHIFT = 16
"""The panoptic pixel's class index sits above the 16 bits of the object id
(a vocabulary has at most ``engine.limits.MAX_QUERIES`` = 10000 classes, so
the int32 stays positive)."""


def panoptic_array(result: SegmentationResult, instance_ids: "np.ndarray | None") -> np.ndarray:
    """The panoptic image's pixels (module doc): class and object id per pixel,
    int32; ``instance_ids`` None (instances off) gives the classes alone."""
    out = result.labels.astype(np.int32) << PANOPTIC_SHIFT
    if instance_ids is not None:
        out |= instance_ids.astype(np.int32)
    if result.background_index is not None:
        out[result.labels == result.background_index] = INT32_UNLABELED
    return out
