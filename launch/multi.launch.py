"""Many cameras over many GPUs: one ActiveSAM node per device.

    ros2 launch activesam_ros multi.launch.py checkpoint:=/path/to/sam3.pt \\
        cameras:="[/cam0/image_raw, /cam1/image_raw, /cam2/image_raw]" devices:="[cuda:0, cuda:1]"

Node i is ``activesam_<i>`` on the i-th device. The cameras are dealt
round-robin over the nodes (cam0 and cam2 on cuda:0, cam1 on cuda:1 above),
unless the params file gives a node its own ``image_topics`` in a section
named after it (``activesam_1:``), which it then keeps. Every node reads the
same params file; ``devices`` sets their ``device``.

Each camera's outputs are where one node with all the cameras would publish
them, whichever node serves it: ``/activesam/<camera topic>/labels``,
``.../label_info``, ``.../active_classes``, ``.../label_source``,
``.../overlay``, ``.../color_labels``, ``.../confidence``
(``/<namespace>/activesam/...`` with a namespace; ``/activesam/labels`` ...
when there is one camera). ``rviz:=true`` starts rviz2 showing every camera,
its overlay and colour labels. The nodes'
parameters are their own: ``ros2 param set /activesam_0 ...``. The placement
rules live in ``activesam_ros.ros.placement`` (tested without ROS).
"""

import shutil
from typing import List

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnShutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from activesam_ros.ros import placement

PACKAGE = "activesam_ros"

ARGUMENTS = (
    ("cameras", "[/camera/image_raw]",
     "camera image topics, e.g. [/cam0/image_raw, /cam1/image_raw]; with compressed: true in the params file, "
     "<topic>/compressed is read"),
    ("devices", "[auto]", "one node per device, e.g. [cuda:0, cuda:1] or [cpu, cpu]"),
    ("params_file", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "activesam.yaml"]),
     "YAML file with the parameters of every node; a section named activesam_<i> may set that node's image_topics"),
    ("checkpoint", "", "path of the SAM 3 checkpoint sam3.pt (overrides the params file)"),
    ("hub_id", "", "Hugging Face repository to download sam3.pt from, e.g. facebook/sam3"),
    ("model", "", "'tiny': a random-weight SAM 3 to try the nodes without weights (labels mean nothing)"),
    ("namespace", "", "namespace of the nodes (topics become /<namespace>/activesam/...)"),
    ("vocabulary_file", "", "vocabulary file, or a shipped one by name (indoor, driving, ade20k, ...); "
     "used while the vocabulary parameter is empty"),
    ("autostart", "true", "true: every node configures and activates itself and comes up segmenting; false: "
     "managed nodes that wait unconfigured for a lifecycle manager (ros2 lifecycle set <node> configure, then activate)"),
    ("rviz", "false", "true: also start rviz2 showing every camera, its overlay and colour labels"),
    ("rviz_config", "", "an .rviz file for rviz2 (empty: one written for this launch's cameras)"),
    ("log_level", "info", "log level of the nodes: debug, info, warn, error or fatal"),
)
OVERRIDES = ("checkpoint", "hub_id", "model", "vocabulary_file")
"""Arguments that become every node's parameters when they are not empty."""


def _actions(context: LaunchContext) -> List:
    """One node per device that has cameras, its outputs remapped to the cameras' shared topics."""
    arg = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    overrides = {name: arg[name] for name in OVERRIDES if arg[name].strip()}
    devices = placement.parse_list(arg["devices"], "devices")
    autostart = placement.parse_flag(arg["autostart"], "autostart")
    params = placement.read_params_file(arg["params_file"])
    explicit = placement.explicit_cameras(params, len(devices), arg["namespace"])
    nodes = placement.plan(placement.parse_list(arg["cameras"], "cameras"), devices, arg["namespace"], explicit,
                           placement.visible_cuda_devices())
    actions: List = []
    for node in nodes:
        parameters = {**overrides, "device": node.device, "image_topics": list(node.cameras),
                      "autostart": autostart}
        actions.append(LifecycleNode(
            package=PACKAGE,
            executable="activesam_node",
            name=node.name,
            namespace=arg["namespace"],
            parameters=[arg["params_file"], parameters],
            remappings=list(node.remappings),
            arguments=["--ros-args", "--log-level", arg["log_level"]],
            output="screen",
            emulate_tty=True,
        ))
        actions.append(LogInfo(msg=f"{node.name} on {node.device}: {', '.join(node.cameras)}"))
    idle = len(devices) - len(nodes)
    if idle:
        actions.append(LogInfo(msg=f"{idle} device(s) without a camera: no node started for them"))
    shared = placement.outputs([camera for node in nodes for camera in node.cameras], arg["namespace"])
    actions += [LogInfo(msg=f"outputs of {camera}: {prefix}/labels, ...") for camera, prefix in shared.items()]
    if placement.parse_flag(arg["rviz"], "rviz"):
        actions += _rviz(context, arg, placement.rviz_cameras(nodes, arg["namespace"], params))
    return actions


def _rviz(context: LaunchContext, arg: dict, cameras: List) -> List:
    """rviz2 on the given config, or on one written for ``cameras`` into a
    temporary folder removed at shutdown (nothing when rviz2 is not installed)."""
    try:
        FindPackageShare("rviz2").perform(context)
    except LookupError:  # ament_index's PackageNotFoundError
        return [LogInfo(msg="rviz:=true but rviz2 is not installed (apt install ros-$ROS_DISTRO-rviz2); "
                            "starting without it")]
    actions: List = []
    config = arg["rviz_config"].strip()
    if not config:
        from activesam_ros.ros.rviz_config import temporary_rviz_config

        path, folder, shown = temporary_rviz_config(cameras)
        config = str(path)
        actions += [LogInfo(msg=shown),
                    RegisterEventHandler(OnShutdown(on_shutdown=lambda event, ctx: shutil.rmtree(folder, True)))]
    return actions + [Node(package="rviz2", executable="rviz2", name="rviz2", namespace=arg["namespace"],
                           arguments=["-d", config], output="screen")]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in ARGUMENTS]
        + [OpaqueFunction(function=_actions)]
    )
