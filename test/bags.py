"""rosbag2 files for the tests, written as rosbags (Humble's and Jazzy's
``ros2 bag record`` layouts), and ``activesam bag`` run in-process."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from activesam_ros.cli import main
from activesam_ros.ros.rosbags_types import typestore

from conftest import PHOTOS, load_photo

STORE = typestore()
T = STORE.types
IMAGE, COMPRESSED, STRING = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "std_msgs/msg/String"
NEVER = QosTime(9223372036, 854775807)  # what ros2 bag record stores for an infinite duration
RECORDED_QOS = Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.VOLATILE,
                   NEVER, NEVER, QosLiveliness.AUTOMATIC, NEVER, False)

Messages = List[Tuple[str, str, int, bytes]]  # topic, type, bag timestamp (ns), CDR bytes


def header(i: int):
    stamp = T["builtin_interfaces/msg/Time"](sec=1_700_000_000 + i, nanosec=123_456 + i)
    return T["std_msgs/msg/Header"](stamp=stamp, frame_id=f"optical_{i}")


def photo(i: int, width: int, height: int) -> np.ndarray:
    small = cv2.resize(load_photo(PHOTOS[i % len(PHOTOS)]), (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small)


def raw_image(i: int, rgb: np.ndarray, encoding: str = "rgb8") -> bytes:
    pixels = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    msg = T[IMAGE](header=header(i), height=rgb.shape[0], width=rgb.shape[1], encoding=encoding,
                   is_bigendian=0, step=rgb.shape[1] * 3, data=np.ascontiguousarray(pixels).reshape(-1))
    return STORE.serialize_cdr(msg, IMAGE)


def jpeg_bytes(rgb: np.ndarray) -> np.ndarray:
    ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return jpeg.reshape(-1)


def raw_jpeg(i: int, rgb: np.ndarray) -> bytes:
    msg = T[COMPRESSED](header=header(i), format="rgb8; jpeg compressed bgr8", data=jpeg_bytes(rgb))
    return STORE.serialize_cdr(msg, COMPRESSED)


def write_bag(path: Path, storage: StoragePlugin, messages: Messages) -> None:
    """A bag as rosbags writes it (metadata version 9)."""
    with Writer(path, version=9, storage_plugin=storage) as writer:
        connections = {}
        for topic, msgtype, timestamp, data in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=STORE,
                                                           offered_qos_profiles=[RECORDED_QOS])
            writer.write(connections[topic], timestamp, data)


def read_outputs(path: Path) -> Dict[str, list]:
    """topic -> [(bag timestamp, message)] of the /activesam/ topics of a bag, in bag order."""
    out: Dict[str, list] = {}
    with Reader(path) as reader:
        for connection, timestamp, data in reader.messages():
            if connection.topic.startswith("/activesam/"):
                out.setdefault(connection.topic, []).append((timestamp, STORE.deserialize_cdr(data, connection.msgtype)))
    return out


def topic_info(path: Path) -> Dict[str, tuple]:
    """topic -> (message type, first connection) of a bag."""
    with Reader(path) as reader:
        return {topic: (info.msgtype, info.connections[0]) for topic, info in reader.topics.items()}


def run_bag(*argv: str) -> Tuple[int, str]:
    """``activesam bag ARGV``: its exit status and what it printed to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["bag", *argv])
    return code, err.getvalue()
