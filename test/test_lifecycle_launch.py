"""The installed node as a managed node: segment.launch.py with
autostart:=false and the tiny model, walked through its lifecycle from
another ROS process. Unconfigured it has no publishers; configure creates
them but subscribes to nothing; only while active does it take frames and
publish labels; deactivate stops that; cleanup removes the publishers and
gives the model's memory back (the node's resident set, on a CPU), twice in
a row without growth; configured and activated again, it labels a
photograph exactly as `segment` and `bag` do (255 for the calibrated
background, test_label_convention.py); it exits cleanly.

Needs a sourced ROS 2 with this package built; skipped otherwise.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import unittest
from pathlib import Path
from typing import Callable, List

import numpy as np
import pytest
from launch_support import NOT_INSTALLED, SHARE, gradient_frame, rclpy  # skips this module without ROS 2

# isort: split

import launch
import launch_testing.actions
import launch_testing.asserts
from launch.launch_description_sources import PythonLaunchDescriptionSource
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image

from activesam_ros.engine import ActiveSAM, ActiveSAMConfig, load_model
from activesam_ros.render.labels import label_array

from conftest import load_photo

NAMESPACE = "activesam_lifecycle_test"
NODE = f"/{NAMESPACE}/activesam"
CAMERA = f"/{NAMESPACE}/camera/image_raw"
LOAD = 180.0    # seconds: building the tiny model and preparing the vocabulary on a slow CPU
WAIT = 60.0
QUIET = 3.0     # seconds of frames during which an idle node must publish nothing
RELEASED = 10 * 2**20  # the tiny model's weights alone are 20 MB: cleanup gives back at least half
GROWTH = 16 * 2**20    # a second configure/cleanup cycle leaves less than the model's 20 MB behind
VOCABULARY = ["background", "cat", "sofa, couch", "floor"]
THRESHOLD = 0.03  # with the tiny model on this photograph: some pixels calibrated to background, some not


@pytest.mark.launch_test
@pytest.mark.skipif(SHARE is None, reason=NOT_INSTALLED)
def generate_test_description():
    params = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    params.write("/**:\n  ros__parameters:\n"
                 f"    vocabulary: {VOCABULARY}\n    background_threshold: {THRESHOLD}\n    mode: fast\n")
    params.close()
    segment = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", "segment.launch.py")),
        launch_arguments={"model": "tiny", "device": "cpu", "image": CAMERA, "namespace": NAMESPACE,
                          "params_file": params.name, "autostart": "false"}.items(),
    )
    return launch.LaunchDescription([segment, launch_testing.actions.ReadyToTest()]), {}


def node_rss() -> int:
    """The node process's resident set in bytes (found by its namespace on the command line)."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"activesam_node" in a for a in cmdline) and f"__ns:=/{NAMESPACE}".encode() in cmdline:
            return 1024 * int(re.search(r"VmRSS:\s+(\d+) kB", (proc / "status").read_text()).group(1))
    raise AssertionError("the node's process was not found")


