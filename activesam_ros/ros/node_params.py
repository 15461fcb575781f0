"""The node's parameters: the shared table plus its own topics and QoS, without rclpy.

The node declares every entry of :data:`PARAMS` with a ParameterDescriptor
built from it. Its set-parameters callback is one call of
:meth:`LiveParameters.set`: the whole decision (validation, staging the new
values into the stream runtime, the reply and the log line) happens here,
where it is tested without ROS and fuzzed with any values a remote
``ros2 param set`` can send. Whatever a change raises, it is refused with
a one-line reason and the node keeps its old values. The engine, temporal,
vocabulary, model and output parameters are the ones every front end
shares (``stream.parameters``); the inputs, QoS and the diagnostics period
are the node's alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence

from ..engine.paths import PathError, user_path
from ..engine.vocabulary import is_shipped_name, shipped_names
from ..stream.logline import summary
from ..stream.parameters import (
    BOOL,
    DOUBLE,
    INT,
    SHARED_PARAMS,
    STRING,
    STRING_ARRAY,
    ParameterError,
    ParamSpec,
    Settings,
    changed_settings,
)
from ..stream.parameters import settings as shared_settings
from .names import camera_problems, depth_problems

NODE_NAME = "activesam"
"""The node's default name: its outputs are under /activesam/..."""

DIAGNOSTICS_PERIOD = "diagnostic_updater.period"
"""diagnostic_updater's own parameter name: it declares it when it is installed."""

SECURITY_PARAMS = (
    ParamSpec("vocabulary_dirs", STRING_ARRAY, None, "folders whose vocabulary files a live change of vocabulary_file may read; unset: live changes take shipped names only (the start-up value may be any file)", read_only=True),
)
IO_PARAMS = (
    ParamSpec("image_topics", STRING_ARRAY, ["image"], "input image topics, one per camera; 'image' is relative and remappable", read_only=True),
    ParamSpec("compressed", BOOL, False, "subscribe to sensor_msgs/CompressedImage on <topic>/compressed instead of raw images", read_only=True),
    ParamSpec("depth_topics", STRING_ARRAY, None, "depth images registered to the cameras (16UC1 mm or 32FC1 m), one per image_topics entry in its order ('' = none for that camera); each one's CameraInfo is read from camera_info beside it (image_transport's rule: the last name replaced by camera_info). 'depth' is relative and remappable. Unset: no depth, no 3D outputs", read_only=True),
    ParamSpec("input_reliability", STRING, "best_effort", "input QoS reliability (best_effort also takes reliable publishers)", read_only=True, choices=("best_effort", "reliable")),
    ParamSpec("input_depth", INT, 1, "input QoS queue depth; 1 keeps only the newest frame", read_only=True, low=1, high=100),
    ParamSpec("output_reliability", STRING, "reliable", "QoS reliability of every output but label_info (reliable, transient local); with best_effort, subscribers must be best effort too", read_only=True, choices=("reliable", "best_effort")),
    ParamSpec("output_depth", INT, 2, "QoS queue depth of the outputs", read_only=True, low=1, high=100),
    ParamSpec(DIAGNOSTICS_PERIOD, DOUBLE, 1.0, "seconds between /diagnostics messages", read_only=True, low=0.1, high=60.0),
)

LABELSPACE_PARAMS = (
    ParamSpec("labelspace_roles", STRING, "", "YAML file naming the object, surface and dynamic classes of ~/labelspace (keys objects, surfaces, dynamic: lists of class names, as activesam labelspace --roles); names not in the vocabulary are left out; '' = no roles", read_only=True),
)

AUTOSTART = "autostart"
LIFECYCLE_PARAMS = (
    ParamSpec(AUTOSTART, BOOL, True, "true: configure and activate at start, so the node comes up segmenting; false: a managed node that waits unconfigured for a lifecycle manager (ros2 lifecycle set, nav2_lifecycle_manager)", read_only=True),
)

PARAMS = SHARED_PARAMS + SECURITY_PARAMS + IO_PARAMS + LABELSPACE_PARAMS + LIFECYCLE_PARAMS
BY_NAME: Dict[str, ParamSpec] = {p.name: p for p in PARAMS}

