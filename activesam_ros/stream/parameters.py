"""The parameters every front end shares: one table, and its validation.

The node declares these (plus its own topic and QoS parameters,
``ros.node_params``) with ROS descriptors built from the table; the bag
processor and the CLI make one flag per entry (``bucket_size`` ->
``--bucket-size``) with the same description and, for streams, the same
default. Keeping the table free of ROS lets the tests check, in CI, that it
covers every ``ActiveSAMConfig`` and ``TemporalConfig`` field, that its
ranges agree with their ``errors()``, and that the YAML and launch files
match it.

ROS cannot say "None" for an integer, so 0 stands for it on the resolutions
(the model's own size, or the derived preview sizes). A ``string_array``
parameter may be unset (``None``): ROS 2 parameter files and ``ros2 param``
cannot express an empty string list, so unset, ``[]`` and ``[""]`` all mean
"no classes given".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..engine.config import COMPILE_MODES, ActiveSAMConfig, require_background_class
from ..engine.result import LABEL_ENCODINGS
from ..engine.vocabulary import Vocabulary, VocabularyError, load_vocabulary_file
from .temporal import TemporalConfig

BOOL, INT, DOUBLE, STRING, STRING_ARRAY = "bool", "int", "double", "string", "string_array"
PYTHON_TYPES = {BOOL: (bool,), INT: (int,), DOUBLE: (float,), STRING: (str,), STRING_ARRAY: (list, tuple)}

RESOLUTION_STEP = 14
"""SAM 3's ViT patch: input sizes must be multiples of it (the tiny model's too)."""


class ParameterError(ValueError):
    """Parameter values a front end cannot run with; the message lists the reasons."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: what a ROS ParameterDescriptor says, plus its default.

    ``low``/``high``/``step`` follow ROS ranges: inclusive, and a value must
    be ``low + k * step`` (step 0: any). ``choices`` restricts a string.
    """

    name: str
    kind: str
    default: Any
    description: str
    read_only: bool = False
    low: Optional[float] = None
    high: Optional[float] = None
    step: float = 0
    choices: Tuple[str, ...] = ()

    @property
    def constraints(self) -> str:
        """The descriptor's ``additional_constraints`` text (ros2 param describe)."""
        if self.choices:
            return "one of: " + ", ".join(c or "''" for c in self.choices)
        return ""

    @property
    def flag(self) -> str:
        """The command-line flag of the same name."""
        return "--" + self.name.replace("_", "-")


def _rng(low: float, high: float, step: float = 0) -> Dict[str, float]:
    return {"low": low, "high": high, "step": step}


_RESOLUTION = _rng(0, 2016, RESOLUTION_STEP)

