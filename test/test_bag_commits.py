"""``activesam bag`` loses at most --commit-every input messages whatever
stops it (kill -9, a full disk, a file size limit), its metadata counts
only what its files hold, a rerun says how to resume, and nothing it reads
inflates without a bound or blocks on a FIFO."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode
from ruamel.yaml import YAML

from activesam_ros.engine.limits import MAX_IMAGE_BYTES
from activesam_ros.files.inflate import zstd
from activesam_ros.ros import bagio

from bags import COMPRESSED, IMAGE, STORE, T, header, photo, raw_image, run_bag, write_bag
from faults import ROOT, cli, file_size_limit, needs_mount, no_hang, run_on_tmpfs

TIMES = [1_000_000_000 + 50_000_000 * i for i in range(40)]




def recording(path: Path, storage=StoragePlugin.SQLITE3, frames: int = len(TIMES)) -> Path:
    rgb = photo(0, 64, 48)
    write_bag(path, storage, [("/cam", IMAGE, t, raw_image(i, rgb)) for i, t in enumerate(TIMES[:frames])])
    return path


def metadata(bag: Path) -> dict:
    return YAML(typ="safe").load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


def held(bag: Path) -> dict:
    """topic -> bag timestamps of the messages a reader finds in the bag."""
    out: dict = {}
    with Reader(bag) as reader:
        for connection, timestamp, _ in reader.messages():
            out.setdefault(connection.topic, []).append(timestamp)
    return out


def assert_true_to_its_files(bag: Path) -> dict:
    """metadata.yaml counts exactly the messages its files hold, and its
    status names the last input message whose outputs are all there."""
    info, found = metadata(bag), held(bag)
    assert info["message_count"] == sum(len(v) for v in found.values())
    for entry in info["topics_with_message_count"]:
        assert entry["message_count"] == len(found.get(entry["topic_metadata"]["name"], []))
    status = info["custom_data"][bagio.STATUS_KEY]
    labels = found.get("/activesam/labels", [])
    assert f"after {len(labels)} labelled frame(s)" in status or status == bagio.COMPLETE
    if labels and status != bagio.COMPLETE:
        assert int(info["custom_data"][bagio.LAST_INPUT_KEY]) == max(labels)
    return found


# -- kill -9 -----------------------------------------------------------------------------------------------

def test_kill_9_mid_bag_loses_at_most_the_uncommitted_frames_and_the_rerun_says_how_to_resume(tmp_path, tiny_cli):
    frames = 10
    source, out = recording(tmp_path / "in", frames=frames), tmp_path / "out"
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    child = subprocess.Popen(cli(["bag", str(source), str(out), "--image-topic", "/cam", "--vocab", "cat",
                                  "--model", "tiny", "--device", "cpu", "--commit-every", "2"]),
                             cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:  # kill it once two parts are committed
            if (out / "metadata.yaml").exists() and len(metadata(out)["relative_file_paths"]) >= 2:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    found = assert_true_to_its_files(out)
    done = found["/activesam/labels"]
    assert 4 <= len(done) < frames and done == TIMES[: len(done)]
    assert metadata(out)["custom_data"][bagio.STATUS_KEY].startswith("partial: stopped before the end after")
    code, err = run_bag(str(source), str(out), "--image-topic", "/cam", "--vocab", "cat", "--model", "tiny")
    assert code == 2 and f"continue into a new output with --start-time {done[-1] + 1}" in err and "rm -r" in err
    code, err = run_bag(str(source), str(tmp_path / "rest"), "--image-topic", "/cam", "--vocab", "cat", "--model",
                        "tiny", "--start-time", str(done[-1] + 1))
    assert code == 0, err
    assert sorted(done + held(tmp_path / "rest")["/activesam/labels"]) == TIMES[:frames]  # none lost, none twice


# -- a full disk -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_a_file_size_limit_stops_the_bag_with_a_true_status_and_one_line(storage, tmp_path, tiny_cli):
    """``ulimit -f`` smaller than one part: nothing is committed, and the
    bag says so (it once said '14 labelled frames, 71 messages' over an
    empty database); it stays readable."""
    source, out = recording(tmp_path / "in", frames=6), tmp_path / "out"
    with file_size_limit(64 * 1024):
        code, err = run_bag(str(source), str(out), "--image-topic", "/cam", "--vocab", "cat", "--model", "tiny",
                            "--storage", storage, "--commit-every", "6", "--include-input")
    lines = [line for line in err.splitlines() if line.startswith("activesam bag")]
    assert code == 2 and lines[-1].startswith(f"activesam bag: error: cannot write {out}: ") and "Traceback" not in err
    assert "readable but partial bag (0 frame(s) labelled)" in err and f"rm -r {out}" in err
    assert held(out) == {} and metadata(out)["message_count"] == 0
    assert metadata(out)["custom_data"][bagio.STATUS_KEY].startswith(
        f"partial: failed: cannot write {out}: ") and "after 0 labelled frame(s)" in metadata(out)["custom_data"][
        bagio.STATUS_KEY]
    assert not list(out.glob(".part_*"))  # the part being written when the limit hit is gone, not half there


@needs_mount
@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_a_full_disk_stops_the_bag_with_a_true_status(storage, tmp_path):
    source, mount, copy = recording(tmp_path / "in", frames=16), tmp_path / "disk", tmp_path / "after"
    done = run_on_tmpfs(cli(["bag", str(source), str(mount / "out"), "--image-topic", "/cam", "--vocab", "cat",
                             "--model", "tiny", "--device", "cpu", "--storage", storage, "--commit-every", "2",
                             "--include-input"]), mount, "240k", copy_to=copy)
    lines = [line for line in done.stderr.splitlines() if line.startswith("activesam bag")]
    full = ("No space left on device", "database or disk is full")  # the OS's words, or sqlite's
    assert done.returncode == 2 and any(words in lines[-1] for words in full), done.stderr
    assert "Traceback" not in done.stderr and "--start-time" in done.stderr
    found = assert_true_to_its_files(copy / "out")
    assert 2 <= len(found["/activesam/labels"]) < 16
    assert found["/cam"] == found["/activesam/labels"]  # each committed input with its outputs, no more


# -- reruns and requests that cannot be met ---------------------------------------------------------------

def test_start_time_past_the_end_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    monkeypatch.setattr("activesam_ros.commands.common.load_model_from_args",
                        lambda args: pytest.fail("the model loaded"))
    source = recording(tmp_path / "in", frames=3)
    code, err = run_bag(str(source), str(tmp_path / "out"), "--image-topic", "/cam", "--vocab", "cat",
                        "--model", "tiny", "--start-time", str(TIMES[2] + 1))
    assert code == 2 and f"--start-time {TIMES[2] + 1} is after the last message of {source}" in err
    assert not (tmp_path / "out").exists()


def test_a_fifo_anywhere_in_an_input_bag_is_refused_without_blocking(tmp_path):
    lone = tmp_path / "lone.db3"
    os.mkfifo(lone)
    folder = recording(tmp_path / "in", frames=2)
    db = next(folder.glob("*.db3"))
    db.unlink()
    os.mkfifo(db)
    with no_hang(20):
        for bag, what in ((lone, f"{lone} is a FIFO"), (folder, f"{folder}: its file {db.name} is a FIFO")):
            code, err = run_bag(str(bag), str(tmp_path / "out"), "--image-topic", "/cam", "--vocab", "cat",
                                "--model", "tiny")
            assert code == 2 and what in err and len(err.strip().splitlines()) == 1, err


# -- compressed inputs --------------------------------------------------------------------------------------

def compressed_bag(path: Path, mode: CompressionMode, messages) -> Path:
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3)
    writer.set_compression(mode, CompressionFormat.ZSTD)
    writer.open()
    connection = writer.add_connection("/cam", COMPRESSED if messages[0][0] == "c" else IMAGE, typestore=STORE)
    for _, timestamp, data in messages:
        writer.write(connection, timestamp, data)
    writer.close()
    return path


def test_a_message_compressed_bag_is_segmented_and_a_zstd_bomb_is_a_skipped_frame(tmp_path, tiny_cli):
    """A 32 KB message inflating to 1 GiB: refused from its frame header
    before anything is inflated, the frame skipped and counted."""
    rgb = photo(1, 64, 48)
    compressor = zstd.ZstdCompressor()  # 1 GiB of zeros, compressed a MiB at a time
    compressor.set_pledged_input_size(1 << 30)
    bomb_frame = b"".join(compressor.compress(bytes(1 << 20)) for _ in range(1024)) + compressor.flush()
    assert len(bomb_frame) < 64 * 1024
    source = compressed_bag(tmp_path / "in", CompressionMode.MESSAGE,
                            [("r", TIMES[i], raw_image(i, rgb)) for i in range(3)])
    db = next(source.glob("*.db3"))
    with sqlite3.connect(db) as connection:  # the second message becomes the bomb
        connection.execute("UPDATE messages SET data = ? WHERE timestamp = ?", (bomb_frame, TIMES[1]))
    started = time.monotonic()
    code, err = run_bag(str(source), str(tmp_path / "out"), "--image-topic", "/cam", "--vocab", "cat",
                        "--model", "tiny")
    assert code == 0, err
    assert "2 frame(s) segmented" in err and "1 skipped" in err
    assert f"would inflate to {1 << 30} bytes; the limit is {MAX_IMAGE_BYTES}" in err
    assert held(tmp_path / "out")["/activesam/labels"] == [TIMES[0], TIMES[2]]
    assert time.monotonic() - started < 120


def test_a_file_compressed_bag_is_inflated_within_the_room_of_the_temporary_folder(tmp_path, tiny_cli, monkeypatch):
    rgb = photo(2, 64, 48)
    source = compressed_bag(tmp_path / "in", CompressionMode.FILE,
                            [("r", TIMES[i], raw_image(i, rgb)) for i in range(3)])
    assert metadata(source)["compression_mode"] == "file"
    code, err = run_bag(str(source), str(tmp_path / "out"), "--image-topic", "/cam", "--vocab", "cat",
                        "--model", "tiny")
    assert code == 0, err
    assert held(tmp_path / "out")["/activesam/labels"] == TIMES[:3]
    # With less room than the inflated file needs, it is refused before the disk fills.
    monkeypatch.setattr("activesam_ros.ros.bagio.disk_room", lambda folder: 10_000)
    code, err = run_bag(str(source), str(tmp_path / "out2"), "--image-topic", "/cam", "--vocab", "cat",
                        "--model", "tiny")
    assert code == 2 and "inflates to more than 10000 bytes" in err and "set TMPDIR" in err
    assert not (tmp_path / "out2").exists()


def test_compressed_image_messages_decode_as_image_files_do(tmp_path):
    """The node, bag and segment share one decoder: a 12-bit PNG in a
    CompressedImage gives the pixels segment reads from the same bytes."""
    import cv2
    import numpy as np

    from activesam_ros.files.images import decode_rgb
    from activesam_ros.ros.imgconv import compressed_to_rgb

    twelve_bit = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) % 4096)
    png = cv2.imencode(".png", twelve_bit)[1].tobytes()
    msg = T[COMPRESSED](header=header(0), format="mono16; png compressed", data=np.frombuffer(png, np.uint8))
    via_topic = compressed_to_rgb(msg)
    assert np.array_equal(via_topic, decode_rgb(png, "file")) and via_topic.max() == 255  # stretched, not >> 8
