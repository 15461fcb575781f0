"""ROS names of the node's topics, without rclpy or anything heavy.

The node, the bag processor and the launch file (which writes rviz's
config before the node starts) all place a camera's outputs by
:func:`output_namespaces`; the launch file also resolves names as rcl does
(:func:`resolve`, :func:`remap`) to know the topics the node will use.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple


def output_namespaces(topics: Sequence[str]) -> Dict[str, str]:
    """Each input topic's output prefix: ``~`` for one camera, ``~/<topic>``
    for several (``/front/image_raw`` -> ``~/front/image_raw/labels``)."""
    if len(topics) == 1:
        return {topics[0]: "~"}
    return {t: "~/" + t.strip().lstrip("~").strip("/") for t in topics}


def node_namespace(namespace: str) -> str:
    """A namespace as a node gets it: absolute, no trailing slash ("" and "/" are the root, "/")."""
    stripped = namespace.strip().strip("/")
    return "/" + stripped if stripped else "/"


def resolve(name: str, namespace: str, node: str) -> str:
    """``name`` made absolute as rcl does for node ``node`` in ``namespace``:
    ``~`` is the node's own name, a relative name goes under the namespace."""
    base = node_namespace(namespace).rstrip("/")
    if name == "~" or name.startswith("~/"):
        return f"{base}/{node}{name[1:]}"
    if name.startswith("/"):
        return name
    return f"{base}/{name}"


def remap(name: str, rules: Sequence[Tuple[str, str]], namespace: str, node: str) -> str:
    """The absolute topic a node subscribes for ``name`` under ``from:=to``
    ``rules`` (the first rule whose resolved ``from`` matches wins)."""
    resolved = resolve(name, namespace, node)
    for source, target in rules:
        if resolve(source, namespace, node) == resolved:
            return resolve(target, namespace, node)
    return resolved
