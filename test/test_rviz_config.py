"""rviz's config as segment.launch.py writes it: the node's real topics for
a namespace, an image remap and several cameras, best-effort image displays,
a window the images fill. Checked without ROS or rviz (runs in CI); the
screenshots in docs/ show it in a real rviz2."""

from __future__ import annotations

import ast
import struct
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import yaml

from activesam_ros.ros import rviz_config as R

ROOT = Path(__file__).resolve().parents[1]
RVIZ_FILE = ROOT / "config" / "activesam.rviz"
REMAP = [("image", "/camera/image_raw"), ("image/compressed", "/camera/image_raw/compressed")]


def displays(config) -> List[Tuple[str, str]]:
    return [(d["Name"], d["Topic"]["Value"]) for d in config["Visualization Manager"]["Displays"]]


def test_the_shipped_config_is_what_the_launch_writes_for_the_defaults():
    assert RVIZ_FILE.read_text(encoding="utf-8") == R.dump(R.rviz_config(R.default_cameras()))
    tree = ast.parse((ROOT / "launch" / "segment.launch.py").read_text(encoding="utf-8"))
    arguments = next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "ARGUMENTS")
    image = next(ast.literal_eval(e.elts[1]) for e in arguments.elts if ast.literal_eval(e.elts[0]) == "image")
    assert R.default_cameras()[0].image == image


def test_one_camera_shows_its_image_overlay_and_colour_labels():
    config = yaml.safe_load(RVIZ_FILE.read_text(encoding="utf-8"))
    assert displays(config) == [("Camera", "/camera/image_raw"), ("Overlay", "/activesam/overlay"),
                                ("Labels", "/activesam/color_labels")]


def test_every_image_display_is_best_effort_so_either_output_reliability_reaches_it():
    config = R.rviz_config(R.node_cameras("", ["a", "b"], REMAP))
    for display in config["Visualization Manager"]["Displays"]:
        assert display["Class"] == "rviz_default_plugins/Image" and display["Enabled"]
        assert (display["Topic"]["Reliability Policy"], display["Topic"]["Depth"]) == ("Best Effort", 1)


def test_no_display_needs_tf_so_no_fixed_frame_warning():
    config = R.rviz_config(R.default_cameras())
    assert config["Visualization Manager"]["Transformation"]["Current"]["Class"] == "rviz_common/Identity"


@pytest.mark.parametrize("namespace", ["cam1", "/cam1", "/cam1/"])
def test_a_namespace_moves_the_outputs_and_a_relative_image(namespace):
    [camera] = R.node_cameras(namespace, ["image"], [("image", "image_raw")])
    assert (camera.image, camera.outputs) == ("/cam1/image_raw", "/cam1/activesam")
    [camera] = R.node_cameras(namespace, ["image"], REMAP)
    assert (camera.image, camera.outputs) == ("/camera/image_raw", "/cam1/activesam")
    [camera] = R.node_cameras(namespace, ["image"], [])
    assert camera.image == "/cam1/image"


def test_several_cameras_get_their_outputs_under_their_topic():
    cameras = R.node_cameras("robot", ["/front/image_raw", "rear/image", "image"], REMAP)
    assert [(c.image, c.outputs) for c in cameras] == [
        ("/front/image_raw", "/robot/activesam/front/image_raw"),
        ("/robot/rear/image", "/robot/activesam/rear/image"),
        ("/camera/image_raw", "/robot/activesam/image")]  # remapped input, outputs named by the parameter
    shown = displays(R.rviz_config(cameras))
    assert shown[:3] == [("Camera /front/image_raw", "/front/image_raw"),
                         ("Overlay /front/image_raw", "/robot/activesam/front/image_raw/overlay"),
                         ("Labels /front/image_raw", "/robot/activesam/front/image_raw/color_labels")]
    assert len({name for name, _ in shown}) == 9


def test_a_compressed_camera_is_shown_through_its_compressed_topic():
    [camera] = R.node_cameras("", ["image"], REMAP, compressed=True)
    assert camera.image == "/camera/image_raw"
    assert displays(R.rviz_config([camera]))[0] == ("Camera", "/camera/image_raw/compressed")


