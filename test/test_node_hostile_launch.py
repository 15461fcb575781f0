"""The installed node, started by segment.launch.py with the tiny model,
against what a hostile participant of the ROS graph sends it: parameter
values that once killed it, a camera faster than the model (label stamps
must never go back), a camera that stops (/diagnostics rates fall to zero,
WARN), and a stop (SIGINT from launch) in the middle of a frame of a 2,000
class vocabulary decoded one prompt per forward: it exits 0 before launch
escalates to SIGTERM (5 s).

Needs a sourced ROS 2 with this package built; skipped otherwise.
"""

from __future__ import annotations

import math
import time
import unittest
from typing import Callable, Dict, List

import pytest
from launch_support import NOT_INSTALLED, SHARE, gradient_frame, rclpy, tiny_launch  # skips without ROS 2

# isort: split

import launch_testing.asserts
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from activesam_ros.stream.stats import RATE_WINDOW

NAMESPACE = "activesam_hostile_test"
NODE = f"/{NAMESPACE}/activesam"
CAMERA = f"/{NAMESPACE}/camera/image_raw"
STARTUP = 240.0  # seconds: building the tiny model and preparing the vocabulary on a busy CPU
WAIT = 120.0


@pytest.mark.launch_test
@pytest.mark.skipif(SHARE is None, reason=NOT_INSTALLED)
def generate_test_description():
    return tiny_launch("segment.launch.py", "person\ndog\nfloor\n", device="cpu", image=CAMERA,
                       namespace=NAMESPACE)


def value(kind: str, given) -> ParameterValue:
    field, code = {"double": ("double_value", ParameterType.PARAMETER_DOUBLE),
                   "string": ("string_value", ParameterType.PARAMETER_STRING),
                   "strings": ("string_array_value", ParameterType.PARAMETER_STRING_ARRAY),
                   "int": ("integer_value", ParameterType.PARAMETER_INTEGER)}[kind]
    return ParameterValue(type=code, **{field: given})


class TestHostileParticipant(unittest.TestCase):
    """One scenario, in order."""

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("activesam_hostile_tester", namespace=NAMESPACE)
        cls.labels: List[tuple] = []
        cls.diagnostics: List[DiagnosticArray] = []
        cls.node.create_subscription(Image, f"{NODE}/labels",
                                     lambda m: cls.labels.append((m.header.stamp.sec, m.header.stamp.nanosec)),
                                     QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE))
        cls.node.create_subscription(DiagnosticArray, "/diagnostics", cls.diagnostics.append, 50)
        cls.camera = cls.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
        cls.parameters = cls.node.create_client(SetParameters, f"{NODE}/set_parameters")
        cls.published = 0

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str, period: float = 0.0) -> None:
        """Spin until ``done()``, publishing a frame every ``period`` s (0: none)."""
        end, next_frame = time.monotonic() + timeout, 0.0
        while not done():
            self.assertLess(time.monotonic(), end, f"timed out waiting for {what}")
            if period and time.monotonic() >= next_frame:
                self.camera.publish(gradient_frame(self.node, f"frame_{self.published}"))
                self.published += 1
                next_frame = time.monotonic() + period
            rclpy.spin_once(self.node, timeout_sec=0.005)

    def spin_for(self, seconds: float, period: float = 0.0) -> None:
        end = time.monotonic() + seconds
        self.spin_until(lambda: time.monotonic() >= end, seconds + WAIT, "time to pass", period)

    def set_parameters(self, **values: ParameterValue):
        self.assertTrue(self.parameters.wait_for_service(timeout_sec=WAIT), "the node's parameter service is gone")
        request = SetParameters.Request(parameters=[Parameter(name=n, value=v) for n, v in values.items()])
        future = self.parameters.call_async(request)
        self.spin_until(future.done, WAIT, f"the reply to setting {', '.join(values)}")
        return future.result().results[0]

    def camera_status(self) -> Dict[str, str]:
        for array_msg in reversed(self.diagnostics):
            for status in array_msg.status:
                values = {kv.key: kv.value for kv in status.values}
                if values.get("input topic") == CAMERA:
                    return {**values, "level": int.from_bytes(bytes(status.level), "little"),
                            "message": status.message}
        return {}

    def test_scenario(self, proc_output):
        self.spin_until(lambda: self.camera.get_subscription_count() > 0, STARTUP, "the node's image subscription")
        self.spin_until(lambda: self.labels, WAIT, "the first labels", period=0.2)

        # 1. Values that once raised in the callback (and killed the node) are refused with a reason.
        for name, given, reason in (
                ("vocabulary_file", value("string", "~nouser/x"), "a live change takes a shipped vocabulary"),
                ("vocabulary_file", value("string", "v" * 5000), "vocabulary_file 'vvvv"),
                ("quantile_alpha", value("double", math.nan), "quantile_alpha"),  # rclpy's range check, or ours
                ("vocabulary", value("strings", ["cat\u2028dog"]), "line break"),
                ("vocabulary", value("strings", ["x" * 300]), "the limit is 200")):
            reply = self.set_parameters(**{name: given})
            self.assertFalse(reply.successful, name)
            self.assertIn(reason, reply.reason)
            self.assertLess(len(reply.reason), 2100)
        proc_output.assertWaitFor("rejected vocabulary: class 1: a class name of 300 characters", timeout=WAIT)

        # 2. A camera faster than the model: every labels image is stamped no earlier than the one before.
        before = len(self.labels)
        self.spin_for(12.0, period=1 / 30)
        stamps = self.labels[before:]
        self.assertGreater(len(stamps), 20)
        self.assertEqual(stamps, sorted(stamps), "label stamps went back")

        # 3. The camera stops: the rates fall to zero and the status says so.
        self.spin_for(RATE_WINDOW + 4.0)
        status = self.camera_status()
        self.assertEqual((status["input rate (Hz)"], status["output rate (Hz)"]), ("0.00", "0.00"), status)
        self.assertEqual(status["level"], 1, status)
        self.assertIn("no images on", status["message"])

        # 4. A 2,000-class vocabulary decoded one prompt per forward: a frame takes minutes here.
        reply = self.set_parameters(bucket_size=value("int", 1),
                                    vocabulary=value("strings", [f"thing {i}" for i in range(2000)]))
        self.assertTrue(reply.successful, reply.reason)
        received = int(self.camera_status().get("frames received", 0))
        self.spin_until(lambda: int(self.camera_status().get("frames received", 0)) > received + 1, WAIT,
                        "frames reaching the busy node", period=0.5)
        self.spin_for(3.0, period=0.5)  # the worker is inside a frame now; launch stops it next


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_the_node_exits_0_before_launch_escalates(self, proc_info):
        """launch sends SIGINT, then SIGTERM after 5 s and SIGKILL: 0 means it ended within 5 s of SIGINT."""
        launch_testing.asserts.assertExitCodes(proc_info)
