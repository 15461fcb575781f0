"""messages: what the node publishes is valid ROS 2 data, checked through CDR."""

from __future__ import annotations

import array
import struct
import sys
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest

from activesam_ros.engine.vocabulary import Vocabulary
from activesam_ros.render.labels import label_dtype
from activesam_ros.render.palette import class_colors
from activesam_ros.ros import messages
from activesam_ros.ros.imgconv import image_to_rgb
from activesam_ros.ros.rosbags_types import RosbagsMessages, rosbags_messages, typestore

from made_results import RNG, VOCAB, H, W, make_result, random_labels

STAMP = SimpleNamespace(stamp=SimpleNamespace(sec=1_700_000_123, nanosec=456_789),
                        frame_id="cam_front")


def cdr_round_trip(msg):
    """Serialise as a ROS 2 node would, and read back."""
    store = typestore()
    raw = store.serialize_cdr(msg, msg.__msgtype__)
    return store.deserialize_cdr(raw, msg.__msgtype__)


def assert_header_copied(header):
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (
        STAMP.stamp.sec, STAMP.stamp.nanosec, STAMP.frame_id)


def test_labels_image_mono8_with_background_unlabeled():
    labels = random_labels(4)
    result = make_result(VOCAB, labels, background=3)
    msg = cdr_round_trip(messages.labels_image(RosbagsMessages, result, STAMP))
    assert_header_copied(msg.header)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("mono8", H, W, W)
    assert msg.is_bigendian == 0
    pixels = np.asarray(msg.data).reshape(H, W)
    np.testing.assert_array_equal(pixels[labels != 3], labels[labels != 3])
    assert (pixels[labels == 3] == 255).all() and (labels == 3).any()


def test_labels_without_background_calibration_keep_every_index():
    labels = random_labels(4)
    msg = messages.labels_image(RosbagsMessages, make_result(VOCAB, labels), STAMP)
    np.testing.assert_array_equal(np.asarray(msg.data).reshape(H, W), labels)


@pytest.mark.parametrize("classes, encoding, unlabeled",
                         [(254, "mono8", 255), (255, "mono16", 65535)])
def test_labels_encoding_switches_above_254_classes(classes, encoding, unlabeled):
    lines = [f"class {i}" for i in range(classes)]
    labels = RNG.integers(0, classes, (H, W))
    labels[0, :3] = [classes - 1, classes - 2, 0]
    background = classes - 2
    msg = cdr_round_trip(messages.labels_image(
        RosbagsMessages, make_result(lines, labels, background=background), STAMP))
    depth = 1 if encoding == "mono8" else 2
    assert (msg.encoding, msg.step, msg.is_bigendian) == (encoding, W * depth, 0)
    wire = "u1" if depth == 1 else "<u2"
    pixels = np.frombuffer(np.asarray(msg.data).tobytes(), wire).reshape(H, W)
    expected = np.where(labels == background, unlabeled, labels)
    np.testing.assert_array_equal(pixels, expected)
    assert pixels[0, 0] == classes - 1  # the highest class index survives: it is not "unlabeled"


def test_labels_refuse_more_classes_than_mono16_can_name():
    """Index 65535 would read as unlabeled. (A vocabulary cannot reach that
    size: engine.limits.MAX_QUERIES stops it first.)"""
    assert label_dtype(65535) == np.uint16
    with pytest.raises(ValueError, match="65536 classes"):
        label_dtype(65536)


def test_label_info_maps_every_index_to_its_first_alias():
    vocabulary = Vocabulary.from_lines(VOCAB)
    msg = cdr_round_trip(messages.label_info(RosbagsMessages, vocabulary, STAMP, 0.35))
    assert_header_copied(msg.header)
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [
        (0, "car"), (1, "person"), (2, "tree"), (3, "background")]
    assert msg.threshold == pytest.approx(0.35, abs=1e-7)  # float32 on the wire


def test_active_classes_score_each_class_by_its_best_query():
    # queries: car, automobile, person, tree, background
    presence = [0.2, 0.9, 0.0, 0.6, 0.1]
    result = make_result(VOCAB, random_labels(4), presence=presence, active=[0, 1, 3])
    msg = cdr_round_trip(messages.active_classes(RosbagsMessages, result, STAMP))
    assert_header_copied(msg.header)
    got = [(h.class_id, h.score) for h in msg.results]
    assert [c for c, _ in got] == ["0", "2"]
    assert [s for _, s in got] == pytest.approx([0.9, 0.6], abs=1e-6)


