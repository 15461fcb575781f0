"""The engine room: ActiveSAM on SAM 3, pure torch + sam3, no ROS, files or threads.

``from activesam_ros.engine import ActiveSAM, ActiveSAMConfig`` is the
public entry. The names are resolved on first use, so that the torch-free
modules of this room (``config``, ``vocabulary``, ``result``) can be
imported by the stream room without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ActiveSAM": "pipeline",
    "ImageError": "limits",
    "NonFiniteScores": "pipeline",
    "PreparedVocabulary": "pipeline",
    "check_image": "limits",
    "ActiveSAMConfig": "config",
    "ConfigError": "config",
    "Instance": "result",
    "SegmentationResult": "result",
    "Vocabulary": "vocabulary",
    "VocabularyError": "vocabulary",
    "load_vocabulary_file": "vocabulary",
    "ModelLoadError": "model",
    "build_tiny_sam3": "model",
    "load_model": "model",
    "load_sam3": "model",
    "resolve_device": "model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list:
    return sorted(set(globals()) | set(_EXPORTS))