# Engine hyper-parameters: description and range; type and default come from
# ActiveSAMConfig itself, so its defaults have one home.
_ENGINE: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "resolution": ("full-resolution input size in pixels, a multiple of 14; 0 = the model's own (1008 for SAM 3, 336 for the tiny model)", _RESOLUTION),
    "preview_resolution": ("exact mode's preview input size, a multiple of 14; 0 = 2/3 of the resolution", _RESOLUTION),
    "fast_preview_resolution": ("fast mode: every query is first screened at this input size, a multiple of 14; 0 = 1/3 of the resolution", _RESOLUTION),
    "fast_screen_keep": ("fast mode: fraction of the queries the screen passes on to the preview, in (0, 1]", _rng(0.0, 1.0)),
    "bucket_size": ("text prompts per grounding forward (GPU memory vs. speed); 0 = auto: the largest of at most 32 that fits the GPU's free memory (32 on a CPU). Halved when a frame runs out of memory", _rng(0, 512)),
    "max_active": ("at most this many queries are decoded at full resolution; the preview runs only for larger vocabularies", _rng(1, 4096)),
    "quantile_alpha": ("fraction of the queries the preview keeps active, in (0, 1]", _rng(0.0, 1.0)),
    "confidence_threshold": ("instance score threshold of SAM 3's detections, in [0, 1)", _rng(0.0, 1.0)),
    "background_threshold": ("margin-aware background calibration threshold, 0 = off; > 0 needs a class named 'background'", _rng(0.0, 1.0)),
    "mabc_exponent": ("exponent of the background calibration threshold, > 0", _rng(0.0, 10.0)),
    "neighbour_tokens": ("context tokens per prompt from the most similar other prompts", _rng(0, 8)),
    "hypernym_tokens": ("context tokens per prompt from WordNet hypernyms", _rng(0, 8)),
    "mode": ("exact: the method step by step; fast: the same decisions with less work", {"choices": ("exact", "fast")}),
    "fast_presence_floor": ("fast mode: queries below this full-resolution presence skip the segmentation heads", _rng(0.0, 1.0)),
    "instances": ("find the instances the fusion keeps (class, score, box, pixels) for the detections, instances and panoptic outputs; false saves their work and leaves those outputs empty", {}),
    "device": ("auto (CUDA if present), cpu, cuda or cuda:N", {"read_only": True}),
    "dtype": ("compute dtype of the image encoder's trunk, every other stage runs in float32: auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16 or float16",
              {"read_only": True, "choices": ("auto", "float32", "bfloat16", "float16")}),
    "compile": ("torch.compile the grounding forward on CUDA: none (default, until measured on a GPU), default, "
                "reduce-overhead (also replays it as CUDA graphs) or max-autotune; minutes of compiling at start",
                {"read_only": True, "choices": COMPILE_MODES}),
}
STREAM_DEFAULTS = {"mode": "fast"}
"""Where a stream's default (the node's, the bag processor's) differs from
the library's: a camera stream wants speed."""

_TEMPORAL: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "refresh_interval": ("a refresh (the method's full work: preview, or every class of a small vocabulary) every this many model frames per camera; frames between decode only the classes present recently. 1 = every frame, the paper's behaviour", _rng(1, 1000)),
    "refresh_period": ("also refresh when this many seconds of frame stamps passed since the last refresh; 0 = off", _rng(0.0, 3600.0)),
    "refresh_min_interval": ("a refresh_period refresh waits for at least this many model frames since the last refresh, so that a slow model (about one model frame per second or fewer) still reuses; 1 = the period alone", _rng(1, 1000)),
    "active_ttl": ("model frames a class stays decoded after it last won pixels in the labels (against flicker)", _rng(0, 1000)),
    "present_fraction": ("share of a frame's pixels a class must win to count as present; 0 = a single pixel", _rng(0.0, 1.0)),
    "scene_change_threshold": ("mean grey-level difference (0-255) left after aligning a frame to the last refresh frame (or the model frame labels are carried from) by optical flow, above which it is a new scene: the next frame refreshes, labels are not carried; 0 = never", _rng(0.0, 255.0)),
    "stale_score_drop": ("relative drop of the mean winning score below the last refresh frame's that makes the next frame refresh; 0 = off", _rng(0.0, 1.0)),
    "propagate": ("give frames the model skips the last model labels, carried forward by optical flow where the flow can serve them (not across a new scene, fast motion or the age bounds propagation_max_age and propagation_max_age_periods)", {}),
    "propagation_max_age": ("seconds (frame stamps) a model frame's labels may be carried forward", _rng(0.01, 60.0)),
    "propagation_max_age_periods": ("... or this many of the camera's model periods (the median stamp interval between its recent model frames, of refresh or of reuse frames, whichever is longer), when that is longer: a slow model's labels are older by nature (up to two periods just before its next frame is done); 0 = propagation_max_age alone", _rng(0.0, 100.0)),
    "propagation_max_motion": ("median optical flow, as a fraction of the image width, above which labels are not carried", _rng(0.01, 1.0)),
    "object_match_iou": ("an instance keeps the id of a live object of its class whose last known pixels overlap its mask by at least this IoU, in (0, 1]; otherwise it is a new object", _rng(0.0, 1.0)),
    "object_max_unseen": ("model frames an object may go unseen and still get its id back", _rng(0, 1000)),
}


