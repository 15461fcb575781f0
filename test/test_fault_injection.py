"""The hostile probe's cases, kept from coming back: damaged and malicious
inputs, signals mid-run, inputs beyond their limits. Each case checks that
nothing is lost (inputs unchanged, outputs readable or marked partial) and
that the message says what happened."""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Dict

import cv2
import numpy as np
import pytest
import torch
from rosbags.rosbag2 import StoragePlugin

from activesam_ros.cli import main
from activesam_ros.engine import ActiveSAM, NonFiniteScores, limits
from activesam_ros.engine.model import build_tiny_sam3
from activesam_ros.engine.vocabulary import Vocabulary, VocabularyError, load_vocabulary_file
from activesam_ros.ros import bagio, imgconv
from activesam_ros.ros import node_params as P
from activesam_ros.stream.parameters import ParameterError
from activesam_ros.stream.runtime import Frame, StreamProcessor

from bags import COMPRESSED, IMAGE, STORE, T, header, photo, raw_image, read_outputs, run_bag, write_bag
from conftest import load_photo

ROOT = Path(__file__).resolve().parents[1]


def digest(path: Path) -> str:
    """A file's or a folder's contents, hashed."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for file in files:
        h.update(file.name.encode())
        h.update(file.read_bytes())
    return h.hexdigest()


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header announces ``width`` x ``height`` (a
    decompression bomb's shape: decoding it would need width x height x 3 bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def photo_files(tmp_path) -> Dict[str, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    out = {}
    for name, source in (("a.png", "chelsea.png"), ("b.jpg", "coffee.png")):
        out[name] = folder / name
        cv2.imwrite(str(out[name]), load_photo(source, 96)[:, :, ::-1])
    return out




def segment(*argv: str) -> int:
    return main(["segment", *argv])


# -- 1. segment never destroys a file -------------------------------------------

def test_an_input_named_like_another_inputs_output_is_never_overwritten(photo_files, tmp_path, capsys, tiny_cli):
    folder = photo_files["a.png"].parent
    victim = folder / "a_labels.png"
    victim.write_bytes(photo_files["b.jpg"].read_bytes())  # a JPEG named like a's labels
    before = {p: digest(p) for p in (photo_files["a.png"], victim)}
    for extra in ([], ["--overwrite"]):
        code = segment(str(photo_files["a.png"]), str(victim), "--vocab", "cat", "--model", "tiny",
                       "--out", str(folder), *extra)
        assert code == 2
        err = capsys.readouterr().err
        assert f"{victim} is the input {victim}, which is never replaced" in err
    assert {p: digest(p) for p in before} == before
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_labels.png", "b.jpg"]


def test_existing_outputs_need_overwrite_and_are_then_replaced_whole(photo_files, tmp_path, capsys, tiny_cli):
    out = tmp_path / "out"
    args = [str(photo_files["a.png"]), "--vocab", "cat; sofa", "--model", "tiny", "--out", str(out)]
    assert segment(*args) == 0
    summary = out / "a.json"
    summary.write_text("my notes")
    assert segment(*args) == 2
    assert f"{summary} exists already (pass --overwrite" in capsys.readouterr().err
    assert summary.read_text() == "my notes"
    assert segment(*args, "--overwrite") == 0
    assert summary.read_text().startswith("{") and not list(out.glob(".*partial*"))


def test_a_link_in_place_of_an_output_is_refused_even_with_overwrite(photo_files, tmp_path, capsys, tiny_cli):
    out = tmp_path / "out"
    out.mkdir()
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    (out / "a.json").symlink_to(precious)
    assert segment(str(photo_files["a.png"]), "--vocab", "cat", "--model", "tiny", "--out", str(out),
                   "--overwrite") == 2
    assert f"{out / 'a.json'} is a link" in capsys.readouterr().err and precious.read_text() == "keep"


# -- 2. a checkpoint that is not SAM 3, and NaN scores ------------------------------------

def test_a_fake_checkpoint_is_refused_before_any_output(photo_files, tmp_path, capsys, tiny_cli):
    fake = tmp_path / "f.pt"
    torch.save({"model": {"detector.foo": torch.zeros(2)}}, fake)
    out = tmp_path / "o"
    code = segment(str(photo_files["a.png"]), "--vocab", "cat;dog", "--checkpoint", str(fake), "--out", str(out),
                   "--device", "cpu")
    assert code == 2
    err = capsys.readouterr().err
    assert "does not match the SAM 3 image model" in err and "unexpected weights: 1 (foo)" in err
    assert not out.exists() or not list(out.iterdir())


@pytest.fixture(scope="module")
def nan_model():
    """A tiny SAM 3 whose presence head gives NaN (a damaged weight)."""
    model = build_tiny_sam3(seed=0, image_size=224)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "presence_token_head" in n).fill_(float("nan"))
    return model


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_nan_scores_never_become_labels(nan_model, photos, mode):
    engine = ActiveSAM(nan_model, ["cat", "sofa"], limits_config(mode))
    with pytest.raises(NonFiniteScores, match="non-finite"):
        engine.segment(photos["chelsea.png"])


def limits_config(mode: str):
    from activesam_ros.engine.config import ActiveSAMConfig

    return ActiveSAMConfig(device="cpu", mode=mode)


def test_a_nan_frame_is_dropped_counted_and_reported_by_the_stream(nan_model, photos):
    processor = StreamProcessor(ActiveSAM(nan_model, ["cat"], limits_config("fast")))
    with pytest.raises(NonFiniteScores):
        processor.process(Frame(photos["chelsea.png"], camera="cam"))
    assert processor.stats.snapshot("cam").failed == 1


def test_segment_skips_a_nan_image_names_it_and_exits_1(nan_model, photo_files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("activesam_ros.commands.common.load_model_from_args", lambda args: nan_model)
    out = tmp_path / "o"
    assert segment(str(photo_files["a.png"]), "--vocab", "cat", "--model", "tiny", "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "non-finite" in err and f"1 of 1 image(s) failed: {photo_files['a.png']}" in err
    assert not list(out.iterdir())


# -- 3. signals mid-bag ----------------------------------------------------------------------

FRAMES = 120


def bag_times(frames: int) -> list:
    return [1_000_000_000 + 100_000_000 * i for i in range(frames)]


def make_long_bag(path: Path, storage: StoragePlugin, frames: int = FRAMES) -> Path:
    rgb = photo(0, 64, 48)
    write_bag(path, storage, [("/cam", IMAGE, t, raw_image(i, rgb)) for i, t in enumerate(bag_times(frames))])
    return path


@pytest.fixture(scope="module", params=["sqlite3", "mcap"])
def long_bag(request, tmp_path_factory):
    storage = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}[request.param]
    return make_long_bag(tmp_path_factory.mktemp("long") / "recording", storage)


def start_bag(source: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "activesam_ros.cli", "bag", str(source), str(out), "--image-topic", "/cam",
         "--vocab", "cat", "--model", "tiny", "--device", "cpu"],
        stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a shell's background job ignores it
    )


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_bag_leaves_a_readable_bag_marked_partial(long_bag, tmp_path, signum):
    before = digest(long_bag)
    out = tmp_path / "out"
    process = start_bag(long_bag, out)
    deadline = time.monotonic() + 120
    while not (out / "metadata.yaml").exists() and not any(out.glob("*")) and time.monotonic() < deadline:
        time.sleep(0.1)  # the writer opens OUT once the model is loaded
    time.sleep(1.5)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}" in err and "partial" in err and "rm -r" in err
    status = bagio.status_of(out)
    assert status.startswith(f"partial: stopped by {signal.Signals(signum).name} after")
    labels = read_outputs(out).get("/activesam/labels", [])
    assert 0 < len(labels) < FRAMES, "the signal should land mid-run"
    assert digest(long_bag) == before
    # A rerun into OUT says what OUT is, and how to continue.
    code, err = run_bag(str(long_bag), str(out), "--image-topic", "/cam", "--vocab", "cat", "--model", "tiny")
    assert code == 2 and "did not finish" in err and "--start-time" in err
    last = max(t for t, _ in labels)
    assert f"last input message at bag time {last} ns" in status


@pytest.mark.slow
def test_a_stopped_run_continues_with_start_time(tmp_path, tiny_cli):
    long_bag = make_long_bag(tmp_path / "recording", StoragePlugin.MCAP, frames=30)
    first = tmp_path / "first"
    process = start_bag(long_bag, first)
    while not any(first.glob("*")):
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    start = int(err.split("--start-time ")[1].split()[0])
    code, err = run_bag(str(long_bag), str(tmp_path / "rest"), "--image-topic", "/cam", "--vocab", "cat",
                        "--model", "tiny", "--start-time", str(start))
    assert code == 0, err
    done = [t for t, _ in read_outputs(first)["/activesam/labels"]]
    rest = [t for t, _ in read_outputs(tmp_path / "rest")["/activesam/labels"]]
    assert sorted(done + rest) == bag_times(30)
    assert bagio.status_of(tmp_path / "rest") == bagio.COMPLETE


# -- 4, 5, 7. vocabularies: encoding, reach, size ------------------------------------------------

def test_a_vocabulary_file_that_is_not_utf8_is_one_line_error(photo_files, tmp_path, capsys):
    vocab = tmp_path / "v.txt"
    vocab.write_bytes(b"cat\n\xff\n")
    assert segment(str(photo_files["a.png"]), "--vocab-file", str(vocab), "--model", "tiny",
                   "--out", str(tmp_path / "o")) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("activesam")]
    assert len(err) == 1 and "is not UTF-8 text (byte 0xff on line 2)" in err[0]


def node_values(**changes):
    values = P.default_values()
    values.update(model="tiny", vocabulary=None, vocabulary_file="indoor")
    values.update(changes)
    return values


def test_the_node_refuses_a_non_utf8_vocabulary_file_as_a_parameter_error(tmp_path):
    vocab = tmp_path / "v.txt"
    vocab.write_bytes(b"cat\n\xff\n")
    current = node_values(vocabulary_dirs=[str(tmp_path)])
    with pytest.raises(ParameterError, match="not UTF-8"):
        P.check_change(current, {"vocabulary_file": str(vocab)})


@pytest.mark.parametrize("target", ["/etc/shadow", "/etc/passwd", "/proc/self/environ"])
def test_a_live_vocabulary_file_cannot_reach_outside_its_folders(tmp_path, target):
    allowed = tmp_path / "vocabularies"
    allowed.mkdir()
    for dirs in (None, [str(allowed)]):
        with pytest.raises(ParameterError, match="live change"):
            P.check_change(node_values(vocabulary_dirs=dirs), {"vocabulary_file": target})
    escape = allowed / "escape.txt"
    escape.symlink_to(target)  # a link inside the folder pointing out of it
    with pytest.raises(ParameterError, match="outside vocabulary_dirs"):
        P.check_change(node_values(vocabulary_dirs=[str(allowed)]), {"vocabulary_file": str(escape)})


def test_a_live_vocabulary_file_may_be_shipped_or_inside_its_folders(tmp_path):
    inside = tmp_path / "robots.txt"
    inside.write_text("forklift\npallet\n")
    assert P.check_change(node_values(), {"vocabulary_file": "driving"}).vocabulary == load_vocabulary_file("driving")
    settings = P.check_change(node_values(vocabulary_dirs=[str(tmp_path)]), {"vocabulary_file": str(inside)})
    assert settings.vocabulary.names == ("forklift", "pallet")
    # The file the node starts with is the operator's choice: any readable file.
    assert P.settings(node_values(vocabulary_file=str(inside))).vocabulary.names == ("forklift", "pallet")


def test_vocabulary_files_are_regular_small_files(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # reading it would block for ever
    with pytest.raises(VocabularyError, match="not a regular file"):
        Vocabulary.from_file(fifo)
    big = tmp_path / "big.txt"
    with open(big, "w") as f:
        f.writelines(f"class {i}\n" for i in range(200_000))  # ~2 MB
    started = time.monotonic()
    with pytest.raises(VocabularyError, match=f"the limit is {limits.MAX_VOCABULARY_FILE_BYTES}"):
        Vocabulary.from_file(big)
    assert time.monotonic() - started < 5  # refused from its size, not after reading it


def test_a_vocabulary_beyond_the_class_limit_is_refused():
    names = [f"class {i}" for i in range(limits.MAX_QUERIES + 1)]
    with pytest.raises(VocabularyError, match=f"the limit is {limits.MAX_QUERIES}"):
        Vocabulary.from_classes(names)
    assert len(Vocabulary.from_classes(names[:-1])) == limits.MAX_QUERIES
    with pytest.raises(VocabularyError, match="limit is 200"):
        Vocabulary.from_classes(["x" * 201])


# -- 6, 8. images: too small, too large -------------------------------------------------------

def test_a_one_pixel_image_is_reported_and_the_batch_goes_on(photo_files, tmp_path, capsys, tiny_cli):
    one_px = tmp_path / "one_px.png"
    cv2.imwrite(str(one_px), np.zeros((1, 50, 3), np.uint8))
    out = tmp_path / "o"
    assert segment(str(one_px), str(photo_files["b.jpg"]), "--vocab", "cat", "--model", "tiny",
                   "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "image too small: 50x1" in err and f"1 of 2 image(s) failed: {one_px}" in err
    assert sorted(p.name for p in out.iterdir()) == ["b.json", "b_labels.png", "b_overlay.png"]


def test_an_image_beyond_the_pixel_limit_is_refused_before_decoding(photo_files, tmp_path, capsys, tiny_cli):
    big = png_claiming(tmp_path / "big.png", 8000, 8000)
    bomb = png_claiming(tmp_path / "bomb.png", 20000, 20000)  # beyond Pillow's own bomb limit too
    assert bomb.stat().st_size < 10_000
    out = tmp_path / "o"
    assert segment(str(big), str(bomb), str(photo_files["b.jpg"]), "--vocab", "cat", "--model", "tiny",
                   "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert f"{big} is too large: 8000x8000 = 64.0 MP, the limit is 16.8 MP" in err
    assert f"{bomb} is too large: Image size (400000000 pixels)" in err and "the limit is 16.8 MP" in err
    assert "2 of 3 image(s) failed" in err and (out / "b_labels.png").is_file()


def test_image_messages_beyond_the_limit_are_refused_from_their_headers(tmp_path):
    side = 5000  # 25 MP
    raw = T[IMAGE](header=header(0), height=side, width=side, encoding="rgb8", is_bigendian=0, step=3 * side,
                   data=np.zeros(16, np.uint8))  # the fields alone are refused, the data is never read
    with pytest.raises(limits.ImageError, match="too large: 5000x5000"):
        imgconv.image_to_rgb(raw)
    for side, message in ((8000, "too large: 8000x8000"), (20000, "too large: Image size")):
        png = np.frombuffer(png_claiming(tmp_path / "b.png", side, side).read_bytes(), np.uint8)
        compressed = T[COMPRESSED](header=header(0), format="rgb8; png compressed bgr8", data=png)
        with pytest.raises(limits.ImageError, match=message):
            imgconv.compressed_to_rgb(compressed)


def test_a_bag_frame_beyond_the_limit_is_skipped_and_counted(tmp_path, tiny_cli):
    bomb = np.frombuffer(png_claiming(tmp_path / "b.png", 20000, 20000).read_bytes(), np.uint8)
    good = cv2.imencode(".png", photo(1, 64, 48)[:, :, ::-1])[1].reshape(-1)
    frames = [T[COMPRESSED](header=header(i), format="rgb8; png compressed bgr8", data=data)
              for i, data in enumerate((bomb, good))]
    source = tmp_path / "in"
    write_bag(source, StoragePlugin.MCAP, [("/cam/compressed", COMPRESSED, 10 + i, STORE.serialize_cdr(m, COMPRESSED))
                                           for i, m in enumerate(frames)])
    code, err = run_bag(str(source), str(tmp_path / "out"), "--image-topic", "/cam/compressed", "--vocab", "cat",
                        "--model", "tiny")
    assert code == 0, err
    assert "1 frame(s) segmented" in err and "1 skipped" in err and "too large" in err
    assert bagio.status_of(tmp_path / "out") == bagio.COMPLETE


# -- tidy: one rule everywhere ---------------------------------------------------------------

def test_a_class_written_as_a_comment_is_refused_on_the_cli_as_by_the_node(photo_files, tmp_path, capsys):
    assert segment(str(photo_files["a.png"]), "--vocab", "#cat; dog", "--model", "tiny",
                   "--out", str(tmp_path / "o")) == 2
    assert "class 1 ('#cat') starts with '#'" in capsys.readouterr().err
    with pytest.raises(ParameterError, match="starts with '#'"):
        P.settings(node_values(vocabulary=["#cat", "dog"]))


def test_a_class_with_a_line_break_is_refused():
    with pytest.raises(VocabularyError, match="line break"):
        Vocabulary.from_classes(["cat\ndog"])
    with pytest.raises(ParameterError, match="line break"):
        P.settings(node_values(vocabulary=["cat\ndog"]))


def test_duplicates_are_named_by_their_place_counted_from_one(tmp_path):
    with pytest.raises(VocabularyError, match="duplicate class 'dog' at class 1 and class 3"):
        Vocabulary.from_classes(["dog", "cat", "Dog"])
    vocab = tmp_path / "v.txt"
    vocab.write_text("# pets\ndog\ncat\n\nDog\n")
    with pytest.raises(VocabularyError, match="at line 2 of v.txt and line 5 of v.txt"):
        Vocabulary.from_file(vocab)


def test_bag_output_inside_the_input_bag_is_refused(tmp_path):
    source = tmp_path / "in"
    write_bag(source, StoragePlugin.SQLITE3, [("/cam", IMAGE, 1, raw_image(0, photo(0, 64, 48)))])
    before = digest(source)
    code, err = run_bag(str(source), str(source / "out"), "--image-topic", "/cam", "--vocab", "cat",
                        "--model", "tiny")
    assert code == 2 and "inside the input bag" in err
    assert digest(source) == before


def test_sqlite_rows_of_no_topic_are_counted_and_reported(tmp_path, tiny_cli):
    import sqlite3

    source = tmp_path / "in"
    rgb = photo(0, 64, 48)
    write_bag(source, StoragePlugin.SQLITE3, [("/cam", IMAGE, 10 + i, raw_image(i, rgb)) for i in range(2)])
    db = next(source.glob("*.db3"))
    with sqlite3.connect(db) as connection:
        connection.execute("INSERT INTO messages (topic_id, timestamp, data) VALUES (99, 15, x'00')")
    assert bagio.orphan_messages(source) == 1
    code, err = run_bag(str(source), str(tmp_path / "out"), "--image-topic", "/cam", "--vocab", "cat",
                        "--model", "tiny")
    assert code == 0, err
    assert "1 message(s) of" in err and "belong to no topic" in err
    assert bagio.status_of(tmp_path / "out") == bagio.COMPLETE
