"""The published SAM 3 checkpoint loads: its layout is derived from sam3's
own code (``published_layout``), never from the package's models."""

import logging

import cv2
import pytest
import torch

from activesam_ros.cli import main
from activesam_ros.engine import model as model_mod
from activesam_ros.engine.model import UNUSED_WEIGHTS, ModelLoadError, load_sam3, load_sam3_with_report

from conftest import load_photo
from published_layout import cheap_state, image_model_layout, published_layout, write_cheap, write_full_size


def _skipped_counts(layout) -> dict:
    return {prefix: sum(name.startswith(prefix) for name in layout) for prefix in UNUSED_WEIGHTS}


def test_what_is_skipped_is_exactly_what_the_video_model_has_beyond_the_image_model():
    """The video model sam3 strict-loads sam3.pt into = the image model under
    ``detector.`` + the parts UNUSED_WEIGHTS names, each non-empty."""
    published, image = published_layout(), image_model_layout()
    used = {name[len("detector."):]: spec for name, spec in published.items()
            if name.startswith("detector.") and not any(name.startswith(p) for p in UNUSED_WEIGHTS)}
    assert used == image  # names, shapes and dtypes
    beyond = {name for name in published if any(name.startswith(p) for p in UNUSED_WEIGHTS)}
    assert beyond == set(published) - {f"detector.{name}" for name in image}
    assert all(_skipped_counts(published).values())


@pytest.fixture(scope="module")
def cheap_checkpoint(tmp_path_factory):
    return write_cheap(tmp_path_factory.mktemp("ckpt") / "sam3.pt", published_layout())


def test_a_file_of_the_published_layout_loads_strictly_memory_mapped(cheap_checkpoint, caplog):
    with caplog.at_level(logging.INFO, logger=model_mod.__name__):
        model, report = load_sam3_with_report(checkpoint=cheap_checkpoint, device="cpu")
    expected = cheap_state(published_layout())
    state = model.state_dict()
    assert len(state) == len(image_model_layout())
    for name, value in state.items():
        assert not value.is_meta, name
        assert torch.equal(value, expected[f"detector.{name}"]), name
    counts = _skipped_counts(published_layout())
    assert report.skipped == (f"skipped {sum(counts.values())} weights the image model does not use: "
                              + ", ".join(f"{n} {p}* ({UNUSED_WEIGHTS[p]})" for p, n in counts.items()))
    assert [r.getMessage() for r in caplog.records].count(f"{report.source}: {report.skipped}") == 1
    assert report.build_seconds > 0 and report.weights_seconds > 0 and report.layout == "sam3"
    assert not model.training