def _spec(name: str, default: Any, description: str, extra: Mapping[str, Any]) -> ParamSpec:
    kind = {bool: BOOL, int: INT, float: DOUBLE, str: STRING}[type(default)]
    return ParamSpec(name, kind, default, description, **extra)


def _dataclass_specs(cls: type, table: Mapping[str, Tuple[str, Dict[str, Any]]]) -> List[ParamSpec]:
    """One spec per entry of ``table``, typed and defaulted by the dataclass field."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    specs = []
    for name, (description, extra) in table.items():
        default = STREAM_DEFAULTS.get(name, defaults[name])
        specs.append(_spec(name, 0 if default is None else default, description, extra))
    return specs


ENGINE_PARAMS = tuple(_dataclass_specs(ActiveSAMConfig, _ENGINE))
TEMPORAL_PARAMS = tuple(_dataclass_specs(TemporalConfig, _TEMPORAL))

MODEL_PARAMS = (
    ParamSpec("checkpoint", STRING, "", "path of the released SAM 3 checkpoint (sam3.pt)", read_only=True),
    ParamSpec("hub_id", STRING, "", "download sam3.pt from this Hugging Face repository (e.g. facebook/sam3; gated: accept the licence and log in first)", read_only=True),
    ParamSpec("model", STRING, "", "'tiny': a tiny random-weight SAM 3 for tests (its labels mean nothing)", read_only=True, choices=("", "tiny")),
)
VOCABULARY_PARAMS = (
    ParamSpec("vocabulary", STRING_ARRAY, None, "the classes, one string each; commas separate a class's aliases ('sofa, couch'). Unset or empty: vocabulary_file is used"),
    ParamSpec("vocabulary_file", STRING, "indoor", "used while vocabulary is empty: a file with one class per line, or a shipped vocabulary by name (indoor, driving, ade20k, ...)"),
)
OUTPUT_PARAMS = (
    ParamSpec("publish_overlay", BOOL, True, "publish ~/overlay: the input image with class colours blended in (for rviz)"),
    ParamSpec("overlay_alpha", DOUBLE, 0.5, "weight of the class colours in the overlay", **_rng(0.0, 1.0)),
    ParamSpec("overlay_legend", BOOL, True, "draw a legend into the overlay: class names in their colours, the classes in the frame first"),
    ParamSpec("publish_color_labels", BOOL, True, "publish ~/color_labels: rgb8 class colour per pixel (the overlay's colours), unlabeled black; for rviz, which shows the mono8 labels as near-black"),
    ParamSpec("publish_confidence", BOOL, False, "publish ~/confidence: 32FC1 score of the winning class per pixel"),
    ParamSpec("publish_detections", BOOL, True, "publish ~/detections (vision_msgs/Detection2DArray): the frame's objects, each with its persistent id, class, score and pixel box"),
    ParamSpec("detection_class_id", STRING, "index", "what a detection's hypothesis class_id holds: the class index (as ~/active_classes; ~/label_info names it) or the class name", choices=("index", "name")),
    ParamSpec("publish_instances", BOOL, True, "publish ~/instances: mono16 persistent object id per pixel, 0 = none"),
    ParamSpec("publish_panoptic", BOOL, False, "publish ~/panoptic: 32SC1 class << 16 | object id per pixel, unlabeled -1"),
    ParamSpec("label_encoding", STRING, LABEL_ENCODINGS[0],
              "encoding of ~/labels: mono (mono8, mono16 above 254 classes; unlabeled 255 or 65535) or 32SC1 "
              "(int32, unlabeled -1: Hydra's own value for no label, and one encoding whatever the vocabulary)",
              read_only=True, choices=LABEL_ENCODINGS),
)

DEPTH_PARAMS = (
    ParamSpec("depth_tolerance", DOUBLE, 0.02, "an image takes the depth image whose stamp is nearest its own, at most this many seconds away; frames without one are labelled in 2D only, and counted", **_rng(0.0, 1.0)),
    ParamSpec("points_decimation", INT, 2, "~/points keeps every n-th depth pixel along each axis (1 = every pixel; 2 = a quarter of them)", **_rng(1, 64)),
    ParamSpec("publish_points", BOOL, True, "cameras with depth: publish ~/points, the labelled cloud (x y z rgb label instance)"),
    ParamSpec("publish_detections_3d", BOOL, True, "cameras with depth: publish ~/detections_3d, each instance's 3D centroid and box from its masked depth"),
)

SHARED_PARAMS: Tuple[ParamSpec, ...] = (MODEL_PARAMS + VOCABULARY_PARAMS + ENGINE_PARAMS + TEMPORAL_PARAMS
                                        + OUTPUT_PARAMS + DEPTH_PARAMS)
SHARED_BY_NAME: Dict[str, ParamSpec] = {p.name: p for p in SHARED_PARAMS}


def default(name: str) -> Any:
    """A shared parameter's default: the one value every front end starts from."""
    return SHARED_BY_NAME[name].default


