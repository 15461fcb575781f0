"""``activesam eval`` end to end on mini datasets with the tiny SAM 3."""

import json

import numpy as np
import pytest
from PIL import Image
from test_datasets import NAMES, scene, write_dataset

from activesam_ros.cli import main
from activesam_ros.evaluation.metrics import ConfusionMatrix, reduce_zero_label


def recompute_miou(pred_dir, samples, reduce: bool, classes: int) -> float:
    """mIoU from the saved PNGs and the ground truth alone, as anyone would."""
    matrix = ConfusionMatrix(classes)
    for name, label in samples:
        pred = np.asarray(Image.open(pred_dir / f"{name}.png")).astype(np.int64)
        if reduce:
            matrix.update(pred - 1, reduce_zero_label(label))
        else:
            matrix.update(pred, label.astype(np.int64))
    return round(100 * matrix.miou(), 4)


@pytest.mark.slow
def test_eval_voc21_with_the_tiny_model_writes_json_and_predictions(tmp_path, capsys):
    data = tmp_path / "VOCdevkit"
    labelled = [("2007_000032", *scene(48, 64, ids=(15, 7))), ("2007_000033", *scene(48, 64, ids=(12, 8)))]
    write_dataset(data, "voc21", labelled + [("2007_000039", *scene(48, 64))])
    out, preds = tmp_path / "out.json", tmp_path / "pred"
    code = main(["eval", "--dataset", "voc21", "--data-root", str(data), "--model", "tiny", "--limit", "2",
                 "--json", str(out), "--save-predictions", str(preds)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["dataset"] == "voc21" and report["images"] == 2
    assert "random weights" in report["model"] and report["random_weights"] is True
    assert report["config"]["background_threshold"] == 0.4 and report["config"]["mode"] == "exact"
    assert report["corruption"] is None and report["vocabulary"] == "shipped voc21.txt"
    classes = report["per_class_iou"]
    assert [c["name"] for c in classes[:3]] == ["background", "aeroplane", "bicycle"] and len(classes) == 21
    # classes in neither GT nor prediction have no IoU; GT classes always have one
    assert classes[15]["iou"] is not None and classes[7]["iou"] is not None
    assert sum(c["iou"] is not None for c in classes) >= 5
    assert report["images_per_second"] > 0
    assert {"encode", "decode", "total"} <= set(report["seconds_per_image"])
    assert sorted(p.name for p in preds.iterdir()) == ["2007_000032.png", "2007_000033.png"]
    for p in preds.iterdir():
        saved = Image.open(p)
        assert saved.size == (64, 48) and np.asarray(saved).max() < 21
    assert recompute_miou(preds, [(n, lab) for n, _, lab in labelled], False, 21) == report["mIoU"]
    stdout = capsys.readouterr().out
    assert "random weights" in stdout and "mIoU" in stdout and "person" in stdout


def test_eval_reduce_zero_dataset_saves_dataset_ids_under_corruption(tmp_path, tiny_model, monkeypatch):
    # The session's 224 px tiny model keeps this fast; loading is tested above.
    monkeypatch.setattr("activesam_ros.commands.common.load_model_from_args", lambda args: tiny_model)
    image, label = scene(40, 56, ids=(15, 3))
    write_dataset(tmp_path, "voc20", [(NAMES["voc20"][0], image, label)])
    out, preds = tmp_path / "out.json", tmp_path / "pred"
    code = main(["eval", "--dataset", "voc20", "--data-root", str(tmp_path), "--model", "tiny", "--json", str(out),
                 "--save-predictions", str(preds), "--corruption", "gaussian_noise", "--mode", "fast"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["corruption"] == {"type": "gaussian_noise", "severity": 5, "seed": 0}
    assert report["reduce_zero_label"] and report["config"]["background_threshold"] == 0.0
    assert report["per_class_iou"][14] == {**report["per_class_iou"][14], "name": "person", "label_id": 15}
    saved = np.asarray(Image.open(preds / f"{NAMES['voc20'][0]}.png"))
    assert 1 <= saved.min() and saved.max() <= 20  # dataset ids: class i saved as i + 1
    assert recompute_miou(preds, [(NAMES["voc20"][0], label)], True, 20) == report["mIoU"]


@pytest.mark.parametrize("argv, message", [
    (["--data-root", "{tmp}/missing"], "data root {tmp}/missing does not exist"),
    (["--data-root", "{tmp}"], "PASCAL VOC 2012 (21 classes) images not found: expected {tmp}/VOC2012/JPEGImages"),
    (["--data-root", "{data}", "--vocab", "cat; dog"], "the vocabulary has 2 classes but PASCAL VOC 2012 (21 classes) has 21"),
    (["--data-root", "{data}", "--severity", "3"], "--severity needs --corruption"),
    (["--data-root", "{data}", "--limit", "0"], "--limit must be at least 1"),
    (["--data-root", "{data}", "--json", "{tmp}/no/such/dir/out.json"], "the folder {tmp}/no/such/dir does not exist"),
])
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    data = write_dataset(tmp_path / "data", "voc21", [("a", *scene())])
    argv = [a.format(tmp=tmp_path, data=data) for a in argv]
    assert main(["eval", "--dataset", "voc21", "--model", "tiny", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("activesam eval: error: ") and "\n" not in err
    assert message.format(tmp=tmp_path) in err
