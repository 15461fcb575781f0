"""SAM 3's weights in the transformers layout map onto sam3's image model:
checked against transformers' own ``Sam3Model`` and ``Sam3VideoModel``
built on the meta device, and against sam3's image model."""

import pytest
import torch

from activesam_ros.engine import cpu_shims
from activesam_ros.engine.model import ModelLoadError, load_sam3
from activesam_ros.engine.transformers_layout import NO_SOURCE, UNUSED_WEIGHTS, to_sam3

from published_layout import image_model_layout

cpu_shims.prepare_sam3_import()  # transformers imports torchvision
transformers = pytest.importorskip("transformers", minversion="5.0")


def _meta_state(cls_name: str, config_name: str) -> dict:
    cls, config = getattr(transformers, cls_name), getattr(transformers, config_name)
    with torch.device("meta"):
        return cls(config()).state_dict()


def _sam3_parameters() -> dict:
    """sam3's image model less the tables it computes at construction (RoPE)."""
    return {k: v for k, v in image_model_layout().items() if not k.endswith("freqs_cis")}


def test_every_tensor_of_sam3model_maps_onto_exactly_sam3s_image_model():
    mapped = to_sam3(_meta_state("Sam3Model", "Sam3Config"), "transformers' Sam3Model")
    layout = {k: (tuple(v.shape), v.dtype) for k, v in mapped.weights.items()}
    assert layout == _sam3_parameters()
    assert not any(mapped.skipped.values())


def test_the_video_models_detector_maps_and_its_tracker_is_skipped_by_name():
    state = _meta_state("Sam3VideoModel", "Sam3VideoConfig")
    mapped = to_sam3(state, "transformers' Sam3VideoModel")
    assert {k: (tuple(v.shape), v.dtype) for k, v in mapped.weights.items()} == _sam3_parameters()
    counts = {p: sum(k.startswith(p) for k in state) for p in UNUSED_WEIGHTS}
    assert all(counts.values()) and sum(mapped.skipped.values()) == sum(counts.values())
    assert len(state) == sum(counts.values()) + sum(k.startswith("detector_model.") for k in state)


def _real(state: dict, seed: int = 0) -> dict:
    """Small random stand-ins for the few tensors a test looks at, zeros elsewhere (cheap views)."""
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=generator) if v.numel() < 1 << 20 else torch.zeros(()).expand(v.shape)
            for k, v in state.items()}


def test_fused_transposed_and_padded_tensors_hold_the_right_values():
    state = _real(_meta_state("Sam3Model", "Sam3Config"))
    w = to_sam3(state, "x").weights
    layer = "detr_decoder.layers.2.text_cross_attn"
    fused = w["transformer.decoder.layers.2.ca_text.in_proj_weight"]
    assert torch.equal(fused, torch.cat([state[f"{layer}.{p}_proj.weight"] for p in "qkv"]))
    assert torch.equal(w["transformer.decoder.layers.2.ca_text.out_proj.bias"], state[f"{layer}.o_proj.bias"])
    assert torch.equal(w["transformer.decoder.layers.2.norm1.weight"],
                       state["detr_decoder.layers.2.vision_cross_attn_layer_norm.weight"])
    assert torch.equal(w["transformer.decoder.bbox_embed.layers.0.bias"], state["detr_decoder.box_head.layer1.bias"])
    pos = w["backbone.vision_backbone.trunk.pos_embed"]
    assert torch.equal(pos[:, 1:], state["vision_encoder.backbone.embeddings.position_embeddings"])
    assert not pos[:, 0].any()
    for module in NO_SOURCE:
        assert torch.isnan(w[f"{module}.weight"]).all()


def test_a_name_without_a_rule_is_refused_naming_it():
    state = dict(_meta_state("Sam3Model", "Sam3Config"), **{"detr_decoder.extra_head.weight": torch.zeros(1)})
    with pytest.raises(ModelLoadError, match=r"no sam3 weight for 1 of its tensors \(detr_decoder.extra_head.weight\)"):
        to_sam3(state, "x")


def test_a_safetensors_file_loads_through_the_checkpoint_path(tmp_path, monkeypatch):
    """A transformers-layout file of a small config: names and shapes follow
    from transformers' own model, values are checked after loading."""
    from safetensors.torch import save_file

    config = transformers.Sam3Config(
        vision_config={"backbone_config": transformers.Sam3ViTConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, global_attn_indexes=[1])},
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "projection_dim": 16},
    )
    torch.manual_seed(0)
    hf = transformers.Sam3Model(config).eval()
    state = {k: v.contiguous() for k, v in hf.state_dict().items()}
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    expected = to_sam3(state, "x").weights

    import sam3.model_builder as builder

    def build_like(**_):
        """sam3's image model with no parameters, shaped like the mapped file."""
        model = torch.nn.Module()
        for name, value in expected.items():
            *parents, leaf = name.split(".")
            owner = model
            for part in parents:
                if not hasattr(owner, part):
                    owner.add_module(part, torch.nn.Module())
                owner = getattr(owner, part)
            owner.register_parameter(leaf, torch.nn.Parameter(torch.empty(value.shape)))
        return model

    monkeypatch.setattr(builder, "build_sam3_image_model", build_like)
    loaded = load_sam3(checkpoint=path, device="cpu").state_dict()
    assert set(loaded) == set(expected)
    for name, value in expected.items():
        assert torch.equal(loaded[name], value) or (value.isnan().all() and loaded[name].isnan().all()), name


def test_a_safetensors_file_that_is_not_one_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    with pytest.raises(ModelLoadError, match="not a safetensors file"):
        load_sam3(checkpoint=path, device="cpu")
