"""Loading SAM 3: every error path says what to do; the tiny model is seeded."""

import pytest
import torch

from activesam_ros.engine import model as model_mod
from activesam_ros.model import ModelLoadError, build_tiny_sam3, load_sam3, resolve_device


def test_missing_checkpoint_names_the_fix(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist.*sam3.pt"):
        load_sam3(checkpoint=tmp_path / "sam3.pt", device="cpu")


def test_a_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ModelLoadError, match="not a file"):
        load_sam3(checkpoint=tmp_path, device="cpu")


def test_garbage_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "sam3.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ModelLoadError, match="not a SAM 3 checkpoint: torch.load failed"):
        load_sam3(checkpoint=path, device="cpu")


def test_other_model_is_not_a_sam3_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": {"backbone.weight": torch.zeros(2)}}, path)
    with pytest.raises(ModelLoadError, match="no 'detector.\\*' weights"):
        load_sam3(checkpoint=path, device="cpu")


def test_exactly_one_source():
    with pytest.raises(ModelLoadError, match="exactly one"):
        load_sam3()
    with pytest.raises(ModelLoadError, match="exactly one"):
        load_sam3(checkpoint="a", hub_id="b")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_requested_but_absent():
    with pytest.raises(ModelLoadError, match="no CUDA"):
        resolve_device("cuda")
    with pytest.raises(ModelLoadError, match="no CUDA"):
        resolve_device("cuda:1")


def test_device_and_dtype_resolution():
    spec = resolve_device("cpu")
    assert spec.device == torch.device("cpu") and spec.dtype == torch.float32
    assert resolve_device("auto").device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu", "bfloat16").dtype == torch.bfloat16
    with pytest.raises(ModelLoadError, match="unknown device"):
        resolve_device("tpu0")
    with pytest.raises(ModelLoadError, match="unsupported device"):
        resolve_device("meta")
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        resolve_device("cpu", "int8")


def _hub_raising(exc):
    def download(**_):
        raise exc
    return download


def test_gated_hub_access_explains_the_licence(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError

    gated = GatedRepoError.__new__(GatedRepoError)  # its constructor wants an HTTP response
    Exception.__init__(gated, "403 gated")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _hub_raising(gated))
    with pytest.raises(ModelLoadError, match="gated.*licence.*login"):
        load_sam3(hub_id="facebook/sam3", device="cpu")


def test_unreachable_hub_says_to_download_elsewhere(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _hub_raising(OSError("no network")))
    with pytest.raises(ModelLoadError, match="could not download.*--checkpoint"):
        load_sam3(hub_id="facebook/sam3", device="cpu")


def test_real_checkpoint_path_loads_into_the_model_class(tmp_path, monkeypatch):
    """The loading code path end to end, with sam3's builder shrunk to the
    tiny model (no real weights here): keys are mapped and loaded."""
    tiny = build_tiny_sam3(seed=3, image_size=224)
    path = tmp_path / "sam3.pt"
    torch.save({"model": {f"detector.{k}": v for k, v in tiny.state_dict().items()}}, path)

    import sam3.model_builder as builder

    def fake_build(bpe_path, device, checkpoint_path, load_from_HF):
        assert checkpoint_path is None and not load_from_HF  # the package loads the weights itself
        return build_tiny_sam3(seed=4, image_size=224)

    monkeypatch.setattr(builder, "build_sam3_image_model", fake_build)
    loaded = load_sam3(checkpoint=path, device="cpu")
    for (name, a), b in zip(tiny.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert not loaded.training


def test_tiny_model_is_seeded_and_initialised():
    a, b, c = build_tiny_sam3(seed=0, image_size=224), build_tiny_sam3(seed=0, image_size=224), build_tiny_sam3(seed=1, image_size=224)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert all(torch.isfinite(v).all() for v in sa.values() if v.is_floating_point())
    assert type(a).__name__ == "Sam3Image"


def test_tiny_model_rejects_bad_sizes():
    with pytest.raises(ValueError, match="multiple of 112"):
        build_tiny_sam3(image_size=300)


def test_bpe_file_is_found_and_overridable(tmp_path, monkeypatch):
    assert model_mod.bpe_vocabulary_path().endswith("bpe_simple_vocab_16e6.txt.gz")
    custom = tmp_path / "bpe.txt.gz"
    custom.write_bytes(b"x")
    monkeypatch.setenv("ACTIVESAM_BPE_PATH", str(custom))
    assert model_mod.bpe_vocabulary_path() == str(custom.resolve())


@pytest.fixture
def tiny_builder(monkeypatch):
    """sam3's builder shrunk to the tiny model, so the real loading path runs."""
    import sam3.model_builder as builder

    monkeypatch.setattr(builder, "build_sam3_image_model",
                        lambda bpe_path, device, checkpoint_path, load_from_HF: build_tiny_sam3(seed=4, image_size=224))
    return build_tiny_sam3(seed=3, image_size=224).state_dict()


def _saved(tmp_path, weights) -> str:
    path = tmp_path / "sam3.pt"
    torch.save({"model": {f"detector.{k}": v for k, v in weights.items()}}, path)
    return path


def test_a_checkpoint_with_foreign_detector_keys_is_refused_with_the_keys(tmp_path, tiny_builder):
    """The hostile probe's fake: one made-up 'detector.' key is no SAM 3."""
    with pytest.raises(ModelLoadError, match=r"missing weights: \d+ .*unexpected weights: 1 \(foo\)"):
        load_sam3(checkpoint=_saved(tmp_path, {"foo": torch.zeros(2)}), device="cpu")


def test_a_checkpoint_missing_one_weight_is_refused_naming_it(tmp_path, tiny_builder):
    name = "transformer.decoder.bbox_embed.layers.0.weight"
    weights = {k: v for k, v in tiny_builder.items() if k != name}
    with pytest.raises(ModelLoadError, match=f"missing weights: 1 \\({name}\\)"):
        load_sam3(checkpoint=_saved(tmp_path, weights), device="cpu")


def test_a_checkpoint_with_a_wrong_shape_is_refused(tmp_path, tiny_builder):
    name = "backbone.vision_backbone.trunk.patch_embed.proj.weight"
    weights = dict(tiny_builder, **{name: torch.zeros(3, 3)})
    with pytest.raises(ModelLoadError, match=f"wrong shapes: 1 \\({name} \\(3, 3\\) vs"):
        load_sam3(checkpoint=_saved(tmp_path, weights), device="cpu")


def test_computed_buffers_and_tracker_weights_may_differ(tmp_path, tiny_builder):
    """RoPE tables are computed at construction; the video tracker's weights
    are not the image model's: neither stops a load."""
    weights = {k: v for k, v in tiny_builder.items() if not k.endswith("freqs_cis")}
    path = tmp_path / "sam3.pt"
    torch.save({"model": {**{f"detector.{k}": v for k, v in weights.items()},
                          "tracker.maskmem_tpos_enc": torch.zeros(7)}}, path)
    loaded = load_sam3(checkpoint=path, device="cpu")
    assert torch.equal(loaded.state_dict()["transformer.decoder.bbox_embed.layers.0.weight"],
                       tiny_builder["transformer.decoder.bbox_embed.layers.0.weight"])


def test_a_checkpoint_holding_no_dict_is_refused(tmp_path):
    path = tmp_path / "sam3.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ModelLoadError, match="holds a list, not a dict"):
        load_sam3(checkpoint=path, device="cpu")
