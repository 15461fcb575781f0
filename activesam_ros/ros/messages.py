"""Output messages from a :class:`SegmentationResult`, for the node and the bag processor.

Every builder takes a :class:`MessageClasses`: rclpy's classes on a ROS
machine (:func:`rclpy_messages`), rosbags' classes elsewhere
(``ros_types.RosbagsMessages``). Both have the same field names; messages
are built with every field as a keyword (rosbags requires all of them) and
with plain Python ``int``/``float``/``str`` values (rclpy's setters reject
numpy scalars), so one code path serves both and is tested offline.

Conventions, after vision_msgs' comments:

- Labels image: pixel = class index, mono8 while the vocabulary has at most
  254 classes, mono16 beyond; unlabeled (background after calibration) is
  the encoding's maximum, 255 or 65535. With ``label_encoding`` 32SC1:
  int32, unlabeled -1 (``render.labels``).
- LabelInfo ``class_map``: ``class_id`` = index, ``class_name`` = the
  class's display name (its first alias, ``Vocabulary.names``), the same
  name the overlay's legend shows.
- Colour labels image: rgb8, each pixel its class's colour
  (``render.palette``: the overlay's colours), unlabeled black. For people
  and rviz, whose Image display shows mono8 class indices as near-black
  intensities; machines read the labels image.
- Classification: ``class_id`` = ``str(index)``. vision_msgs says a
  hypothesis' id is to be looked up in metadata for a name; LabelInfo is
  that metadata, and the id matches the labels image's pixel values.
- TimeReference (``label_source``), one per published label image:
  ``header`` = the input image's header (it pairs with the labels by stamp),
  ``time_ref`` = the stamp of the model frame whose labels these are,
  ``source`` = ``model`` or ``propagated``. The labels' age is
  ``header.stamp - time_ref``.
- PointCloud2 (``points``): unorganised (height 1), little-endian, dense
  (points without depth are left out), 20 bytes a point (:data:`POINT_FIELDS`):
  ``x y z`` float32 metres in the depth image's optical frame, ``rgb`` the
  pixel's colour packed as PCL and rviz read it (float32 whose bits are
  ``0x00RRGGBB``), ``label`` uint16 the class index at the pixel
  (unlabeled 255 or 65535, as the ``mono`` labels image whatever its
  ``label_encoding``), ``instance`` uint16 the instance id
  (0 = none). ``header`` = the depth image's (its frame and stamp).
- Detection3DArray (``detections_3d``): one Detection3D per instance with
  depth (``stream.depth.objects_3d``): ``id`` = the instance id as a string,
  one hypothesis with ``class_id`` as ``detections`` (``detection_class_id``),
  the instance's score, and its centroid as the pose; ``bbox`` = the box's
  centre and size, axis-aligned in the optical frame (identity orientation).
  Covariances are not estimated: all zero.
- Detection2DArray (``detections``): one Detection2D per object on the
  frame (``FrameResult.objects``): ``id`` = its persistent object id as a
  string (the value of its pixels in the ``instances`` image), one
  hypothesis with ``class_id`` = ``str(class index)`` (as Classification;
  with ``detection_class_id`` ``name``: the class's display name, as
  LabelInfo gives it) and the object score; ``bbox`` in pixels with pixel
  edges on integers: the object's pixels span x0 ... x1 (exclusive), so
  ``center.position.x = (x0 + x1) / 2`` and ``size_x = x1 - x0``
  (``theta`` 0). The hypothesis' pose is not estimated: zero, identity
  orientation, zero covariance.
- Instances image (``instances``): mono16, each pixel its object id, 0 = none.
- Panoptic image (``panoptic``): 32SC1, ``class << 16 | object id``,
  unlabeled -1 (``render.labels.panoptic_array``).
"""

from __future__ import annotations

import array
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, Tuple

import numpy as np

from ..engine.result import SegmentationResult
from ..engine.vocabulary import Vocabulary
from ..render.labels import MONO, label_array, panoptic_array, ros_encoding
from ..render.overlay import overlay
from ..render.palette import color_labels
from ..stream.depth import Cloud, Object3D
from .imgconv import rgb_to_image_fields

