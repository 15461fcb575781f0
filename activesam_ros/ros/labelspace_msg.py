"""The ``semantic_inference_msgs/Labelspace`` message of a label space.

Hydra's ROS interface reads its label space from this message once, at
start-up (``labelspace: {type: from_msg}``, MIT-SPARK/Hydra-ROS
``RosLabelspace``): ``names`` gives the label count and a name per label
value, ``invalid`` the labels to ignore, and ``metadata`` (JSON) the
``object_labels``, ``dynamic_labels`` and ``surface_places_labels``. The
fields are those of MIT-SPARK/semantic_inference's ``Labelspace.msg``;
:data:`DEFINITION` holds their field lines, so that rosbags can build the
message where the package is not installed (``rosbags_types``). What the
values mean: ``render.labelspace``.
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from ..engine.vocabulary import Vocabulary
from ..render.labelspace import LabelSpace, LabelSpaceError, Roles, resolve_roles, unmatched
from ..stream.logline import shorten, summary
from .messages import rclpy_class

MSGTYPE = "semantic_inference_msgs/msg/Labelspace"
DEFINITION = "string[] names\nint32[] invalid\nstring metadata\n"
"""The field lines of semantic_inference_msgs/Labelspace (its comments left out)."""


def labelspace_message(cls: Any, space: LabelSpace, int32_array: Callable[[Sequence[int]], Any]) -> Any:
    """The message of ``space``, built with ``cls``; ``int32_array`` makes the
    binding's ``int32[]`` value (rclpy: a list of ints; rosbags: a numpy array)."""
    return cls(names=list(space.names), invalid=int32_array([int(v) for v in space.invalid]),
               metadata=space.metadata())


def node_label_space(vocabulary: Vocabulary, named: Mapping[str, Sequence[str]],
                     encoding: str) -> Tuple[LabelSpace, List[str]]:
    """The label space the node sends for ``vocabulary`` with the roles file's
    class names ``named``, and warnings for its log. A vocabulary changed live
    need not hold every named class: names of no class are left out; roles it
    cannot take (a class both dynamic and an object) leave all roles out."""
    warnings = []
    missing = unmatched(vocabulary, named)
    if missing:
        warnings.append(f"labelspace_roles names no class of the vocabulary: {summary(missing)}; left out")
    try:
        roles = resolve_roles(vocabulary, named, strict=False)
    except LabelSpaceError as exc:
        warnings.append(f"labelspace_roles: {shorten(str(exc), 300)}; ~/labelspace without roles")
        roles = Roles()
    return LabelSpace.of(vocabulary, roles, encoding), warnings


def rclpy_labelspace_class() -> Optional[Any]:
    """The rclpy class of the message, or None where semantic_inference_msgs
    is not installed or is a release without Labelspace."""
    try:
        return rclpy_class(MSGTYPE)
    except (ImportError, AttributeError):
        return None