def test_confidence_image_is_the_scores_as_32fc1():
    result = make_result(VOCAB, random_labels(4))
    msg = cdr_round_trip(messages.confidence_image(RosbagsMessages, result, STAMP))
    assert_header_copied(msg.header)
    assert (msg.encoding, msg.step, msg.is_bigendian) == ("32FC1", 4 * W, 0)
    scores = np.frombuffer(msg.data.tobytes(), "<f4").reshape(H, W)
    np.testing.assert_array_equal(scores, result.scores)


def test_overlay_image_tints_labelled_pixels_only():
    labels = random_labels(4)
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    result = make_result(VOCAB, labels, background=3)
    msg = cdr_round_trip(messages.overlay_image(RosbagsMessages, rgb, result, STAMP, 0.5))
    assert_header_copied(msg.header)
    assert (msg.encoding, msg.step) == ("rgb8", 3 * W)
    out = image_to_rgb(msg)
    background = labels == 3
    np.testing.assert_array_equal(out[background], rgb[background])
    colours = class_colors(len(result.vocabulary))[labels]
    expected = (rgb.astype(float) + colours) / 2
    assert np.abs(out[~background] - expected[~background]).max() <= 1


def test_color_labels_image_is_rgb8_class_colours_with_unlabeled_black():
    labels = random_labels(4)
    result = make_result(VOCAB, labels, background=3)
    msg = cdr_round_trip(messages.color_labels_image(RosbagsMessages, result, STAMP))
    assert_header_copied(msg.header)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("rgb8", H, W, 3 * W)
    pixels = image_to_rgb(msg)
    np.testing.assert_array_equal(pixels[labels != 3], class_colors(4)[labels[labels != 3]])
    assert (pixels[labels == 3] == 0).all() and (pixels[labels != 3].max(axis=-1) > 0).all()


def test_overlay_legend_is_drawn_only_when_asked_for():
    rgb = np.zeros((240, 320, 3), np.uint8)
    result = make_result(VOCAB, np.zeros((240, 320), int))
    plain = image_to_rgb(messages.overlay_image(RosbagsMessages, rgb, result, STAMP, 0.0))
    with_legend = image_to_rgb(messages.overlay_image(RosbagsMessages, rgb, result, STAMP, 0.0, legend=True))
    np.testing.assert_array_equal(plain, rgb)
    assert (with_legend != rgb).any()


# --- byte-level: the vision_msgs types as any ROS 2 node lays them out ---------------

class Cdr:
    """A little-endian CDR writer from the XCDR1 rules: each primitive aligned to its size."""

    def __init__(self):
        self.body = bytearray()

    def put(self, fmt: str, value) -> "Cdr":
        size = struct.calcsize("<" + fmt)
        self.body += b"\0" * (-len(self.body) % size) + struct.pack("<" + fmt, value)
        return self

    def string(self, text: str) -> "Cdr":
        self.put("I", len(text) + 1).body += text.encode() + b"\0"
        return self

    def header(self) -> "Cdr":
        return self.put("i", STAMP.stamp.sec).put("I", STAMP.stamp.nanosec).string(STAMP.frame_id)

    def message(self) -> bytes:
        return b"\x00\x01\x00\x00" + bytes(self.body)  # CDR little-endian encapsulation


def test_classification_bytes_match_the_vision_msgs_layout():
    result = make_result(["car", "person"], random_labels(2), presence=[0.25, 0.75], active=[1])
    msg = messages.active_classes(RosbagsMessages, result, STAMP)
    # header; ObjectHypothesis[] results = [(string class_id, float64 score)]
    expected = Cdr().header().put("I", 1).string("1").put("d", 0.75).message()
    assert typestore().serialize_cdr(msg, msg.__msgtype__) == expected


