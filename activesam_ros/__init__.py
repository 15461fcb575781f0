"""ActiveSAM open-vocabulary semantic segmentation on SAM 3, with a ROS 2 node.

The engine (``activesam_ros.engine``) and everything below the ROS front end
import without ROS; ``activesam_ros.ros.node`` is the only module that needs rclpy.
"""

from importlib.metadata import PackageNotFoundError, version

try:  # package.xml's <version>, which setup.py hands to the installed metadata
    __version__ = version("activesam_ros")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"
