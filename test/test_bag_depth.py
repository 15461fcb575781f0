"""``activesam bag`` with depth: a bag holding Middlebury's Motorcycle as a
colour image, a registered depth image (16UC1 and 32FC1) and its
CameraInfo gets the node's ~/points and ~/detections_3d for each frame with
a matching depth image, and a frame without one its 2D outputs only,
counted."""

from __future__ import annotations

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin

from activesam_ros.benchmark.stereo import motorcycle

from bags import IMAGE, STORE, T, read_outputs, run_bag, write_bag
from test_points import read_points

COLOUR, DEPTH, INFO = "/cam/color/image_raw", "/cam/depth/image_raw", "/cam/depth/camera_info"
ROWS, COLS = slice(100, 340), slice(200, 520)  # a 320 x 240 crop keeps the run short
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


def head(stamp: float, frame_id: str):
    sec = int(stamp)
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=round((stamp - sec) * 1e9)),
                                    frame_id=frame_id)


def image(stamp: float, pixels: np.ndarray, encoding: str, frame_id: str) -> bytes:
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    msg = T[IMAGE](header=head(stamp, frame_id), height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                   is_bigendian=0, step=pixels.shape[1] * channels * pixels.itemsize,
                   data=np.ascontiguousarray(pixels).view(np.uint8).reshape(-1))
    return STORE.serialize_cdr(msg, IMAGE)


def camera_info(stamp: float, info) -> bytes:
    msg = T[CAMERA_INFO](
        header=head(stamp, "cam_depth"), height=info.height, width=info.width, distortion_model="plumb_bob",
        d=np.zeros(5), k=np.array([info.fx, 0, info.cx, 0, info.fy, info.cy, 0, 0, 1], dtype=np.float64),
        r=np.eye(3).reshape(-1), p=np.zeros(12), binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    return STORE.serialize_cdr(msg, CAMERA_INFO)


@pytest.fixture(scope="module")
def crop():
    scene = motorcycle()
    info = scene.intrinsics
    from activesam_ros.stream.depth import Intrinsics

    cropped = Intrinsics(info.fx, info.fy, info.cx - COLS.start, info.cy - ROWS.start, 320, 240)
    depth_mm = scene.depth_mm[ROWS, COLS]
    return scene, cropped, depth_mm


@pytest.mark.slow
def test_frames_with_depth_get_points_and_detections_and_the_others_are_counted(crop, tiny_model, tiny_cli, tmp_path):
    scene, info, depth_mm = crop
    rgb = np.ascontiguousarray(scene.rgb[ROWS, COLS])
    mm = scene.depth_16uc1()[ROWS, COLS]
    metres = scene.depth_32fc1()[ROWS, COLS]
    source, out = tmp_path / "in", tmp_path / "out"
    write_bag(source, StoragePlugin.SQLITE3, [
        (INFO, CAMERA_INFO, 9_900_000_000, camera_info(0.9, info)),
        (COLOUR, IMAGE, 10_000_000_000, image(1.0, rgb, "rgb8", "cam_color")),
        (DEPTH, IMAGE, 10_050_000_000, image(1.004, mm, "16UC1", "cam_depth")),   # recorded after its frame
        (COLOUR, IMAGE, 11_000_000_000, image(2.0, rgb, "rgb8", "cam_color")),
        (DEPTH, IMAGE, 11_010_000_000, image(2.5, mm, "16UC1", "cam_depth")),     # half a second off: no match
        (DEPTH, IMAGE, 11_990_000_000, image(3.0, metres, "32FC1", "cam_depth")),
        (COLOUR, IMAGE, 12_000_000_000, image(3.0, rgb, "rgb8", "cam_color")),
    ])
    code, err = run_bag(str(source), str(out), "--image-topic", COLOUR, "--depth-topic", DEPTH, "--model", "tiny",
                        "--vocab", "motorcycle; wall; floor", "--points-decimation", "3")
    assert code == 0, err
    assert "2 with depth from /cam/depth/image_raw, 1 without a matching depth image (first: no depth image " \
           "within 0.02 s of the frame" in err
    outputs = read_outputs(out)
    assert len(outputs["/activesam/labels"]) == 3
    points, detections = outputs["/activesam/points"], outputs["/activesam/detections_3d"]
    assert [t for t, _ in points] == [10_000_000_000, 12_000_000_000] == [t for t, _ in detections]
    for (_, msg), stamp in zip(points, (1.004, 3.0)):
        assert msg.header.frame_id == "cam_depth"  # the depth image's header
        assert msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 == pytest.approx(stamp)
        cloud = read_points(msg)
        z = cloud["z"].astype(np.float64)
        cols = np.round(info.fx * cloud["x"] / z + info.cx).astype(int)
        rows = np.round(info.fy * cloud["y"] / z + info.cy).astype(int)
        assert np.all(rows % 3 == 0) and np.all(cols % 3 == 0)
        assert np.abs(z - depth_mm[rows, cols] / 1000).max() <= 1e-3
        assert cloud.size == np.count_nonzero(np.isfinite(depth_mm[::3, ::3]))
    # Each 3D detection is an object of the frame's cloud: its centroid inside that object's points.
    measured = 0
    for (_, found), (_, cloud_msg) in zip(detections, points):
        assert found.__msgtype__ == "vision_msgs/msg/Detection3DArray"
        assert found.header.frame_id == cloud_msg.header.frame_id
        cloud = read_points(cloud_msg)
        for detection in found.detections:
            mine = cloud[cloud["instance"] == int(detection.id)]
            if mine.size == 0:  # an object whose pixels the decimated cloud missed
                continue
            xyz = np.stack([mine["x"], mine["y"], mine["z"]], axis=1)
            position = detection.results[0].pose.pose.position
            centroid = np.array([position.x, position.y, position.z])
            assert np.all(xyz.min(axis=0) - 0.02 <= centroid) and np.all(centroid <= xyz.max(axis=0) + 0.02)
            measured += 1
    assert measured  # the tiny model's random weights still give objects (seeded: the same every run)


def test_a_depth_topic_not_in_the_bag_is_one_line_and_exit_2(tmp_path):
    source = tmp_path / "in"
    write_bag(source, StoragePlugin.SQLITE3, [(COLOUR, IMAGE, 1, image(1.0, np.zeros((4, 4, 3), np.uint8), "rgb8",
                                                                         "c"))])
    code, err = run_bag(str(source), str(tmp_path / "out"), "--image-topic", COLOUR, "--depth-topic", DEPTH,
                        "--model", "tiny", "--vocab", "cat")
    assert code == 2 and "depth image topic /cam/depth/image_raw is not in the bag" in err
    code, err = run_bag(str(source), str(tmp_path / "out"), "--image-topic", COLOUR, "--depth-topic", DEPTH,
                        "--depth-topic", "/x", "--model", "tiny", "--vocab", "cat")
    assert code == 2 and "--depth-topic has 2 entries for 1 camera(s)" in err
