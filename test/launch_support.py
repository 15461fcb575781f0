"""What the launch tests share: the skip when ROS 2 is absent, where the
installed package is, how they launch it, and the camera frames they publish.

Importing this module skips the importing test module without rclpy or
launch_testing (CI), so it is imported before anything from ROS.
"""

from __future__ import annotations

import array
import os
import tempfile

import numpy as np
import pytest

from activesam_ros.engine.environment import set_process_defaults

set_process_defaults()
rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy): source a ROS 2 install, build with colcon")
pytest.importorskip("launch_testing", reason="needs ROS 2's launch_testing (a test_depend)")

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

try:
    SHARE = get_package_share_directory("activesam_ros")
except PackageNotFoundError:  # a module-level skip would break launch_testing's collection
    SHARE = None
NOT_INSTALLED = "activesam_ros is not installed in the sourced ROS environment: colcon build it and source install/setup.bash"


def gradient_frame(node, frame_id: str, encoding: str = "rgb8", channels: tuple = (0, 1)) -> Image:
    """A 64 x 48 image, stamped now: a horizontal gradient in ``channels[0]``,
    a vertical one in ``channels[1]`` (cameras differ by their channels)."""
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :, channels[0]] = np.arange(64, dtype=np.uint8)[None, :] * 4
    rgb[:, :, channels[1]] = np.arange(48, dtype=np.uint8)[:, None] * 5
    msg = Image(height=48, width=64, encoding=encoding, is_bigendian=0, step=64 * 3)
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.header.frame_id = frame_id
    msg.data = array.array("B", rgb.tobytes())
    return msg


def tiny_launch(launch_file: str, vocabulary: str, **arguments: str):
    """The installed ``launch_file`` with the tiny model and a vocabulary file
    holding ``vocabulary``, then ReadyToTest: a launch test's description."""
    import launch
    import launch_testing.actions
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as file:
        file.write(vocabulary)
    include = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(SHARE, "launch", launch_file)),
        launch_arguments={"model": "tiny", "vocabulary_file": file.name, **arguments}.items(),
    )
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()]), {}
