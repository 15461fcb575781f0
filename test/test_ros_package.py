"""The ament_python package is consistent: package.xml, setup.py, setup.cfg,
the resource marker and the launch file agree. Standard library only, so
CI checks what colcon and rosdep will read on a ROS machine."""

from __future__ import annotations

import ast
import configparser
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Set

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
    assert "activesam_node = activesam_ros.ros.node:main" in text
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
