"""rviz2's configuration for the node's real topics, written by the launch file.

``segment.launch.py rviz:=true`` cannot point a fixed .rviz file at the
node's topics: they move with ``namespace:=``, the ``image:=`` remap and
several cameras (``image_topics`` in the params file). So the launch file
resolves the names as rcl will (:func:`launch_cameras`), writes a config for
exactly those topics into a temporary folder (:func:`temporary_rviz_config`),
starts rviz2 on it and removes the folder when the launch ends. The shipped
``config/activesam.rviz`` is this module's output for the defaults
(``python -m activesam_ros.ros.rviz_config > config/activesam.rviz``; a test
keeps them equal), for ``rviz2 -d`` by hand.

What the config holds, per camera: the camera image, ``overlay`` and
``color_labels`` as Image displays, every one subscribed best effort with
depth 1 (a best-effort subscription receives from reliable and best-effort
publishers alike, so ``output_reliability`` may be either). The window
(1600 x 900) is filled by the images: one camera as a 2 x 2 grid (overlay,
colour labels / camera, the Displays panel), several as one row per camera
(camera, overlay, colour labels) with the Displays panel at the right; rviz's
3D view, which no display uses, keeps only its minimum size. No display
needs TF, so the frame transformer is rviz's Identity one: the Fixed Frame
then raises no "No tf data" warning.

A camera with a depth topic (``depth_topics`` in the params file) adds its
``points`` as a PointCloud2 display, coloured by the cloud's ``rgb`` field,
and the 3D view gets :data:`VIEW_WIDTH` pixels of the window. Under the
Identity transformer every frame is the Fixed Frame (rviz_common's
``IdentityFrameTransformer`` answers every lookup with the identity), so the
cloud shows in its own frame, the depth camera's optical frame, without TF
and whatever its ``frame_id``. The view looks along the optical axis from the
camera, image up at the top (:data:`VIEW`). To place the cloud in the robot's
world instead, switch the Transformation panel to TF and set the Fixed Frame.
"""

from __future__ import annotations

import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from . import names
from .node_params import BY_NAME, NODE_NAME

WINDOW = (1600, 900)
"""rviz's window size (pixels)."""
DISPLAYS_WIDTH = 300
"""Width of the Displays panel beside several cameras' rows."""
VIEW_WIDTH = 640
"""Width of the 3D view when a camera's cloud is shown."""
VIEW = {"Focal Point": {"X": 0, "Y": 0, "Z": 3}, "Distance": 3, "Pitch": -1.5697, "Yaw": 4.71239}
"""An orbit view from the camera (3 m behind a focal point 3 m ahead on the
optical axis z), pitched to look along +z, its up vector -y (the image's
up): rviz's orbit puts the eye at focal + distance (cos p cos y, cos p sin y,
sin p), and its pitch stops just short of -pi/2."""
_CONTENT_HEIGHT = WINDOW[1] - 100  # below the menu and tool bar, above the status bar
_SEPARATOR = 6
CONFIG_NAME = "activesam.rviz"


@dataclass(frozen=True)
class CameraTopics:
    """One camera as rviz sees it: absolute topic names."""

    image: str    # the topic the node subscribes (after namespace and remapping)
    outputs: str  # the prefix of its outputs: /<namespace>/activesam[/<image topic>]
    compressed: bool = False  # the node reads <image>/compressed
    depth: bool = False  # the camera has a depth topic: its outputs include points

    def displays(self, several: bool) -> List[Tuple[str, str]]:
        """(display name, topic) of the camera, overlay and colour labels."""
        camera = self.image + "/compressed" if self.compressed else self.image  # rviz picks the transport by suffix
        suffix = f" {self.image}" if several else ""
        return [(f"Camera{suffix}", camera), (f"Overlay{suffix}", f"{self.outputs}/overlay"),
                (f"Labels{suffix}", f"{self.outputs}/color_labels")]

    def cloud(self, several: bool) -> Optional[Tuple[str, str]]:
        """(display name, topic) of the camera's labelled cloud, None without depth."""
        return (f"Points{f' {self.image}' if several else ''}", f"{self.outputs}/points") if self.depth else None


