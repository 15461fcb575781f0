"""rosbag2 in and out for ``activesam bag``, with rosbags (no ROS install needed).

Reads what ``ros2 bag record`` writes on Humble (metadata version 5/6,
sqlite3, QoS as a YAML string) and on Jazzy (version 8/9, sqlite3 or MCAP,
QoS as a YAML string or list, type description hashes), split bags, zstd
compressed bags, and a lone ``.db3`` / ``.mcap`` file. Writes metadata
version 8 for Humble (its rosbag2 reads the offered QoS only as a YAML
string) and 9 for Jazzy (what Jazzy itself writes); every topic carries its
message definition, so rviz, Foxglove and ``ros2 bag`` can read it.

Problems with the user's files raise :class:`BagError`, one line each.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys.store import Typestore  # noqa: F401 - for the bag command's annotations
from ruamel.yaml import YAML

from .imgconv import compressed_to_rgb, image_to_rgb
from .names import output_namespaces
from .node_params import BY_NAME, NODE_NAME
from .topics import COMPRESSED_IMAGE, IMAGE, camera_name

DECODERS: Dict[str, Callable[[Any], Any]] = {IMAGE: image_to_rgb, COMPRESSED_IMAGE: compressed_to_rgb}
"""The input types, and how each becomes RGB pixels (as in the node)."""

STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
METADATA_VERSIONS = {"humble": 8, "jazzy": 9}
BAG_FILE_SUFFIXES = (".db3", ".mcap")

NODE_NAMESPACE = "/" + NODE_NAME
"""The node's private namespace ``~`` under its default name."""


class BagError(Exception):
    """A bag that cannot be read or written as asked; the message says why."""


def _one_line(exc: BaseException) -> str:
    """A parser's message on one line (YAML errors point at the text over several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _qos(durability: QosDurability, depth: int) -> Qos:
    """A reliable keep-last profile; zero durations mean the ROS defaults, as in the node."""
    unset = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, durability, unset, unset,
               QosLiveliness.SYSTEM_DEFAULT, unset, False)


OUTPUT_QOS = _qos(QosDurability.VOLATILE, BY_NAME["output_depth"].default)
LATCHED_QOS = _qos(QosDurability.TRANSIENT_LOCAL, 1)
"""label_info's profile: ``ros2 bag play`` then offers it to late subscribers, like the node."""


def open_bag(path: Path) -> Reader:
    """An open Reader of the bag at ``path`` (a directory with metadata.yaml, or a .db3/.mcap file)."""
    if not path.exists():
        raise BagError(f"{path}: no such file or directory")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise BagError(f"{path}: no metadata.yaml, so not a rosbag2 directory "
                       "(to read a lone .db3 or .mcap file, give the file itself)")
    if path.is_file() and path.suffix not in BAG_FILE_SUFFIXES:
        raise BagError(f"{path}: not a rosbag2 (a directory with metadata.yaml, or a .db3 or .mcap file)")
    reader = Reader(path)
    try:
        reader.open()
    except Exception as exc:  # any failure to parse foreign files means the same to the user
        raise BagError(f"{path}: not a readable rosbag2: {_one_line(exc)}") from exc
    return reader


def storage_of(path: Path) -> str:
    """The storage format of a bag: "mcap" when its files are MCAP, else "sqlite3"."""
    files = path.iterdir() if path.is_dir() else [path]
    return "mcap" if any(".mcap" in f.suffixes for f in files) else "sqlite3"


def image_connections(reader: Reader, topics: Sequence[str]) -> Dict[str, List[Connection]]:
    """The connections of each requested topic, checked to be of an image type."""
    available = reader.topics
    images = sorted(t for t, info in available.items() if info.msgtype in DECODERS)
    out = {}
    for topic in topics:
        if topic not in available:
            listed = ", ".join(images) if images else "none"
            raise BagError(f"topic {topic} is not in the bag (its image topics: {listed})")
        msgtype = available[topic].msgtype
        if msgtype not in DECODERS:
            raise BagError(f"topic {topic} is of type {msgtype or 'several types'}, "
                           f"not {IMAGE} or {COMPRESSED_IMAGE}")
        out[topic] = available[topic].connections
    return out


