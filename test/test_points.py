"""The 3D outputs as ROS 2 data: ~/points and ~/detections_3d built from
Middlebury's Motorcycle, serialised to CDR and read back with rosbags, then
parsed as a consumer parses a PointCloud2 (by its own field list); depth
images and CameraInfo read from message fields; depth paired with frames
by stamp."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from activesam_ros.benchmark.stereo import motorcycle
from activesam_ros.render.labels import label_array
from activesam_ros.ros import messages, names, topics
from activesam_ros.ros.depthconv import depth_to_metres, intrinsics
from activesam_ros.ros.rosbags_types import RosbagsMessages, typestore
from activesam_ros.stream.depth import DepthError, DepthImage, depth_metres, objects_3d, project
from activesam_ros.stream.depth_sync import DepthPairing

from made_results import make_result

STORE = typestore()
T = STORE.types
HEADER = SimpleNamespace(stamp=SimpleNamespace(sec=1_700_000_001, nanosec=5_000), frame_id="cam_depth_optical")
NUMPY_OF = {getattr(T["sensor_msgs/msg/PointField"], name): dtype for name, dtype in
            (("FLOAT32", "<f4"), ("FLOAT64", "<f8"), ("UINT16", "<u2"), ("UINT32", "<u4"), ("UINT8", "u1"))}


def round_trip(msg):
    raw = STORE.serialize_cdr(msg, msg.__msgtype__)
    return STORE.deserialize_cdr(raw, msg.__msgtype__)


def read_points(msg) -> np.ndarray:
    """A PointCloud2's points as a consumer reads them: by the message's own fields, offsets and step."""
    assert not msg.is_bigendian
    dtype = np.dtype({"names": [f.name for f in msg.fields], "formats": [NUMPY_OF[f.datatype] for f in msg.fields],
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    data = np.asarray(msg.data, dtype=np.uint8)
    assert data.size == msg.row_step * msg.height == msg.point_step * msg.width * msg.height
    return data.view(dtype)


@pytest.fixture(scope="module")
def scene():
    return motorcycle()


@pytest.fixture(scope="module")
def frame(scene):
    """The scene with labels (depth bands) and two instances: a near and a far rectangle."""
    known = np.isfinite(scene.depth_mm)
    labels = np.full(scene.depth_mm.shape, 3, dtype=np.int64)  # 'background'
    labels[known & (scene.depth_mm < 3000)] = 0
    labels[known & (scene.depth_mm >= 3000)] = 2
    ids = np.zeros(labels.shape, dtype=np.uint16)
    ids[300:420, 250:400] = 5
    ids[40:120, 560:700] = 9
    result = make_result(["car", "person", "tree", "background"], labels, background=3)
    depth = DepthImage(depth_metres(scene.depth_16uc1()), scene.intrinsics, 1.0, "cam_depth_optical")
    return SimpleNamespace(labels=labels, ids=ids, result=result, depth=depth)


def test_the_cloud_reads_back_through_its_own_fields(scene, frame):
    cloud = project(frame.depth, scene.rgb, label_array(frame.result), frame.ids, decimation=3)
    msg = round_trip(messages.point_cloud(RosbagsMessages, cloud, HEADER))
    assert (msg.header.frame_id, msg.header.stamp.sec) == ("cam_depth_optical", 1_700_000_001)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb", "label", "instance"]
    assert (msg.height, msg.width, msg.is_dense) == (1, len(cloud), True)
    points = read_points(msg)
    np.testing.assert_array_equal(np.stack([points["x"], points["y"], points["z"]], axis=1), cloud.xyz)
    rows, cols = cloud.pixel.T
    # z after the CDR round trip is still the ground truth at the point's pixel (16UC1: millimetres).
    assert np.abs(points["z"] - scene.depth_mm[rows, cols] / 1000).max() <= 1e-3
    # rgb as PCL and rviz unpack it: the float's bits are 0x00RRGGBB.
    packed = points["rgb"].view(np.uint32)
    unpacked = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1)
    np.testing.assert_array_equal(unpacked, scene.rgb[rows, cols])
    np.testing.assert_array_equal(points["label"], label_array(frame.result)[rows, cols])
    assert set(np.unique(points["label"])) <= {0, 2, 255}  # the labels image's values, unlabeled 255
    np.testing.assert_array_equal(points["instance"], frame.ids[rows, cols])


def test_detections_3d_read_back_with_centroid_box_class_and_id(frame):
    found = objects_3d(frame.depth, frame.ids)
    known = {5: SimpleNamespace(id=5, class_index=0, score=0.75), 9: SimpleNamespace(id=9, class_index=2, score=0.5)}
    msg = round_trip(messages.detections_3d(RosbagsMessages, found, known, HEADER, frame.result.vocabulary))
    assert msg.header.frame_id == "cam_depth_optical"
    assert [d.id for d in msg.detections] == ["5", "9"]
    for detection, obj in zip(msg.detections, found):
        [hypothesis] = detection.results
        assert hypothesis.hypothesis.class_id == str(known[obj.id].class_index)
        assert hypothesis.hypothesis.score == known[obj.id].score
        position = hypothesis.pose.pose.position
        assert (position.x, position.y, position.z) == pytest.approx(obj.centroid)
        assert hypothesis.pose.pose.orientation.w == 1.0 and not np.any(hypothesis.pose.covariance)
        box = detection.bbox
        assert (box.center.position.x, box.center.position.y, box.center.position.z) == pytest.approx(obj.center)
        assert (box.size.x, box.size.y, box.size.z) == pytest.approx(obj.size)
    near, far = (d.results[0].pose.pose.position.z for d in msg.detections)
    assert near < far  # the near rectangle lies on the motorcycle, the far one on the wall behind
    # An instance that nothing identifies is left out.
    assert len(messages.detections_3d(RosbagsMessages, found, {9: known[9]}, HEADER,
                                      frame.result.vocabulary).detections) == 1
    # With detection_class_id "name", as ~/detections: the class's display name.
    named = messages.detections_3d(RosbagsMessages, found, known, HEADER, frame.result.vocabulary, "name")
    assert [d.results[0].hypothesis.class_id for d in named.detections] == ["car", "tree"]


def test_a_camera_with_depth_gets_both_3d_outputs_and_one_without_none(scene, frame):
    depth = topics.Depth(frame.depth, HEADER, decimation=4, instance_ids=frame.ids,
                         objects=[SimpleNamespace(id=5, class_index=0, score=0.9)])
    with_depth = topics.enabled({t.switch: True for t in topics.SWITCHED}, depth=True)
    camera = topics.CameraOutputs("/cam", "/activesam", {t.name: t.name for t in with_depth})
    out = dict(camera.frame_messages(RosbagsMessages, scene.rgb, frame.result, HEADER, 0.5, 0.3, depth=depth))
    assert {"points", "detections_3d"} <= set(out)
    assert out["points"].__msgtype__ == topics.BY_NAME["points"].msgtype
    assert [d.id for d in round_trip(out["detections_3d"]).detections] == ["5"]
    assert read_points(round_trip(out["points"])).size == np.count_nonzero(
        np.isfinite(frame.depth.metres[::4, ::4]))
    # The frame without a matching depth image: the 2D outputs only.
    out = dict(camera.frame_messages(RosbagsMessages, scene.rgb, frame.result, HEADER, 0.5, 0.3))
    assert not {"points", "detections_3d"} & set(out) and "labels" in out
    without = {t.name for t in topics.enabled({t.switch: True for t in topics.SWITCHED})}
    assert not {"points", "detections_3d"} & without


def depth_message(raw: np.ndarray, encoding: str, big_endian: bool = False, pad: int = 0):
    data = raw.astype(raw.dtype.newbyteorder(">" if big_endian else "<"))
    rows = np.zeros((raw.shape[0], raw.shape[1] * raw.itemsize + pad), np.uint8)
    rows[:, : raw.shape[1] * raw.itemsize] = data.view(np.uint8).reshape(raw.shape[0], -1)
    msg = T["sensor_msgs/msg/Image"](header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](
        sec=1, nanosec=0), frame_id="d"), height=raw.shape[0], width=raw.shape[1], encoding=encoding,
        is_bigendian=int(big_endian), step=rows.shape[1], data=rows.reshape(-1))
    return round_trip(msg)


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("pad", [0, 6])
def test_depth_images_are_read_in_their_unit_whatever_the_byte_order_and_step(scene, big_endian, pad):
    mm = scene.depth_16uc1()
    np.testing.assert_array_equal(depth_to_metres(depth_message(mm, "16UC1", big_endian, pad)), depth_metres(mm))
    m = scene.depth_32fc1()
    np.testing.assert_array_equal(depth_to_metres(depth_message(m, "32FC1", big_endian, pad)), depth_metres(m))


def test_unreadable_depth_is_refused_with_the_reason(scene):
    with pytest.raises(DepthError, match="unsupported depth encoding 'rgb8'"):
        depth_to_metres(depth_message(np.zeros((2, 2), np.uint16), "rgb8"))
    truncated = depth_message(np.zeros((4, 4), np.uint16), "16UC1")
    truncated.data = truncated.data[:10]
    with pytest.raises(DepthError, match="truncated"):
        depth_to_metres(truncated)


def test_camera_info_gives_the_intrinsics(scene):
    info = scene.intrinsics
    msg = round_trip(T["sensor_msgs/msg/CameraInfo"](
        header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="d"),
        height=info.height, width=info.width, distortion_model="plumb_bob", d=np.zeros(5),
        k=np.array([info.fx, 0, info.cx, 0, info.fy, info.cy, 0, 0, 1], dtype=np.float64), r=np.eye(3).reshape(-1),
        p=np.zeros(12), binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)))
    assert intrinsics(msg) == info


def test_a_frame_takes_the_depth_image_nearest_its_stamp_within_the_tolerance(scene):
    pairing = DepthPairing(keep=3)
    metres = depth_metres(scene.depth_16uc1())
    assert pairing.match(1.0, metres.shape, 0.02)[2] == "no depth image received"
    for stamp in (0.90, 0.995, 1.03, 1.10):
        pairing.add_depth(metres, stamp, "d", context=stamp)
    assert pairing.match(1.0, metres.shape, 0.02)[2] == "no camera info received"
    pairing.add_intrinsics(scene.intrinsics)
    image, context, why = pairing.match(1.0, metres.shape, 0.02)
    assert (context, why, image.stamp) == (0.995, "", 0.995)
    assert pairing.match(1.06, metres.shape, 0.02)[1] is None  # nearest 1.03 or 1.10: both too far
    assert pairing.match(0.90, metres.shape, 0.5)[1] == 0.995  # 0.90 is no longer kept (keep=3)
    # A colour image of another shape is refused, one of another resolution taken.
    assert "aspect ratios" in pairing.match(1.0, (500, 500), 0.02)[2]
    assert pairing.match(1.0, (1000, 1482), 0.02)[1] == 0.995


def test_camera_info_beside_the_depth_topic_and_depth_topics_checked():
    assert names.camera_info_topic("/camera/aligned_depth_to_color/image_raw") == \
        "/camera/aligned_depth_to_color/camera_info"
    assert names.camera_info_topic("depth") == "camera_info"
    assert names.depth_topics(None, ["a", "b"]) == {"a": "", "b": ""}
    assert names.depth_topics(["", "/b/depth"], ["a", "b"]) == {"a": "", "b": "/b/depth"}
    assert "one per camera" in names.depth_problems(["/d"], ["a", "b"])[0]
    assert "is an image topic" in names.depth_problems(["a"], ["a"])[0]
    assert names.depth_problems(["bad name"], ["a"])


def test_frames_without_depth_are_a_warning_on_diagnostics_while_they_grow():
    from activesam_ros.ros.diagnostics import OK, WARN, camera_report
    from activesam_ros.stream.stats import StreamStatistics, StreamStats

    stats = StreamStatistics(clock=lambda: 1.0)
    stats.received("/cam", 1.0)
    stats.count("/cam", "without_depth")
    now = stats.snapshot("/cam")
    assert now.without_depth == 1 and stats.snapshot().without_depth == 1
    flowing = dict(input_rate=5.0, output_rate=5.0, since_input=0.1, since_output=0.1)
    before = StreamStats(received=0)
    report = camera_report("/cam", StreamStats(received=3, without_depth=2, **flowing), before, 0, 0, running=True)
    assert report.level == WARN and report.message.startswith("2 frame(s) without a matching depth image")
    assert dict(report.values)["frames without a matching depth image (2D only)"] == "2"
    steady = StreamStats(received=6, without_depth=2, **flowing)
    assert camera_report("/cam", steady, StreamStats(received=3, without_depth=2), 0, 0, running=True).level == OK


def test_a_frame_that_waits_for_the_model_keeps_the_depth_image_it_arrived_with(scene):
    """A slow model: by the time a frame's labels are out, newer depth images
    have pushed its own out of the last few kept; the one held at arrival serves it."""
    pairing = DepthPairing(keep=2)
    pairing.add_intrinsics(scene.intrinsics)
    metres = depth_metres(scene.depth_16uc1())
    pairing.add_depth(metres, 1.0, context="mine")
    pairing.hold(1.0, 0.02)
    pairing.hold(5.0, 0.02)  # nothing near it: nothing held
    for stamp in (1.5, 2.0, 2.5):
        pairing.add_depth(metres, stamp, context=stamp)
    assert pairing.match(1.0, metres.shape, 0.02)[1] == "mine"
    assert pairing.match(1.0, metres.shape, 0.02)[1] is None  # taken once: the hold is gone
    for stamp in range(20):  # holds are bounded
        pairing.add_depth(metres, 10.0 + stamp, context=stamp)
        pairing.hold(10.0 + stamp, 0.02)
    assert pairing.match(10.0, metres.shape, 0.02)[1] is None
    assert pairing.match(29.0, metres.shape, 0.02)[1] == 19
