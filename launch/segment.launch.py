"""Open-vocabulary segmentation of one camera with ActiveSAM.

    ros2 launch activesam_ros segment.launch.py checkpoint:=/path/to/sam3.pt image:=/camera/image_raw
    ros2 launch activesam_ros segment.launch.py model:=tiny rviz:=true    # no weights: labels mean nothing
    ros2 launch activesam_ros segment.launch.py autostart:=false ...      # a managed node: configure, activate by hand

Every parameter lives in ``params_file`` (default: the installed
config/activesam.yaml); the arguments below that are left empty do not
override it. ``ros2 launch activesam_ros segment.launch.py --show-args``
lists the arguments.

With ``rviz:=true`` rviz2 shows the node's real topics: the config is
written for this launch's namespace, image remap and the params file's
image_topics (``activesam_ros.ros.rviz_config``) into a temporary folder,
removed when the launch ends; ``rviz_config:=`` uses a file of yours instead.
"""

import shutil
from typing import List

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnShutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
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
    ("autostart", "true", "true: the node configures and activates itself and comes up segmenting; false: a managed "
     "node that waits unconfigured for a lifecycle manager (ros2 lifecycle set <node> configure, then activate)"),
    ("rviz", "false", "true: also start rviz2 showing each camera, its overlay and colour labels"),
    ("rviz_config", "", "an .rviz file for rviz2 (empty: one written for this launch's topics)"),
    ("log_level", "info", "log level of the node: debug, info, warn, error or fatal"),
)
OVERRIDES = ("checkpoint", "hub_id", "model", "device", "vocabulary_file")
"""Arguments that become node parameters when they are not empty."""


def _actions(context: LaunchContext) -> List:
    """The node, and rviz2 only when asked for (its package need not be installed)."""
    from activesam_ros.ros.placement import parse_flag

    arg = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    overrides = {name: arg[name] for name in OVERRIDES if arg[name].strip()}
    overrides["autostart"] = parse_flag(arg["autostart"], "autostart")
    image = arg["image"]
    remappings = [("image", image), ("image/compressed", f"{image}/compressed")]
    actions = [
        LifecycleNode(
            package=PACKAGE,
            executable="activesam_node",
            name="activesam",
            namespace=arg["namespace"],
            parameters=[arg["params_file"], overrides],
            remappings=remappings,
            arguments=["--ros-args", "--log-level", arg["log_level"]],
            output="screen",
            emulate_tty=True,
        )
    ]
    if parse_flag(arg["rviz"], "rviz"):
        try:
            FindPackageShare("rviz2").perform(context)
        except LookupError:  # ament_index's PackageNotFoundError
            return actions + [LogInfo(msg="rviz:=true but rviz2 is not installed "
                                          "(apt install ros-$ROS_DISTRO-rviz2); starting without it")]
        config = arg["rviz_config"].strip()
        if not config:
            config, more = _write_rviz_config(arg["params_file"], arg["namespace"], remappings)
            actions += more
        actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", namespace=arg["namespace"],
                            arguments=["-d", config], output="screen"))
    return actions


def _write_rviz_config(params_file: str, namespace: str, remappings: List) -> tuple:
    """rviz's config for the node's topics in a new temporary folder, and the
    actions that say what it shows and remove the folder at shutdown."""
    from activesam_ros.ros.rviz_config import launch_cameras, temporary_rviz_config

    cameras, problem = launch_cameras(params_file, namespace, remappings)
    path, folder, shown = temporary_rviz_config(cameras)
    actions = [LogInfo(msg=shown),
               RegisterEventHandler(OnShutdown(on_shutdown=lambda event, context: shutil.rmtree(folder, True)))]
    if problem:
        actions.insert(0, LogInfo(msg=problem))
    return str(path), actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in ARGUMENTS]
        + [OpaqueFunction(function=_actions)]
    )
