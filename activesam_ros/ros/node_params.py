"""The node's parameters: the shared table plus its own topics and QoS, without rclpy.

The node declares every entry of :data:`PARAMS` with a ParameterDescriptor
built from it, and runs :func:`check_change` in its set-parameters callback.
The engine, temporal, vocabulary, model and output parameters are the ones
every front end shares (``stream.parameters``); the inputs, QoS and the
diagnostics period are the node's alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..engine.vocabulary import is_shipped_name, shipped_names
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
    ParamSpec("input_reliability", STRING, "best_effort", "input QoS reliability (best_effort also takes reliable publishers)", read_only=True, choices=("best_effort", "reliable")),
    ParamSpec("input_depth", INT, 1, "input QoS queue depth; 1 keeps only the newest frame", read_only=True, low=1, high=100),
    ParamSpec("output_reliability", STRING, "reliable", "QoS reliability of every output but label_info (reliable, transient local); with best_effort, subscribers must be best effort too", read_only=True, choices=("reliable", "best_effort")),
    ParamSpec("output_depth", INT, 2, "QoS queue depth of the outputs", read_only=True, low=1, high=100),
    ParamSpec(DIAGNOSTICS_PERIOD, DOUBLE, 1.0, "seconds between /diagnostics messages", read_only=True, low=0.1, high=60.0),
)

AUTOSTART = "autostart"
LIFECYCLE_PARAMS = (
    ParamSpec(AUTOSTART, BOOL, True, "true: configure and activate at start, so the node comes up segmenting; false: a managed node that waits unconfigured for a lifecycle manager (ros2 lifecycle set, nav2_lifecycle_manager)", read_only=True),
)

PARAMS = SHARED_PARAMS + SECURITY_PARAMS + IO_PARAMS + LIFECYCLE_PARAMS
BY_NAME: Dict[str, ParamSpec] = {p.name: p for p in PARAMS}

__all__ = [  # the node reads the shared names through this module too
    "AUTOSTART", "BOOL", "BY_NAME", "DIAGNOSTICS_PERIOD", "DOUBLE", "INT", "IO_PARAMS", "LIFECYCLE_PARAMS", "NODE_NAME", "PARAMS", "SECURITY_PARAMS",
    "STRING", "STRING_ARRAY", "ParamSpec", "Settings", "check_change", "default_values",
    "incompatible_qos_warning", "live_vocabulary_file_error", "settings", "topic_errors",
]


def default_values() -> Dict[str, Any]:
    return {p.name: p.default for p in PARAMS}


def topic_errors(topics: Sequence[str]) -> List[str]:
    if not topics:
        return ["image_topics is empty: give at least one image topic"]
    out = [f"image_topics has an empty name at position {i}" for i, t in enumerate(topics) if not t.strip()]
    if len(set(topics)) != len(topics):
        out.append(f"image_topics has duplicates: {list(topics)}")
    return out


_NODE_CHECKS = ((IO_PARAMS, lambda values: topic_errors(values["image_topics"])),)


def settings(values: Mapping[str, Any]) -> Settings:
    """Validate a complete set of the node's values; raises ParameterError with every reason."""
    return shared_settings(values, BY_NAME, _NODE_CHECKS)


def live_vocabulary_file_error(name: str, dirs: Optional[Sequence[str]]) -> Optional[str]:
    """Why a remote caller may not point ``vocabulary_file`` at ``name``, or
    None: a live change reads a shipped vocabulary, or a file whose real
    path (links followed) lies under one of ``vocabulary_dirs``."""
    name = name.strip()
    if not name or is_shipped_name(name):
        return None
    allowed = [Path(d).expanduser().resolve() for d in (dirs or ()) if d.strip()]
    if not allowed:
        return (f"vocabulary_file {name!r}: a live change takes a shipped vocabulary ({', '.join(shipped_names())}); "
                "to allow files, start the node with vocabulary_dirs set to the folders that hold them")
    real = Path(name).expanduser().resolve()
    if not any(real.is_relative_to(folder) for folder in allowed):
        return (f"vocabulary_file {name!r} is outside vocabulary_dirs "
                f"({', '.join(str(folder) for folder in allowed)}); live changes read files there only")
    return None


def check_change(current: Mapping[str, Any], changes: Mapping[str, Any]) -> Settings:
    """The settings after ``changes`` to the ``current`` values; raises
    ParameterError naming what is wrong (read-only, range, combination, a
    vocabulary file outside ``vocabulary_dirs``) before any file is read."""
    name = changes.get("vocabulary_file")
    if isinstance(name, str) and name != current["vocabulary_file"]:
        problem = live_vocabulary_file_error(name, current["vocabulary_dirs"])
        if problem:
            raise ParameterError(problem)
    return changed_settings(current, changes, BY_NAME, more=_NODE_CHECKS)


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