def node_cameras(namespace: str, image_topics: Sequence[str], remappings: Sequence[Tuple[str, str]] = (),
                 compressed: bool = False, node: str = NODE_NAME,
                 depth_topics: Optional[Sequence[str]] = None) -> List[CameraTopics]:
    """The cameras of a node named ``node`` in ``namespace`` with these
    ``image_topics``, ``depth_topics`` and remapping rules, as the node will name them."""
    prefixes = names.output_namespaces(list(image_topics))
    depth = names.depth_topics(depth_topics, list(image_topics))
    suffix = "/compressed" if compressed else ""
    cameras = []
    for topic, prefix in prefixes.items():
        subscribed = names.remap(topic + suffix, remappings, namespace, node)
        cameras.append(CameraTopics(subscribed[: len(subscribed) - len(suffix)],
                                    names.resolve(prefix, namespace, node), compressed, bool(depth[topic])))
    return cameras


def _matches(pattern: Sequence[str], tokens: Sequence[str]) -> bool:
    """rcl's node-name wildcards: ``*`` is one token, ``**`` any number."""
    if not pattern:
        return not tokens
    if pattern[0] == "**":
        return any(_matches(pattern[1:], tokens[i:]) for i in range(len(tokens) + 1))
    return bool(tokens) and pattern[0] in ("*", tokens[0]) and _matches(pattern[1:], tokens[1:])


def node_parameters(tree: Any, node_fqn: str) -> Dict[str, Any]:
    """The ``ros__parameters`` a params file's ``tree`` gives the node
    ``node_fqn`` (``/ns/activesam``): every matching entry, later ones win."""
    target = [t for t in node_fqn.split("/") if t]
    found: Dict[str, Any] = {}

    def walk(branch: Any, path: List[str]) -> None:
        if not isinstance(branch, dict):
            return
        for key, value in branch.items():
            if key == "ros__parameters" and isinstance(value, dict) and _matches(path, target):
                found.update(value)
            elif key != "ros__parameters":
                walk(value, path + [t for t in str(key).split("/") if t])

    walk(tree, [])
    return found


def launch_cameras(params_file: str, namespace: str,
                   remappings: Sequence[Tuple[str, str]]) -> Tuple[List[CameraTopics], Optional[str]]:
    """The cameras the launch file's node will have: ``image_topics``,
    ``compressed`` and ``depth_topics`` from ``params_file`` (the defaults
    where it has none), and why the file could not be read, if it could not
    (the node then says more)."""
    values = {name: BY_NAME[name].default for name in ("image_topics", "compressed", "depth_topics")}
    problem = None
    try:
        tree = yaml.safe_load(Path(params_file).read_text(encoding="utf-8"))
        fqn = names.resolve("~", namespace, NODE_NAME)
        given = node_parameters(tree, fqn)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        given, problem = {}, f"cannot read {params_file} ({exc}); rviz shows the default topics"
    topics = given.get("image_topics")
    if isinstance(topics, list) and topics and all(isinstance(t, str) and t.strip() for t in topics):
        values["image_topics"] = topics
    if isinstance(given.get("compressed"), bool):
        values["compressed"] = given["compressed"]
    depth = given.get("depth_topics")
    if (isinstance(depth, list) and all(isinstance(t, str) for t in depth)
            and not names.depth_problems(depth, values["image_topics"])):
        values["depth_topics"] = depth
    return node_cameras(namespace, values["image_topics"], remappings, values["compressed"],
                        depth_topics=values["depth_topics"]), problem


# -- the window layout: Qt's QMainWindow::saveState format ------------------------------------

_VERSION_MARKER, _DOCK_STATE, _SEQUENCE, _WIDGET, _TOOLBAR_STATE = 0xFF, 0xFD, 0xFC, 0xFB, 0xFC
_LEFT, _RIGHT, _TOP = 0, 1, 2                 # QInternal::DockPosition
_HORIZONTAL, _VERTICAL = 1, 2                 # Qt::Orientation
_LEFT_AREA, _RIGHT_AREA = 1, 2                # Qt::DockWidgetArea
TOOLBAR = "Tools"
"""rviz's tool bar (its objectName): a state without it leaves the bar over the menu."""


@dataclass(frozen=True)
class Split:
    """Docks side by side (horizontal) or stacked (vertical): (item, size along the split)."""

    orientation: int
    items: Tuple[Tuple[Union[str, "Split"], int], ...]


def _qstring(text: str) -> bytes:
    data = text.encode("utf-16-be")
    return struct.pack(">I", len(data)) + data


