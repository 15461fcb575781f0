"""Many cameras over many devices: which node serves which camera, and where
each camera's outputs are (``launch/multi.launch.py``), without ROS.

One node per device, named ``activesam_0``, ``activesam_1``, ... (their
private namespaces ``/activesam_0``, ...), all reading one params file. A
node whose own section of that file (``activesam_1:`` or
``/activesam_1:``) sets ``image_topics`` keeps exactly those cameras; the
other cameras are dealt round-robin to the other nodes, in the order given.

Every camera's outputs are where one node with every camera would publish
them: ``/activesam/<camera topic>/labels``, ``.../label_info``, ... for
several cameras (``/activesam/labels`` ... for one), under the launch
namespace if any. So the topic names do not depend on which node, or how
many GPUs, serve a camera: each node's private outputs are remapped there.
With ``rviz:=true`` rviz shows every camera with those outputs
(:func:`rviz_cameras`, drawn by ``activesam_ros.ros.rviz_config``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .names import namespace_problem, normalise, output_namespaces, resolve, topic_problem
from .node_params import BY_NAME, NODE_NAME
from .rviz_config import CameraTopics, node_parameters
from .topics import OUTPUT_TOPICS

DEVICE = re.compile(r"(auto|cpu|cuda(:\d+)?)")
"""What a node's device parameter accepts (``device`` in the node's table)."""


class PlacementError(ValueError):
    """Cameras and devices that cannot be placed; the message says why."""


@dataclass(frozen=True)
class NodePlan:
    """One node of the launch: its name, device, cameras and output remappings."""

    name: str
    device: str
    cameras: Tuple[str, ...]
    remappings: Tuple[Tuple[str, str], ...]  # (the node's own output topic, where the launch puts it)


def node_name(index: int) -> str:
    return f"{NODE_NAME}_{index}"


TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_flag(text: str, what: str) -> bool:
    """A launch argument that is true or false (``rviz:=true``, ``autostart:=false``)."""
    value = text.strip().lower()
    if value in TRUE or value in FALSE:
        return value in TRUE
    raise PlacementError(f"{what}:={text!r} is neither true nor false")


def parse_list(text: str, what: str) -> List[str]:
    """A launch argument's list, ``[a, b]`` (or ``a, b``): the stripped items, quotes removed."""
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    items = [item.strip().strip("'\"").strip() for item in body.split(",")] if body.strip() else []
    if any(not item for item in items):
        raise PlacementError(f"{what}:={text!r} has an empty item; give a list like [a, b]")
    return items


def explicit_cameras(params: Mapping[str, Any], nodes: int, namespace: str = "") -> Dict[int, List[str]]:
    """The cameras a params file gives nodes by name: index -> its image_topics."""
    out: Dict[int, List[str]] = {}
    for index in range(nodes):
        name = node_name(index)
        for key in (name, "/" + name, resolve(name, namespace, name)):
            section = params.get(key)
            if not isinstance(section, Mapping):
                continue
            given = section.get("ros__parameters")
            if given is None:
                continue
            if not isinstance(given, Mapping):
                raise PlacementError(f"ros__parameters of {key} in the params file must map parameter names to "
                                     f"values, got {given!r:.60}")
            topics = given.get("image_topics")
            if topics is None:
                continue
            if not isinstance(topics, list) or not topics or not all(isinstance(t, str) and t for t in topics):
                raise PlacementError(f"image_topics of {key} in the params file must be a non-empty list of "
                                     f"topic names, got {topics!r}")
            out[index] = list(topics)
    return out


def _shared_topic(camera: str, namespace: str, where: str) -> str:
    """The topic a camera of several nodes names: the same for every node,
    so never private (``~``); PlacementError for a name ROS refuses."""
    name = normalise(camera)
    problem = topic_problem(name)
    if problem:
        raise PlacementError(f"{where}: {problem}")
    if name.startswith("~"):
        raise PlacementError(f"{where}: camera {camera!r} is a private name (~): each node would read its own "
                             "topic; give it absolute (/cam/image_raw) or relative (cam/image_raw)")
    return resolve(name, namespace, NODE_NAME)


def _repeated(listing: Sequence[str], namespace: str, where: str) -> List[str]:
    """The cameras of ``listing`` that name a topic an earlier one names, as 'a (= b)'."""
    seen: Dict[str, str] = {}
    twice = []
    for camera in listing:
        topic = _shared_topic(camera, namespace, where)
        if topic in seen:
            twice.append(camera if seen[topic] == camera else f"{camera} (= {seen[topic]}, both {topic})")
        else:
            seen[topic] = camera
    return twice


