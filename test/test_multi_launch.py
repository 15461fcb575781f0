"""The installed multi.launch.py with two CPU "devices" and three cameras,
seen from another ROS process: every camera gets labels of its own frames on
its shared topic, and each node reports exactly its cameras on /diagnostics.

Needs a sourced ROS 2 with this package built (``colcon build`` then
``colcon test``, or ``python -m pytest test/test_multi_launch.py`` with
``install/setup.bash`` sourced); skipped otherwise.
"""

from __future__ import annotations

import time
import unittest
from typing import Callable, Dict, List, Set

import pytest
from launch_support import NOT_INSTALLED, SHARE, gradient_frame, rclpy, tiny_launch  # skips without ROS 2

# isort: split

import launch_testing.asserts
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

NAMESPACE = "activesam_multi_test"
CAMERAS = ["cam0/image_raw", "cam1/image_raw", "cam2/image_raw"]  # relative: inside NAMESPACE
# Round-robin over two nodes: cam0 and cam2 on activesam_0, cam1 on activesam_1; the outputs
# are where one node with the three cameras would put them.
SERVES = {"activesam_0": {CAMERAS[0], CAMERAS[2]}, "activesam_1": {CAMERAS[1]}}
STARTUP = 300.0  # seconds: two nodes build the tiny model side by side on a slow CPU
WAIT = 120.0


@pytest.mark.launch_test
@pytest.mark.skipif(SHARE is None, reason=NOT_INSTALLED)
def generate_test_description():
    return tiny_launch("multi.launch.py", "person\ndog\nfloor\n", devices="[cpu, cpu]",
                       cameras=f"[{', '.join(CAMERAS)}]", namespace=NAMESPACE)


class TestMultiLaunch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("activesam_multi_tester", namespace=NAMESPACE)
        cls.labels: Dict[str, List[Image]] = {camera: [] for camera in CAMERAS}
        cls.diagnostics: List[DiagnosticArray] = []
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for camera in CAMERAS:
            cls.node.create_subscription(Image, f"/{NAMESPACE}/activesam/{camera}/labels",
                                         cls.labels[camera].append, reliable)
        cls.node.create_subscription(DiagnosticArray, "/diagnostics", cls.diagnostics.append, 10)
        cls.publishers = [cls.node.create_publisher(Image, f"/{NAMESPACE}/{camera}", qos_profile_sensor_data)
                          for camera in CAMERAS]

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str, period: float = 0.5) -> None:
        """Spin until ``done()``, publishing a frame on every camera each ``period`` s."""
        end, next_frame, index = time.monotonic() + timeout, 0.0, 0
        while not done():
            self.assertLess(time.monotonic(), end, f"timed out waiting for {what}")
            if time.monotonic() >= next_frame:
                for camera, publisher in enumerate(self.publishers):
                    publisher.publish(gradient_frame(self.node, f"cam{camera}_frame{index}", channels=(camera, 2 - camera)))
                index, next_frame = index + 1, time.monotonic() + period
            rclpy.spin_once(self.node, timeout_sec=0.01)

    def reported(self) -> Dict[str, Set[str]]:
        """node name -> the input topics it reported on /diagnostics (relative to NAMESPACE)."""
        out: Dict[str, Set[str]] = {}
        for message in self.diagnostics:
            for status in message.status:
                name = status.name.split(":")[0].strip()
                topic = {kv.key: kv.value for kv in status.values}.get("input topic", "")
                if name.startswith("activesam_") and topic.startswith(f"/{NAMESPACE}/"):
                    out.setdefault(name, set()).add(topic[len(NAMESPACE) + 2:])
                    self.assertEqual(status.hardware_id, "cpu", status.name)
        return out

    def test_every_camera_gets_labels_and_each_node_reports_its_cameras(self):
        self.spin_until(lambda: all(len(self.labels[c]) >= 2 for c in CAMERAS), STARTUP, "labels of every camera")
        for camera, received in self.labels.items():
            index = CAMERAS.index(camera)
            for msg in received:  # the labels of a camera's own frames, and nobody else's
                self.assertTrue(msg.header.frame_id.startswith(f"cam{index}_"), (camera, msg.header.frame_id))
                self.assertEqual((msg.encoding, msg.height, msg.width), ("mono8", 48, 64))
        self.spin_until(lambda: self.reported() == SERVES, WAIT, "both nodes on /diagnostics with their cameras")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_nodes_exit_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
