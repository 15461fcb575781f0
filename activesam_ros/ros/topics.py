"""The output topics of one camera, described once for the node and the bag processor.

A camera's outputs live under a prefix: the node's private namespace ``~``
for one camera, ``~/<input topic>`` for several. :data:`OUTPUT_TOPICS` says
which topics exist, of which type, latched or not, which parameter turns
each on, and which need a depth image (a camera without depth has none of
those); :class:`CameraOutputs` turns one segmented frame into the messages
for them (the node publishes them, the bag processor writes them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..engine.result import SegmentationResult
from ..engine.vocabulary import Vocabulary
from ..render.labels import MONO, label_array
from ..stream.depth import DepthImage, objects_3d, project
from . import messages

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


@dataclass(frozen=True)
class OutputTopic:
    """One output of a camera: ``<prefix>/<name>``."""

    name: str
    msgtype: str           # ROS type name
    latched: bool = False  # transient local, reliable, depth 1 (late subscribers get it)
    switch: str = ""       # the boolean parameter that turns it on; "" = always on
    description: str = ""
    depth: bool = False    # made from a depth image: only cameras with a depth topic have it


OUTPUT_TOPICS: Tuple[OutputTopic, ...] = (
    OutputTopic("labels", IMAGE, description="class index per pixel, mono8 (mono16 above 254 classes; "
                "32SC1 with label_encoding 32SC1)"),
    OutputTopic("color_labels", IMAGE, switch="publish_color_labels",
                description="rgb8 class colour per pixel (the overlay's palette), unlabeled black: for rviz"),
    OutputTopic("label_info", messages.MESSAGE_TYPES["LabelInfo"], latched=True,
                description="class index -> name; sent once per vocabulary"),
    OutputTopic("active_classes", messages.MESSAGE_TYPES["Classification"],
                description="the classes decoded on the frame, score = presence"),
    OutputTopic("label_source", messages.MESSAGE_TYPES["TimeReference"],
                description="where the labels come from: source model or propagated, time_ref = the model frame's stamp"),
    OutputTopic("overlay", IMAGE, switch="publish_overlay", description="the image with class colours blended in"),
    OutputTopic("confidence", IMAGE, switch="publish_confidence", description="32FC1 score of the winning class"),
    OutputTopic("detections", messages.MESSAGE_TYPES["Detection2DArray"], switch="publish_detections",
                description="the frame's objects: persistent id, class, score and pixel box each"),
    OutputTopic("instances", IMAGE, switch="publish_instances",
                description="mono16 persistent object id per pixel, 0 = none"),
    OutputTopic("panoptic", IMAGE, switch="publish_panoptic",
                description="32SC1 class << 16 | object id per pixel, unlabeled -1"),
    OutputTopic("points", messages.MESSAGE_TYPES["PointCloud2"], switch="publish_points", depth=True,
                description="the labelled cloud: x y z rgb label instance per depth pixel (points_decimation)"),
    OutputTopic("detections_3d", messages.MESSAGE_TYPES["Detection3DArray"], switch="publish_detections_3d",
                depth=True, description="each instance's 3D centroid and box from its masked depth"),
)
BY_NAME: Dict[str, OutputTopic] = {t.name: t for t in OUTPUT_TOPICS}
SWITCHED = tuple(t for t in OUTPUT_TOPICS if t.switch)


def enabled(values: Mapping[str, Any], depth: bool = False) -> Tuple[OutputTopic, ...]:
    """The outputs the parameter ``values`` turn on, for a camera with or without ``depth``."""
    return tuple(t for t in OUTPUT_TOPICS if (not t.switch or values[t.switch]) and (depth or not t.depth))


def camera_name(topic: str, msgtype: str) -> str:
    """The image topic a camera is known by: a compressed topic without its
    image_transport suffix, as the node subscribes ``<topic>/compressed``."""
    if msgtype == COMPRESSED_IMAGE and topic.endswith("/compressed"):
        return topic[: -len("/compressed")]
    return topic


@dataclass
class CameraOutputs:
    """One camera's output handles (publishers, bag connections) by output
    name, and the label info last sent on them."""

    topic: str                               # the camera's name: its input topic
    prefix: str
    handles: Dict[str, Any] = field(default_factory=dict)
    info_sent: Optional[Tuple[Vocabulary, float]] = None

    def label_info(self, ns: messages.MessageClasses, vocabulary: Vocabulary, header: Any,
                   threshold: float) -> Optional[Any]:
        """The LabelInfo to send, or None when this camera already sent it
        for this vocabulary and threshold (or has no label_info output)."""
        if "label_info" not in self.handles or self.info_sent == (vocabulary, threshold):
            return None
        self.info_sent = (vocabulary, threshold)
        return messages.label_info(ns, vocabulary, header, threshold)

    def frame_messages(self, ns: messages.MessageClasses, rgb: np.ndarray, result: SegmentationResult,
                       header: Any, overlay_alpha: float, threshold: float, source: str = "model",
                       model_header: Any = None, wanted: Callable[[str, Any], bool] = lambda name, handle: True,
                       overlay_legend: bool = False, label_encoding: str = MONO,
                       depth: Optional["Depth"] = None, objects: Sequence[messages.Tracked] = (),
                       instance_ids: Optional[np.ndarray] = None,
                       class_id: str = "index") -> Iterator[Tuple[Any, Any]]:
        """(handle, message) for every output of one frame that has a handle
        and is ``wanted``; label_info only when the vocabulary or threshold
        changed since it was last sent (the node latches it). ``source`` and
        ``model_header`` (default: ``header``) say where the labels come from;
        ``overlay_legend`` draws the legend into the overlay; ``label_encoding``
        is the labels image's (``render.labels``); the depth outputs need
        ``depth`` (none without: the frame is labelled in 2D). ``objects``
        and ``instance_ids`` (``FrameResult``'s) make the object outputs;
        ``class_id`` is the detections' (``detection_class_id``)."""
        info = self.label_info(ns, result.vocabulary, header, threshold)
        if info is not None:
            yield self.handles["label_info"], info
        build = {
            "labels": lambda: messages.labels_image(ns, result, header, label_encoding),
            "color_labels": lambda: messages.color_labels_image(ns, result, header),
            "active_classes": lambda: messages.active_classes(ns, result, header),
            "label_source": lambda: messages.label_source(ns, header, model_header or header, source),
            "overlay": lambda: messages.overlay_image(ns, rgb, result, header, overlay_alpha, overlay_legend),
            "confidence": lambda: messages.confidence_image(ns, result, header),
            "detections": lambda: messages.detections_2d(ns, objects, result.vocabulary, header, class_id),
            "instances": lambda: messages.instances_image(ns, instance_ids, result.labels.shape, header),
            "panoptic": lambda: messages.panoptic_image(ns, result, instance_ids, header),
        }
        if depth is not None:
            build.update(depth.builders(ns, rgb, result, class_id))
        for name, make in build.items():
            handle = self.handles.get(name)
            if handle is not None and wanted(name, handle):
                yield handle, make()


@dataclass(frozen=True)
class Depth:
    """What a frame's 3D outputs are made of: its matched depth image, the
    header to send them with (the depth image's), the cloud's decimation, and
    the frame's objects (``FrameResult.instance_ids``: an id image of the
    colour image's size, 0 = none; ``FrameResult.objects``: what each id is)
    when there are any."""

    image: DepthImage
    header: Any
    decimation: int = 1
    instance_ids: Optional[np.ndarray] = None
    objects: Sequence[messages.Identified] = ()

    def builders(self, ns: messages.MessageClasses, rgb: np.ndarray, result: SegmentationResult,
                 class_id: str = "index") -> Dict[str, Callable[[], Any]]:
        """The builders of ``points`` and ``detections_3d`` (``class_id``: the detections')."""
        def detections() -> Any:
            found = () if self.instance_ids is None else objects_3d(
                self.image, self.instance_ids, wanted=[int(o.id) for o in self.objects])
            return messages.detections_3d(ns, found, {o.id: o for o in self.objects}, self.header, result.vocabulary,
                                          class_id)

        return {
            "points": lambda: messages.point_cloud(
                ns, project(self.image, rgb, label_array(result), self.instance_ids, self.decimation), self.header),
            "detections_3d": detections,
        }
