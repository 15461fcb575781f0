"""ActiveSAM's hyper-parameters, one typed, validated place.

Defaults are the reference values of the method (method doc section 5). The
same names are used by the CLI flags (``--bucket-size``) and the node's
parameters (``bucket_size``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .vocabulary import Vocabulary, VocabularyError

MODES = ("exact", "fast")


class ConfigError(ValueError):
    """An invalid configuration value; the message names it and says why."""


@dataclass(frozen=True)
class ActiveSAMConfig:
    """Every hyper-parameter of the pipeline.

    ``resolution`` None means the model's own input size (1008 for the
    released SAM 3); ``preview_resolution`` None means two thirds of it,
    rounded to the patch size (672 for 1008).
    """

    resolution: Optional[int] = None
    preview_resolution: Optional[int] = None
    bucket_size: int = 32
    max_active: int = 40
    quantile_alpha: float = 0.20
    confidence_threshold: float = 0.3
    background_threshold: float = 0.0
    mabc_exponent: float = 1.25
    neighbour_tokens: int = 2
    hypernym_tokens: int = 2
    device: str = "auto"
    dtype: str = "auto"
    mode: str = "exact"
    # Fast mode only: a query whose full-resolution presence is below this
    # skips the segmentation heads (its score is at most its presence).
    fast_presence_floor: float = 0.02
    # Fast mode only: a screening preview at this input size (None = 1/3 of
    # the resolution: 336 for 1008, a quarter of the preview's tokens) passes
    # the top ``fast_screen_keep`` of the queries on to the real preview.
    fast_preview_resolution: Optional[int] = None
    fast_screen_keep: float = 0.4
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def errors(self) -> List[str]:
        """Every problem with this configuration, as readable reasons."""
        out = []

        def positive_int(name: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                out.append(f"{name} must be a positive integer, got {value!r}")

        def unit(name: str, value: Any, low_open: bool = False, high_open: bool = False) -> None:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                out.append(f"{name} must be a number, got {value!r}")
                return
            lo_ok = value > 0 if low_open else value >= 0
            hi_ok = value < 1 if high_open else value <= 1
            if not (lo_ok and hi_ok):
                lo = "(0" if low_open else "[0"
                hi = "1)" if high_open else "1]"
                out.append(f"{name} must be in {lo}, {hi}, got {value!r}")

        positive_int("resolution", self.resolution, allow_none=True)
        positive_int("preview_resolution", self.preview_resolution, allow_none=True)
        positive_int("fast_preview_resolution", self.fast_preview_resolution, allow_none=True)
        positive_int("bucket_size", self.bucket_size)
        positive_int("max_active", self.max_active)
        unit("quantile_alpha", self.quantile_alpha, low_open=True)
        unit("confidence_threshold", self.confidence_threshold, high_open=True)
        unit("background_threshold", self.background_threshold, high_open=True)
        unit("fast_presence_floor", self.fast_presence_floor, high_open=True)
        unit("fast_screen_keep", self.fast_screen_keep, low_open=True)
        if not isinstance(self.mabc_exponent, (int, float)) or not self.mabc_exponent > 0:
            out.append(f"mabc_exponent must be a positive number, got {self.mabc_exponent!r}")
        for name in ("neighbour_tokens", "hypernym_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 8:
                out.append(f"{name} must be an integer in [0, 8], got {value!r}")
        if self.mode not in MODES:
            out.append(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            out.append(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")
        return out

    def validate(self) -> "ActiveSAMConfig":
        problems = self.errors()
        if problems:
            raise ConfigError("; ".join(problems))
        return self

    def replace(self, **changes: Any) -> "ActiveSAMConfig":
        """A validated copy with some fields changed."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes).validate()

    def as_dict(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}


class BackgroundClassMissing(ConfigError, VocabularyError):
    """A config and a vocabulary that do not go together: whichever of the
    two was changed last is refused, so it is an error of either kind."""


def require_background_class(config: ActiveSAMConfig, vocabulary: Vocabulary) -> None:
    """Background calibration relabels pixels as the class named
    ``background``: refuse a threshold without one."""
    if config.background_threshold > 0 and vocabulary.background_index is None:
        raise BackgroundClassMissing("background_threshold > 0 needs a class named 'background' in the vocabulary")
