"""ActiveSAM open-vocabulary semantic segmentation on SAM 3, with a ROS 2 node.

The engine (``activesam_ros.engine``) and everything below the ROS front end
import without ROS; ``activesam_ros.node`` is the only module that needs rclpy.
"""

__version__ = "0.1.0"
