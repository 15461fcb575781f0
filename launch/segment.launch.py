"""Open-vocabulary segmentation of one camera with ActiveSAM.

    ros2 launch activesam_ros segment.launch.py checkpoint:=/path/to/sam3.pt image:=/camera/image_raw
    ros2 launch activesam_ros segment.launch.py model:=tiny rviz:=true    # no weights: labels mean nothing

Every parameter lives in ``params_file`` (default: the installed
config/activesam.yaml); the arguments below that are left empty do not
override it. ``ros2 launch activesam_ros segment.launch.py --show-args``
lists the arguments.
"""

from typing import List

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "activesam_ros"

ARGUMENTS = (
    ("image", "/camera/image_raw",
     "camera image topic; with compressed: true in the params file, <image>/compressed is read"),
    ("params_file", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "activesam.yaml"]),
     "YAML file with the node's parameters"),
    ("checkpoint", "", "path of the SAM 3 checkpoint sam3.pt (overrides the params file)"),
    ("hub_id", "", "Hugging Face repository to download sam3.pt from, e.g. facebook/sam3"),
    ("model", "", "'tiny': a random-weight SAM 3 to try the node without weights (labels mean nothing)"),
    ("device", "", "auto, cpu, cuda or cuda:N (empty: the params file's, auto)"),
    ("namespace", "", "namespace of the node (its topics become /<namespace>/activesam/...)"),
    ("vocabulary_file", "",
     "vocabulary file, or a shipped one by name (indoor, driving, ade20k, ...); used while the vocabulary parameter is empty"),
    ("rviz", "false", "true: also start rviz2 with config/activesam.rviz (input, overlay, labels)"),
    ("log_level", "info", "log level of the node: debug, info, warn, error or fatal"),
)
OVERRIDES = ("checkpoint", "hub_id", "model", "device", "vocabulary_file")
"""Arguments that become node parameters when they are not empty."""


def _actions(context: LaunchContext) -> List:
    """The node, and rviz2 only when asked for (its package need not be installed)."""
    arg = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    overrides = {name: arg[name] for name in OVERRIDES if arg[name].strip()}
    image = arg["image"]
    actions = [
        Node(
            package=PACKAGE,
            executable="activesam_node",
            name="activesam",
            namespace=arg["namespace"],
            parameters=[arg["params_file"], overrides] if overrides else [arg["params_file"]],
            remappings=[("image", image), ("image/compressed", f"{image}/compressed")],
            arguments=["--ros-args", "--log-level", arg["log_level"]],
            output="screen",
            emulate_tty=True,
        )
    ]
    if arg["rviz"].strip().lower() in ("true", "1", "yes"):
        try:
            FindPackageShare("rviz2").perform(context)
        except LookupError:  # ament_index's PackageNotFoundError
            return actions + [LogInfo(msg="rviz:=true but rviz2 is not installed "
                                          "(apt install ros-$ROS_DISTRO-rviz2); starting without it")]
        config = PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "activesam.rviz"])
        actions.append(Node(package="rviz2", executable="rviz2", name="rviz2",
                            arguments=["-d", config], output="screen"))
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in ARGUMENTS]
        + [OpaqueFunction(function=_actions)]
    )
