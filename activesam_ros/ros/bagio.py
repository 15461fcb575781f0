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
import io
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path, PurePath
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin
from rosbags.typesys.store import Typestore  # noqa: F401 - for the bag command's annotations
from ruamel.yaml import YAML

from ..engine.limits import MAX_BAG_METADATA_BYTES, MAX_IMAGE_BYTES, InputError
from ..engine.paths import check_regular, read_regular
from ..files.inflate import InflateError, disk_room, inflate_file, inflate_zstd
from .imgconv import compressed_to_rgb, image_to_rgb
from .names import camera_info_topic, output_namespaces
from .node_params import BY_NAME, NODE_NAME
from .topics import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, camera_name

DECODERS: Dict[str, Callable[[Any], Any]] = {IMAGE: image_to_rgb, COMPRESSED_IMAGE: compressed_to_rgb}
"""The input types, and how each becomes RGB pixels (as in the node)."""

STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
METADATA_VERSIONS = {"humble": 8, "jazzy": 9}
BAG_FILE_SUFFIXES = (".db3", ".mcap")

NODE_NAMESPACE = "/" + NODE_NAME
"""The node's private namespace ``~`` under its default name."""


class BagError(Exception):
    """A bag that cannot be read or written as asked; the message says why."""


class BagInputError(BagError, InputError):
    """An input bag's file that is not what a bag's files are (a FIFO, too large)."""


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


class InputBag:
    """An input bag open for reading: its rosbags Reader, and what reading
    it needs from us. A compressed bag is read through a private view
    (:func:`open_bag`); ``inflate`` gives a message's CDR bytes, inflated
    within ``MAX_IMAGE_BYTES`` when the bag compresses each message."""

    def __init__(self, path: Path, reader: Reader, view: Optional[Path] = None, inflates: bool = False):
        self.path, self.reader, self.view, self.inflates = path, reader, view, inflates

    @property
    def topics(self) -> Dict[str, Any]:
        return self.reader.topics

    @property
    def end_time(self) -> int:
        """Bag time (ns) just after its last message (0 for an empty bag)."""
        return self.reader.end_time

    def messages(self, connections: Sequence[Connection], start: Optional[int] = None) -> Iterator[Any]:
        return self.reader.messages(connections=connections, start=start)

    def inflate(self, data: bytes, timestamp: int) -> bytes:
        if not self.inflates:
            return data
        return inflate_zstd(data, MAX_IMAGE_BYTES, f"the message at bag time {timestamp} ns")

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            if self.view is not None:
                shutil.rmtree(self.view, ignore_errors=True)


def _metadata(path: Path) -> Dict[str, Any]:
    """A bag folder's rosbag2_bagfile_information, its storage files checked to be regular files."""
    meta = path / "metadata.yaml"
    if not os.path.lexists(meta):
        raise BagError(f"{path}: no metadata.yaml, so not a rosbag2 directory "
                       "(to read a lone .db3 or .mcap file, give the file itself)")
    text = read_regular(meta, MAX_BAG_METADATA_BYTES, str(meta), BagInputError)
    try:
        info = YAML(typ="safe").load(text.decode("utf-8"))["rosbag2_bagfile_information"]
        names = [PurePath(str(name)).name for name in info["relative_file_paths"]]
    except Exception as exc:  # YAML, encoding and layout errors mean the same to the user
        raise BagError(f"{path}: not a readable rosbag2: {_one_line(exc)}") from None
    for name in names:
        check_regular(path / name, f"{path}: its file {name}", BagInputError)
    return info


