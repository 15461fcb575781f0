"""``activesam_node``'s entry point: the node, or one line saying how to get ROS 2.

The node module imports rclpy and the message packages at its top, as a ROS
node does; outside a sourced ROS 2 environment that import fails, and a
traceback would not say what to do.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import List, Optional

ROS_PACKAGES = frozenset({"rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "vision_msgs", "diagnostic_msgs",
                          "builtin_interfaces", "lifecycle_msgs"})
"""What only a sourced ROS 2 environment provides (package.xml's ROS exec_depends)."""

NO_ROS = ("activesam_node: ROS 2 was not found ({missing} cannot be imported): source it first "
          "(source /opt/ros/<distro>/setup.bash, then your workspace's install/setup.bash), "
          "or install ROS 2 Humble or Jazzy as docs/install.md says")


def _stopped_while_importing(signum: int, frame: object) -> None:
    """SIGINT or SIGTERM before the node is up: nothing to close yet, a clean stop."""
    os._exit(0)


def main(args: Optional[List[str]] = None) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):  # the node installs its own (rclpy's) once it starts
        signal.signal(signum, _stopped_while_importing)
    try:
        from . import node
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ROS_PACKAGES:
            raise
        print(NO_ROS.format(missing=exc.name), file=sys.stderr)
        return 1
    code = node.main(args)
    # Everything of the node is closed now. The interpreter's own teardown would
    # then collect torch's and sam3's objects one by one, seconds on a small CPU:
    # past the 5 s a launch waits between SIGINT and SIGTERM.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
