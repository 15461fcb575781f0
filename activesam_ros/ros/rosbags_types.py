"""ROS 2 message classes without ROS: a rosbags typestore that knows vision_msgs (and Labelspace).

rosbags ships sensor_msgs and std_msgs for each distro but not vision_msgs,
so the vision_msgs types the node publishes are registered here from
their .msg field lines (vision_msgs 4.x, the ros2 branch released for Humble
and Jazzy; field order and types must match it for CDR to be compatible),
and semantic_inference_msgs/Labelspace likewise (``labelspace_msg``).
The bag processor and the tests use this store to read and write exactly
the bytes a ROS 2 node would.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from . import labelspace_msg
from .messages import MessageClasses

VISION_MSGS = {
    "vision_msgs/msg/VisionClass": "uint16 class_id\nstring class_name\n",
    "vision_msgs/msg/LabelInfo": (
        "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\nfloat32 threshold\n"
    ),
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/Classification": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesis[] results\n"
    ),
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"
    ),
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/Detection3D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox3D bbox\nstring id\n"
    ),
    "vision_msgs/msg/Detection3DArray": "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n",
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/Detection2D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox2D bbox\nstring id\n"
    ),
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
}
"""The registered types' field lines (comments of the originals left out)."""

OTHER_MSGS = {labelspace_msg.MSGTYPE: labelspace_msg.DEFINITION}
"""Further types the node may publish, registered alike."""

DISTROS = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}


@lru_cache(maxsize=None)
def typestore(distro: str = "humble") -> Typestore:
    """The rosbags typestore of a ROS 2 distro ("humble" or "jazzy") plus
    vision_msgs and semantic_inference_msgs/Labelspace."""
    if distro not in DISTROS:
        raise ValueError(f"unknown ROS 2 distro {distro!r}; use one of {sorted(DISTROS)}")
    store = get_typestore(DISTROS[distro])
    types = {}
    for name, text in {**VISION_MSGS, **OTHER_MSGS}.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def _uint8_array(data: np.ndarray) -> np.ndarray:
    """rosbags serialises uint8[] fields from numpy arrays only."""
    return np.asarray(data, dtype=np.uint8)


@lru_cache(maxsize=None)
def rosbags_messages(distro: str = "humble") -> MessageClasses:
    """The :class:`MessageClasses` of :func:`typestore` ``(distro)``."""
    return MessageClasses.from_types(typestore(distro).types.__getitem__, _uint8_array)


RosbagsMessages = rosbags_messages()
"""Humble's classes; Image, Header and the vision_msgs types are the same in Jazzy."""