def _view(path: Path, info: Dict[str, Any], mode: str) -> Path:
    """A private folder rosbags reads a compressed bag from without inflating
    anything itself: metadata.yaml saying "uncompressed", and each storage
    file linked (message compression: messages are inflated one by one,
    bounded) or inflated within the free room of the temporary folder
    (file compression)."""
    view = Path(tempfile.mkdtemp(prefix="activesam_bag_"))
    try:
        names = []
        for name in (PurePath(str(n)).name for n in info["relative_file_paths"]):
            if mode == "file":
                plain = name[: -len(".zstd")] if name.endswith(".zstd") else name
                inflate_file(path / name, view / plain, "zstd", disk_room(view), f"{path / name}")
            else:
                plain = name
                (view / plain).symlink_to((path / name).resolve())
            names.append(plain)
        rewritten = dict(info, relative_file_paths=names, compression_mode="", compression_format="")
        rewritten["files"] = [dict(entry, path=names[i]) if i < len(names) else entry
                              for i, entry in enumerate(info.get("files") or [])]
        text = io.StringIO()
        YAML(typ="safe").dump({"rosbag2_bagfile_information": rewritten}, text)
        (view / "metadata.yaml").write_text(text.getvalue(), encoding="utf-8")
    except InflateError as exc:
        shutil.rmtree(view, ignore_errors=True)
        raise BagError(f"{exc} (file-compressed bags are inflated into {tempfile.gettempdir()}; "
                       "set TMPDIR to a folder with more room)" if "limit" in str(exc) else str(exc)) from None
    except BaseException:
        shutil.rmtree(view, ignore_errors=True)
        raise
    return view


def open_bag(path: Path) -> InputBag:
    """The bag at ``path`` (a directory with metadata.yaml, or a .db3/.mcap
    file) open for reading. Every file it reads must be a regular file (a
    FIFO would block for ever); a zstd-compressed bag is read through a
    view (:func:`_view`) so that nothing inflates without a bound."""
    if not os.path.lexists(path):
        raise BagError(f"{path}: no such file or directory")
    view, inflates = None, False
    if path.is_dir():
        info = _metadata(path)
        mode = str(info.get("compression_mode") or "").lower()
        if mode in ("file", "message"):
            if str(info.get("compression_format") or "") != "zstd":
                raise BagError(f"{path}: compression format {info.get('compression_format')!r} is not supported "
                               "(rosbag2 compresses with zstd)")
            view, inflates = _view(path, info, mode), mode == "message"
    else:
        if path.suffix not in BAG_FILE_SUFFIXES:
            raise BagError(f"{path}: not a rosbag2 (a directory with metadata.yaml, or a .db3 or .mcap file)")
        check_regular(path, str(path), BagInputError)
    try:
        reader = Reader(view or path)
        reader.open()
    except Exception as exc:  # any failure to parse foreign files means the same to the user
        if view is not None:
            shutil.rmtree(view, ignore_errors=True)
        raise BagError(f"{path}: not a readable rosbag2: {_one_line(exc)}") from exc
    return InputBag(path, reader, view, inflates)


def storage_of(path: Path) -> str:
    """The storage format of a bag: "mcap" when its files are MCAP, else "sqlite3"."""
    files = path.iterdir() if path.is_dir() else [path]
    return "mcap" if any(".mcap" in f.suffixes for f in files) else "sqlite3"


def image_connections(bag: InputBag, topics: Sequence[str]) -> Dict[str, List[Connection]]:
    """The connections of each requested topic, checked to be of an image type."""
    available = bag.topics
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


def node_root(namespace: str = NODE_NAMESPACE) -> str:
    """What the node's ``~`` is in a bag: ``namespace``, absolute, without a trailing ``/``."""
    return ("/" + namespace.strip("/")).rstrip("/")


DEPTH_TYPES = {IMAGE: "depth image", CAMERA_INFO: "camera info"}