class TestLifecycle(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("activesam_lifecycle_tester", namespace=NAMESPACE)
        cls.labels: List[Image] = []
        cls.node.create_subscription(Image, f"{NODE}/labels", cls.labels.append,
                                     QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        cls.camera = cls.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
        cls.get_state = cls.node.create_client(GetState, f"{NODE}/get_state")
        cls.change_state = cls.node.create_client(ChangeState, f"{NODE}/change_state")
        cls.frames = 0

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str, publish: bool = False) -> None:
        end, next_frame = time.monotonic() + timeout, 0.0
        while not done():
            self.assertLess(time.monotonic(), end, f"timed out waiting for {what}")
            if publish and time.monotonic() >= next_frame:
                self.camera.publish(gradient_frame(self.node, f"frame_{self.frames}"))
                self.frames += 1
                next_frame = time.monotonic() + 0.3
            rclpy.spin_once(self.node, timeout_sec=0.02)

    def call(self, client, request, timeout: float):
        self.assertTrue(client.wait_for_service(timeout_sec=WAIT), client.srv_name)
        future = client.call_async(request)
        self.spin_until(future.done, timeout, f"the reply of {client.srv_name}")
        return future.result()

    def state(self) -> str:
        return self.call(self.get_state, GetState.Request(), WAIT).current_state.label

    def transition(self, transition: int, expected: str, timeout: float = WAIT) -> None:
        reply = self.call(self.change_state, ChangeState.Request(transition=Transition(id=transition)), timeout)
        self.assertTrue(reply.success, f"transition {transition} refused")
        self.assertEqual(self.state(), expected)

    def publishers_of_labels(self) -> int:
        return self.node.count_publishers(f"{NODE}/labels")

    def settle(self, count: Callable[[], int], expected: int, what: str) -> None:
        self.spin_until(lambda: count() == expected, WAIT, what)  # the graph catches up

    def assert_quiet(self) -> None:
        """Frames arrive for a while and no labels come out."""
        before, end = len(self.labels), time.monotonic() + QUIET
        self.spin_until(lambda: time.monotonic() > end, QUIET + WAIT, "the quiet period", publish=True)
        self.assertEqual(len(self.labels), before, "labels published by a node that is not active")

    def test_transitions(self):
        # Unconfigured: only parameters; no publishers, no subscription.
        self.assertEqual(self.state(), "unconfigured")
        self.assertEqual(self.publishers_of_labels(), 0)
        self.assertEqual(self.node.count_subscribers(CAMERA), 0)

        # configure: the model is loaded and the publishers exist, but nothing is subscribed or published.
        self.transition(Transition.TRANSITION_CONFIGURE, "inactive", LOAD)
        self.settle(self.publishers_of_labels, 1, "the labels publisher after configure")
        self.assertEqual(self.node.count_subscribers(CAMERA), 0)
        self.assert_quiet()

        # activate: frames in, labels out.
        self.transition(Transition.TRANSITION_ACTIVATE, "active")
        self.settle(lambda: self.node.count_subscribers(CAMERA), 1, "the camera subscription after activate")
        self.spin_until(lambda: len(self.labels) >= 2, WAIT, "labels while active", publish=True)

        # deactivate: unsubscribed, the worker stopped; nothing more comes out.
        self.transition(Transition.TRANSITION_DEACTIVATE, "inactive")
        self.settle(lambda: self.node.count_subscribers(CAMERA), 0, "no camera subscription after deactivate")
        self.assert_quiet()
        configured = node_rss()

        # cleanup: publishers gone, the model's memory given back.
        self.transition(Transition.TRANSITION_CLEANUP, "unconfigured")
        self.settle(self.publishers_of_labels, 0, "no labels publisher after cleanup")
        released = node_rss()
        self.assertLess(released, configured - RELEASED,
                        f"resident memory {configured / 2**20:.0f} MiB before cleanup, {released / 2**20:.0f} after")

        # A second cycle gives back as much and leaves nothing behind.
        self.transition(Transition.TRANSITION_CONFIGURE, "inactive", LOAD)
        again = node_rss()
        self.transition(Transition.TRANSITION_CLEANUP, "unconfigured")
        after = node_rss()
        self.assertLess(after, again - RELEASED)
        self.assertLess(after, released + GROWTH,
                        f"{(after - released) / 2**20:.0f} MiB more after a second configure and cleanup")
        print(f"node RSS: configured {configured / 2**20:.0f} MiB, cleaned up {released / 2**20:.0f} MiB; "
              f"again {again / 2**20:.0f} MiB, cleaned up {after / 2**20:.0f} MiB")

        # It comes back, and its first frame (a refresh) labels a photograph as segment and bag do.
        self.transition(Transition.TRANSITION_CONFIGURE, "inactive", LOAD)
        self.transition(Transition.TRANSITION_ACTIVATE, "active")
        rgb = load_photo("chelsea.png", 160)
        engine = ActiveSAM(load_model(tiny=True, device="cpu"), VOCABULARY,
                           ActiveSAMConfig(background_threshold=THRESHOLD, mode="fast", device="cpu"))
        expected = label_array(engine.segment(rgb))
        labelled = None
        while labelled is None:  # best effort may lose a frame: send it again with a new stamp
            photo = gradient_frame(self.node, "photo")
            photo.height, photo.width, photo.step = rgb.shape[0], rgb.shape[1], rgb.shape[1] * 3
            photo.data = rgb.tobytes()
            self.camera.publish(photo)
            stamp = (photo.header.stamp.sec, photo.header.stamp.nanosec)
            end = time.monotonic() + 20
            while labelled is None and time.monotonic() < end:
                rclpy.spin_once(self.node, timeout_sec=0.05)
                labelled = next((m for m in self.labels if (m.header.stamp.sec, m.header.stamp.nanosec) == stamp
                                 and m.header.frame_id == "photo"), None)
        self.assertEqual(labelled.encoding, "mono8")
        got = np.frombuffer(bytes(labelled.data), np.uint8).reshape(labelled.height, labelled.width)
        np.testing.assert_array_equal(got, expected)
        self.assertIn(255, got)  # the calibrated background, as segment's PNG and bag's topic write it


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
