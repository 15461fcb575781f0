"""Inputs a user can get wrong, each refused with one line (exit 2) where
it enters, before the model loads wherever it can be, and nothing lost."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import cv2
import pytest
from test_datasets import LAYOUTS, scene, write_dataset

from activesam_ros.cli import main
from activesam_ros.engine.vocabulary import Vocabulary, VocabularyError, load_vocabulary_file

from conftest import load_photo


@pytest.fixture
def no_model(monkeypatch):
    """The model must not load: every refusal here comes before it."""
    monkeypatch.setattr("activesam_ros.commands.common.load_model_from_args",
                        lambda args: pytest.fail("the model loaded before the input was refused"))


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "cat.png"
    cv2.imwrite(str(path), load_photo("chelsea.png", 64)[:, :, ::-1])
    return path


def one_line(capsys, command: str) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("activesam: warn")]
    assert len(err) == 1 and err[0].startswith(f"activesam {command}: error: "), err
    return err[0]


@pytest.mark.parametrize("argv, message", [
    (["--vocab", "cat; dog", "--background-threshold", "0.4"], "needs a class named 'background'"),
    (["--vocab", "cat", "--resolution", "15"], "resolution must be a multiple of 14, got 15"),
    (["--vocab-file", "~nouser_no_such/x.txt"], "cannot expand '~nouser_no_such': no such user or home folder"),
    (["--vocab-file", "v" * 5000], "vocabulary file is 5000 bytes long; the limit is 4096"),
])
def test_segment_refuses_with_one_line_before_the_model_loads(argv, message, image, tmp_path, capsys, no_model):
    assert main(["segment", str(image), "--out", str(tmp_path / "o"), "--model", "tiny", *argv]) == 2
    assert message in one_line(capsys, "segment")


@pytest.mark.parametrize("checkpoint, message", [("~nouser_no_such/sam3.pt", "cannot expand '~nouser_no_such'"),
                                                 ("c" * 5000, "checkpoint is 5000 bytes long"),
                                                 ("/dev/null/sam3.pt", "does not exist")])
def test_a_checkpoint_path_that_names_no_file_is_one_line(checkpoint, message, image, tmp_path, capsys):
    assert main(["segment", str(image), "--out", str(tmp_path / "o"), "--vocab", "cat", "--device", "cpu",
                 "--checkpoint", checkpoint]) == 2
    assert message in one_line(capsys, "segment")


def test_a_seed_beyond_64_bits_is_refused_by_the_parser(image, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["segment", str(image), "--vocab", "cat", "--model", "tiny", "--out", str(tmp_path), "--seed", str(2**70)])
    assert stop.value.code == 2 and f"must be in [0, {2**63 - 1}], got {2**70}" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "inf", "1e300", "0", "-1"])
def test_dist_timeout_must_be_a_finite_positive_time(value, image, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["eval", "--dataset", "voc21", "--data-root", str(tmp_path), "--model", "tiny", "--dist-timeout", value])
    assert stop.value.code == 2 and "argument --dist-timeout: must be in (0, 604800] seconds" in \
        capsys.readouterr().err


def test_eval_never_writes_over_the_ground_truth_or_an_existing_report(tmp_path, capsys, no_model):
    """--save-predictions pointed at the annotation folder replaced every
    ground-truth PNG; every prediction is an input there, and refused."""
    data = write_dataset(tmp_path / "data", "voc21", [("a", *scene()), ("b", *scene())])
    labels = data / Path(LAYOUTS["voc21"][1].format("a")).parent
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in labels.iterdir()}
    for extra in ([], ["--overwrite"]):
        assert main(["eval", "--dataset", "voc21", "--data-root", str(data), "--model", "tiny",
                     "--save-predictions", str(labels), *extra]) == 2
        assert f"{labels / 'a.png'} is the input" in one_line(capsys, "eval")
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in labels.iterdir()} == before
    report = tmp_path / "report.json"
    report.write_text("earlier")
    assert main(["eval", "--dataset", "voc21", "--data-root", str(data), "--model", "tiny", "--json",
                 str(report)]) == 2
    assert f"{report} exists already (pass --overwrite" in one_line(capsys, "eval")
    assert main(["eval", "--dataset", "voc21", "--data-root", str(data), "--model", "tiny", "--json",
                 str(tmp_path / "no" / "r.json")]) == 2
    assert "does not exist" in one_line(capsys, "eval")


def test_a_damaged_gzipped_video_is_one_line(tmp_path, capsys, monkeypatch, tiny_model):
    monkeypatch.setattr("activesam_ros.commands.bench.load_model_from_args", lambda args: tiny_model)
    video = tmp_path / "clip.avi.gz"
    video.write_bytes(gzip.compress(bytes(4096))[:-20])
    assert main(["bench", "--model", "tiny", "--json", str(tmp_path / "v.json"), "--video", str(video),
                 "--video-vocab", "indoor"]) == 2
    assert f"{video}: cannot inflate it as gzip" in one_line(capsys, "bench")


# -- vocabularies: one rule for a line break, whatever its spelling ------------------------------------------

@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\r", "\x0b"])
def test_every_spelling_of_a_line_break_is_refused_inside_a_class(separator):
    with pytest.raises(VocabularyError, match="line break"):
        Vocabulary.from_classes([f"cat{separator}dog"])


def test_a_byte_order_mark_or_zero_width_space_around_a_class_name_is_dropped():
    assert Vocabulary.from_classes(["\ufeffcat", "dog\u200b, hound"]).classes == (("cat",), ("dog", "hound"))
    with pytest.raises(VocabularyError, match="empty"):
        Vocabulary.from_classes(["\ufeff", " \u200b "])


def test_a_vocabulary_file_loses_its_byte_order_mark_and_keeps_line_separators_refused(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes("\ufeffcat\r\ndog\n".encode())
    assert load_vocabulary_file(str(path)).names == ("cat", "dog")
    path.write_bytes("cat\u2028dog\n".encode())
    with pytest.raises(VocabularyError, match="line 1 of v.txt"):
        load_vocabulary_file(str(path))