def test_label_info_bytes_match_the_vision_msgs_layout():
    msg = messages.label_info(RosbagsMessages, Vocabulary.from_lines(["cat", "dog"]), STAMP, 0.5)
    # header; VisionClass[] class_map = [(uint16 class_id, string class_name)]; float32 threshold
    expected = (Cdr().header().put("I", 2).put("H", 0).string("cat").put("H", 1).string("dog")
                .put("f", 0.5).message())
    assert typestore().serialize_cdr(msg, msg.__msgtype__) == expected


# Type hashes that rosidl generated for vision_msgs 4.1 in a ROS 2 Jazzy build
# (label_info__description.c, classification__description.c). They cover every
# field's name, type and order, and those of VisionClass / ObjectHypothesis within.
ROSIDL_TYPE_HASHES = {
    "vision_msgs/msg/LabelInfo":
        "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "vision_msgs/msg/Classification":
        "RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143",
    # detection2_d_array's type description in the same build: Detection2D,
    # ObjectHypothesisWithPose, BoundingBox2D, Pose2D and Point2D within.
    "vision_msgs/msg/Detection2DArray":
        "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    # detection3_d_array__description.c: Detection3D, ObjectHypothesisWithPose, BoundingBox3D within.
    "vision_msgs/msg/Detection3DArray":
        "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
}


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_vision_msgs_definitions_hash_like_the_real_package(distro):
    store = typestore(distro)
    for msgtype, expected in ROSIDL_TYPE_HASHES.items():
        assert store.hash_rihs01(msgtype) == expected


def test_humble_and_jazzy_stores_write_the_same_bytes():
    result = make_result(VOCAB, random_labels(4), presence=[0.1, 0.2, 0.3, 0.4, 0.5], active=[0, 2])
    for build in (
        lambda ns: messages.active_classes(ns, result, STAMP),
        lambda ns: messages.label_info(ns, result.vocabulary, STAMP, 0.5),
        lambda ns: messages.labels_image(ns, result, STAMP),
    ):
        raw = {distro: typestore(distro).serialize_cdr(msg, msg.__msgtype__)
               for distro in ("humble", "jazzy") for msg in [build(rosbags_messages(distro))]}
        assert raw["humble"] == raw["jazzy"]
    with pytest.raises(ValueError, match="rolling"):
        typestore("rolling")


# --- rclpy: the same builders with classes that check values the way rclpy does -------

def _is_int(value):
    return isinstance(value, int)


def _is_float(value):
    return isinstance(value, float)  # numpy float32 is not a float: rclpy rejects it


def _is_str(value):
    return isinstance(value, str)


def _is_bool(value):
    return isinstance(value, bool)


def _is_uint8_array(value):
    return isinstance(value, array.array) and value.typecode == "B"


def strict_class(name: str, /, **checks):
    """A message class that, like rclpy's setters, refuses values of the wrong Python type."""

    def __init__(self, **fields):
        assert set(fields) == set(checks), f"{name}: fields {sorted(fields)}"
        for key, value in fields.items():
            assert checks[key](value), f"rclpy would reject {name}.{key} = {type(value).__name__}"
            setattr(self, key, value)

    return type(name, (), {"__init__": __init__})