__all__ = [  # the node reads the shared names through this module too
    "AUTOSTART", "BOOL", "BY_NAME", "DIAGNOSTICS_PERIOD", "DOUBLE", "INT", "IO_PARAMS", "LABELSPACE_PARAMS",
    "LIFECYCLE_PARAMS",
    "NODE_NAME", "PARAMS", "SECURITY_PARAMS", "STRING", "STRING_ARRAY", "LiveParameters", "NodeContext", "Outcome",
    "ParamSpec", "Settings", "check_change", "default_values", "incompatible_qos_warning",
    "live_vocabulary_file_error", "settings",
]


def default_values() -> Dict[str, Any]:
    return {p.name: p.default for p in PARAMS}


@dataclass(frozen=True)
class NodeContext:
    """Where the node runs: its namespace and name (how its relative and
    ``~`` topic names resolve), and rclpy's resolution with remappings
    (``Node.resolve_topic_name``) where there is one."""

    namespace: str = "/"
    name: str = NODE_NAME
    resolve: Optional[Callable[[str], str]] = field(default=None, compare=False)

    def resolved(self, topics: Sequence[str]) -> Dict[str, str]:
        """The topics as the node resolves them (remappings included); {} without rclpy."""
        if self.resolve is None:
            return {}
        out = {}
        for topic in topics:
            try:
                out[topic] = self.resolve(topic)
            except Exception:  # an invalid name: camera_problems says why
                return {}
        return out


def _node_checks(context: NodeContext):
    def cameras(values: Mapping[str, Any]) -> List[str]:
        topics = values["image_topics"] or []
        return (camera_problems(topics, context.namespace, context.name, resolved=context.resolved(topics))
                + depth_problems(values["depth_topics"], topics))
    return ((IO_PARAMS, cameras),)


def settings(values: Mapping[str, Any], context: NodeContext = NodeContext()) -> Settings:
    """Validate a complete set of the node's values; raises ParameterError with every reason."""
    return shared_settings(values, BY_NAME, _node_checks(context))


def live_vocabulary_file_error(name: str, dirs: Optional[Sequence[str]]) -> Optional[str]:
    """Why a remote caller may not point ``vocabulary_file`` at ``name``, or
    None: a live change reads a shipped vocabulary, or a file whose real
    path (links followed) lies under one of ``vocabulary_dirs``."""
    name = name.strip()
    if not name or is_shipped_name(name):
        return None
    shown = summary(name)
    try:
        allowed = [user_path(d, "vocabulary_dirs").resolve() for d in (dirs or ()) if d.strip()]
        if not allowed:
            return (f"vocabulary_file {shown}: a live change takes a shipped vocabulary "
                    f"({', '.join(shipped_names())}); to allow files, start the node with vocabulary_dirs set to "
                    "the folders that hold them")
        real = user_path(name, "vocabulary_file").resolve()
    except (PathError, OSError, RuntimeError) as exc:  # resolve() meets a loop of links as RuntimeError
        return str(exc) if isinstance(exc, PathError) else f"vocabulary_file {shown}: {exc}"
    if not any(real.is_relative_to(folder) for folder in allowed):
        return (f"vocabulary_file {shown} is outside vocabulary_dirs "
                f"({', '.join(str(folder) for folder in allowed)}); live changes read files there only")
    return None


def check_change(current: Mapping[str, Any], changes: Mapping[str, Any],
                 context: NodeContext = NodeContext()) -> Settings:
    """The settings after ``changes`` to the ``current`` values; raises
    ParameterError naming what is wrong (read-only, range, combination, a
    vocabulary file outside ``vocabulary_dirs``) before any file is read."""
    name = changes.get("vocabulary_file")
    if isinstance(name, str) and name != current["vocabulary_file"]:
        problem = live_vocabulary_file_error(name, current["vocabulary_dirs"])
        if problem:
            raise ParameterError(problem)
    return changed_settings(current, changes, BY_NAME, more=_node_checks(context))