def test_image_topics_come_from_the_entries_of_the_params_file_that_match_the_node(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text(
        "/**:\n  ros__parameters:\n    image_topics: [image]\n    confidence_threshold: 0.4\n"
        "/cam1/activesam:\n  ros__parameters:\n    image_topics: [/front/image_raw, /rear/image_raw]\n"
        "other:\n  ros__parameters:\n    image_topics: [nothing]\n"
        "/*/activesam:\n  ros__parameters:\n    compressed: true\n", encoding="utf-8")
    cameras, problem = R.launch_cameras(str(params), "cam1", REMAP)
    assert problem is None
    assert [(c.image, c.compressed) for c in cameras] == [("/front/image_raw", True), ("/rear/image_raw", True)]
    cameras, _ = R.launch_cameras(str(params), "", REMAP)  # /activesam: only /** matches
    assert [(c.image, c.outputs, c.compressed) for c in cameras] == [("/camera/image_raw", "/activesam", False)]
    nested = tmp_path / "nested.yaml"
    nested.write_text("cam2:\n  activesam:\n    ros__parameters:\n      image_topics: [a, b]\n", encoding="utf-8")
    assert [c.image for c in R.launch_cameras(str(nested), "/cam2", REMAP)[0]] == ["/cam2/a", "/cam2/b"]


def test_an_unreadable_params_file_gives_the_default_topics_and_says_why(tmp_path):
    cameras, problem = R.launch_cameras(str(tmp_path / "missing.yaml"), "", REMAP)
    assert [c.image for c in cameras] == ["/camera/image_raw"] and "missing.yaml" in problem
    broken = tmp_path / "broken.yaml"
    broken.write_text("/**: [unclosed\n", encoding="utf-8")
    assert R.launch_cameras(str(broken), "", REMAP)[1]


def test_the_config_is_written_to_a_new_file_only(tmp_path):
    path = R.write_rviz_config(R.default_cameras(), tmp_path)
    assert path == tmp_path / R.CONFIG_NAME
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == yaml.safe_load(R.dump(R.rviz_config(R.default_cameras())))
    with pytest.raises(FileExistsError):
        R.write_rviz_config(R.default_cameras(), tmp_path)


# -- the window: Qt's saveState bytes, read back ------------------------------------------------------

def _read_split(data: bytes, at: int):
    """(tree, next offset) of one QDockAreaLayoutInfo: [orientation, [(name or subtree, size), ...]]."""
    marker, orientation, count = struct.unpack_from(">BBi", data, at)
    assert marker == 0xFC
    at += 6
    items = []
    for _ in range(count):
        kind = data[at]
        at += 1
        if kind == 0xFB:  # a dock: its objectName, flags, pos, size, min, max
            length = struct.unpack_from(">I", data, at)[0]
            name = data[at + 4: at + 4 + length].decode("utf-16-be")
            flags, _, size, _, _ = struct.unpack_from(">Biiii", data, at + 4 + length)
            assert flags == 1  # visible, docked
            items.append((name, size))
            at += 4 + length + 17
        else:
            assert kind == 0xFC
            _, size, _, _ = struct.unpack_from(">iiii", data, at)
            sub, at = _read_split(data, at + 16)
            items.append((sub, size))
    return [orientation, items], at


def _window(config):
    data = bytes.fromhex(config["Window Geometry"]["QMainWindow State"])
    version, _, marker, areas = struct.unpack_from(">iiBi", data, 0)
    assert (version, marker) == (0xFF, 0xFD)
    at, out = 13, {}
    for _ in range(areas):
        position, width, height = struct.unpack_from(">iii", data, at)
        out[position], at = _read_split(data, at + 12)
        out[position].append((width, height))
    central = struct.unpack_from(">ii", data, at)
    at += 8 + 16  # the central widget's size, the corners
    toolbar = struct.unpack_from(">Biii", data, at)
    assert toolbar == (0xFC, 1, 2, 1)  # one tool bar line, in the top area, one tool bar ...
    assert data[at + 13 + 4:].startswith("Tools".encode("utf-16-be") + b"\x01")  # ... rviz's, shown
    assert at + 13 + 4 + 10 + 17 == len(data)
    return out, central


def _names(tree) -> List[str]:
    return [n for item, _ in tree[1] for n in ([item] if isinstance(item, str) else _names(item))]


def test_one_camera_fills_the_window_as_a_two_by_two_grid():
    config = R.rviz_config(R.default_cameras())
    areas, central = _window(config)
    assert list(areas) == [0]  # the left dock area, nothing else
    orientation, rows, size = areas[0]
    assert orientation == 2 and [_names(row) for row, _ in rows] == [["Overlay", "Labels"], ["Camera", "Displays"]]
    assert size[0] == config["Window Geometry"]["Width"] and central[0] <= 1  # the 3D view gets its minimum


def test_several_cameras_get_a_row_each_and_the_displays_panel_beside():
    cameras = R.node_cameras("", ["/front/image_raw", "/rear/image_raw"], REMAP)
    config = R.rviz_config(cameras)
    areas, central = _window(config)
    rows = areas[0][1]
    assert [_names(row) for row, _ in rows] == [[name for name, _ in c.displays(True)] for c in cameras]
    assert _names(areas[1]) == ["Displays"]
    assert areas[0][2][0] + areas[1][2][0] > 0.95 * config["Window Geometry"]["Width"]
    assert set(config["Window Geometry"]) >= {name for name, _ in displays(config)}  # each dock's state stored


def test_the_launch_file_can_import_it_without_torch_or_opencv():
    """The launch process may run on the system Python: it needs only yaml and numpy."""
    code = ("import sys, activesam_ros.ros.rviz_config; "
            "print(sorted(m for m in ('torch', 'cv2', 'sam3', 'rosbags') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


# -- a camera with depth: its labelled cloud in the 3D view ---------------------------------------------

def test_a_camera_with_depth_shows_its_cloud_in_colour_in_a_3d_view_that_needs_no_tf():
    from activesam_ros.ros.messages import FLOAT32, POINT_FIELDS

    [camera] = R.node_cameras("", ["image"], REMAP, depth_topics=["depth"])
    config = R.rviz_config([camera])
    [cloud] = [d for d in config["Visualization Manager"]["Displays"] if d["Class"].endswith("/PointCloud2")]
    assert (cloud["Name"], cloud["Topic"]["Value"]) == ("Points", "/activesam/points")
    assert cloud["Topic"]["Reliability Policy"] == "Best Effort"
    # rviz's RGB8 transformer reads a field named rgb of type FLOAT32, UINT32 or INT32: the cloud's.
    assert cloud["Color Transformer"] == "RGB8" and ("rgb", 12, FLOAT32) in POINT_FIELDS
    assert config["Visualization Manager"]["Transformation"]["Current"]["Class"] == "rviz_common/Identity"
    areas, central = _window(config)
    assert central[0] == R.VIEW_WIDTH  # the 3D view has room now
    assert areas[0][2][0] + central[0] <= config["Window Geometry"]["Width"]
    # The view looks from the camera along the optical axis (+z), the image's up (-y) at the top.
    view = config["Visualization Manager"]["Views"]["Current"]
    focal = np.array([view["Focal Point"][k] for k in "XYZ"], float)
    pitch, yaw, distance = view["Pitch"], view["Yaw"], view["Distance"]
    eye = focal + distance * np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    forward = (focal - eye) / np.linalg.norm(focal - eye)
    up = np.array([0, 0, 1.0]) - forward[2] * forward  # rviz's orbit keeps the fixed frame's z up
    assert np.linalg.norm(eye) < 0.01 and forward @ [0, 0, 1] > 0.9999
    assert up / np.linalg.norm(up) @ [0, -1, 0] > 0.999
    assert pitch > -np.pi / 2 + 0.001  # within the orbit view's pitch limit


def test_only_cameras_with_depth_get_a_cloud_and_the_launch_reads_depth_topics(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters:\n    image_topics: [/front/image_raw, /rear/image_raw]\n"
                      "    depth_topics: ['', /rear/depth/image_raw]\n", encoding="utf-8")
    cameras, problem = R.launch_cameras(str(params), "", REMAP)
    assert problem is None and [c.depth for c in cameras] == [False, True]
    clouds = [(d["Name"], d["Topic"]["Value"]) for d in R.rviz_config(cameras)["Visualization Manager"]["Displays"]
              if d["Class"].endswith("/PointCloud2")]
    assert clouds == [("Points /rear/image_raw", "/activesam/rear/image_raw/points")]
    assert _window(R.rviz_config(cameras))[1][0] == R.VIEW_WIDTH
    # Without depth the 3D view keeps its minimum, as before.
    assert _window(R.rviz_config(R.default_cameras()))[1][0] <= 1
