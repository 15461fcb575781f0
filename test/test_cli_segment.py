"""``activesam segment``: outputs on real photographs and every error path."""

import json

import cv2
import numpy as np
import pytest

from activesam_ros.cli import main
from activesam_ros.commands.segment import write_outputs
from activesam_ros.engine.result import SegmentationResult
from activesam_ros.engine.vocabulary import Vocabulary

from conftest import load_photo


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "cat.jpg"
    cv2.imwrite(str(path), load_photo("chelsea.png", 160)[:, :, ::-1])
    return path


def test_segment_writes_labels_overlay_and_json(photo_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(photo_file), "--vocab", "background; cat; sofa, couch", "--model", "tiny",
                 "--background-threshold", "0.4", "--out", str(out)])
    assert code == 0
    rgb = cv2.imread(str(photo_file))
    labels = cv2.imread(str(out / "cat_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint8 and labels.shape == rgb.shape[:2]
    assert set(np.unique(labels).tolist()) <= {1, 2, 255}  # background (calibrated) is 255
    overlay = cv2.imread(str(out / "cat_overlay.png"))
    assert overlay.shape == rgb.shape
    summary = json.loads((out / "cat.json").read_text())
    assert summary["vocabulary"] == ["background", "cat", "sofa, couch"]
    assert "random weights" in summary["model"]
    assert summary["image_size"] == [rgb.shape[1], rgb.shape[0]]
    assert summary["unlabeled_value"] == 255
    assert summary["config"]["background_threshold"] == 0.4
    assert {c["name"] for c in summary["active_classes"]} <= {"background", "cat", "sofa"}
    assert sum(c["pixels"] for c in summary["active_classes"]) <= labels.size
    assert summary["timings_s"]["total"] > 0
    assert "random-weight" in capsys.readouterr().err


def _result(num_classes, labels):
    vocab = Vocabulary.from_lines([f"class {i}" for i in range(num_classes)])
    n = len(vocab)
    return SegmentationResult(
        labels=labels, scores=np.ones(labels.shape, np.float32), vocabulary=vocab,
        active_queries=[0, n - 1], query_presence=np.linspace(0, 1, n, dtype=np.float32),
        preview_presence=None, preview_ran=False, background_index=None, timings={"total": 0.1},
    )


def test_more_than_254_classes_write_uint16_labels(tmp_path):
    labels = np.array([[0, 299], [150, 255]], np.int32)
    result = _result(300, labels)
    write_outputs(tmp_path, "x", np.zeros((2, 2, 3), np.uint8), result, 0.5, {})
    written = cv2.imread(str(tmp_path / "x_labels.png"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written, labels)


@pytest.mark.parametrize("argv,message", [
    (["--vocab", " ; ", "--model", "tiny"], "vocabulary is empty"),
    (["--vocab", "cat", "--checkpoint", "/nonexistent/sam3.pt"], "does not exist"),
    (["--vocab-file", "/nonexistent/vocab.txt", "--model", "tiny"], "cannot read vocabulary file"),
    (["--vocab", "cat", "--model", "tiny", "--bucket-size", "-1"], "bucket_size must be an integer >= 0"),
    (["--vocab", "cat", "--model", "tiny", "--device", "cuda:7"], "cuda"),
])
def test_bad_input_gives_one_clear_line(photo_file, tmp_path, capsys, argv, message):
    code = main(["segment", str(photo_file), "--out", str(tmp_path), *argv])
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("activesam segment")]
    assert len(err) == 1 and message in err[0], err


def test_unreadable_and_missing_images(tmp_path, capsys):
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    assert main(["segment", str(fake), "--vocab", "cat", "--model", "tiny", "--out", str(tmp_path)]) == 2
    assert "not a readable image" in capsys.readouterr().err
    assert main(["segment", str(tmp_path / "none.jpg"), "--vocab", "cat", "--model", "tiny", "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    assert "segment" in capsys.readouterr().out