@pytest.fixture
def rclpy_namespace(monkeypatch):
    """Fake ROS 2 Python packages in sys.modules, then the real ``rclpy_messages()``."""
    Time = strict_class("Time", sec=_is_int, nanosec=_is_int)
    Header = strict_class("Header", stamp=lambda v: isinstance(v, Time), frame_id=_is_str)

    def is_list_of(cls):
        return lambda v: isinstance(v, list) and all(isinstance(x, cls) for x in v)

    image_checks = dict(header=lambda v: isinstance(v, Header), height=_is_int, width=_is_int,
                        encoding=_is_str, is_bigendian=_is_int, step=_is_int, data=_is_uint8_array)
    VisionClass = strict_class("VisionClass", class_id=_is_int, class_name=_is_str)
    ObjectHypothesis = strict_class("ObjectHypothesis", class_id=_is_str, score=_is_float)
    Point = strict_class("Point", x=_is_float, y=_is_float, z=_is_float)
    Vector3 = strict_class("Vector3", x=_is_float, y=_is_float, z=_is_float)
    Quaternion = strict_class("Quaternion", x=_is_float, y=_is_float, z=_is_float, w=_is_float)
    Pose = strict_class("Pose", position=lambda v: isinstance(v, Point), orientation=lambda v: isinstance(v, Quaternion))
    PoseWithCovariance = strict_class("PoseWithCovariance", pose=lambda v: isinstance(v, Pose),
                                      covariance=lambda v: np.asarray(v).dtype == np.float64 and len(v) == 36)
    ObjectHypothesisWithPose = strict_class("ObjectHypothesisWithPose",
                                            hypothesis=lambda v: isinstance(v, ObjectHypothesis),
                                            pose=lambda v: isinstance(v, PoseWithCovariance))
    BoundingBox3D = strict_class("BoundingBox3D", center=lambda v: isinstance(v, Pose),
                                 size=lambda v: isinstance(v, Vector3))
    Detection3D = strict_class("Detection3D", header=lambda v: isinstance(v, Header),
                               results=is_list_of(ObjectHypothesisWithPose),
                               bbox=lambda v: isinstance(v, BoundingBox3D), id=_is_str)
    Point2D = strict_class("Point2D", x=_is_float, y=_is_float)
    Pose2D = strict_class("Pose2D", position=lambda v: isinstance(v, Point2D), theta=_is_float)
    BoundingBox2D = strict_class("BoundingBox2D", center=lambda v: isinstance(v, Pose2D), size_x=_is_float,
                                 size_y=_is_float)
    Detection2D = strict_class("Detection2D", header=lambda v: isinstance(v, Header),
                               results=is_list_of(ObjectHypothesisWithPose),
                               bbox=lambda v: isinstance(v, BoundingBox2D), id=_is_str)
    PointField = strict_class("PointField", name=_is_str, offset=_is_int, datatype=_is_int, count=_is_int)
    modules = {
        "builtin_interfaces.msg": dict(Time=Time),
        "std_msgs.msg": dict(Header=Header),
        "sensor_msgs.msg": dict(
            Image=strict_class("Image", **image_checks),
            CompressedImage=strict_class("CompressedImage", header=lambda v: isinstance(v, Header),
                                         format=_is_str, data=_is_uint8_array),
            TimeReference=strict_class("TimeReference", header=lambda v: isinstance(v, Header),
                                       time_ref=lambda v: isinstance(v, Time), source=_is_str),
            PointField=PointField,
            PointCloud2=strict_class("PointCloud2", header=lambda v: isinstance(v, Header), height=_is_int,
                                     width=_is_int, fields=is_list_of(PointField), is_bigendian=_is_bool,
                                     point_step=_is_int, row_step=_is_int, data=_is_uint8_array,
                                     is_dense=_is_bool)),
        "geometry_msgs.msg": dict(Point=Point, Vector3=Vector3, Quaternion=Quaternion, Pose=Pose,
                                  PoseWithCovariance=PoseWithCovariance),
        "vision_msgs.msg": dict(
            VisionClass=VisionClass, ObjectHypothesis=ObjectHypothesis,
            LabelInfo=strict_class("LabelInfo", header=lambda v: isinstance(v, Header),
                                   class_map=is_list_of(VisionClass), threshold=_is_float),
            Classification=strict_class("Classification", header=lambda v: isinstance(v, Header),
                                        results=is_list_of(ObjectHypothesis)),
            ObjectHypothesisWithPose=ObjectHypothesisWithPose, BoundingBox3D=BoundingBox3D, Detection3D=Detection3D,
            Detection3DArray=strict_class("Detection3DArray", header=lambda v: isinstance(v, Header),
                                          detections=is_list_of(Detection3D)),
            Point2D=Point2D, Pose2D=Pose2D, BoundingBox2D=BoundingBox2D, Detection2D=Detection2D,
            Detection2DArray=strict_class("Detection2DArray", header=lambda v: isinstance(v, Header),
                                          detections=is_list_of(Detection2D))),
    }
    for name, members in modules.items():
        module = ModuleType(name)
        module.__dict__.update(members)
        monkeypatch.setitem(sys.modules, name, module)
    return messages.rclpy_messages()