@pytest.mark.slow
def test_a_file_of_the_published_layout_segments_through_the_cli(cheap_checkpoint, tmp_path, capsys):
    photo = tmp_path / "cat.jpg"
    cv2.imwrite(str(photo), load_photo("chelsea.png", 160)[:, :, ::-1])
    code = main(["segment", str(photo), "--vocab", "cat; sofa", "--checkpoint", str(cheap_checkpoint),
                 "--resolution", "336", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert code == 0
    labels = cv2.imread(str(tmp_path / "out" / "cat_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (106, 160) and labels.max() <= 1
    err = capsys.readouterr().err
    skipped = sum(_skipped_counts(published_layout()).values())
    assert f"skipped {skipped} weights the image model does not use" in err and "ready in" in err


def _save(tmp_path, state, **kwargs):
    path = tmp_path / "sam3.pt"
    torch.save({"model": state}, path, **kwargs)
    return path


def test_a_published_layout_with_a_weight_missing_or_foreign_is_refused(tmp_path):
    state = cheap_state(published_layout())
    name = "detector.transformer.decoder.bbox_embed.layers.0.weight"
    with pytest.raises(ModelLoadError, match=f"missing weights: 1 \\({name[len('detector.'):]}\\)"):
        load_sam3(checkpoint=_save(tmp_path, {k: v for k, v in state.items() if k != name}), device="cpu")
    with pytest.raises(ModelLoadError, match=r"unexpected weights: 1 \(memory_bank.weight\)"):
        load_sam3(checkpoint=_save(tmp_path, {**state, "memory_bank.weight": torch.zeros(2)}), device="cpu")


@pytest.fixture
def tiny_builder(monkeypatch):
    """sam3's image builder shrunk to the tiny model, so the rest of the path runs for real."""
    import sam3.model_builder as builder

    from activesam_ros.model import build_tiny_sam3

    monkeypatch.setattr(builder, "build_sam3_image_model",
                        lambda bpe_path, device, checkpoint_path, load_from_HF: build_tiny_sam3(seed=4, image_size=224))
    return build_tiny_sam3(seed=3, image_size=224).state_dict()


def test_a_key_outside_the_image_model_and_the_skipped_parts_is_refused(tmp_path, tiny_builder):
    state = {**{f"detector.{k}": v for k, v in tiny_builder.items()}, "optimizer.step": torch.zeros(1)}
    with pytest.raises(ModelLoadError, match=r"unexpected weights: 1 \(optimizer.step\)"):
        load_sam3(checkpoint=_save(tmp_path, state), device="cpu")


def test_the_legacy_file_format_and_bfloat16_weights_load_as_float32(tmp_path, tiny_builder):
    state = {f"detector.{k}": (v.bfloat16() if v.is_floating_point() else v) for k, v in tiny_builder.items()}
    loaded = load_sam3(checkpoint=_save(tmp_path, state, _use_new_zipfile_serialization=False), device="cpu")
    name = "transformer.decoder.bbox_embed.layers.0.weight"
    assert loaded.state_dict()[name].dtype == torch.float32
    assert torch.equal(loaded.state_dict()[name], tiny_builder[name].bfloat16().float())


def test_hub_id_downloads_exactly_the_checkpoint_sam3_itself_downloads(tmp_path, tiny_builder, monkeypatch):
    import huggingface_hub
    import sam3.model_builder as builder

    asked_by_sam3 = []
    monkeypatch.setattr(builder, "hf_hub_download",
                        lambda **kw: asked_by_sam3.append(kw) or str(tmp_path / kw["filename"]))
    checkpoint = builder.download_ckpt_from_hf()  # the file sam3's own loader then reads
    sam3_checkpoint = next(kw for kw in asked_by_sam3 if str(tmp_path / kw["filename"]) == checkpoint)

    path = _save(tmp_path, {f"detector.{k}": v for k, v in tiny_builder.items()})
    asked = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: asked.append(kw) or str(path))
    loaded = load_sam3(hub_id="facebook/sam3", device="cpu")
    assert asked == [{"repo_id": sam3_checkpoint["repo_id"], "filename": sam3_checkpoint["filename"]}]
    assert asked[0] == {"repo_id": "facebook/sam3", "filename": "sam3.pt"}
    assert torch.equal(loaded.state_dict()["geometry_encoder.final_proj.weight"],
                       tiny_builder["geometry_encoder.final_proj.weight"])


@pytest.mark.released_size
def test_a_full_size_published_file_segments_end_to_end_on_the_cpu(tmp_path, capsys):
    """Opt-in (``-m released_size``, minutes, about 8 GB): 3.4 GB of random
    weights in the published layout, through ``activesam segment``."""
    checkpoint = write_full_size(tmp_path / "sam3.pt", published_layout(), seed=1)
    photo = tmp_path / "cat.jpg"
    cv2.imwrite(str(photo), load_photo("chelsea.png", 320)[:, :, ::-1])
    code = main(["segment", str(photo), "--vocab", "cat; sofa", "--checkpoint", str(checkpoint),
                 "--device", "cpu", "--out", str(tmp_path / "out")])
    assert code == 0
    labels = cv2.imread(str(tmp_path / "out" / "cat_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == load_photo("chelsea.png", 320).shape[:2]
    err = capsys.readouterr().err
    skipped = sum(_skipped_counts(published_layout()).values())
    assert f"skipped {skipped} weights the image model does not use" in err and "ready in" in err