def _encode_split(split: Split) -> bytes:
    """QDockAreaLayoutInfo::saveState: marker, orientation, items (dock names or nested splits)."""
    out = struct.pack(">BBi", _SEQUENCE, split.orientation, len(split.items))
    position = 0
    for item, size in split.items:
        if isinstance(item, Split):
            out += struct.pack(">Biiii", _SEQUENCE, position, size, 0, 0) + _encode_split(item)
        else:  # a dock widget, found by its objectName (rviz: the display's or panel's name), visible
            out += struct.pack(">B", _WIDGET) + _qstring(item) + struct.pack(">Biiii", 1, position, size, 0, 0)
        position += size + _SEPARATOR
    return out


def window_state(areas: Mapping[int, Tuple[Split, Tuple[int, int]]], central: Tuple[int, int]) -> str:
    """The hex string rviz stores as ``QMainWindow State``: dock ``areas``
    (position -> split and size), the central widget's size, left and right
    areas owning the corners; then rviz's tool bar, visible, at the top."""
    out = struct.pack(">iiBi", _VERSION_MARKER, 0, _DOCK_STATE, len(areas))
    for position in sorted(areas):
        split, (width, height) = areas[position]
        out += struct.pack(">iii", position, width, height) + _encode_split(split)
    out += struct.pack(">ii", *central)
    out += struct.pack(">iiii", _LEFT_AREA, _RIGHT_AREA, _LEFT_AREA, _RIGHT_AREA)  # top-left, top-right, ...
    # QToolBarAreaLayout::saveState: one line in the top area holding the tool bar: shown, position 0,
    # its preferred size (-1: its own) and no floating geometry.
    out += struct.pack(">Biii", _TOOLBAR_STATE, 1, _TOP, 1) + _qstring(TOOLBAR) + struct.pack(">BiiII", 1, 0, -1, 0, 0)
    return out.hex()


def _layout(cameras: Sequence[CameraTopics]) -> str:
    """The images fill the window (module doc); the 3D view keeps its
    minimum, or :data:`VIEW_WIDTH` when it shows a cloud."""
    several = len(cameras) > 1
    panes = [[name for name, _ in camera.displays(several)] for camera in cameras]
    view = VIEW_WIDTH if any(camera.depth for camera in cameras) else 1
    width, height = WINDOW[0] - (view + _SEPARATOR if view > 1 else 0), _CONTENT_HEIGHT
    if not several:
        camera, overlay, labels = panes[0]
        half_w, half_h = (width - _SEPARATOR) // 2, (height - _SEPARATOR) // 2
        grid = Split(_VERTICAL, ((Split(_HORIZONTAL, ((overlay, half_w), (labels, half_w))), half_h),
                                 (Split(_HORIZONTAL, ((camera, half_w), ("Displays", half_w))), half_h)))
        return window_state({_LEFT: (grid, (width, height))}, (view, height))
    images_w = width - DISPLAYS_WIDTH - _SEPARATOR
    cell_w, row_h = (images_w - 2 * _SEPARATOR) // 3, (height - (len(cameras) - 1) * _SEPARATOR) // len(cameras)
    rows = tuple((Split(_HORIZONTAL, tuple((name, cell_w) for name in row)), row_h) for row in panes)
    return window_state({_LEFT: (Split(_VERTICAL, rows), (images_w, height)),
                         _RIGHT: (Split(_VERTICAL, (("Displays", height),)), (DISPLAYS_WIDTH, height))},
                        (view, height))


# -- the config -------------------------------------------------------------------------------

def _image_display(name: str, topic: str) -> Dict[str, Any]:
    return {
        "Class": "rviz_default_plugins/Image",
        "Enabled": True,
        "Max Value": 1,
        "Median window": 5,
        "Min Value": 0,
        "Name": name,
        "Normalize Range": True,
        "Topic": {"Depth": 1, "Durability Policy": "Volatile", "History Policy": "Keep Last",
                  "Reliability Policy": "Best Effort", "Value": topic},
        "Value": True,
    }


def _cloud_display(name: str, topic: str) -> Dict[str, Any]:
    """A PointCloud2 display of a labelled cloud, in its colours (the ``rgb`` field)."""
    return {
        "Alpha": 1,
        "Autocompute Intensity Bounds": True,
        "Class": "rviz_default_plugins/PointCloud2",
        "Color Transformer": "RGB8",
        "Decay Time": 0,
        "Enabled": True,
        "Name": name,
        "Position Transformer": "XYZ",
        "Selectable": True,
        "Size (Pixels)": 2,
        "Style": "Points",
        "Topic": {"Depth": 1, "Durability Policy": "Volatile", "History Policy": "Keep Last",
                  "Reliability Policy": "Best Effort", "Value": topic},
        "Use Fixed Frame": True,
        "Value": True,
    }