def test_rclpy_messages_get_plain_python_values(rclpy_namespace):
    labels = random_labels(4)
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    presence = np.array([0.2, 0.9, 0.0, 0.6, 0.1])
    result = make_result(VOCAB, labels, presence=presence, active=[0, 3], background=3)
    header = messages.make_header(rclpy_namespace, np.int64(5), np.uint32(6), "cam")

    def images(ns):
        return [messages.labels_image(ns, result, header),
                messages.color_labels_image(ns, result, header),
                messages.overlay_image(ns, rgb, result, header, 0.4, legend=True),
                messages.confidence_image(ns, result, header)]

    for built, twin in zip(images(rclpy_namespace), images(RosbagsMessages)):
        assert built.data.tobytes() == twin.data.tobytes()  # same pixels as the tested build
        assert (built.header.stamp.sec, built.header.frame_id) == (5, "cam")
    info = messages.label_info(rclpy_namespace, result.vocabulary, header, np.float32(0.3))
    assert [c.class_name for c in info.class_map] == list(result.vocabulary.names)
    active = messages.active_classes(rclpy_namespace, result, header)
    assert [h.class_id for h in active.results] == ["0", "2"]
    model = messages.make_header(rclpy_namespace, np.int64(4), np.uint32(9), "cam")
    source = messages.label_source(rclpy_namespace, header, model, "propagated")
    assert (source.time_ref.sec, source.time_ref.nanosec, source.source) == (4, 9, "propagated")


def test_rclpy_3d_messages_get_plain_python_values(rclpy_namespace):
    """The cloud and the 3D detections, built with rclpy's value checks, carry the tested bytes."""
    from types import SimpleNamespace

    from activesam_ros.stream.depth import Cloud, Object3D

    cloud = Cloud(xyz=RNG.random((6, 3), dtype=np.float32), rgb=RNG.integers(0, 256, (6, 3), dtype=np.uint8),
                  label=np.arange(6, dtype=np.uint16), instance=np.ones(6, np.uint16), pixel=np.zeros((6, 2), int))
    header = messages.make_header(rclpy_namespace, np.int64(5), np.uint32(6), "cam")
    built = messages.point_cloud(rclpy_namespace, cloud, header)
    assert built.data.tobytes() == messages.point_cloud(RosbagsMessages, cloud, header).data.tobytes()
    found = [Object3D(1, (np.float64(0.1), 0.2, 2.0), (0.1, 0.2, 2.0), (0.5, 0.4, 0.3), 100)]
    known = {1: SimpleNamespace(id=1, class_index=np.int64(2), score=np.float32(0.5))}
    vocabulary = Vocabulary.from_lines(["car", "person", "tree"])
    detections = messages.detections_3d(rclpy_namespace, found, known, header, vocabulary)
    assert detections.detections[0].results[0].hypothesis.class_id == "2"
    named = messages.detections_3d(rclpy_namespace, found, known, header, vocabulary, class_id="name")
    assert named.detections[0].results[0].hypothesis.class_id == "tree"


def test_label_source_says_where_the_labels_come_from():
    header = messages.make_header(RosbagsMessages, 10, 500, "cam")
    model = messages.make_header(RosbagsMessages, 9, 900, "cam")
    msg = cdr_round_trip(messages.label_source(RosbagsMessages, header, model, "propagated"))
    assert msg.__msgtype__ == "sensor_msgs/msg/TimeReference"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (10, 500, "cam")
    assert (msg.time_ref.sec, msg.time_ref.nanosec, msg.source) == (9, 900, "propagated")


# --- objects: detections, instance ids, panoptic ----------------------------------------

OBJECTS = (SimpleNamespace(id=7, class_index=2, score=0.625, box=(3, 4, 13, 10)),
           SimpleNamespace(id=65535, class_index=0, score=0.5, box=(0, 0, 1, 1)))


def test_detections_bytes_match_the_vision_msgs_layout():
    """Detection2DArray laid out field by field from vision_msgs 4.x's .msg files:
    Detection2D = header, ObjectHypothesisWithPose[] results, BoundingBox2D bbox, string id."""
    msg = messages.detections_2d(RosbagsMessages, OBJECTS[:1], Vocabulary.from_lines(VOCAB), STAMP)
    cdr = Cdr().header().put("I", 1).header().put("I", 1)
    cdr.string("2").put("d", 0.625)                        # ObjectHypothesis: class_id, score
    for value in (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0):      # Pose: position, orientation (identity)
        cdr.put("d", value)
    for _ in range(36):                                     # covariance float64[36]
        cdr.put("d", 0.0)
    cdr.put("d", 8.0).put("d", 7.0).put("d", 0.0)          # center: x = (3 + 13) / 2, y = (4 + 10) / 2, theta
    cdr.put("d", 10.0).put("d", 6.0)                       # size_x, size_y
    expected = cdr.string("7").message()
    assert typestore().serialize_cdr(msg, msg.__msgtype__) == expected


