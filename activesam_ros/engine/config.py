"""ActiveSAM's hyper-parameters, one typed, validated place.

Defaults are the reference values of the method (method doc section 5). The
same names are used by the CLI flags (``--bucket-size``) and the node's
parameters (``bucket_size``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from .bucket import AUTO
from .vocabulary import Vocabulary, VocabularyError

MODES = ("exact", "fast")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
"""``compile``: none, or the torch.compile mode of the grounding forward
(``reduce-overhead`` also replays it as CUDA graphs)."""


class ConfigError(ValueError):
    """An invalid configuration value; the message names it and says why."""


def integer_error(name: str, value: Any, low: int, high: Optional[int] = None, allow_none: bool = False) -> str:
    """Why ``value`` is not an integer in [low, high] (no bound above when None); "" if it is."""
    if value is None and allow_none:
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high):
        return ""
    if high is not None:
        return f"{name} must be an integer in [{low}, {high}], got {value!r}"
    if low == 1:
        return f"{name} must be a positive integer, got {value!r}"
    return f"{name} must be an integer >= {low}, got {value!r}"


def number_error(name: str, value: Any, low: float, high: Optional[float],
                 low_open: bool = False, high_open: bool = False) -> str:
    """Why ``value`` is not a number in the interval (open or closed at each
    end; no bound above when ``high`` is None); "" if it is."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{name} must be a number, got {value!r}"
    above = value > low if low_open else value >= low
    below = high is None or (value < high if high_open else value <= high)
    if above and below:
        return ""
    if high is None:
        return f"{name} must be a number {'>' if low_open else '>='} {low:g}, got {value!r}"
    return (f"{name} must be in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}, "
            f"got {value!r}")


def choice_error(name: str, value: Any, choices: Sequence[str]) -> str:
    if value in choices:
        return ""
    return f"{name} must be one of {', '.join(choices)}, got {value!r}"


def validated(config: Any) -> Any:
    """``config`` itself if its ``errors()`` are none, else ConfigError with all of them."""
    problems = config.errors()
    if problems:
        raise ConfigError("; ".join(problems))
    return config


@dataclass(frozen=True)
class ActiveSAMConfig:
    """Every hyper-parameter of the pipeline.

    ``resolution`` None means the model's own input size (1008 for the
    released SAM 3); ``preview_resolution`` None means two thirds of it,
    rounded to the patch size (672 for 1008). ``bucket_size`` 0 (AUTO)
    means the largest bucket of at most 32 prompts that fits the GPU's
    free memory, 32 on a CPU (``bucket``).
    """

    resolution: Optional[int] = None
    preview_resolution: Optional[int] = None
    bucket_size: int = AUTO
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
    # torch.compile mode of the grounding forward (for CUDA): "none" until
    # measured on a GPU. Fixed when the engine is created, like device and dtype.
    compile: str = "none"
    # The instances the fusion keeps (class, score, box, pixels) beside the
    # labels (``SegmentationResult.instances``); off saves their work.
    instances: bool = True
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def errors(self) -> List[str]:
        """Every problem with this configuration, as readable reasons."""
        out = [
            integer_error("resolution", self.resolution, 1, allow_none=True),
            integer_error("preview_resolution", self.preview_resolution, 1, allow_none=True),
            integer_error("fast_preview_resolution", self.fast_preview_resolution, 1, allow_none=True),
            integer_error("bucket_size", self.bucket_size, 0),
            integer_error("max_active", self.max_active, 1),
            number_error("quantile_alpha", self.quantile_alpha, 0, 1, low_open=True),
            number_error("confidence_threshold", self.confidence_threshold, 0, 1, high_open=True),
            number_error("background_threshold", self.background_threshold, 0, 1, high_open=True),
            number_error("fast_presence_floor", self.fast_presence_floor, 0, 1, high_open=True),
            number_error("fast_screen_keep", self.fast_screen_keep, 0, 1, low_open=True),
            number_error("mabc_exponent", self.mabc_exponent, 0, None, low_open=True),
            integer_error("neighbour_tokens", self.neighbour_tokens, 0, 8),
            integer_error("hypernym_tokens", self.hypernym_tokens, 0, 8),
            choice_error("mode", self.mode, MODES),
            choice_error("dtype", self.dtype, ("auto", "float32", "bfloat16", "float16")),
            choice_error("compile", self.compile, COMPILE_MODES),
            "" if isinstance(self.instances, bool) else f"instances must be true or false, got {self.instances!r}",
        ]
        return [problem for problem in out if problem]

    def validate(self) -> "ActiveSAMConfig":
        return validated(self)

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