# -- single values -----------------------------------------------------------

def value_error(spec: ParamSpec, value: Any) -> Optional[str]:
    """Why ``value`` does not fit ``spec`` (type, range, step, choices), or None."""
    if value is None:
        return None if spec.kind == STRING_ARRAY else f"{spec.name} must be set"
    if not isinstance(value, PYTHON_TYPES[spec.kind]) or (spec.kind == INT and isinstance(value, bool)):
        return f"{spec.name} must be of type {spec.kind}, got {value!r}"
    if spec.kind == STRING_ARRAY and not all(isinstance(v, str) for v in value):
        return f"{spec.name} must be a list of strings, got {value!r}"
    if spec.choices and value not in spec.choices:
        return f"{spec.name} must be {spec.constraints}, got {value!r}"
    if spec.low is not None and spec.high is not None:
        if value in (spec.low, spec.high):  # ROS: the edges are always valid
            return None
        if not spec.low < value < spec.high:
            return f"{spec.name} must be in [{spec.low:g}, {spec.high:g}], got {value!r}"
        if spec.step and (value - spec.low) % spec.step:
            return f"{spec.name} must be a multiple of {spec.step:g}, got {value!r}"
    return None


# -- what the values mean ------------------------------------------------------

def given_classes(vocabulary: Optional[Sequence[str]]) -> List[str]:
    """The non-blank strings of the ``vocabulary`` parameter."""
    return [line for line in (vocabulary or ()) if line.strip()]


def vocabulary_from(values: Mapping[str, Any]) -> Vocabulary:
    """The vocabulary the parameters select; raises VocabularyError with the reason."""
    if given_classes(values["vocabulary"]):
        return Vocabulary.from_classes(values["vocabulary"])
    if not values["vocabulary_file"].strip():
        raise VocabularyError("the vocabulary is empty: set vocabulary (a list of classes) or vocabulary_file")
    return load_vocabulary_file(values["vocabulary_file"].strip())


def engine_config(values: Mapping[str, Any]) -> ActiveSAMConfig:
    """ActiveSAMConfig of the parameters (0 -> None on the resolutions); unvalidated."""
    defaults = {f.name: f.default for f in dataclasses.fields(ActiveSAMConfig)}
    fields = {}
    for spec in ENGINE_PARAMS:
        value = values[spec.name]
        fields[spec.name] = None if defaults[spec.name] is None and value == 0 else value
    return ActiveSAMConfig(**fields)


def temporal_config(values: Mapping[str, Any]) -> TemporalConfig:
    return TemporalConfig(**{spec.name: values[spec.name] for spec in TEMPORAL_PARAMS})