class Staging(Protocol):
    """What takes new settings between two frames: the stream runtime."""

    def set_config(self, config: Any) -> Any: ...
    def set_vocabulary(self, vocabulary: Any) -> Any: ...
    def set_temporal(self, temporal: Any) -> Any: ...


def stage(runtime: Staging, old: Settings, new: Settings) -> None:
    """Hand what changed to the runtime; the order keeps every intermediate
    state valid (a vocabulary without 'background' only after calibration is off)."""
    steps: List[Callable[[], Any]] = []
    if new.engine != old.engine:
        steps.append(lambda: runtime.set_config(new.engine))
    if new.vocabulary != old.vocabulary:
        config_first = old.engine.background_threshold > 0 and new.vocabulary.background_index is None
        steps.insert(len(steps) if config_first else 0, lambda: runtime.set_vocabulary(new.vocabulary))
    if new.temporal != old.temporal:
        steps.append(lambda: runtime.set_temporal(new.temporal))
    for step in steps:
        step()


MAX_REASON_CHARS = 2000
"""Characters of a refusal's reason (the reply and the log line)."""


@dataclass(frozen=True)
class Outcome:
    """A set-parameters request decided: the reply (``successful``,
    ``reason``) and one bounded log line (``log``; a warning when refused)."""

    successful: bool
    reason: str = ""
    log: str = ""


class LiveParameters:
    """The node's parameter values and the settings they mean, changed only
    whole, by :meth:`set` (the node's set-parameters callback).
    ``settings`` is None until :meth:`configure` (the lifecycle's configure)
    validates the values; while there is no ``runtime`` (unconfigured) a
    change is validated and kept, and configure reads it."""

    def __init__(self, values: Mapping[str, Any], context: NodeContext = NodeContext()):
        self.values: Dict[str, Any] = dict(values)
        self.context = context
        self.settings: Optional[Settings] = None
        self.runtime: Optional[Staging] = None  # from configure to cleanup

    def configure(self) -> Settings:
        """Validate every value; ParameterError with every reason."""
        self.settings = settings(self.values, self.context)
        return self.settings

    def set(self, changes: Mapping[str, Any]) -> Outcome:
        """Validate ``changes`` with the other values, stage them into the
        runtime and keep them; or refuse them, changing nothing. Never raises."""
        try:
            changes = {name: value for name, value in changes.items() if name in BY_NAME}
            if not changes:
                return Outcome(True)
            new = check_change(self.values, changes, self.context)
            if self.runtime is not None and self.settings is not None:
                stage(self.runtime, self.settings, new)
                self.settings = new
        except Exception as exc:  # a remote caller's values never stop the node: refused with the reason
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if len(reason) > MAX_REASON_CHARS:
                reason = reason[: MAX_REASON_CHARS - 3] + "..."
            return Outcome(False, reason, f"rejected {', '.join(changes)}: {reason}")
        self.values.update(changes)
        return Outcome(True, "", "set " + ", ".join(f"{name}={summary(value)}" for name, value in changes.items()))


def incompatible_qos_warning(topic: str, policy: str, output: bool, reliability: str) -> str:
    """The warning for a peer whose QoS does not match one of the node's
    topics: the resolved ``topic``, the ``policy`` that differs (rclpy's
    QoSPolicyKind name) and what to change; ``reliability`` is the node's
    own on that topic (``output_reliability`` or ``input_reliability``)."""
    if output:
        text = f"a subscription to {topic} requests QoS incompatible with the node's ({policy}): it receives nothing"
        if policy == "RELIABILITY" and reliability == "best_effort":
            text += ("; the outputs are best effort (output_reliability): subscribe best effort, which receives "
                     "from reliable and best-effort publishers alike")
        elif policy == "DURABILITY":
            text += "; only label_info is transient local, subscribe to the others volatile"
        return text
    text = f"a publisher on {topic} offers QoS incompatible with the node's ({policy}): its frames are not received"
    if policy == "RELIABILITY" and reliability == "reliable":
        text += "; the input is reliable (input_reliability): best_effort takes every publisher"
    return text