@pytest.mark.parametrize("class_id, expected", [("index", ["2", "0"]), ("name", None)])
def test_detections_carry_the_persistent_id_class_score_and_pixel_box(class_id, expected):
    vocabulary = Vocabulary.from_lines(VOCAB)
    msg = cdr_round_trip(messages.detections_2d(RosbagsMessages, OBJECTS, vocabulary, STAMP, class_id))
    assert_header_copied(msg.header)
    assert [d.id for d in msg.detections] == ["7", "65535"]
    names = [d.results[0].hypothesis.class_id for d in msg.detections]
    assert names == (expected or [vocabulary.names[2], vocabulary.names[0]])
    assert [d.results[0].hypothesis.score for d in msg.detections] == [0.625, 0.5]
    box = msg.detections[0].bbox
    assert (box.center.position.x - box.size_x / 2, box.center.position.y - box.size_y / 2) == (3, 4)
    assert (box.center.position.x + box.size_x / 2, box.center.position.y + box.size_y / 2) == (13, 10)
    assert_header_copied(msg.detections[0].header)


def test_instances_image_is_mono16_object_ids():
    ids = RNG.integers(0, 65536, (H, W)).astype(np.uint16)
    msg = cdr_round_trip(messages.instances_image(RosbagsMessages, ids, (H, W), STAMP))
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == ("mono16", H, W, 2 * W, 0)
    np.testing.assert_array_equal(np.frombuffer(np.asarray(msg.data).tobytes(), "<u2").reshape(H, W), ids)
    empty = messages.instances_image(RosbagsMessages, None, (H, W), STAMP)
    assert not np.asarray(empty.data).any() and empty.encoding == "mono16"


def test_panoptic_image_packs_class_and_object_id_unlabeled_minus_one():
    labels = random_labels(4)
    ids = RNG.integers(0, 65536, (H, W)).astype(np.uint16)
    result = make_result(VOCAB, labels, background=3)
    msg = cdr_round_trip(messages.panoptic_image(RosbagsMessages, result, ids, STAMP))
    assert (msg.encoding, msg.step) == ("32SC1", 4 * W)
    value = np.frombuffer(np.asarray(msg.data).tobytes(), "<i4").reshape(H, W)
    labelled = labels != 3
    np.testing.assert_array_equal(value[labelled] >> 16, labels[labelled])
    np.testing.assert_array_equal(value[labelled] & 0xFFFF, ids[labelled])
    assert (value[~labelled] == -1).all() and (~labelled).any()
    classes_only = messages.panoptic_image(RosbagsMessages, make_result(VOCAB, labels), None, STAMP)
    np.testing.assert_array_equal(np.frombuffer(np.asarray(classes_only.data).tobytes(), "<i4").reshape(H, W),
                                  labels << 16)


def test_rclpy_object_messages_get_plain_python_values(rclpy_namespace):
    header = messages.make_header(rclpy_namespace, np.int64(5), np.uint32(6), "cam")
    found = [SimpleNamespace(id=np.uint16(9), class_index=np.int64(1), score=np.float32(0.5),
                             box=tuple(np.int64(v) for v in (1, 2, 5, 6)))]
    msg = messages.detections_2d(rclpy_namespace, found, Vocabulary.from_lines(VOCAB), header, "name")
    assert msg.detections[0].id == "9" and msg.detections[0].bbox.center.position.x == 3.0
    ids = np.arange(H * W, dtype=np.uint16).reshape(H, W)
    result = make_result(VOCAB, random_labels(4))
    for build in (lambda ns: messages.instances_image(ns, ids, (H, W), header),
                  lambda ns: messages.panoptic_image(ns, result, ids, header)):
        assert build(rclpy_namespace).data.tobytes() == build(RosbagsMessages).data.tobytes()