MESSAGE_TYPES = {
    "Image": "sensor_msgs/msg/Image",
    "CompressedImage": "sensor_msgs/msg/CompressedImage",
    "Header": "std_msgs/msg/Header",
    "Time": "builtin_interfaces/msg/Time",
    "LabelInfo": "vision_msgs/msg/LabelInfo",
    "VisionClass": "vision_msgs/msg/VisionClass",
    "Classification": "vision_msgs/msg/Classification",
    "ObjectHypothesis": "vision_msgs/msg/ObjectHypothesis",
    "TimeReference": "sensor_msgs/msg/TimeReference",
    "PointCloud2": "sensor_msgs/msg/PointCloud2",
    "PointField": "sensor_msgs/msg/PointField",
    "Detection3DArray": "vision_msgs/msg/Detection3DArray",
    "Detection3D": "vision_msgs/msg/Detection3D",
    "ObjectHypothesisWithPose": "vision_msgs/msg/ObjectHypothesisWithPose",
    "BoundingBox3D": "vision_msgs/msg/BoundingBox3D",
    "Pose": "geometry_msgs/msg/Pose",
    "PoseWithCovariance": "geometry_msgs/msg/PoseWithCovariance",
    "Point": "geometry_msgs/msg/Point",
    "Quaternion": "geometry_msgs/msg/Quaternion",
    "Vector3": "geometry_msgs/msg/Vector3",
    "Detection2DArray": "vision_msgs/msg/Detection2DArray",
    "Detection2D": "vision_msgs/msg/Detection2D",
    "BoundingBox2D": "vision_msgs/msg/BoundingBox2D",
    "Pose2D": "vision_msgs/msg/Pose2D",
    "Point2D": "vision_msgs/msg/Point2D",
}
"""The ROS type of each :class:`MessageClasses` field."""


@dataclass(frozen=True)
class MessageClasses:
    """The message classes of one binding, and how it wants ``uint8[]`` data."""

    Image: Any
    CompressedImage: Any
    Header: Any
    Time: Any
    LabelInfo: Any
    VisionClass: Any
    Classification: Any
    ObjectHypothesis: Any
    TimeReference: Any
    PointCloud2: Any
    PointField: Any
    Detection3DArray: Any
    Detection3D: Any
    ObjectHypothesisWithPose: Any
    BoundingBox3D: Any
    Pose: Any
    PoseWithCovariance: Any
    Point: Any
    Quaternion: Any
    Vector3: Any
    Detection2DArray: Any
    Detection2D: Any
    BoundingBox2D: Any
    Pose2D: Any
    Point2D: Any
    byte_array: Callable[[np.ndarray], Any]  # flat uint8 array -> the binding's uint8[] value

    @classmethod
    def from_types(cls, lookup: Callable[[str], Any],
                   byte_array: Callable[[np.ndarray], Any]) -> "MessageClasses":
        """Each class by its ROS type name ("sensor_msgs/msg/Image") through ``lookup``."""
        return cls(byte_array=byte_array,
                   **{field: lookup(msgtype) for field, msgtype in MESSAGE_TYPES.items()})


def _rclpy_uint8_array(data: np.ndarray) -> array.array:
    """rclpy stores uint8[] as array.array('B'); any other value is checked item by item."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(data, dtype=np.uint8))
    return out


def rclpy_class(msgtype: str) -> Any:
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def rclpy_messages() -> MessageClasses:
    """The rclpy message classes (needs a sourced ROS 2 with vision_msgs)."""
    return MessageClasses.from_types(rclpy_class, _rclpy_uint8_array)


def make_header(ns: MessageClasses, sec: int, nanosec: int, frame_id: str) -> Any:
    """A std_msgs/Header from plain values."""
    return ns.Header(stamp=ns.Time(sec=int(sec), nanosec=int(nanosec)), frame_id=str(frame_id))


def copy_header(ns: MessageClasses, header: Any) -> Any:
    """A new Header of ``ns`` equal to ``header`` (which may come from another binding)."""
    return make_header(ns, header.stamp.sec, header.stamp.nanosec, header.frame_id)


def stamp_seconds(stamp: Any) -> float:
    """A builtin_interfaces/Time as seconds: the stream's frame stamp."""
    return int(stamp.sec) + 1e-9 * int(stamp.nanosec)


def image(ns: MessageClasses, pixels: np.ndarray, encoding: str, header: Any) -> Any:
    """A sensor_msgs/Image of ``pixels`` (see ``imgconv.rgb_to_image_fields``)."""
    fields = rgb_to_image_fields(pixels, encoding)
    return ns.Image(
        header=copy_header(ns, header),
        height=fields.height,
        width=fields.width,
        encoding=fields.encoding,
        is_bigendian=fields.is_bigendian,
        step=fields.step,
        data=ns.byte_array(fields.data),
    )