@dataclass(frozen=True)
class ModelSource:
    """Which SAM 3 to load: exactly one of a checkpoint, a hub id or the tiny model."""

    checkpoint: str = ""
    hub_id: str = ""
    tiny: bool = False

    def describe(self) -> str:
        if self.checkpoint:
            return f"SAM 3 checkpoint {self.checkpoint}"
        if self.hub_id:
            return f"SAM 3 from the hub repository {self.hub_id}"
        return "the tiny random-weight SAM 3 (its labels mean nothing)"


def model_source(values: Mapping[str, Any]) -> ModelSource:
    source = ModelSource(values["checkpoint"].strip(), values["hub_id"].strip(), values["model"] == "tiny")
    if sum(map(bool, (source.checkpoint, source.hub_id, source.tiny))) != 1:
        raise ParameterError(
            "give exactly one model: checkpoint:=/path/to/sam3.pt, hub_id:=facebook/sam3 or model:=tiny"
        )
    return source


# -- whole parameter sets ----------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """What a valid set of parameter values means to the engine and the stream."""

    vocabulary: Vocabulary
    engine: ActiveSAMConfig
    temporal: TemporalConfig


def settings(values: Mapping[str, Any], table: Mapping[str, ParamSpec] = SHARED_BY_NAME,
             more: Sequence[Tuple[Sequence[ParamSpec], Any]] = ()) -> Settings:
    """Validate a complete set of values against ``table``; raises
    ParameterError with every reason. ``more`` adds checks of a front end's
    own parameters: (specs, check) pairs whose ``check(values)`` returns a
    list of reasons, run only when those specs' values are well-typed."""
    errors = {n: value_error(table[n], v) for n, v in values.items() if n in table}
    problems = [e for e in errors.values() if e]
    wrong = {n for n, e in errors.items() if e}

    def usable(specs: Sequence[ParamSpec]) -> bool:
        """The objects built from these values would fail on a wrong one with a worse message."""
        return not wrong & {s.name for s in specs}

    for specs, check in more:
        if usable(specs):
            problems += check(values)
    engine = engine_config(values) if usable(ENGINE_PARAMS) else None
    temporal = temporal_config(values) if usable(TEMPORAL_PARAMS) else None
    problems += (engine.errors() if engine else []) + (temporal.errors() if temporal else [])
    vocabulary = None
    if usable(VOCABULARY_PARAMS):
        try:
            vocabulary = vocabulary_from(values)
        except VocabularyError as exc:
            problems.append(str(exc))
    if vocabulary and engine:
        try:
            require_background_class(engine, vocabulary)
        except VocabularyError as exc:
            problems.append(str(exc))
    if problems:
        raise ParameterError("; ".join(problems))
    return Settings(vocabulary, engine, temporal)


def changed_settings(current: Mapping[str, Any], changes: Mapping[str, Any],
                     table: Mapping[str, ParamSpec] = SHARED_BY_NAME, **kwargs: Any) -> Settings:
    """The settings after ``changes`` to the ``current`` values; raises
    ParameterError naming what is wrong (unknown, read-only, range, combination)."""
    problems = []
    for name, value in changes.items():
        spec = table.get(name)
        if spec is None:
            problems.append(f"{name} is not a parameter of this node")
        elif spec.read_only and value != current[name]:
            problems.append(f"{name} is read-only: it is fixed when the node starts")
    if "vocabulary_file" in changes and changes["vocabulary_file"] != current["vocabulary_file"]:
        vocabulary = changes.get("vocabulary", current["vocabulary"])
        if given_classes(vocabulary):
            problems.append("vocabulary_file is used only while vocabulary is empty: "
                            "first set vocabulary \"['']\" (or both at once)")
    if problems:
        raise ParameterError("; ".join(problems))
    return settings({**current, **changes}, table, **kwargs)