def depth_connections(bag: InputBag, depth_topics: Sequence[str]) -> None:
    """Check that each depth topic, and the camera_info topic beside it, is in the bag with its type."""
    available = bag.topics
    for depth in depth_topics:
        for topic, msgtype in ((depth, IMAGE), (camera_info_topic(depth), CAMERA_INFO)):
            if topic not in available:
                raise BagError(f"{DEPTH_TYPES[msgtype]} topic {topic} is not in the bag (its {msgtype} topics: "
                               f"{', '.join(sorted(t for t, i in available.items() if i.msgtype == msgtype)) or 'none'})")
            if available[topic].msgtype != msgtype:
                raise BagError(f"topic {topic} is of type {available[topic].msgtype or 'several types'}, not {msgtype}")


def output_prefixes(msgtypes: Mapping[str, str], namespace: str = NODE_NAMESPACE) -> Dict[str, str]:
    """Each input topic's output prefix, named as the node names its publishers
    (``names.output_namespaces``) with ``~`` = ``namespace``."""
    cameras = {topic: camera_name(topic, msgtype) for topic, msgtype in msgtypes.items()}
    if len(set(cameras.values())) < len(cameras):
        raise BagError(f"topics {', '.join(cameras)} are one camera "
                       "(raw and compressed); give one of them")
    root = node_root(namespace)
    prefixes = output_namespaces(list(cameras.values()))
    return {topic: root + prefixes[camera][1:] for topic, camera in cameras.items()}


def messages(bag: InputBag, connections: Sequence[Connection],
             start: Optional[int] = None) -> Iterator[Tuple[Connection, int, bytes]]:
    """(connection, bag timestamp in ns, raw bytes: ``bag.inflate`` them) in
    timestamp order, from bag time ``start`` on; a failure to read raises BagError."""
    stream = bag.messages(connections, start=start)
    count = 0
    while True:
        try:
            item = next(stream)
        except StopIteration:
            return
        except Exception as exc:  # a damaged file fails in whichever parser reaches the damage
            raise BagError(f"{bag.path}: unreadable after {count} message(s): {_one_line(exc)}") from exc
        count += 1
        yield item


STATUS_KEY = "activesam.status"
"""custom_data key of every output bag: COMPLETE, or 'partial: ...' saying why and where it stopped."""
LAST_INPUT_KEY = "activesam.last_input"
"""custom_data key: bag time (ns) of the last input message whose outputs the bag holds."""
COMPLETE = "complete"


def partial_status(reason: str, frames: int, last: Optional[int]) -> str:
    where = "" if last is None else f"; last input message at bag time {last} ns"
    return f"partial: {reason} after {frames} labelled frame(s){where}"


def _custom_data(path: Path) -> Dict[str, Any]:
    try:  # ruamel.yaml: what rosbags itself reads metadata.yaml with
        text = read_regular(path / "metadata.yaml", MAX_BAG_METADATA_BYTES, str(path), BagInputError)
        return dict(YAML(typ="safe").load(text.decode("utf-8"))["rosbag2_bagfile_information"]["custom_data"])
    except Exception:  # not a bag, or one without readable metadata
        return {}


def status_of(path: Path) -> Optional[str]:
    """The STATUS_KEY of an existing output bag, None if it has none (or is no bag)."""
    return _custom_data(path).get(STATUS_KEY)


def resume_advice(out: Path, last: Optional[int]) -> str:
    """How to go on from a partial output bag whose last input message is ``last``."""
    redo = f"remove it (rm -r {out}) and run again to redo it"
    if last is None:
        return redo
    return (f"continue into a new output with --start-time {last + 1} (this one holds every input message up "
            f"to bag time {last} ns), or {redo}")


def check_new_output(out: Path, source: Path) -> None:
    """Refuse an output path that exists (saying whether it is an earlier
    partial run, and how to go on from it) or that lies inside the input bag."""
    if out.exists() or out.is_symlink():
        custom = _custom_data(out)
        status = custom.get(STATUS_KEY)
        if status and str(status).startswith("partial"):
            last = custom.get(LAST_INPUT_KEY)
            last = int(last) if str(last).isdigit() else None
            raise BagError(f"{out} is the output of an earlier run that did not finish ({status}): "
                           f"{resume_advice(out, last)}")
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