def labels_image(ns: MessageClasses, result: SegmentationResult, header: Any, encoding: str = MONO) -> Any:
    """sensor_msgs/Image of class indices (mono8, mono16 or 32SC1, see the module doc)."""
    return image(ns, label_array(result, encoding), ros_encoding(len(result.vocabulary), encoding), header)


def color_labels_image(ns: MessageClasses, result: SegmentationResult, header: Any) -> Any:
    """rgb8 sensor_msgs/Image of the class colours, unlabeled black (see the module doc)."""
    return image(ns, color_labels(result), "rgb8", header)


def label_info(ns: MessageClasses, vocabulary: Vocabulary, header: Any, threshold: float) -> Any:
    """vision_msgs/LabelInfo mapping every class index to its display name."""
    return ns.LabelInfo(
        header=copy_header(ns, header),
        class_map=[
            ns.VisionClass(class_id=index, class_name=name)
            for index, name in enumerate(vocabulary.names)
        ],
        threshold=float(threshold),
    )


def active_classes(ns: MessageClasses, result: SegmentationResult, header: Any) -> Any:
    """vision_msgs/Classification: one hypothesis per active class, score = its presence."""
    presence = result.class_presence
    return ns.Classification(
        header=copy_header(ns, header),
        results=[
            ns.ObjectHypothesis(class_id=str(index), score=float(presence[index]))
            for index in result.active_classes
        ],
    )


def label_source(ns: MessageClasses, header: Any, model_header: Any, source: str) -> Any:
    """sensor_msgs/TimeReference saying where a frame's labels come from (module doc)."""
    stamp = model_header.stamp
    return ns.TimeReference(header=copy_header(ns, header),
                            time_ref=ns.Time(sec=int(stamp.sec), nanosec=int(stamp.nanosec)), source=str(source))


def confidence_image(ns: MessageClasses, result: SegmentationResult, header: Any) -> Any:
    """32FC1 sensor_msgs/Image of the winning class's score per pixel."""
    return image(ns, result.scores.astype(np.float32, copy=False), "32FC1", header)


def overlay_image(ns: MessageClasses, rgb: np.ndarray, result: SegmentationResult,
                  header: Any, alpha: float, legend: bool = False) -> Any:
    """rgb8 sensor_msgs/Image of :func:`overlay`, with its legend if asked for."""
    return image(ns, overlay(rgb, result, alpha, legend), "rgb8", header)


