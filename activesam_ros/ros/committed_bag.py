"""An output rosbag2 written in committed parts, so that a stop of any kind
loses at most the frames since the last commit.

A rosbag2 writer keeps what it wrote uncommitted until it is closed (one
sqlite3 transaction; an MCAP file without its summary), and writes
``metadata.yaml`` only then: a kill, a power loss or a full disk lost
everything, or left metadata that counted messages the files never held.
Here the output is a split bag, as ``ros2 bag record`` writes one with
``--max-bag-size``: every ``commit_every`` input frames the part being
written is closed by rosbags (complete and readable on its own), moved into
place as ``<name>_<k>.db3`` / ``.mcap``, and ``metadata.yaml`` is rewritten
(through a temporary, then renamed) from the closed parts alone: their
files, their message counts, and a status that stays true if the process
dies the next moment (``partial: ... after N labelled frame(s); last input
message at bag time T ns``). A run that ends writes the status ``complete``;
one that is stopped or fails closes its current part when it can (else
drops it) and says why, so ``--start-time T+1`` continues exactly after the
last committed input message.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from rosbags.rosbag2 import Writer
from ruamel.yaml import YAML

from ..files.outputs import write_file
from .bagio import COMPLETE, LAST_INPUT_KEY, METADATA_VERSIONS, STATUS_KEY, STORAGES, BagError, partial_status

COMMIT_EVERY = 100
"""Input frames per committed part (``--commit-every``): a kill loses at most these."""

SUFFIXES = {"sqlite3": ".db3", "mcap": ".mcap"}


@dataclass(frozen=True)
class _Topic:
    name: str
    msgtype: str
    typestore: Any
    qos: Tuple[Any, ...]


@dataclass
class _Part:
    """The part being written: its rosbags writer and connections by topic."""

    folder: Path
    writer: Writer
    connections: Dict[str, Any] = field(default_factory=dict)


def _yaml() -> YAML:
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    return yaml


class CommittedBag:
    """A new rosbag2 at ``path`` (which must not exist), written in parts.

    ``add_topic`` names every output topic first; ``write`` adds a message
    to the part being written; ``frame_done(timestamp)`` marks one input
    message handled (its outputs written) and commits every
    ``commit_every`` of them; ``close(status)`` or ``stop(reason)`` end it.
    Write failures (a full disk, a file size limit) raise BagError."""

    def __init__(self, path: Path, storage: str, distro: str, custom: Dict[str, str],
                 commit_every: int = COMMIT_EVERY):
        if path.exists() or path.is_symlink():
            raise BagError(f"{path} exists already; give a new output path")
        self.path, self.storage, self.distro = path, storage, distro
        self.custom = dict(custom)
        self.commit_every = commit_every
        self.topics: Dict[str, _Topic] = {}
        self.parts: List[Dict[str, Any]] = []   # the metadata of each committed part, as rosbags wrote it
        self.frames = 0                          # labelled frames committed
        self.last: Optional[int] = None          # bag time of the last committed input message
        self._pending_frames = 0                 # labelled frames in the part being written
        self._pending_inputs = 0                 # input messages handled in it
        self._pending_last: Optional[int] = None
        self._part: Optional[_Part] = None
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise BagError(f"cannot create {path}: {exc.strerror}") from exc
        self._write_metadata(partial_status("stopped before the end", 0, None))

    # -- writing -------------------------------------------------------------

    def add_topic(self, name: str, msgtype: str, typestore: Any, qos: Tuple[Any, ...]) -> str:
        """Declare an output topic; its handle for ``write`` is its name."""
        self.topics[name] = _Topic(name, msgtype, typestore, tuple(qos))
        return name

    def write(self, topic: str, timestamp: int, data: bytes) -> None:
        part = self._part or self._open_part()
        try:
            part.writer.write(part.connections[topic], timestamp, data)
        except Exception as exc:  # sqlite3's "database or disk is full", an OSError of the MCAP writer
            raise BagError(f"cannot write {self.path}: {_reason(exc)}") from exc

    def frame_done(self, timestamp: int, labelled: bool) -> None:
        """One input message handled (``labelled``: its outputs written); commits every ``commit_every``."""
        self._pending_inputs += 1
        self._pending_frames += int(labelled)
        self._pending_last = timestamp
        if self._pending_inputs >= self.commit_every:
            self.commit()

    def commit(self) -> None:
        """Close the part being written and record it in metadata.yaml."""
        if self._part is not None:
            try:
                self._part.writer.close()
                self._adopt(self._part)
            except Exception as exc:  # a full disk while closing: the part is lost, the bag is not
                self._drop_part()
                raise BagError(f"cannot write {self.path}: {_reason(exc)}") from exc
            self._part = None
        if self._pending_last is not None:
            self.frames += self._pending_frames
            self.last = self._pending_last
        self._pending_frames = self._pending_inputs = 0
        self._pending_last = None
        self._write_metadata(partial_status("stopped before the end", self.frames, self.last))

    # -- ending --------------------------------------------------------------

    def close(self) -> None:
        """Every frame handled: commit the last part and mark the bag complete."""
        self.commit()
        self._write_metadata(COMPLETE)

    def stop(self, reason: str) -> str:
        """End early (a stop request, a failure): keep the part being written
        if it can be closed, drop it if not; metadata.yaml then says
        ``partial: <reason>``, which is returned."""
        try:
            self.commit()
        except BagError:
            pass  # the part being written is dropped; what was committed stays
        status = partial_status(reason, self.frames, self.last)
        try:
            self._write_metadata(status)
        except BagError:
            pass  # metadata.yaml of the last commit stands, and is true
        return status

    # -- parts and metadata ------------------------------------------------------

    def _open_part(self) -> _Part:
        folder = self.path / f".part_{len(self.parts)}.writing"
        writer = Writer(folder, version=METADATA_VERSIONS[self.distro], storage_plugin=STORAGES[self.storage])
        try:
            writer.open()
            part = _Part(folder, writer)
            for topic in self.topics.values():
                part.connections[topic.name] = writer.add_connection(
                    topic.name, topic.msgtype, typestore=topic.typestore, offered_qos_profiles=list(topic.qos))
        except Exception as exc:
            raise BagError(f"cannot write {self.path}: {_reason(exc)}") from exc
        self._part = part
        return part

    def _adopt(self, part: _Part) -> None:
        """Move a closed part's file into the bag and keep its metadata."""
        info = _yaml().load((part.folder / "metadata.yaml").read_text(encoding="utf-8"))
        info = info["rosbag2_bagfile_information"]
        name = f"{self.path.name}_{len(self.parts)}{SUFFIXES[self.storage]}"
        (part.folder / info["relative_file_paths"][0]).rename(self.path / name)
        shutil.rmtree(part.folder)
        info["relative_file_paths"] = [name]
        for entry in info.get("files") or []:
            entry["path"] = name
        self.parts.append(info)

    def _drop_part(self) -> None:
        part, self._part = self._part, None
        if part is not None:
            try:
                part.writer.abort()
            except Exception:  # already closed, or its file is gone: only its folder is left to remove
                pass
            shutil.rmtree(part.folder, ignore_errors=True)
        self._pending_frames = self._pending_inputs = 0
        self._pending_last = None

    def _write_metadata(self, status: str) -> None:
        marks = {STATUS_KEY: status, **({} if self.last is None else {LAST_INPUT_KEY: str(self.last)})}
        info = merged_metadata(self.parts, METADATA_VERSIONS[self.distro], self.storage, {**self.custom, **marks})
        text = io.StringIO()
        _yaml().dump({"rosbag2_bagfile_information": info}, text)
        try:
            write_file(self.path / "metadata.yaml", text.getvalue().encode("utf-8"), overwrite=True)
        except Exception as exc:
            raise BagError(f"cannot write {self.path / 'metadata.yaml'}: {_reason(exc)}") from exc


