"""Every output goes through one writer (``files.outputs``): an exclusive
temporary in the output folder, then a rename. Links, hard links and files
named like a temporary are never written through or removed; an input is
never replaced; a full disk, a file size limit, a read-only folder or a
name too long is one line, with nothing half-written left behind."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Dict

import cv2
import numpy as np
import pytest

from activesam_ros.cli import main
from activesam_ros.files import outputs
from activesam_ros.files.outputs import Inputs, OutputError, check_outputs, write_file, write_files

from conftest import load_photo
from faults import cli, file_size_limit, needs_mount, no_hang, run_on_tmpfs


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def names(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir())




@pytest.fixture
def images(tmp_path) -> Dict[str, Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    out = {}
    for name, source in (("x.png", "chelsea.png"), ("y.png", "coffee.png")):
        out[name] = folder / name
        cv2.imwrite(str(out[name]), load_photo(source, 64)[:, :, ::-1])
    return out


def segment(*argv: str) -> int:
    return main(["segment", *argv, "--vocab", "cat; sofa", "--model", "tiny", "--device", "cpu"])


# -- the writer ------------------------------------------------------------------------------------

def test_a_link_planted_at_any_temporary_name_is_never_written_through(tmp_path):
    """The old writer used '.x_labels.partial.png': a link planted there took the
    write into its target. Temporaries now have fresh random names, created
    with O_EXCL | O_NOFOLLOW: links and hard links at every such name stay untouched."""
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    for name in (".x_labels.partial.png", ".x_labels.png.partial", ".x.partial.json"):
        (out / name).symlink_to(victim)
    os.link(victim, out / ".x_overlay.partial.png")
    write_files([(out / "x_labels.png", b"labels"), (out / "x.json", b"{}")], overwrite=False)
    assert victim.read_bytes() == b"precious"
    assert (out / "x_labels.png").read_bytes() == b"labels" and (out / "x.json").read_bytes() == b"{}"
    assert not [p for p in out.iterdir() if p.name.endswith(".partial") and not p.is_symlink()
                and p.name != ".x_overlay.partial.png"]


def test_an_input_named_like_a_temporary_is_never_touched(tmp_path, images, tiny_cli):
    out = images["x.png"].parent
    decoy = out / ".x_labels.partial.png"
    decoy.write_bytes(images["y.png"].read_bytes())
    before = digest(decoy)
    long = out / ("s" * 240 + ".png")  # its temporaries once had names beyond NAME_MAX
    long.write_bytes(images["x.png"].read_bytes())
    assert segment(str(images["x.png"]), str(decoy), str(long), "--out", str(out)) == 0
    assert digest(decoy) == before and (out / "x_labels.png").is_file()
    assert (out / ("s" * 240 + "_overlay.png")).is_file()
    assert (out / ".x_labels.partial_labels.png").is_file()  # the decoy's own outputs, beside it


def test_without_overwrite_a_file_that_appears_meanwhile_is_kept(tmp_path):
    """Two runs into one folder: the later one to finish finds the name taken
    and says so; nothing is replaced without --overwrite."""
    target = tmp_path / "a.json"
    real_link = os.link

    def race(src, dst, **kwargs):  # another run writes a.json between the check and the rename
        Path(dst).write_text("the other run's")
        return real_link(src, dst, **kwargs)

    outputs.os.link = race
    try:
        with pytest.raises(OutputError, match="appeared while this run wrote it"):
            write_file(target, b"mine", overwrite=False)
    finally:
        outputs.os.link = real_link
    assert target.read_text() == "the other run's" and names(tmp_path) == ["a.json"]


def test_an_input_is_never_replaced_even_under_another_name(tmp_path):
    source = tmp_path / "x.png"
    source.write_bytes(b"input")
    hard = tmp_path / "x_labels.png"
    os.link(source, hard)
    for overwrite in (False, True):
        with pytest.raises(OutputError, match=f"{hard} is the input {source}, which is never replaced"):
            check_outputs([hard], overwrite, Inputs([source]))
        with pytest.raises(OutputError, match="is the input"):
            write_file(hard, b"labels", overwrite, Inputs([source]))
    assert source.read_bytes() == b"input"


def test_names_too_long_for_the_file_system_are_refused_before_any_work(tmp_path):
    with pytest.raises(OutputError, match="is 301 bytes long, the file system in .* takes at most 255"):
        check_outputs([tmp_path / ("s" * 290 + "_labels.png")], False)


def test_a_file_size_limit_fails_cleanly_and_leaves_no_temporary(tmp_path):
    with file_size_limit(64 * 1024):
        with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'big.png'}: {os.strerror(errno.EFBIG)}"):
            write_files([(tmp_path / "small.json", b"{}"), (tmp_path / "big.png", b"\0" * 200_000)], overwrite=False)
    assert names(tmp_path) == []  # all or nothing: the small output is not left alone either


# -- segment ----------------------------------------------------------------------------------------

def test_segment_under_a_file_size_limit_stops_with_one_line_and_whole_outputs(tmp_path, images, tiny_cli, capfd):
    """``ulimit -f`` between two images: the first image's outputs are whole,
    the second's absent, no temporary left, one line (not a traceback)."""
    out = tmp_path / "out"
    big = tmp_path / "in" / "z.png"
    cv2.imwrite(str(big), cv2.resize(load_photo("astronaut.png", 256), (256, 256))[:, :, ::-1])
    with file_size_limit(60 * 1024):  # z's overlay PNG is larger than this
        code = segment(str(images["x.png"]), str(big), str(images["y.png"]), "--out", str(out))
    err = [line for line in capfd.readouterr().err.splitlines() if line.startswith("activesam segment")]
    assert code == 2 and len(err) == 1, err
    assert "File too large" in err[0] and "outputs of 1 of 3 image(s) written whole" in err[0]
    assert names(out) == ["x.json", "x_labels.png", "x_overlay.png"]
    assert json.loads((out / "x.json").read_text())["image_size"] == [64, 43]  # chelsea at 64 px wide