FLOAT32, UINT16 = 7, 4
"""sensor_msgs/PointField datatypes."""
POINT_FIELDS: Tuple[Tuple[str, int, int], ...] = (
    ("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32), ("rgb", 12, FLOAT32),
    ("label", 16, UINT16), ("instance", 18, UINT16),
)
"""(name, byte offset, datatype) of each point's fields (module doc)."""
POINT_DTYPE = np.dtype({"names": [name for name, _, _ in POINT_FIELDS],
                        "formats": ["<f4" if kind == FLOAT32 else "<u2" for _, _, kind in POINT_FIELDS],
                        "offsets": [offset for _, offset, _ in POINT_FIELDS], "itemsize": 20})


def point_cloud(ns: MessageClasses, cloud: Cloud, header: Any) -> Any:
    """sensor_msgs/PointCloud2 of a labelled cloud (module doc)."""
    points = np.empty(len(cloud), dtype=POINT_DTYPE)
    points["x"], points["y"], points["z"] = cloud.xyz[:, 0], cloud.xyz[:, 1], cloud.xyz[:, 2]
    rgb = cloud.rgb.astype(np.uint32)
    points["rgb"] = ((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).view(np.float32)
    points["label"], points["instance"] = cloud.label, cloud.instance
    return ns.PointCloud2(
        header=copy_header(ns, header),
        height=1,
        width=len(cloud),
        fields=[ns.PointField(name=name, offset=offset, datatype=kind, count=1) for name, offset, kind in POINT_FIELDS],
        is_bigendian=False,
        point_step=POINT_DTYPE.itemsize,
        row_step=POINT_DTYPE.itemsize * len(cloud),
        data=ns.byte_array(points.view(np.uint8)),
        is_dense=True,
    )


class Identified(Protocol):
    """What a 3D detection needs to know of an instance: its id, class and score."""

    id: int
    class_index: int
    score: float


def _point(ns: MessageClasses, xyz: Iterable[float]) -> Any:
    x, y, z = (float(v) for v in xyz)
    return ns.Point(x=x, y=y, z=z)


def _pose(ns: MessageClasses, xyz: Iterable[float]) -> Any:
    return ns.Pose(position=_point(ns, xyz), orientation=ns.Quaternion(x=0.0, y=0.0, z=0.0, w=1.0))


def hypothesis_class_id(vocabulary: Vocabulary, class_index: int, class_id: str = "index") -> str:
    """A detection hypothesis' ``class_id``: the class index, or with
    ``class_id`` "name" (the ``detection_class_id`` parameter) its display name."""
    return vocabulary.names[class_index] if class_id == "name" else str(int(class_index))


def detections_3d(ns: MessageClasses, found: Sequence[Object3D], instances: Mapping[int, Identified],
                  header: Any, vocabulary: Vocabulary, class_id: str = "index") -> Any:
    """vision_msgs/Detection3DArray: one detection per measured instance that
    ``instances`` knows (module doc); ``class_id`` as :func:`hypothesis_class_id`."""
    detections = []
    for obj in found:
        known = instances.get(obj.id)
        if known is None:
            continue
        hypothesis = ns.ObjectHypothesisWithPose(
            hypothesis=ns.ObjectHypothesis(class_id=hypothesis_class_id(vocabulary, known.class_index, class_id),
                                           score=float(known.score)),
            pose=ns.PoseWithCovariance(pose=_pose(ns, obj.centroid), covariance=np.zeros(36, dtype=np.float64)))
        size = ns.Vector3(x=float(obj.size[0]), y=float(obj.size[1]), z=float(obj.size[2]))
        detections.append(ns.Detection3D(header=copy_header(ns, header), results=[hypothesis],
                                         bbox=ns.BoundingBox3D(center=_pose(ns, obj.center), size=size),
                                         id=str(obj.id)))
    return ns.Detection3DArray(header=copy_header(ns, header), detections=detections)


class Tracked(Identified, Protocol):
    """What a 2D detection needs to know of an object: also its box."""

    box: Tuple[int, int, int, int]


def detections_2d(ns: MessageClasses, objects: Sequence[Tracked], vocabulary: Vocabulary, header: Any,
                  class_id: str = "index") -> Any:
    """vision_msgs/Detection2DArray: one detection per object (module doc);
    ``class_id`` "index" or "name" (the ``detection_class_id`` parameter)."""
    detections = []
    for obj in objects:
        x0, y0, x1, y1 = (int(v) for v in obj.box)
        label = hypothesis_class_id(vocabulary, obj.class_index, class_id)
        hypothesis = ns.ObjectHypothesisWithPose(
            hypothesis=ns.ObjectHypothesis(class_id=label, score=float(obj.score)),
            pose=ns.PoseWithCovariance(pose=_pose(ns, (0.0, 0.0, 0.0)), covariance=np.zeros(36, dtype=np.float64)))
        center = ns.Pose2D(position=ns.Point2D(x=(x0 + x1) / 2.0, y=(y0 + y1) / 2.0), theta=0.0)
        detections.append(ns.Detection2D(header=copy_header(ns, header), results=[hypothesis],
                                         bbox=ns.BoundingBox2D(center=center, size_x=float(x1 - x0),
                                                               size_y=float(y1 - y0)),
                                         id=str(int(obj.id))))
    return ns.Detection2DArray(header=copy_header(ns, header), detections=detections)


def instances_image(ns: MessageClasses, instance_ids: Any, shape: Tuple[int, int], header: Any) -> Any:
    """mono16 sensor_msgs/Image of object ids, 0 = none (all 0 without ids)."""
    ids = np.zeros(shape, np.uint16) if instance_ids is None else instance_ids.astype(np.uint16, copy=False)
    return image(ns, ids, "mono16", header)


def panoptic_image(ns: MessageClasses, result: SegmentationResult, instance_ids: Any, header: Any) -> Any:
    """32SC1 sensor_msgs/Image of class and object id per pixel (module doc)."""
    return image(ns, panoptic_array(result, instance_ids), "32SC1", header)