def assign(cameras: Sequence[str], devices: int, explicit: Optional[Mapping[int, Sequence[str]]] = None,
           namespace: str = "") -> List[List[str]]:
    """The cameras of each of ``devices`` nodes: explicit lists as given, the
    other cameras round-robin over the nodes without one. Cameras are
    compared by the topic they resolve to in ``namespace``."""
    explicit = dict(explicit or {})
    if devices < 1:
        raise PlacementError("devices:= is empty: give at least one device, e.g. [cuda:0]")
    named = [camera for index in sorted(explicit) for camera in explicit[index]]
    for listing, where in ((named, "the params file's image_topics"), (list(cameras), "cameras:=")):
        twice = _repeated(listing, namespace, where)
        if twice:
            raise PlacementError(f"camera(s) {', '.join(twice)} given more than once in {where}")
    taken = {_shared_topic(camera, namespace, "") for camera in named}
    dealt = [camera for camera in cameras if _shared_topic(camera, namespace, "") not in taken]
    free = [index for index in range(devices) if index not in explicit]
    if dealt and not free:
        raise PlacementError(f"camera(s) {', '.join(dealt)} of cameras:= have no node: every node has its "
                             "cameras from the params file")
    out = [list(explicit.get(index, [])) for index in range(devices)]
    for turn, camera in enumerate(dealt):
        out[free[turn % len(free)]].append(camera)
    if not any(out):
        raise PlacementError("no cameras: give cameras:=[/cam0/image_raw, ...] or image_topics per node "
                             "in the params file")
    return out


def visible_cuda_devices() -> Optional[int]:
    """How many CUDA devices the nodes will see (torch's count, as the node
    resolves its device); None when torch cannot say."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.device_count()


def device_problem(device: str, visible: Optional[int]) -> Optional[str]:
    """Why a node cannot run on ``device`` when ``visible`` CUDA devices are
    seen (None: not known, only the spelling is checked)."""
    match = DEVICE.fullmatch(device.strip().lower())
    if not match:
        return f"device {device!r} is not auto, cpu, cuda or cuda:N"
    if visible is None or not device.strip().lower().startswith("cuda"):
        return None
    index = int(match.group(2)[1:]) if match.group(2) else 0
    if index >= visible:
        return f"device {device!r} does not exist: {visible} CUDA device(s) visible"
    return None


def plan(cameras: Sequence[str], devices: Sequence[str], namespace: str = "",
         explicit: Optional[Mapping[int, Sequence[str]]] = None, visible: Optional[int] = None) -> List[NodePlan]:
    """The nodes to start: one per device that has cameras, each remapping
    its private outputs to the camera's shared place (see the module doc).
    ``visible``: the CUDA devices seen (:func:`visible_cuda_devices`), to
    refuse a cuda:N that does not exist; None checks the spelling only."""
    problem = namespace_problem(normalise(namespace))
    if problem:
        raise PlacementError(problem)
    for device in devices:
        problem = device_problem(device, visible)
        if problem:
            raise PlacementError(problem)
    per_node = assign(cameras, len(devices), explicit, namespace)
    shared = outputs([camera for node in per_node for camera in node], namespace)
    nodes = []
    for index, (device, own) in enumerate(zip(devices, per_node)):
        if not own:
            continue
        name = node_name(index)
        remappings = tuple(
            (resolve(f"{prefix}/{output.name}", namespace, name), f"{shared[camera]}/{output.name}")
            for camera, prefix in output_namespaces(own).items() for output in OUTPUT_TOPICS
        )
        nodes.append(NodePlan(name, device.strip(), tuple(own), remappings))
    return nodes


def outputs(cameras: Sequence[str], namespace: str = "") -> Dict[str, str]:
    """Each camera's output prefix (``<prefix>/labels`` etc.), whichever node serves it."""
    prefixes = output_namespaces(list(cameras))
    return {camera: resolve(prefix, namespace, NODE_NAME) for camera, prefix in prefixes.items()}


def rviz_cameras(nodes: Sequence[NodePlan], namespace: str = "",
                 params: Optional[Mapping[str, Any]] = None) -> List[CameraTopics]:
    """The cameras of every node as rviz shows them (``rviz:=true``): the
    topic the node reads (``<topic>/compressed`` with the ``compressed``
    parameter its params file section sets) and the camera's shared outputs."""
    shared = outputs([camera for node in nodes for camera in node.cameras], namespace)
    cameras = []
    for node in nodes:
        given = node_parameters(params or {}, resolve("~", namespace, node.name)).get("compressed")
        compressed = given if isinstance(given, bool) else BY_NAME["compressed"].default
        cameras += [CameraTopics(resolve(camera, namespace, node.name), shared[camera], compressed)
                    for camera in node.cameras]
    return cameras


def read_params_file(path: str) -> Dict[str, Any]:
    """A ROS 2 params file as a dict ({} for an empty file)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PlacementError(f"cannot read the params file {path}: {' '.join(str(exc).split())}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PlacementError(f"the params file {path} is not a mapping of node names to parameters")
    return data
