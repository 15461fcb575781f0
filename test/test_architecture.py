"""The layers are folders, and the folders keep their rules: checked from
every module's imports (the AST, function-level imports included) and by
importing the light rooms in a fresh interpreter.

    engine  (torch + sam3: the method)
    files   (bytes in and out: decoding, inflating, writing; no ROS, no torch)
    stream  (frames over time; no ROS, no torch)     render (pixels; no ROS, no torch)
    ros     (message fields, rosbag2, the rclpy node)
    commands, evaluation, benchmark, cli  (front ends)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "activesam_ros"

ROS_CLIENT = {"rclpy", "launch", "launch_ros", "launch_testing", "diagnostic_updater", "rcl_interfaces",
              "sensor_msgs", "std_msgs", "vision_msgs", "diagnostic_msgs", "builtin_interfaces"}
"""Packages that exist only in a sourced ROS 2 environment."""

MAY_IMPORT: Dict[str, Set[str]] = {
    "engine": {"engine"},
    "files": {"engine", "files"},
    "stream": {"engine", "stream"},
    "render": {"engine", "render"},
    "ros": {"engine", "files", "stream", "render", "ros"},
    "evaluation": {"engine", "files", "evaluation"},
    "benchmark": {"engine", "files", "stream", "render", "ros", "evaluation", "benchmark"},
    "commands": {"engine", "files", "stream", "render", "ros", "evaluation", "benchmark", "commands"},
    "cli": {"engine", "commands"},
    "model": {"engine"},
    "__init__": set(),
}
"""Which rooms a room's modules may import from (no import runs upward)."""


def modules() -> Iterator[Tuple[str, Path]]:
    """(room, file) for every module of the package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        yield (parts[0] if len(parts) > 1 else path.stem), path


def imports(path: Path) -> Iterator[Tuple[str, int]]:
    """(absolute dotted module, line) for every import in a file, relative ones resolved."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:  # from . import x
                for alias in node.names:
                    yield f"{module}.{alias.name}", node.lineno
            else:
                yield module, node.lineno


def test_every_module_sits_in_a_known_room():
    rooms = {room for room, _ in modules()}
    assert rooms <= set(MAY_IMPORT), rooms - set(MAY_IMPORT)
    assert {"engine", "files", "stream", "render", "ros"} <= rooms


@pytest.mark.parametrize("room", sorted(MAY_IMPORT))
def test_no_import_runs_upward(room):
    wrong = []
    for found, path in modules():
        if found != room:
            continue
        for module, line in imports(path):
            parts = module.split(".")
            if parts[0] == "activesam_ros" and len(parts) > 1:
                target = parts[1]
                root = target == "__init__" or target.startswith("__")  # the package root: __version__
                if target != room and target not in MAY_IMPORT[room] and not root:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_ros_packages_are_imported_in_the_ros_room_only_and_rclpy_by_the_node_only():
    wrong = []
    for room, path in modules():
        for module, line in imports(path):
            top = module.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if top == "rosbags" and room != "ros":
                wrong.append(where)
            if top in ROS_CLIENT and path != PACKAGE / "ros" / "node.py":
                wrong.append(where)
    assert not wrong, "\n".join(wrong)


def test_the_files_stream_and_render_rooms_never_import_torch():
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for room, path in modules() if room in ("files", "stream", "render")
             for module, line in imports(path) if module.split(".")[0] in ("torch", "sam3", "torchvision")]
    assert not wrong, "\n".join(wrong)


def test_importing_the_light_rooms_loads_neither_torch_nor_ros():
    """Transitively too: what the stream and render rooms import from the
    engine (config, vocabulary, result) is torch-free, and so are the
    engine's package and the ``ros`` modules that read message fields."""
    light = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for room, path in modules() if room in ("files", "stream", "render") and path.stem != "__init__"
    ) + ["activesam_ros.engine", "activesam_ros.ros.topics", "activesam_ros.ros.node_params"]
    code = ("import importlib, sys\n"
            f"for name in {light!r}: importlib.import_module(name)\n"
            "heavy = ('torch', 'sam3', 'rclpy', 'rosbags', 'sensor_msgs')\n"
            "loaded = sorted({m.split('.')[0] for m in sys.modules} & set(heavy))\n"
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_public_names_still_resolve():
    """``from activesam_ros.engine import ActiveSAM`` and
    ``activesam_ros.model.build_tiny_sam3``, as docs/python-api.md lists them."""
    from activesam_ros import model
    from activesam_ros.engine import ActiveSAM, ActiveSAMConfig, build_tiny_sam3
    from activesam_ros.engine.model import build_tiny_sam3 as original
    from activesam_ros.engine.pipeline import ActiveSAM as pipeline_class

    assert ActiveSAM is pipeline_class and model.build_tiny_sam3 is original is build_tiny_sam3
    assert ActiveSAMConfig().mode == "exact"
    with pytest.raises(AttributeError):
        from activesam_ros import engine

        engine.NoSuchThing  # noqa: B018
