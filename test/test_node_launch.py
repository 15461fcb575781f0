"""The installed node, started by segment.launch.py with the tiny model, seen
from another ROS process: outputs with copied headers, a bad frame dropped,
the vocabulary changed live, a bad parameter refused, /diagnostics, the
colour labels, the objects (detections and their id image), a QoS warning
naming the topic in full, and a clean exit.

Needs a sourced ROS 2 with this package built (``colcon build`` then
``colcon test``, or ``python -m pytest test/test_node_launch.py`` with
``install/setup.bash`` sourced); skipped otherwise.
"""

from __future__ import annotations

import time
import unittest
from typing import Callable, Dict, List

import numpy as np
import pytest
from launch_support import NOT_INSTALLED, SHARE, gradient_frame, rclpy, tiny_launch  # skips without ROS 2

# isort: split

import launch_testing.asserts
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, TimeReference
from vision_msgs.msg import Classification, Detection2DArray, LabelInfo

from activesam_ros.render.palette import class_colors

NAMESPACE = "activesam_launch_test"
NODE = f"/{NAMESPACE}/activesam"
CAMERA = f"/{NAMESPACE}/camera/image_raw"
STARTUP = 180.0  # seconds: building the tiny model and preparing the vocabulary on a slow CPU
WAIT = 90.0


@pytest.mark.launch_test
@pytest.mark.skipif(SHARE is None, reason=NOT_INSTALLED)
def generate_test_description():
    return tiny_launch("segment.launch.py", "# the vocabulary the node starts with\nperson\ndog\nfloor\n",
                       device="cpu", image=CAMERA, namespace=NAMESPACE)


def _key(header) -> tuple:
    return header.stamp.sec, header.stamp.nanosec, header.frame_id


