"""Many cameras over many devices (launch/multi.launch.py): which node serves
which camera and where every camera's outputs are, and the launch file's
arguments, checked without ROS (runs in CI)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from docs_support import table
from test_ros_package import _depends, _imported_modules

from activesam_ros.ros.placement import (
    PlacementError,
    assign,
    explicit_cameras,
    outputs,
    parse_flag,
    parse_list,
    plan,
    read_params_file,
    rviz_cameras,
)
from activesam_ros.ros.rviz_config import CameraTopics
from activesam_ros.ros.topics import OUTPUT_TOPICS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "multi.launch.py"
CAMS = ["/cam0/image_raw", "/cam1/image_raw", "/cam2/image_raw"]


# -- the launch file, read without ROS ---------------------------------------------------------

def _assignments() -> Dict[str, ast.AST]:
    tree = ast.parse(LAUNCH_FILE.read_text(encoding="utf-8"))
    return {node.targets[0].id: node.value for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}


def test_launch_arguments_are_the_documented_ones_each_with_a_description():
    found = _assignments()
    arguments = {item.elts[0].value: (item.elts[1], ast.literal_eval(item.elts[2])) for item in found["ARGUMENTS"].elts}
    assert set(arguments) == {"cameras", "devices", "params_file", "checkpoint", "hub_id", "model", "namespace",
                              "vocabulary_file", "autostart", "rviz", "rviz_config", "log_level"}
    for name, (_, description) in arguments.items():
        assert len(description) > 15, name
    # The defaults parse with the launch file's own rules: one camera on the params file's device.
    assert parse_list(ast.literal_eval(arguments["cameras"][0]), "cameras") == ["/camera/image_raw"]
    assert parse_list(ast.literal_eval(arguments["devices"][0]), "devices") == ["auto"]
    assert set(ast.literal_eval(found["OVERRIDES"])) <= set(arguments)
    # The node page's table of the launch's arguments has a row for each, with its non-empty default.
    documented = table("docs/node.md", "### `multi.launch.py`")
    assert set(documented) == set(arguments)
    for name, (default, _) in arguments.items():
        if isinstance(default, ast.Constant) and default.value:
            assert documented[name][0] == f"`{default.value}`", name


def test_every_import_of_the_launch_file_is_an_exec_depend_or_the_package():
    ros = _imported_modules(LAUNCH_FILE) - set(sys.stdlib_module_names) - {"activesam_ros", "__future__"}
    assert ros == {"launch", "launch_ros"} and ros <= _depends("exec_depend")


# -- lists, devices and the params file's map --------------------------------------------------

def test_launch_flags_are_true_or_false_and_nothing_else():
    assert parse_flag(" True", "rviz") and parse_flag("1", "autostart") and not parse_flag("false", "autostart")
    with pytest.raises(PlacementError, match="autostart:='flase' is neither true nor false"):
        parse_flag("flase", "autostart")


def test_launch_lists_are_read_with_or_without_brackets_and_quotes():
    assert parse_list("[/cam0/image_raw, /cam1/image_raw]", "cameras") == CAMS[:2]
    assert parse_list(" ['cuda:0', \"cuda:1\"] ", "devices") == ["cuda:0", "cuda:1"]
    assert parse_list("cpu,cpu", "devices") == ["cpu", "cpu"]
    assert parse_list("[]", "cameras") == []
    with pytest.raises(PlacementError, match="cameras:='\\[a, , b\\]' has an empty item"):
        parse_list("[a, , b]", "cameras")


def test_cameras_are_dealt_round_robin_in_the_order_given():
    assert assign(CAMS, 2) == [[CAMS[0], CAMS[2]], [CAMS[1]]]
    assert assign(CAMS, 3) == [[c] for c in CAMS]
    assert assign(CAMS[:1], 3) == [[CAMS[0]], [], []]


def test_a_node_with_its_own_image_topics_keeps_them_and_the_rest_are_dealt_to_the_others():
    explicit = {1: ["/front/image_raw", "/rear/image_raw"]}
    assert assign(CAMS, 3, explicit) == [[CAMS[0], CAMS[2]], explicit[1], [CAMS[1]]]
    assert assign(["/front/image_raw"] + CAMS[:1], 2, explicit) == [[CAMS[0]], explicit[1]]  # named once, not dealt
    assert assign([], 2, {0: ["/a"], 1: ["/b"]}) == [["/a"], ["/b"]]


@pytest.mark.parametrize("cameras, devices, explicit, message", [
    (CAMS, 0, {}, "devices:= is empty"),
    ([], 2, {}, "no cameras"),
    (CAMS + CAMS[:1], 2, {}, "camera(s) /cam0/image_raw given more than once in cameras:="),
    (CAMS, 2, {0: ["/a"], 1: ["/a"]}, "camera(s) /a given more than once in the params file"),
    (CAMS, 1, {0: ["/a"]}, "camera(s) /cam0/image_raw, /cam1/image_raw, /cam2/image_raw of cameras:= have no node"),
])
def test_impossible_placements_are_refused_with_their_reason(cameras, devices, explicit, message):
    with pytest.raises(PlacementError, match=message.replace("(", r"\(").replace(")", r"\)")):
        assign(cameras, devices, explicit)


def test_the_params_file_names_nodes_with_or_without_namespace(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({
        "/**": {"ros__parameters": {"image_topics": ["image"], "mode": "fast"}},  # shared: not a map
        "activesam_0": {"ros__parameters": {"image_topics": ["/a"]}},
        "/robot/activesam_1": {"ros__parameters": {"image_topics": ["/b", "/c"], "device": "cuda:1"}},
        "activesam_2": {"ros__parameters": {"vocabulary_file": "driving"}},
        "activesam_7": {"ros__parameters": {"image_topics": ["/z"]}},  # no such node with 3 devices
    }))
    params = read_params_file(str(path))
    assert explicit_cameras(params, 3, "robot") == {0: ["/a"], 1: ["/b", "/c"]}
    assert explicit_cameras(params, 3) == {0: ["/a"]}
    assert explicit_cameras(read_params_file(str(ROOT / "config" / "activesam.yaml")), 4) == {}
    with pytest.raises(PlacementError, match="image_topics of activesam_0 .* non-empty list"):
        explicit_cameras({"activesam_0": {"ros__parameters": {"image_topics": "/a"}}}, 1)
    path.write_text("activesam_0: [1, 2\n")
    with pytest.raises(PlacementError, match="cannot read the params file"):
        read_params_file(str(path))


# -- nodes and topic names ------------------------------------------------------------------------

def test_every_camera_publishes_where_one_node_with_all_cameras_would():
    nodes = plan(CAMS, ["cuda:0", "cuda:1"])
    assert [(n.name, n.device, n.cameras) for n in nodes] == [
        ("activesam_0", "cuda:0", (CAMS[0], CAMS[2])), ("activesam_1", "cuda:1", (CAMS[1],))]
    remapped: Dict[str, Any] = {}
    for node in nodes:
        remapped.update(node.remappings)
    names = [t.name for t in OUTPUT_TOPICS]
    # activesam_0 has two cameras (its outputs under ~/<topic>), activesam_1 one (directly under ~):
    # all land on /activesam/<topic>/<output>.
    expected = {f"/activesam_0/cam0/image_raw/{n}": f"/activesam/cam0/image_raw/{n}" for n in names}
    expected.update({f"/activesam_0/cam2/image_raw/{n}": f"/activesam/cam2/image_raw/{n}" for n in names})
    expected.update({f"/activesam_1/{n}": f"/activesam/cam1/image_raw/{n}" for n in names})
    assert remapped == expected
    assert outputs(CAMS) == {c: "/activesam" + c for c in CAMS}


def test_namespace_one_camera_and_idle_devices():
    [node] = plan(["/front/image_raw"], ["cpu", "cpu", "cpu"], namespace="/robot/")
    assert (node.name, node.device) == ("activesam_0", "cpu")  # devices without a camera start no node
    assert dict(node.remappings)["/robot/activesam_0/labels"] == "/robot/activesam/labels"
    assert outputs(["/front/image_raw"], "robot") == {"/front/image_raw": "/robot/activesam"}
    relative = plan(["left/image", "right/image"], ["cpu"], namespace="robot")[0]
    assert dict(relative.remappings)["/robot/activesam_0/left/image/labels"] == "/robot/activesam/left/image/labels"


def test_devices_are_checked_before_any_node_starts():
    assert [n.device for n in plan(CAMS, ["auto", "CPU", "cuda", "cuda:3"])] == ["auto", "CPU", "cuda"]
    with pytest.raises(PlacementError, match="device 'gpu0' is not auto, cpu, cuda or cuda:N"):
        plan(CAMS, ["cuda:0", "gpu0"])
    # With the visible CUDA devices known (the launch file asks torch), a cuda:N beyond them is refused.
    assert [n.device for n in plan(CAMS, ["cuda:0", "cuda:1"], visible=2)] == ["cuda:0", "cuda:1"]
    for devices, visible in ((["cuda:99"], 2), (["cpu", "cuda:2"], 2), (["cuda"], 0)):
        with pytest.raises(PlacementError, match=f"device '{devices[-1]}' does not exist: {visible} CUDA device"):
            plan(CAMS, devices, visible=visible)
    assert plan(CAMS, ["cpu", "auto"], visible=0)


def test_one_camera_spelled_two_ways_is_refused_naming_both():
    """Cameras are compared as the nodes resolve them: absolute, relative
    (under the launch namespace) and with a trailing '/' alike."""
    for cameras, namespace, shown in (
        (["/cam0/image_raw", "cam0/image_raw"], "", "cam0/image_raw (= /cam0/image_raw, both /cam0/image_raw)"),
        (["/robot/x", "x"], "robot", "x (= /robot/x, both /robot/x)"),
        (["/x", "/x/"], "", "/x/ (= /x, both /x)"),
    ):
        with pytest.raises(PlacementError, match=re.escape(f"camera(s) {shown} given more than once in cameras:=")):
            plan(cameras, ["cpu", "cpu"], namespace)
    with pytest.raises(PlacementError, match="private name"):
        plan(["~/image"], ["cpu"])
    with pytest.raises(PlacementError, match="has an empty part"):
        plan(["a//b"], ["cpu"])
    with pytest.raises(PlacementError, match="namespace 'a b//c' holds ' '"):
        plan(CAMS, ["cpu"], "a b//c")
    # A camera the params file gives a node is not dealt again, however it is spelled.
    assert assign(["cam/image"], 2, {1: ["/cam/image/"]}) == [[], ["/cam/image/"]]


def test_a_params_file_section_that_is_not_a_mapping_is_refused():
    with pytest.raises(PlacementError, match="ros__parameters of activesam_0 in the params file must map"):
        explicit_cameras({"activesam_0": {"ros__parameters": 5}}, 1)


def test_rviz_shows_every_camera_as_its_node_reads_it_with_its_shared_outputs():
    params = {"/**": {"ros__parameters": {"compressed": False}},
              "/robot/activesam_1": {"ros__parameters": {"compressed": True}}}
    nodes = plan(["front/image_raw", "/rear/image_raw", "left/image_raw"], ["cuda:0", "cuda:1"], "robot")
    assert rviz_cameras(nodes, "robot", params) == [
        CameraTopics("/robot/front/image_raw", "/robot/activesam/front/image_raw", False),
        CameraTopics("/robot/left/image_raw", "/robot/activesam/left/image_raw", False),
        CameraTopics("/rear/image_raw", "/robot/activesam/rear/image_raw", True),  # activesam_1 reads compressed
    ]
    [alone] = rviz_cameras(plan(CAMS[:1], ["cpu"]), "", {})
    assert alone == CameraTopics(CAMS[0], "/activesam", False)
