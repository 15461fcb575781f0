"""ROS names of the node's topics, without rclpy or anything heavy.

The node, the bag processor and the launch files (which write rviz's
config before the node starts) all place a camera's outputs by
:func:`output_namespaces`; the launch files also resolve names as rcl does
(:func:`resolve`, :func:`remap`) to know the topics the node will use.

Every camera topic a user gives (``image_topics``, ``--image-topic``,
``cameras:=``) and every namespace (``--namespace``, a launch namespace)
goes through one normalisation first (:func:`normalise`: surrounding
blanks and a trailing ``/`` dropped) and rcl's validity rules
(:func:`topic_problem`, :func:`namespace_problem`): a name ROS would refuse
is refused here with the reason, before any topic is created. Cameras are
then compared by the topic they resolve to (namespace, ``~``, relative
names: :func:`camera_problems`), and by the output namespace they get: two
spellings of one topic, or two topics whose outputs would share a
namespace, are refused with both spellings named.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

MAX_TOPIC_LENGTH = 255 - 8
"""Characters of a resolved topic name (rmw's limit: 255 less a middleware prefix)."""

_ALLOWED = re.compile(r"[A-Za-z0-9_/~]*")


def normalise(name: str) -> str:
    """A typed topic name or namespace as ROS would take it: blanks around
    it and one trailing ``/`` dropped (``/`` itself, the root, is kept)."""
    name = name.strip()
    return name[:-1] if len(name) > 1 and name.endswith("/") else name


def _shown(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:57] + "...")


def _token_problem(name: str, what: str) -> Optional[str]:
    if not _ALLOWED.fullmatch(name):
        bad = sorted({c for c in name if not _ALLOWED.fullmatch(c)})
        return (f"{what} {_shown(name)} holds {''.join(bad)!r}: ROS names take letters, digits, '_' and '/' "
                "(and '~' at the start)")
    if "//" in name:
        return f"{what} {_shown(name)} has an empty part ('//')"
    if any(token[:1].isdigit() for token in name.split("/")):
        return f"{what} {_shown(name)} has a part starting with a digit"
    return None


def topic_problem(name: str) -> Optional[str]:
    """Why the (normalised) topic name ``name`` is not one ROS takes, or None."""
    if not name:
        return "an empty topic name"
    if name.endswith("/"):
        return f"topic {_shown(name)} is a namespace, not a topic"
    if "~" in name[1:] or (name.startswith("~") and name != "~" and not name.startswith("~/")):
        return f"topic {_shown(name)}: '~' may only start a name, followed by '/'"
    return _token_problem(name, "topic")


def namespace_problem(namespace: str) -> Optional[str]:
    """Why the (normalised) namespace is not one ROS takes, or None ("" and "/" are the root)."""
    if namespace in ("", "/"):
        return None
    if "~" in namespace:
        return f"namespace {_shown(namespace)}: '~' is not allowed in a namespace"
    return _token_problem(namespace, "namespace")


def output_namespaces(topics: Sequence[str]) -> Dict[str, str]:
    """Each input topic's output prefix: ``~`` for one camera, ``~/<topic>``
    for several, the topic normalised, without ``~`` and the leading ``/``
    (``/front/image_raw`` -> ``~/front/image_raw/labels``)."""
    if len(topics) == 1:
        return {topics[0]: "~"}
    return {t: "~/" + normalise(t).lstrip("~").strip("/") for t in topics}


def camera_problems(topics: Sequence[str], namespace: str, node: str, what: str = "image_topics",
                    resolved: Optional[Dict[str, str]] = None) -> List[str]:
    """Why these camera topics cannot be served by one node ``node`` in
    ``namespace``: an invalid name, two spellings of one topic (compared as
    they resolve; ``resolved`` gives the node's own resolution, remappings
    included, where it has one), or two cameras whose outputs would share
    an output namespace. Every reason names the spellings given."""
    if not topics:
        return [f"{what} is empty: give at least one image topic"]
    problems = [f"{what}: {problem}" for problem in (topic_problem(normalise(t)) for t in topics) if problem]
    if problems:
        return problems
    problems += _clashes([(t, (resolved or {}).get(t) or resolve(normalise(t), namespace, node)) for t in topics],
                         f"{what} names one topic twice", "")
    if not problems:
        prefixes = output_namespaces(list(topics))
        problems += _clashes([(t, prefixes[t]) for t in topics], f"{what} would publish two cameras under one "
                             "output namespace", ": rename one of them")
    length = [t for t in topics if len(resolve(normalise(t), namespace, node)) > MAX_TOPIC_LENGTH]
    problems += [f"{what}: {_shown(t)} resolves to a name longer than {MAX_TOPIC_LENGTH} characters" for t in length]
    return problems


def _clashes(pairs: Sequence[Tuple[str, str]], lead: str, advice: str) -> List[str]:
    """One reason per (given, key) pair whose key an earlier pair has."""
    seen: Dict[str, str] = {}
    out = []
    for given, key in pairs:
        if key in seen:
            out.append(f"{lead}: {seen[key]!r} and {given!r} are both {key}{advice}")
        else:
            seen[key] = given
    return out


def node_namespace(namespace: str) -> str:
    """A namespace as a node gets it: absolute, no trailing slash ("" and "/" are the root, "/")."""
    stripped = normalise(namespace).strip("/")
    return "/" + stripped if stripped else "/"


def resolve(name: str, namespace: str, node: str) -> str:
    """``name`` made absolute as rcl does for node ``node`` in ``namespace``:
    ``~`` is the node's own name, a relative name goes under the namespace."""
    base = node_namespace(namespace).rstrip("/")
    name = normalise(name)
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


def camera_info_topic(depth_topic: str) -> str:
    """The CameraInfo topic beside an image topic, by image_transport's rule
    (``getCameraInfoTopic``): its last name replaced by ``camera_info``
    (``/cam/depth/image_raw`` -> ``/cam/depth/camera_info``, ``depth`` -> ``camera_info``)."""
    name = normalise(depth_topic)
    head, _, _ = name.rpartition("/")
    return f"{head}/camera_info" if head or name.startswith("/") else "camera_info"


def depth_topics(given: Optional[Sequence[str]], cameras: Sequence[str]) -> Dict[str, str]:
    """Each camera's depth topic ('' = none) from the ``depth_topics`` parameter (unset: none)."""
    listed = [normalise(t) for t in (given or ()) if t.strip()]
    if not listed:
        return {camera: "" for camera in cameras}
    return {camera: normalise(topic) for camera, topic in zip(cameras, given)}


def depth_problems(given: Optional[Sequence[str]], cameras: Sequence[str], what: str = "depth_topics") -> List[str]:
    """Why ``depth_topics`` cannot pair with these cameras: a count that is
    not one per camera, an invalid name, a depth topic that is a camera's image topic."""
    if not [t for t in (given or ()) if t.strip()]:
        return []
    if len(given) != len(cameras):
        return [f"{what} has {len(given)} entries for {len(cameras)} camera(s) of image_topics: give one per "
                "camera, in order ('' for a camera without depth)"]
    problems = [f"{what}: {problem}" for problem in (topic_problem(normalise(t)) for t in given if t.strip())
                if problem]
    images = {normalise(c) for c in cameras}
    problems += [f"{what}: {t!r} is an image topic of image_topics" for t in given if normalise(t) in images]
    return problems