class TestSegmentLaunch(unittest.TestCase):
    """One scenario, in order: each step builds on the node state the one before left."""

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("activesam_launch_tester", namespace=NAMESPACE)
        cls.got: Dict[str, List] = {name: [] for name in ("labels", "label_info", "active_classes", "overlay",
                                                          "label_source", "color_labels", "diagnostics",
                                                          "detections", "instances")}
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        for name, kind, qos in (("labels", Image, reliable), ("label_info", LabelInfo, latched),
                                ("active_classes", Classification, reliable), ("overlay", Image, reliable),
                                ("label_source", TimeReference, reliable),
                                ("detections", Detection2DArray, reliable), ("instances", Image, reliable),
                                ("color_labels", Image, qos_profile_sensor_data)):  # as rviz: best effort
            cls.node.create_subscription(kind, f"{NODE}/{name}", cls.got[name].append, qos)
        # A subscriber the node cannot serve (transient local on a volatile output): the node's
        # warning must name the topic in full.
        cls.node.create_subscription(Image, f"{NODE}/overlay", lambda msg: None, latched)
        cls.node.create_subscription(DiagnosticArray, "/diagnostics", cls.got["diagnostics"].append, 10)
        cls.camera = cls.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
        cls.parameters = cls.node.create_client(SetParameters, f"{NODE}/set_parameters")
        cls.sent: Dict[tuple, str] = {}  # header -> frame_id of the readable frames published
        cls.bad: Dict[tuple, str] = {}   # and of the unreadable ones

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str, publish: bool = False,
                   period: float = 0.3, bad: bool = True) -> None:
        """Spin until ``done()``; if asked, publish a frame every ``period`` s,
        every fourth one in an encoding the node cannot read if ``bad`` (best
        effort may lose any one)."""
        end, next_frame = time.monotonic() + timeout, 0.0
        while not done():
            self.assertLess(time.monotonic(), end, f"timed out waiting for {what}")
            if publish and time.monotonic() >= next_frame:
                index = len(self.sent) + len(self.bad)
                msg = gradient_frame(self.node, f"frame_{index}", "32FC3" if bad and index % 4 == 3 else "rgb8")
                (self.bad if msg.encoding == "32FC3" else self.sent)[_key(msg.header)] = msg.header.frame_id
                self.camera.publish(msg)
                next_frame = time.monotonic() + period
            rclpy.spin_once(self.node, timeout_sec=0.01)

    def set_parameter(self, name: str, value: ParameterValue):
        self.assertTrue(self.parameters.wait_for_service(timeout_sec=WAIT))
        future = self.parameters.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=value)]))
        self.spin_until(future.done, WAIT, f"the reply to setting {name}")
        return future.result().results[0]

    def class_names(self, info: LabelInfo) -> List[str]:
        return [c.class_name for c in info.class_map]

    def test_scenario(self, proc_output):
        got = self.got
        # 1. The vocabulary file's classes are on the latched label_info before any frame.
        self.spin_until(lambda: got["label_info"], STARTUP, "label_info at start")
        self.assertEqual(self.class_names(got["label_info"][-1]), ["person", "dog", "floor"])
        self.spin_until(lambda: self.camera.get_subscription_count() > 0, WAIT, "the node's image subscription")

        # 2. Frames in, labels/active_classes/overlay out with the input headers copied exactly;
        #    unreadable frames are dropped (no output carries their header) with a warning
        #    that names their encoding.
        self.spin_until(lambda: len(got["labels"]) >= 3 and got["active_classes"] and got["overlay"],
                        WAIT, "three labels images", publish=True)
        self.spin_until(lambda: proc_output.waitFor("unsupported image encoding '32FC3'", timeout=0.01),
                        WAIT, "the warning about unreadable frames", publish=True)
        for name in ("labels", "active_classes", "overlay"):
            for msg in got[name]:
                self.assertIn(_key(msg.header), self.sent, f"{name} header not copied from a readable frame")
        labels = got["labels"][-1]
        self.assertEqual((labels.encoding, labels.height, labels.width, labels.step), ("mono8", 48, 64, 64))
        self.assertTrue(set(labels.data) <= {0, 1, 2}, "a label outside the three classes")
        self.assertEqual(got["overlay"][-1].encoding, "rgb8")

        # 2a. detections and instances: the same objects under the same persistent ids, per frame.
        def paired():
            ids = {_key(m.header): m for m in got["instances"]}
            return next(((d, ids[_key(d.header)]) for d in reversed(got["detections"]) if _key(d.header) in ids), None)

        self.spin_until(paired, WAIT, "detections and instances of one frame", publish=True)
        detections, instances = paired()
        self.assertIn(_key(detections.header), self.sent)
        self.assertEqual((instances.encoding, instances.height, instances.width), ("mono16", 48, 64))
        ids = np.frombuffer(bytes(instances.data), "<u2" if not instances.is_bigendian else ">u2")
        self.assertEqual({int(d.id) for d in detections.detections}, set(np.unique(ids).tolist()) - {0})
        for detection in detections.detections:
            self.assertIn(detection.results[0].hypothesis.class_id, {"0", "1", "2"})

        # 2b. color_labels: every pixel the palette colour of its label (unlabeled black), for rviz;
        #     a QoS mismatch is reported with the resolved topic name.
        self.spin_until(lambda: got["color_labels"], WAIT, "color_labels", publish=True)
        by_header = {_key(m.header): m for m in got["labels"]}
        colours = next(m for m in reversed(got["color_labels"]) if _key(m.header) in by_header)
        self.assertEqual((colours.encoding, colours.height, colours.width), ("rgb8", 48, 64))
        index = np.frombuffer(bytes(by_header[_key(colours.header)].data), np.uint8).reshape(48, 64)
        pixels = np.frombuffer(bytes(colours.data), np.uint8).reshape(48, 64, 3)
        np.testing.assert_array_equal(pixels, class_colors(3)[index])
        self.spin_until(lambda: proc_output.waitFor(f"a subscription to {NODE}/overlay requests QoS incompatible",
                                                    timeout=0.01), WAIT, "the QoS warning with the full name")

        # 3. A live vocabulary change: label_info is republished with the first frame made with it,
        #    and later labels use only its classes.
        reply = self.set_parameter("vocabulary", ParameterValue(
            type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=["person", "cat"]))
        self.assertTrue(reply.successful, reply.reason)
        self.spin_until(lambda: self.class_names(got["label_info"][-1]) == ["person", "cat"],
                        WAIT, "label_info with the new vocabulary", publish=True)
        changed = _key(got["label_info"][-1].header)
        self.assertIn(changed, self.sent)  # stamped like the first frame made with it

        def first_labels():
            return next((m for m in got["labels"] if _key(m.header) == changed), None)

        self.spin_until(first_labels, WAIT, "the labels of that frame", publish=True)
        self.assertTrue(set(first_labels().data) <= {0, 1}, "a label outside the two new classes")

        # 4. Bad values are refused with a reason; the vocabulary stays.
        reply = self.set_parameter("background_threshold", ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=0.4))
        self.assertFalse(reply.successful)
        self.assertIn("needs a class named 'background'", reply.reason)
        reply = self.set_parameter("vocabulary", ParameterValue(
            type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=["dog", "Dog"]))
        self.assertFalse(reply.successful)
        self.assertIn("duplicate class 'dog'", reply.reason)
        self.assertEqual(self.class_names(got["label_info"][-1]), ["person", "cat"])

        # 5. /diagnostics reports this camera: frames processed and the unreadable ones counted.
        def camera_status() -> Dict[str, str]:
            """The key/values of the newest status of this camera ({} before there is one)."""
            for array_msg in reversed(got["diagnostics"]):
                for status in array_msg.status:
                    values = {kv.key: kv.value for kv in status.values}
                    if values.get("input topic") == CAMERA:
                        return values
            return {}

        self.spin_until(lambda: int(camera_status().get("frames undecodable", 0)) >= 1,
                        WAIT, "diagnostics counting the unreadable frames", publish=True)
        values = camera_status()
        self.assertGreater(int(values["frames segmented by the model"]), 0)
        self.assertGreater(float(values["output rate (Hz)"]), 0.0)
        self.assertEqual(values["frames failed"], "0")
        self.assertTrue(any("RSS" in key or "CUDA" in key for key in values))

        # 6. Defaults: temporal reuse and propagation. A camera faster than the model gets a
        #    label image for (nearly) every frame; label_source tells model frames from
        #    propagated ones, and a propagated frame's time_ref is a model frame's stamp.
        def sources(kind: str) -> List:
            return [m for m in got["label_source"] if m.source == kind]

        self.spin_until(lambda: len(sources("propagated")) >= 3, WAIT, "propagated labels", publish=True,
                        period=0.02, bad=False)
        model_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in sources("model")}
        for msg in got["label_source"]:
            self.assertIn(_key(msg.header), self.sent)
            self.assertEqual((msg.source == "model"),
                             (msg.time_ref.sec, msg.time_ref.nanosec) == (msg.header.stamp.sec, msg.header.stamp.nanosec))
        self.assertTrue(any((m.time_ref.sec, m.time_ref.nanosec) in model_stamps for m in sources("propagated")))
        labelled = {_key(m.header) for m in got["labels"]}
        self.assertTrue({_key(m.header) for m in got["label_source"]} <= labelled)
        self.spin_until(lambda: int(camera_status().get("frames labelled by propagation", 0)) >= 1,
                        WAIT, "diagnostics counting propagated frames", publish=True, period=0.02, bad=False)
        values = camera_status()
        self.assertGreater(float(values["model rate (Hz)"]), 0.0)
        self.assertGreater(float(values["output rate (Hz)"]), float(values["model rate (Hz)"]))


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_node_exits_cleanly_on_sigint(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