def output_prefixes(msgtypes: Mapping[str, str], namespace: str = NODE_NAMESPACE) -> Dict[str, str]:
    """Each input topic's output prefix, named as the node names its publishers
    (``names.output_namespaces``) with ``~`` = ``namespace``."""
    cameras = {topic: camera_name(topic, msgtype) for topic, msgtype in msgtypes.items()}
    if len(set(cameras.values())) < len(cameras):
        raise BagError(f"topics {', '.join(cameras)} are one camera "
                       "(raw and compressed); give one of them")
    root = ("/" + namespace.strip("/")).rstrip("/")
    prefixes = output_namespaces(list(cameras.values()))
    return {topic: root + prefixes[camera][1:] for topic, camera in cameras.items()}


def messages(reader: Reader, connections: Sequence[Connection],
             start: Optional[int] = None) -> Iterator[Tuple[Connection, int, bytes]]:
    """(connection, bag timestamp in ns, CDR bytes) in timestamp order, from
    bag time ``start`` on; a failure to read raises BagError."""
    stream = reader.messages(connections=connections, start=start)
    count = 0
    while True:
        try:
            item = next(stream)
        except StopIteration:
            return
        except Exception as exc:  # a damaged file fails in whichever parser reaches the damage
            raise BagError(f"{reader.path}: unreadable after {count} message(s): {_one_line(exc)}") from exc
        count += 1
        yield item


STATUS_KEY = "activesam.status"
"""custom_data key of every output bag: COMPLETE, or 'partial: ...' saying why and where it stopped."""
COMPLETE = "complete"


def partial_status(reason: str, frames: int, last: Optional[int]) -> str:
    where = "" if last is None else f"; last input message at bag time {last} ns"
    return f"partial: {reason} after {frames} labelled frame(s){where}"


def status_of(path: Path) -> Optional[str]:
    """The STATUS_KEY of an existing output bag, None if it has none (or is no bag)."""
    try:  # ruamel.yaml: what rosbags itself reads metadata.yaml with
        info = YAML(typ="safe").load((path / "metadata.yaml").read_text(encoding="utf-8"))
        return info["rosbag2_bagfile_information"]["custom_data"][STATUS_KEY]
    except Exception:  # not a bag, or one without readable metadata
        return None


def check_new_output(out: Path, source: Path) -> None:
    """Refuse an output path that exists (saying whether it is an earlier
    partial run) or that lies inside the input bag."""
    if out.exists() or out.is_symlink():
        status = status_of(out)
        if status and status.startswith("partial"):
            raise BagError(f"{out} is the output of an earlier run that did not finish ({status}); "
                           f"remove it (rm -r {out}) to redo, or give a new output path (with --start-time "
                           "to continue after its last input message)")
        raise BagError(f"{out} exists already; give a new output path")
    source_dir = source.resolve() if source.is_dir() else source.resolve().parent
    target = out.resolve()
    if source.is_dir() and (target == source_dir or target.is_relative_to(source_dir)):
        raise BagError(f"{out} is inside the input bag {source}; give an output path outside it")


def orphan_messages(path: Path) -> int:
    """Messages of an uncompressed sqlite3 bag whose topic id names no topic:
    no reader returns them, so they are counted here to be reported."""
    files = sorted(path.glob("*.db3")) if path.is_dir() else [path] if path.suffix == ".db3" else []
    count = 0
    for file in files:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{file}?mode=ro", uri=True)) as db:
                count += db.execute("SELECT COUNT(*) FROM messages WHERE topic_id NOT IN "
                                    "(SELECT id FROM topics)").fetchone()[0]
        except sqlite3.Error:  # not sqlite (compressed, damaged): the reader has said so already
            continue
    return count


def create_writer(path: Path, storage: str, distro: str) -> Writer:
    """An open Writer of a new bag; it never replaces an existing path."""
    if path.exists() or path.is_symlink():
        raise BagError(f"{path} exists already; give a new output path")
    writer = Writer(path, version=METADATA_VERSIONS[distro], storage_plugin=STORAGES[storage])
    try:
        writer.open()
    except OSError as exc:
        raise BagError(f"cannot create {path}: {exc.strerror}") from exc
    return writer