def rviz_config(cameras: Sequence[CameraTopics]) -> Dict[str, Any]:
    """The whole config for ``cameras``, as rviz2 (Jazzy) saves one."""
    several = len(cameras) > 1
    displays = [_image_display(name, topic) for camera in cameras for name, topic in camera.displays(several)]
    geometry: Dict[str, Any] = {d["Name"]: {"collapsed": False} for d in displays}
    displays += [_cloud_display(*camera.cloud(several)) for camera in cameras if camera.depth]
    view = dict(VIEW) if any(camera.depth for camera in cameras) else {
        "Focal Point": {"X": 0, "Y": 0, "Z": 0}, "Distance": 10, "Pitch": 0.785398, "Yaw": 0.785398}
    geometry.update({"Displays": {"collapsed": False}, "Height": WINDOW[1], "Hide Left Dock": False,
                     "Hide Right Dock": False, "QMainWindow State": _layout(cameras), "Width": WINDOW[0],
                     "X": 0, "Y": 0})
    return {
        "Panels": [{"Class": "rviz_common/Displays", "Help Height": 0, "Name": "Displays",
                    "Property Tree Widget": {"Expanded": None, "Splitter Ratio": 0.6}, "Tree Height": 400}],
        "Visualization Manager": {
            "Class": "",
            "Displays": displays,
            "Enabled": True,
            "Global Options": {"Background Color": "48; 48; 48", "Fixed Frame": "map", "Frame Rate": 30},
            "Name": "root",
            "Tools": [{"Class": "rviz_default_plugins/Interact", "Hide Inactive Objects": True},
                      {"Class": "rviz_default_plugins/MoveCamera"}],
            "Transformation": {"Current": {"Class": "rviz_common/Identity"}},
            "Value": True,
            "Views": {"Current": {"Class": "rviz_default_plugins/Orbit", "Distance": view["Distance"],
                                  "Focal Point": view["Focal Point"], "Name": "Current View",
                                  "Near Clip Distance": 0.01, "Pitch": view["Pitch"], "Target Frame": "<Fixed Frame>",
                                  "Value": "Orbit (rviz)", "Yaw": view["Yaw"]},
                      "Saved": None},
        },
        "Window Geometry": geometry,
    }


class _RvizDumper(yaml.SafeDumper):
    """YAML as rviz writes it: ``~`` for nothing, lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


_RvizDumper.add_representer(type(None), lambda dumper, _: dumper.represent_scalar("tag:yaml.org,2002:null", "~"))


def dump(config: Mapping[str, Any]) -> str:
    """``config`` as the text of an .rviz file."""
    return yaml.dump(dict(config), Dumper=_RvizDumper, sort_keys=False, width=1 << 16, default_flow_style=False)


def write_rviz_config(cameras: Sequence[CameraTopics], folder: Path) -> Path:
    """Write the config for ``cameras`` as ``folder/activesam.rviz`` (a new
    file in a folder the caller made for it) and return its path."""
    path = Path(folder) / CONFIG_NAME
    with open(path, "x", encoding="utf-8") as out:  # never replaces a file
        out.write(dump(rviz_config(cameras)))
    return path


def temporary_rviz_config(cameras: Sequence[CameraTopics]) -> Tuple[Path, Path, str]:
    """The config for ``cameras`` written into a new temporary folder: its
    path, the folder (for the launch file to remove at shutdown) and a line
    saying what rviz2 shows."""
    folder = Path(tempfile.mkdtemp(prefix="activesam_rviz_"))
    path = write_rviz_config(cameras, folder)
    shown = "; ".join(f"{c.image} -> {c.outputs}/{{overlay,color_labels{',points' if c.depth else ''}}}"
                      for c in cameras)
    return path, folder, f"rviz2 shows {shown} ({path})"


def default_cameras() -> List[CameraTopics]:
    """What segment.launch.py's defaults give: one camera, /camera/image_raw, no namespace."""
    return node_cameras("", BY_NAME["image_topics"].default, [("image", "/camera/image_raw")])


if __name__ == "__main__":
    sys.stdout.write(dump(rviz_config(default_cameras())))