def test_segment_refuses_an_unwritable_or_badly_named_output_before_the_model_loads(tmp_path, images, capsys,
                                                                                      monkeypatch):
    monkeypatch.setattr("activesam_ros.commands.common.load_model_from_args",
                        lambda args: pytest.fail("the model loaded before the outputs were checked"))
    folder = tmp_path / "file"
    folder.write_text("not a folder")
    assert segment(str(images["x.png"]), "--out", str(folder)) == 2
    assert f"{folder} is not a folder" in capsys.readouterr().err
    long = tmp_path / "in" / ("s" * 245 + ".png")  # a valid name, but <stem>_overlay.png is 257 bytes
    long.write_bytes(images["x.png"].read_bytes())
    assert segment(str(long), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert f"the output name {'s' * 40}... is 257 bytes long, the file system in {tmp_path / 'o'} takes at most 255" \
        in err and len(err.strip().splitlines()) == 1


@needs_mount
def test_segment_into_a_read_only_folder_is_one_line_before_the_model_loads(tmp_path, images):
    """A read-only file system (root included): refused before the model loads."""
    mount = tmp_path / "ro"
    done = run_on_tmpfs(cli(["segment", str(images["x.png"]), "--vocab", "cat", "--model", "tiny", "--out",
                             str(mount / "out")]), mount, "1m", read_only=True, timeout=120)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and err == [f"activesam segment: error: cannot create the folder {mount / 'out'}: "
                                            "Read-only file system"], done.stderr


@needs_mount
def test_segment_on_a_full_disk_keeps_whole_outputs_and_says_so(tmp_path, images):
    mount, copy = tmp_path / "disk", tmp_path / "after"
    big = tmp_path / "in" / "z.png"
    cv2.imwrite(str(big), load_photo("astronaut.png", 320)[:, :, ::-1])
    done = run_on_tmpfs(cli(["segment", str(images["x.png"]), str(big), "--vocab", "cat", "--model", "tiny",
                             "--device", "cpu", "--out", str(mount / "out")]), mount, "96k", copy_to=copy)
    lines = [line for line in done.stderr.splitlines() if line.startswith("activesam segment")]
    assert done.returncode == 2 and len(lines) == 1 and "No space left on device" in lines[0], done.stderr
    assert names(copy / "out") == ["x.json", "x_labels.png", "x_overlay.png"]  # z: nothing, not half


# -- inputs that block or are too large ------------------------------------------------------------------

def test_a_fifo_or_a_huge_file_as_an_image_is_refused_without_reading_it(tmp_path, images, capsys):
    fifo = tmp_path / "in" / "pipe.png"
    os.mkfifo(fifo)
    huge = tmp_path / "in" / "huge.png"
    with open(huge, "wb") as f:
        f.write(images["x.png"].read_bytes())
        f.truncate(2**31 + 10)  # a sparse 2 GiB file: only its size is looked at
    with no_hang(20):
        assert segment(str(fifo), str(huge), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert f"{fifo} is a FIFO (named pipe), not a regular file" in err
    assert f"{huge} has {2**31 + 10} bytes; the limit is" in err


def test_two_segment_runs_on_one_folder_never_overwrite_each_other(tmp_path, images, tiny_cli, capsys):
    """The second run's check passes before the first run wrote (both start on
    an empty folder); its outputs then find the names taken and it stops."""
    out = tmp_path / "out"
    started = threading.Barrier(2)
    real = outputs.write_files

    def slow_writer(*args, **kwargs):
        started.wait(timeout=60)
        return real(*args, **kwargs)

    outputs_module = "activesam_ros.commands.segment.write_files"
    import unittest.mock as mock

    codes = []
    with mock.patch(outputs_module, slow_writer):
        runs = [threading.Thread(target=lambda: codes.append(segment(str(images["x.png"]), "--out", str(out))))
                for _ in range(2)]
        for run in runs:
            run.start()
        for run in runs:
            run.join(timeout=300)
    assert sorted(codes) == [0, 2]
    assert "appeared while this run wrote it" in capsys.readouterr().err
    assert names(out) == ["x.json", "x_labels.png", "x_overlay.png"]
    assert np.asarray(cv2.imread(str(out / "x_labels.png"), cv2.IMREAD_UNCHANGED)).shape == (43, 64)
