"""The ament_python package is consistent and releasable: catkin_pkg (what
rosdep and bloom parse with) accepts package.xml; package.xml, setup.py,
setup.cfg, the resource marker and the launch files agree; every import of
the package is a declared dependency. CI checks what colcon and rosdep will
read on a ROS machine."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Set

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "activesam_ros"


def _manifest() -> ET.Element:
    return ET.parse(ROOT / "package.xml").getroot()


def _depends(tag: str) -> Set[str]:
    return {e.text.strip() for e in _manifest().iter(tag)}


def _setup_call() -> ast.Call:
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    return next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")


def _imported_modules(path: Path) -> Set[str]:
    """Top-level modules a file imports (absolute imports only)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_manifest_is_an_ament_python_package_named_like_setup():
    root = _manifest()
    assert root.get("format") == "3"
    assert root.findtext("name") == PACKAGE
    assert root.find("export/build_type").text == "ament_python"
    assert "ament_python" in _depends("buildtool_depend")
    assert (ROOT / "resource" / PACKAGE).is_file()  # the ament index marker setup.py installs


def test_the_version_has_one_home_package_xml():
    version = _manifest().findtext("version")
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    keywords = {k.arg: k.value for k in _setup_call().keywords}
    assert isinstance(keywords["version"], ast.Name), "setup.py must read the version, not repeat it"
    run = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT, capture_output=True, text=True)
    assert run.stdout.strip().splitlines()[-1] == version, run.stderr
    out = subprocess.run([sys.executable, "-m", "activesam_ros.cli", "--version"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.stdout.strip() == f"activesam {version}", out.stderr


def test_every_ros_import_of_the_node_and_launch_file_is_an_exec_depend():
    ros = set()
    for path in (ROOT / PACKAGE / "ros" / "node.py", ROOT / "launch" / "segment.launch.py"):
        ros |= _imported_modules(path) - set(sys.stdlib_module_names) - {PACKAGE, "__future__"}
    assert ros, "no ROS imports found: the parser is broken"
    assert ros <= _depends("exec_depend"), ros - _depends("exec_depend")


def test_launch_testing_is_a_test_depend():
    assert {"launch_testing", "launch_testing_ros", "python3-pytest"} <= _depends("test_depend")


def test_setup_installs_launch_config_and_the_node_where_ros2_looks():
    text = (ROOT / "setup.py").read_text(encoding="utf-8")
    assert 'glob("launch/*.py")' in text and 'glob("config/*")' in text
    assert "activesam_node = activesam_ros.ros.node_main:main" in text
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["develop"]["script_dir"] == f"$base/lib/{PACKAGE}"
    assert cfg["install"]["install_scripts"] == f"$base/lib/{PACKAGE}"
    node = ast.parse((ROOT / PACKAGE / "ros" / "node.py").read_text(encoding="utf-8"))
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in node.body)


def test_launch_file_parses_and_defines_generate_launch_description():
    launch = ROOT / "launch" / "segment.launch.py"
    tree = ast.parse(launch.read_text(encoding="utf-8"), filename=str(launch))
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    for name in ("activesam.yaml", "activesam.rviz"):
        assert (ROOT / "config" / name).is_file()


# -- releasable: catkin_pkg, every import a dependency, rviz2 optional ----------------------------

ROSDEP_KEYS = {
    # import -> rosdep key, as ros/rosdistro's rosdep/python.yaml names them
    "numpy": "python3-numpy", "yaml": "python3-yaml", "cv2": "python3-opencv", "PIL": "python3-pil",
    "tqdm": "python3-tqdm", "psutil": "python3-psutil", "ruamel": "python3-ruamel.yaml",
    "torch": "python3-torch", "torchvision": "python3-torchvision",
    "rosbags": "python3-rosbags-pip", "huggingface_hub": "python3-huggingface-hub-pip",
}
PIP_ONLY = {"sam3": "sam3", "open_clip": "open_clip_torch", "nltk": "nltk", "safetensors": "safetensors",
            "backports": "backports.zstd"}
"""Imports without a rosdep key: setup.py's install_requires (the documented pip step)."""
PIP_NAMES = {"numpy": "numpy", "yaml": "pyyaml", "cv2": "opencv-python-headless", "PIL": "pillow", "tqdm": "tqdm",
             "psutil": "psutil", "ruamel": "ruamel.yaml", "torch": "torch", "torchvision": "torchvision",
             "rosbags": "rosbags", "huggingface_hub": "huggingface_hub", **PIP_ONLY}
OPTIONAL = {"triton": "cpu_shims stands in for it", "skimage": "the bench extra's photographs",
            "compression": "Python 3.14's zstd; backports.zstd before",
            "semantic_inference_msgs": "~/labelspace, only where it is installed (built from source, not in rosdep)"}
ROS_PACKAGES = {"rclpy", "builtin_interfaces", "std_msgs", "sensor_msgs", "vision_msgs", "geometry_msgs",
                "diagnostic_msgs", "diagnostic_updater", "rcl_interfaces", "lifecycle_msgs", "launch", "launch_ros"}


def _package_imports() -> Set[str]:
    """Top-level modules the package and its launch files import: statements,
    the message packages messages.py and labelspace_msg.py import by name, and find_spec lookups."""
    from activesam_ros.ros import labelspace_msg
    from activesam_ros.ros.messages import MESSAGE_TYPES

    found = {t.split("/")[0] for t in [*MESSAGE_TYPES.values(), labelspace_msg.MSGTYPE]}
    for path in [*sorted((ROOT / PACKAGE).rglob("*.py")), *sorted((ROOT / "launch").glob("*.py"))]:
        found |= _imported_modules(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "find_spec":
                found |= {a.value for a in node.args if isinstance(a, ast.Constant)}
            if isinstance(node, ast.Tuple) and any(  # model.py looks sam3 and open_clip up in a loop
                    isinstance(e, ast.Tuple) and e.elts and isinstance(e.elts[0], ast.Constant)
                    and e.elts[0].value in PIP_ONLY for e in node.elts):
                found |= {e.elts[0].value for e in node.elts if isinstance(e, ast.Tuple)}
    return found - set(sys.stdlib_module_names) - {PACKAGE, "__future__"}


def _requirement_names() -> Set[str]:
    keywords = {k.arg: k.value for k in _setup_call().keywords}
    names = ast.literal_eval(keywords["install_requires"])
    return {re.split(r"[<>=!~ ]", n)[0].lower() for n in names}


def test_catkin_pkg_validates_the_manifest():
    from catkin_pkg.package import parse_package

    warnings = []
    package = parse_package(str(ROOT), warnings=warnings)  # raises InvalidPackage on an error
    assert not warnings, warnings
    assert package.name == PACKAGE and package.licenses == ["Apache-2.0"]
    assert all("OWNER" not in u.url for u in package.urls), "a placeholder address"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("\n                                 Apache License")


def test_every_import_of_the_package_is_a_declared_dependency():
    imports = _package_imports()
    assert {"torch", "rclpy", "cv2", "sam3", "open_clip", "vision_msgs"} <= imports, "the reader is broken"
    unknown = imports - ROS_PACKAGES - set(ROSDEP_KEYS) - set(PIP_ONLY) - set(OPTIONAL)
    assert not unknown, f"imports with no dependency rule here: {unknown}"
    declared = _depends("exec_depend")
    missing = {m: ROSDEP_KEYS.get(m, m) for m in imports - set(PIP_ONLY) - set(OPTIONAL)
               if ROSDEP_KEYS.get(m, m) not in declared}
    assert not missing, f"not in package.xml: {missing}"
    requirements = _requirement_names()
    pip_missing = {m: PIP_NAMES[m] for m in imports & set(PIP_NAMES) if PIP_NAMES[m].lower() not in requirements}
    assert not pip_missing, f"not in setup.py's install_requires: {pip_missing}"


def test_rviz2_is_optional_and_documented_so():
    assert not {"rviz2", "rviz_common"} & (_depends("exec_depend") | _depends("depend"))
    launch = (ROOT / "launch" / "segment.launch.py").read_text(encoding="utf-8")
    assert "rviz2 is not installed" in launch  # rviz:=true without rviz2 starts the node alone


def test_the_node_without_ros_says_in_one_line_how_to_get_it():
    if importlib.util.find_spec("rclpy") is not None:
        pytest.skip("rclpy is importable here: the node starts instead")
    run = subprocess.run([sys.executable, "-m", "activesam_ros.ros.node_main"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "ROS 2 was not found" in lines[0] and "source /opt/ros/" in lines[0], run.stderr
