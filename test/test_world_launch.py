"""The installed node with a depth camera, started by segment.launch.py with
the tiny model, seen from another ROS process: Middlebury's Motorcycle
published as a colour image, a registered 16UC1 depth image and its
CameraInfo; ~/points arrives and parses with sensor_msgs_py (its points at
the ground-truth depth of their pixels), ~/detections_3d arrives and
parses, and a frame without a matching depth image is labelled in 2D only
and said so.

Needs a sourced ROS 2 with this package built (``colcon build`` then
``colcon test``, or ``python -m pytest test/test_world_launch.py`` with
``install/setup.bash`` sourced); skipped otherwise.
"""

from __future__ import annotations

import array
import tempfile
import time
import unittest
from typing import Callable, Dict, List

import numpy as np
import pytest
from launch_support import NOT_INSTALLED, SHARE, rclpy, tiny_launch  # skips without ROS 2

# isort: split

import launch_testing.asserts
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from sensor_msgs_py import point_cloud2
from vision_msgs.msg import Detection3DArray

from activesam_ros.benchmark.stereo import motorcycle

NAMESPACE = "activesam_world_test"
NODE = f"/{NAMESPACE}/activesam"
CAMERA = f"/{NAMESPACE}/camera/color/image_raw"
DEPTH = f"/{NAMESPACE}/camera/depth/image_raw"
INFO = f"/{NAMESPACE}/camera/depth/camera_info"
STARTUP = 180.0  # seconds: building the tiny model and preparing the vocabulary on a slow CPU
WAIT = 90.0
ROWS, COLS = slice(100, 340), slice(200, 520)  # a 320 x 240 crop of the scene


def _params_file() -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as file:
        file.write(f"/**:\n  ros__parameters:\n    image_topics: [image]\n    depth_topics: [{DEPTH}]\n"
                   "    points_decimation: 2\n")
    return file.name


@pytest.mark.launch_test
@pytest.mark.skipif(SHARE is None, reason=NOT_INSTALLED)
def generate_test_description():
    return tiny_launch("segment.launch.py", "motorcycle\nwall\nfloor\n", device="cpu", image=CAMERA,
                       namespace=NAMESPACE, params_file=_params_file())


class TestWorldLaunch(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("activesam_world_tester", namespace=NAMESPACE)
        cls.got: Dict[str, List] = {"points": [], "detections_3d": [], "labels": []}
        reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        for name, kind in (("points", PointCloud2), ("detections_3d", Detection3DArray), ("labels", Image)):
            cls.node.create_subscription(kind, f"{NODE}/{name}", cls.got[name].append, reliable)
        cls.colour = cls.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
        cls.depth = cls.node.create_publisher(Image, DEPTH, qos_profile_sensor_data)
        cls.info = cls.node.create_publisher(CameraInfo, INFO, qos_profile_sensor_data)
        scene = motorcycle()
        cls.rgb = np.ascontiguousarray(scene.rgb[ROWS, COLS])
        cls.mm = np.ascontiguousarray(scene.depth_16uc1()[ROWS, COLS])
        cls.depth_mm = scene.depth_mm[ROWS, COLS]
        cls.k = scene.intrinsics
        cls.with_depth, cls.without_depth = set(), set()  # stamps (sec, nanosec) of the frames published

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def publish(self, with_depth: bool = True) -> None:
        """The colour image, and (if asked) its depth image and camera info, with one stamp."""
        stamp = self.node.get_clock().now().to_msg()
        colour = Image(height=240, width=320, encoding="rgb8", is_bigendian=0, step=320 * 3)
        colour.header.stamp, colour.header.frame_id = stamp, "camera_color_optical_frame"
        colour.data = array.array("B", self.rgb.tobytes())
        if with_depth:
            depth = Image(height=240, width=320, encoding="16UC1", is_bigendian=0, step=320 * 2)
            depth.header.stamp, depth.header.frame_id = stamp, "camera_depth_optical_frame"
            depth.data = array.array("B", self.mm.astype("<u2").tobytes())
            info = CameraInfo(height=240, width=320, distortion_model="plumb_bob")
            info.header = depth.header
            info.k = [self.k.fx, 0.0, self.k.cx - COLS.start, 0.0, self.k.fy, self.k.cy - ROWS.start, 0.0, 0.0, 1.0]
            self.info.publish(info)
            self.depth.publish(depth)
        self.colour.publish(colour)
        (self.with_depth if with_depth else self.without_depth).add((stamp.sec, stamp.nanosec))

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str, with_depth: bool = True,
                   period: float = 0.5) -> None:
        end, next_frame = time.monotonic() + timeout, 0.0
        while not done():
            self.assertLess(time.monotonic(), end, f"timed out waiting for {what}")
            if time.monotonic() >= next_frame:
                self.publish(with_depth)
                next_frame = time.monotonic() + period
            rclpy.spin_once(self.node, timeout_sec=0.01)

    def test_points_and_detections_arrive_and_parse(self, proc_output):
        got = self.got
        self.spin_until(lambda: self.colour.get_subscription_count() > 0 and self.depth.get_subscription_count() > 0
                        and self.info.get_subscription_count() > 0, STARTUP, "the node's subscriptions",
                        with_depth=False, period=1e9)
        self.spin_until(lambda: got["points"] and got["detections_3d"], WAIT, "points and detections_3d")
        cloud = got["points"][-1]
        self.assertEqual(cloud.header.frame_id, "camera_depth_optical_frame")
        names = [f.name for f in cloud.fields]
        self.assertEqual(names, ["x", "y", "z", "rgb", "label", "instance"])
        points = point_cloud2.read_points(cloud, field_names=("x", "y", "z", "label", "instance"))
        self.assertEqual(len(points), np.count_nonzero(self.mm[::2, ::2]))
        z = points["z"].astype(np.float64)
        cols = np.round(self.k.fx * points["x"] / z + self.k.cx - COLS.start).astype(int)
        rows = np.round(self.k.fy * points["y"] / z + self.k.cy - ROWS.start).astype(int)
        self.assertLessEqual(np.abs(z - self.depth_mm[rows, cols] / 1000).max(), 1e-3)
        detections = got["detections_3d"][-1]
        self.assertEqual(detections.header.frame_id, "camera_depth_optical_frame")
        for detection in detections.detections:
            self.assertTrue(detection.id and detection.results)

        # Frames without depth: labelled in 2D, the 3D outputs skip them, and the node says why.
        def stamp(msg) -> tuple:
            return msg.header.stamp.sec, msg.header.stamp.nanosec

        self.spin_until(lambda: any(stamp(m) in self.without_depth for m in got["labels"][1:]), WAIT,
                        "labels of a frame without depth", with_depth=False, period=2.0)
        self.spin_until(lambda: proc_output.waitFor("is labelled in 2D only", timeout=0.01), WAIT,
                        "the warning about frames without depth", with_depth=False, period=2.0)
        for name in ("points", "detections_3d"):
            self.assertTrue(all(stamp(m) in self.with_depth for m in got[name]), f"{name} of a frame without depth")


@launch_testing.post_shutdown_test()
class TestWorldShutdown(unittest.TestCase):
    def test_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
