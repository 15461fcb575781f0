"""``activesam bag``: rosbag2 in (as rosbags, Humble's and Jazzy's ``ros2 bag
record`` write it), the node's topics out, every error path one line and
exit status 2."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest
from rosbags.interfaces import QosDurability, QosHistory
from rosbags.rosbag2 import Reader, StoragePlugin

from activesam_ros.render.palette import class_colors
from activesam_ros.ros import bagio

from bags import (
    COMPRESSED,
    IMAGE,
    RECORDED_QOS,
    STORE,
    STRING,
    T,
    header,
    jpeg_bytes,
    photo,
    raw_image,
    raw_jpeg,
    read_outputs,
    run_bag,
    topic_info,
    write_bag,
)


def stamp_of(head) -> tuple:
    return head.stamp.sec, head.stamp.nanosec, head.frame_id


def as_pixels(msg) -> np.ndarray:
    channels = {"mono8": 1, "rgb8": 3}[msg.encoding]
    return np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width, channels)


@pytest.fixture(scope="module")
def shared_tiny(tiny_model):
    """``--model tiny`` gets the session's tiny SAM 3 (224 px) instead of building one per run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("activesam_ros.engine.model.build_tiny_sam3", lambda seed=0: tiny_model)
        yield


# -- two cameras, raw and compressed, from a sqlite3 bag ----------------------------------

CAM_A, CAM_B = "/cam_a/image_raw", "/cam_b/image_raw/compressed"


@pytest.fixture(scope="module")
def pictures() -> Dict[str, np.ndarray]:
    """Two 64 x 48 frames of camera A, two 80 x 60 of camera B."""
    return {"a0": photo(0, 64, 48), "a1": photo(1, 64, 48), "b0": photo(2, 80, 60), "b1": photo(3, 80, 60)}


@pytest.fixture(scope="module")
def two_camera_bag(tmp_path_factory, pictures) -> Path:
    path = tmp_path_factory.mktemp("in") / "two_cameras"
    a0, a1, b0, b1 = (pictures[k] for k in ("a0", "a1", "b0", "b1"))
    write_bag(path, StoragePlugin.SQLITE3, [
        (CAM_A, IMAGE, 5_000_000_000, raw_image(0, a0)),
        (CAM_B, COMPRESSED, 5_050_000_000, raw_jpeg(1, b0)),
        ("/chatter", STRING, 5_060_000_000, STORE.serialize_cdr(T[STRING](data="hi"), STRING)),
        (CAM_A, IMAGE, 5_100_000_000, raw_image(2, a1, "bgr8")),
        (CAM_B, COMPRESSED, 5_150_000_000, raw_jpeg(3, b1)),
        (CAM_A, IMAGE, 5_200_000_000, raw_image(4, a0, "yuv444")),  # an encoding nobody decodes
        (CAM_A, IMAGE, 5_300_000_000, b"\x00\x01\x00\x00\x07"),     # not an Image at all
    ])
    return path