def merged_metadata(parts: List[Dict[str, Any]], version: int, storage: str,
                    custom: Dict[str, str]) -> Dict[str, Any]:
    """One bag's ``rosbag2_bagfile_information`` from the metadata rosbags
    wrote for each of its parts: files in order, counts summed per topic."""
    topics: Dict[str, Dict[str, Any]] = {}
    for part in parts:
        for entry in part["topics_with_message_count"]:
            name = entry["topic_metadata"]["name"]
            if name in topics:
                topics[name]["message_count"] += entry["message_count"]
            else:
                topics[name] = {"topic_metadata": dict(entry["topic_metadata"]),
                                "message_count": entry["message_count"]}
    counted = [p for p in parts if p["message_count"]]
    start = min((p["starting_time"]["nanoseconds_since_epoch"] for p in counted), default=0)
    end = max((p["starting_time"]["nanoseconds_since_epoch"] + p["duration"]["nanoseconds"] for p in counted),
              default=0)
    return {
        "version": version,
        "storage_identifier": storage,
        "relative_file_paths": [name for p in parts for name in p["relative_file_paths"]],
        "duration": {"nanoseconds": end - start},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": sum(p["message_count"] for p in parts),
        "topics_with_message_count": list(topics.values()),
        "compression_format": "",
        "compression_mode": "",
        "files": [entry for p in parts for entry in (p.get("files") or [])],
        "custom_data": custom,
        "ros_distro": "rosbags",
    }


def _reason(exc: BaseException) -> str:
    cause = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    text = getattr(cause, "strerror", None) or str(cause)
    return " ".join(text.split()) or type(cause).__name__