@pytest.fixture(scope="module")
def two_camera_run(two_camera_bag, shared_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "segmented"
    # Overlay alpha 0: the overlay is then exactly the decoded input, which pins the colour order.
    code, err = run_bag(str(two_camera_bag), str(out), "--image-topic", CAM_A, "--image-topic", CAM_B,
                        "--vocab", "person; car; dog", "--model", "tiny", "--include-input", "--publish-confidence",
                        "--overlay-alpha", "0", "--no-overlay-legend")
    return code, out, err


@pytest.mark.slow
def test_two_cameras_get_the_node_topics_under_their_own_namespace(two_camera_run):
    code, out, err = two_camera_run
    assert code == 0, err
    info = topic_info(out)
    expected = {}
    for prefix in ("/activesam/cam_a/image_raw", "/activesam/cam_b/image_raw"):  # /compressed dropped, as the node
        expected.update({f"{prefix}/labels": IMAGE, f"{prefix}/color_labels": IMAGE, f"{prefix}/overlay": IMAGE,
                         f"{prefix}/confidence": IMAGE, f"{prefix}/instances": IMAGE,
                         f"{prefix}/detections": "vision_msgs/msg/Detection2DArray",
                         f"{prefix}/label_info": "vision_msgs/msg/LabelInfo",
                         f"{prefix}/active_classes": "vision_msgs/msg/Classification",
                         f"{prefix}/label_source": "sensor_msgs/msg/TimeReference"})
    expected.update({CAM_A: IMAGE, CAM_B: COMPRESSED})  # --include-input
    assert {topic: msgtype for topic, (msgtype, _) in info.items()} == expected
    # Message definitions travel with the bag, so viewers need no vision_msgs install.
    assert "VisionClass[] class_map" in info["/activesam/cam_a/image_raw/label_info"][1].msgdef.data
    qos = {topic: conn.ext.offered_qos_profiles for topic, (_, conn) in info.items()}
    assert qos["/activesam/cam_a/image_raw/label_info"][0].durability == QosDurability.TRANSIENT_LOCAL
    assert qos["/activesam/cam_a/image_raw/labels"][0].durability == QosDurability.VOLATILE
    assert qos[CAM_A] == [RECORDED_QOS]
    metadata = (out / "metadata.yaml").read_text()
    assert "version: 8" in metadata and "storage_identifier: sqlite3" in metadata  # Humble reads v8
    assert "activesam.vocabulary" in metadata


@pytest.mark.slow
def test_one_output_per_good_frame_with_the_input_header_and_time(two_camera_run, two_camera_bag, pictures):
    _, out, _ = two_camera_run
    written = read_outputs(out)
    good = {CAM_A: [(5_000_000_000, 0, pictures["a0"]), (5_100_000_000, 2, pictures["a1"])],
            CAM_B: [(5_050_000_000, 1, pictures["b0"]), (5_150_000_000, 3, pictures["b1"])]}
    for topic, prefix in ((CAM_A, "/activesam/cam_a/image_raw"), (CAM_B, "/activesam/cam_b/image_raw")):
        frames = good[topic]
        for name in ("labels", "color_labels", "overlay", "confidence", "active_classes"):
            got = written[f"{prefix}/{name}"]
            assert [t for t, _ in got] == [t for t, _, _ in frames], name
            assert [stamp_of(m.header) for _, m in got] == [stamp_of(header(i)) for _, i, _ in frames], name
        for (_, labels), (_, overlay), (_, confidence), (_, i, rgb) in zip(
                written[f"{prefix}/labels"], written[f"{prefix}/overlay"], written[f"{prefix}/confidence"], frames):
            assert (labels.encoding, labels.height, labels.width) == ("mono8", *rgb.shape[:2])
            assert as_pixels(labels).max() <= 2
            assert (overlay.encoding, confidence.encoding) == ("rgb8", "32FC1")
            expected = rgb if topic == CAM_A else cv2.imdecode(jpeg_bytes(rgb), cv2.IMREAD_COLOR)[:, :, ::-1]
            np.testing.assert_array_equal(as_pixels(overlay), expected)  # bgr8 and JPEG come out RGB
        for (_, labels), (_, colours) in zip(written[f"{prefix}/labels"], written[f"{prefix}/color_labels"]):
            assert colours.encoding == "rgb8"
            np.testing.assert_array_equal(as_pixels(colours), class_colors(3)[as_pixels(labels)[..., 0]])
        for _, classification in written[f"{prefix}/active_classes"]:  # 3 classes: all decoded every frame
            assert sorted(h.class_id for h in classification.results) == ["0", "1", "2"]
        [(info_time, info)] = written[f"{prefix}/label_info"]
        assert info_time == frames[0][0] and stamp_of(info.header) == stamp_of(header(frames[0][1]))
        assert [(c.class_id, c.class_name) for c in info.class_map] == [(0, "person"), (1, "car"), (2, "dog")]
        assert info.threshold == pytest.approx(0.3)
    # Every input message is copied, undecodable ones too, byte for byte and at its time.
    with Reader(two_camera_bag) as original, Reader(out) as copied:
        def raw(reader, topic):
            return [(t, bytes(d)) for c, t, d in reader.messages() if c.topic == topic]
        for topic in (CAM_A, CAM_B):
            assert raw(copied, topic) == raw(original, topic)


@pytest.mark.slow
def test_bad_frames_are_skipped_counted_and_reported(two_camera_run):
    code, _, err = two_camera_run
    assert code == 0
    assert err.count("skipping frames of /cam_a/image_raw") == 1
    assert ("/cam_a/image_raw -> /activesam/cam_a/image_raw/*: 2 frame(s) segmented (2 refreshed, 0 with a "
            "preview), 0 labelled by propagation, 2 skipped (first: unsupported image encoding 'yuv444')") in err
    assert "/cam_b/image_raw/compressed -> /activesam/cam_b/image_raw/*: 2 frame(s) segmented" in err
    assert "skipped" not in err.split("/cam_b/image_raw/compressed ->")[1].splitlines()[0]


# -- one camera, MCAP, as Jazzy's ros2 bag record writes it -------------------------------

def jazzy_metadata(file_name: str, topic: str, msgtype: str, timestamps: List[int]) -> str:
    """metadata.yaml in the layout Jazzy's ros2 bag record writes (version 9, QoS as a list)."""
    start, duration = timestamps[0], timestamps[-1] - timestamps[0]
    never = "sec: 9223372036\n              nsec: 854775807"
    return f"""rosbag2_bagfile_information:
  version: 9
  storage_identifier: mcap
  duration:
    nanoseconds: {duration}
  starting_time:
    nanoseconds_since_epoch: {start}
  message_count: {len(timestamps)}
  topics_with_message_count:
    - topic_metadata:
        name: {topic}
        type: {msgtype}
        serialization_format: cdr
        offered_qos_profiles:
          - history: keep_last
            depth: 10
            reliability: reliable
            durability: volatile
            deadline:
              {never}
            lifespan:
              {never}
            liveliness: automatic
            liveliness_lease_duration:
              {never}
            avoid_ros_namespace_conventions: false
        type_description_hash: {STORE.hash_rihs01(msgtype)}
      message_count: {len(timestamps)}
  compression_format: ""
  compression_mode: ""
  relative_file_paths:
    - {file_name}
  files:
    - path: {file_name}
      starting_time:
        nanoseconds_since_epoch: {start}
      duration:
        nanoseconds: {duration}
      message_count: {len(timestamps)}
  custom_data: ~
  ros_distro: jazzy
"""


def jazzy_bag(path: Path, topic: str, frames: List[bytes], timestamps: List[int]) -> Path:
    """An MCAP bag whose metadata.yaml is written by hand the way Jazzy writes it."""
    write_bag(path, StoragePlugin.MCAP, [(topic, IMAGE, t, f) for t, f in zip(timestamps, frames)])
    recorded = "rosbag2_2024_06_01-12_00_00_0.mcap"
    (path / f"{path.name}.mcap").rename(path / recorded)
    (path / "metadata.yaml").write_text(jazzy_metadata(recorded, topic, IMAGE, timestamps))
    return path


@pytest.mark.slow
def test_reused_active_set_between_previews_on_a_jazzy_mcap_bag(shared_tiny, tmp_path):
    times = [7_000_000_000 + 33_000_000 * i for i in range(4)]
    source = jazzy_bag(tmp_path / "jazzy", "/camera/image_raw",
                       [raw_image(i, photo(i, 64, 48)) for i in range(4)], times)
    out = tmp_path / "out"
    # 12 queries > max_active 4: the preview picks the active set, reused on the frames between.
    code, err = run_bag(str(source), str(out), "--image-topic", "/camera/image_raw", "--model", "tiny",
                        "--vocab", "person; car; dog; cat; tree; road; sky; building; chair; table; wall; floor",
                        "--max-active", "4", "--refresh-interval", "3", "--refresh-period", "0",
                        "--scene-change-threshold", "0", "--stale-score-drop", "0",
                        "--distro", "jazzy", "--no-publish-overlay", "--no-publish-color-labels",
                        "--no-publish-detections", "--no-publish-instances")
    assert code == 0, err
    assert ("/camera/image_raw -> /activesam/*: 4 frame(s) segmented (2 refreshed, 2 with a preview), "
            "0 labelled by propagation") in err  # frames 0 and 3
    assert set(topic_info(out)) == {"/activesam/labels", "/activesam/label_info", "/activesam/active_classes",
                                    "/activesam/label_source"}
    assert [p.suffix for p in out.iterdir() if p.name != "metadata.yaml"] == [".mcap"]  # the input's storage
    assert "version: 9" in (out / "metadata.yaml").read_text()
    active = [sorted(h.class_id for h in m.results) for _, m in read_outputs(out)["/activesam/active_classes"]]
    assert all(1 <= len(a) <= 4 for a in active)
    assert set(active[1]) <= set(active[0])  # frame 1 decodes what won pixels of frame 0's preview selection
    assert [t for t, _ in read_outputs(out)["/activesam/labels"]] == times


# -- one camera, sqlite3, as Humble's ros2 bag record writes it ---------------------------

HUMBLE_QOS = ("- history: 3\n  depth: 0\n  reliability: 1\n  durability: 2\n  deadline:\n    sec: 9223372036\n"
              "    nsec: 854775807\n  lifespan:\n    sec: 9223372036\n    nsec: 854775807\n  liveliness: 1\n"
              "  liveliness_lease_duration:\n    sec: 9223372036\n    nsec: 854775807\n"
              "  avoid_ros_namespace_conventions: false")


def humble_bag(path: Path, topic: str, frame: bytes, timestamp: int) -> Path:
    """A bag as Humble writes it: sqlite3 schema 3 (no message definitions), metadata version 5,
    offered QoS as a YAML string of numbers."""
    path.mkdir()
    name = "rosbag2_2023_05_01-12_00_00_0.db3"
    with contextlib.closing(sqlite3.connect(path / name)) as db:
        db.executescript("""
            CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
            INSERT INTO schema VALUES (3, 'humble');
            CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL, metadata TEXT NOT NULL);
            CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                                serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);
            CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, timestamp INTEGER NOT NULL,
                                  data BLOB NOT NULL);
            CREATE INDEX timestamp_idx ON messages (timestamp ASC);""")
        db.execute("INSERT INTO topics VALUES (1, ?, ?, 'cdr', ?)", (topic, IMAGE, HUMBLE_QOS))
        db.execute("INSERT INTO messages VALUES (1, 1, ?, ?)", (timestamp, frame))
        db.commit()
    (path / "metadata.yaml").write_text(f"""rosbag2_bagfile_information:
  version: 5
  storage_identifier: sqlite3
  duration:
    nanoseconds: 0
  starting_time:
    nanoseconds_since_epoch: {timestamp}
  message_count: 1
  topics_with_message_count:
    - topic_metadata:
        name: {topic}
        type: {IMAGE}
        serialization_format: cdr
        offered_qos_profiles: {json.dumps(HUMBLE_QOS)}
      message_count: 1
  compression_format: ""
  compression_mode: ""
  relative_file_paths:
    - {name}
  files:
    - path: {name}
      starting_time:
        nanoseconds_since_epoch: {timestamp}
      duration:
        nanoseconds: 0
      message_count: 1
""")
    return path


@pytest.mark.slow
def test_humble_sqlite3_bag_converted_to_mcap(shared_tiny, tmp_path, pictures):
    source = humble_bag(tmp_path / "humble", "/front/image", raw_image(0, pictures["a0"]), 9_000_000_000)
    out = tmp_path / "out"
    code, err = run_bag(str(source), str(out), "--image-topic", "/front/image", "--vocab", "person; car",
                        "--model", "tiny", "--storage", "mcap", "--include-input")
    assert code == 0, err
    [(timestamp, labels)] = read_outputs(out)["/activesam/labels"]
    assert timestamp == 9_000_000_000 and stamp_of(labels.header) == stamp_of(header(0))
    assert (labels.height, labels.width) == pictures["a0"].shape[:2]
    assert any(p.suffix == ".mcap" for p in out.iterdir())
    recorded_qos = topic_info(out)["/front/image"][1].ext.offered_qos_profiles
    assert recorded_qos[0].history == QosHistory.UNKNOWN and recorded_qos[0].depth == 0  # as recorded


# -- errors: one line, exit status 2, nothing written -------------------------------------

def truncated_copy(bag: Path, into: Path) -> Path:
    copy = into / "truncated"
    shutil.copytree(bag, copy)
    [data] = [p for p in copy.iterdir() if p.suffix in (".db3", ".mcap")]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    return copy


def garbage_metadata(into: Path) -> Path:
    bag = into / "garbage"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [1, 2\n")
    return bag


def text_file(into: Path) -> Path:
    (into / "notes.txt").write_text("not a bag\n")
    return into / "notes.txt"


def empty_dir(into: Path) -> Path:
    (into / "empty").mkdir()
    return into / "empty"


def small_mcap(into: Path) -> Path:
    write_bag(into / "small", StoragePlugin.MCAP, [(CAM_A, IMAGE, 1, raw_image(0, photo(0, 64, 48)))] * 3)
    return into / "small"


BAD_INPUTS = {
    "nonexistent": (lambda bag, tmp: tmp / "nope", "no such file or directory"),
    "no metadata.yaml": (lambda bag, tmp: empty_dir(tmp), "no metadata.yaml"),
    "not a bag": (lambda bag, tmp: text_file(tmp), "not a rosbag2"),
    "broken metadata": (lambda bag, tmp: garbage_metadata(tmp), "not a readable rosbag2"),
    "truncated sqlite3": (lambda bag, tmp: truncated_copy(bag, tmp), "not a readable rosbag2"),
    "truncated mcap": (lambda bag, tmp: truncated_copy(small_mcap(tmp), tmp), "not a readable rosbag2"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_unreadable_input_is_one_line_and_exit_2(case, two_camera_bag, tmp_path):
    make, message = BAD_INPUTS[case]
    out = tmp_path / "out"
    code, err = run_bag(str(make(two_camera_bag, tmp_path)), str(out), "--image-topic", CAM_A,
                        "--vocab", "person", "--model", "tiny")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("activesam bag: error: ")
    assert message in err
    assert not out.exists()


BAD_REQUESTS = {
    "topic not in the bag": (["--image-topic", "/nope"],
                             "topic /nope is not in the bag (its image topics: /cam_a/image_raw, "
                             "/cam_b/image_raw/compressed)"),
    "topic of another type": (["--image-topic", "/chatter"], "topic /chatter is of type std_msgs/msg/String"),
    "topic twice": (["--image-topic", CAM_A, "--image-topic", CAM_A[1:] + "/"],
                    f"names one topic twice: '{CAM_A}' and '{CAM_A[1:]}/' are both {CAM_A}"),
    "invalid topic": (["--image-topic", "/cam a"], "topic '/cam a' holds ' '"),
    "invalid namespace": (["--image-topic", CAM_A, "--namespace", "a b//c"], "--namespace: namespace 'a b//c' holds"),
    "bad temporal value": (["--image-topic", CAM_A, "--refresh-interval", "0"], "refresh_interval must be"),
    "bad overlay alpha": (["--image-topic", CAM_A, "--overlay-alpha", "2"], "--overlay-alpha must be in [0, 1]"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_is_one_line_and_exit_2(case, two_camera_bag, tmp_path):
    args, message = BAD_REQUESTS[case]
    out = tmp_path / "out"
    code, err = run_bag(str(two_camera_bag), str(out), *args, "--vocab", "person", "--model", "tiny")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not out.exists()


def test_existing_output_is_never_replaced(two_camera_bag, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = run_bag(str(two_camera_bag), str(out), "--image-topic", CAM_A, "--vocab", "person",
                        "--model", "tiny")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "exists already" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# -- naming and reading, without a model ----------------------------------------------------

def test_output_names_mirror_the_node():
    assert bagio.output_prefixes({"/cam/image_raw": IMAGE}) == {"/cam/image_raw": "/activesam"}
    assert bagio.output_prefixes({"/front/image_raw/compressed": COMPRESSED, "/rear/image": IMAGE}) == {
        "/front/image_raw/compressed": "/activesam/front/image_raw", "/rear/image": "/activesam/rear/image"}
    assert bagio.output_prefixes({"/cam/image": IMAGE}, "robot/seg/") == {"/cam/image": "/robot/seg"}
    assert bagio.output_prefixes({"/cam/image": IMAGE}, "/") == {"/cam/image": ""}  # -> /labels
    # A raw topic literally named .../compressed keeps its name.
    assert bagio.output_prefixes({"/a/compressed": IMAGE, "/b": IMAGE})["/a/compressed"] == "/activesam/a/compressed"
    with pytest.raises(bagio.BagError, match="one camera"):
        bagio.output_prefixes({"/cam/image": IMAGE, "/cam/image/compressed": COMPRESSED})


def test_damage_found_while_reading_is_a_bag_error():
    class Damaged:
        path = Path("/data/run1")

        def messages(self, connections, start=None):
            yield ("connection", 1, b"")
            raise ValueError("chunk CRC mismatch")

    stream = bagio.messages(Damaged(), [])
    assert next(stream) == ("connection", 1, b"")
    with pytest.raises(bagio.BagError, match=r"/data/run1: unreadable after 1 message\(s\): chunk CRC mismatch"):
        next(stream)


@pytest.mark.slow
def test_model_every_third_frame_the_rest_propagated_and_said_so(shared_tiny, tmp_path):
    """--model-every 3: the frames between get the last model labels moved
    by optical flow; label_source tells them apart (TimeReference: source,
    and the model frame's stamp in time_ref). A cut is segmented instead."""
    base = photo(0, 96, 72)
    frames = [np.roll(base, 2 * i, axis=1) for i in range(5)] + [photo(2, 96, 72), photo(2, 96, 72)]
    times = [9_000_000_000 + 50_000_000 * i for i in range(len(frames))]
    source = tmp_path / "in"
    write_bag(source, StoragePlugin.MCAP, [("/cam", IMAGE, t, raw_image(i, rgb)) for i, (t, rgb)
                                           in enumerate(zip(times, frames))])
    out = tmp_path / "out"
    code, err = run_bag(str(source), str(out), "--image-topic", "/cam", "--model", "tiny", "--vocab", "cat; dog",
                        "--model-every", "3", "--propagation-max-age", "5")
    assert code == 0, err
    written = read_outputs(out)
    sources = [(m.source, stamp_of(m.header), (m.time_ref.sec, m.time_ref.nanosec))
               for _, m in written["/activesam/label_source"]]
    kinds = [kind for kind, _, _ in sources]
    assert kinds == ["model", "propagated", "propagated", "model", "propagated", "model", "propagated"]
    for kind, (sec, nanosec, _), ref in sources:  # model frames refer to themselves
        assert (ref == (sec, nanosec)) == (kind == "model")
    assert sources[1][2] == sources[0][1][:2] and sources[4][2] == sources[3][1][:2]
    assert [t for t, _ in written["/activesam/labels"]] == times  # a label image for every frame
    assert "4 frame(s) segmented" not in err and "3 frame(s) segmented" in err and "4 labelled by propagation" in err


def single_channel(msg) -> np.ndarray:
    """A mono8, mono16 or 32SC1 image's pixels (little-endian, as written)."""
    dtype = {"mono8": "<u1", "mono16": "<u2", "32SC1": "<i4"}[msg.encoding]
    return np.frombuffer(np.asarray(msg.data, np.uint8).tobytes(), dtype).reshape(msg.height, msg.width)


def test_objects_keep_their_ids_through_propagated_frames_in_the_bag(shared_tiny, tmp_path):
    """--model-every 3 with the object outputs: every frame gets its
    detections, whose ids are the values of the instances image and, on a
    propagated frame, ids of the model frame it was carried from; the
    panoptic image packs the labels and the same ids."""
    base = photo(0, 96, 72)
    frames = [np.roll(base, 2 * i, axis=1) for i in range(6)]
    times = [9_000_000_000 + 50_000_000 * i for i in range(len(frames))]
    source = tmp_path / "in"
    write_bag(source, StoragePlugin.MCAP, [("/cam", IMAGE, t, raw_image(i, rgb)) for i, (t, rgb)
                                           in enumerate(zip(times, frames))])
    out = tmp_path / "out"
    code, err = run_bag(str(source), str(out), "--image-topic", "/cam", "--model", "tiny",
                        "--vocab", "cat; dog; person", "--model-every", "3", "--propagation-max-age", "5",
                        "--publish-panoptic", "--detection-class-id", "name")
    assert code == 0, err
    written = read_outputs(out)
    detections = [m for _, m in written["/activesam/detections"]]
    instances = [single_channel(m) for _, m in written["/activesam/instances"]]
    panoptic = [single_channel(m) for _, m in written["/activesam/panoptic"]]
    labels = [single_channel(m) for _, m in written["/activesam/labels"]]
    kinds = [m.source for _, m in written["/activesam/label_source"]]
    assert kinds == ["model", "propagated", "propagated"] * 2
    assert len(detections) == len(instances) == len(panoptic) == len(frames)
    assert sum(len(d.detections) for d in detections) > 0  # not vacuous on this model
    for detection, ids, packed, label in zip(detections, instances, panoptic, labels):
        named = {int(d.id) for d in detection.detections}
        assert named == set(np.unique(ids)) - {0}
        assert {d.results[0].hypothesis.class_id for d in detection.detections} <= {"cat", "dog", "person"}
        np.testing.assert_array_equal(packed & 0xFFFF, ids)
        np.testing.assert_array_equal(packed >> 16, label)
        for d in detection.detections:  # the box bounds the object's pixels
            ys, xs = np.nonzero(ids == int(d.id))
            box = d.bbox
            assert (box.center.position.x - box.size_x / 2, box.center.position.x + box.size_x / 2) == (
                xs.min(), xs.max() + 1)
            assert (box.center.position.y - box.size_y / 2, box.center.position.y + box.size_y / 2) == (
                ys.min(), ys.max() + 1)
    for model in (0, 3):
        anchor = {d.id for d in detections[model].detections}
        for carried in (model + 1, model + 2):
            assert {d.id for d in detections[carried].detections} <= anchor
