"""The precision rule (engine/precision.py): the stages it names run in
bfloat16 and nothing else does, on the CPU as on CUDA; bench --precision
measures it against float32 and against bfloat16 everywhere."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from activesam_ros.benchmark.precision import VARIANTS, measure_precision
from activesam_ros.cli import main
from activesam_ros.engine.config import ActiveSAMConfig
from activesam_ros.engine.grounding import Grounder, TextBatch
from activesam_ros.engine.pipeline import ActiveSAM
from activesam_ros.engine.precision import REDUCED, STAGES, Precision

VIDEO = Path("/tmp/data/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi")
CPU = torch.device("cpu")

aten = torch.ops.aten
MATMULS = {aten.linear.default, aten.matmul.default, aten.mm.default, aten.addmm.default, aten.bmm.default,
           aten.baddbmm.default, aten.conv2d.default, aten.conv_transpose2d.input, aten.convolution.default,
           aten.scaled_dot_product_attention.default}
"""The matrix products and convolutions of a forward (what autocast casts), as
a dispatch mode sees them: after autocast, so with the dtype they compute in."""


def stage_of(name: str):
    """The stage a module of the image model computes in, by its name (None: not one stage's alone)."""
    for prefix, stage in (("backbone.vision_backbone.trunk", "trunk"), ("backbone.vision_backbone", "neck"),
                          ("backbone.language_backbone", "text")):
        if name.startswith(prefix):
            return stage
    return None


class MatmulDtypes(TorchDispatchMode):
    """The dtypes of the matrix products run, per stage: that of the
    innermost hooked module running (``_hooked``), else ``label``."""

    def __init__(self, label=None):
        super().__init__()
        self.label, self.stack, self.seen = label, [], {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in MATMULS:
            first = next(a for a in args if isinstance(a, torch.Tensor))
            self.seen.setdefault(self.stack[-1] if self.stack else self.label, set()).add(first.dtype)
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def image(photos):
    return photos["chelsea.png"]


def _hooked(model, recorder):
    """Forward hooks that keep ``recorder.stack`` at the stage of the innermost module running."""
    def leave(module, args, output):
        recorder.stack.pop()

    handles = []
    for name, module in model.named_modules():
        stage = stage_of(name)
        if stage is not None:
            handles.append(module.register_forward_pre_hook(lambda m, a, s=stage: recorder.stack.append(s)))
            handles.append(module.register_forward_hook(leave))
    return handles


def test_the_rule_names_known_stages_and_refuses_others():
    assert set(REDUCED) <= set(STAGES) and Precision(torch.bfloat16).reduced == frozenset(REDUCED)
    with pytest.raises(ValueError, match="unknown stages"):
        Precision(torch.bfloat16, frozenset({"encoder"}))
    assert not any(Precision(torch.float32, frozenset(STAGES)).low(s) for s in STAGES)


@pytest.mark.parametrize("reduced", [REDUCED, ("neck",), ("text",)])
def test_cpu_autocast_runs_the_named_stages_matrix_products_in_bfloat16_and_no_others(tiny_model, image, reduced):
    grounder = Grounder(tiny_model, CPU, torch.bfloat16, reduced=reduced)
    recorder = MatmulDtypes()
    handles = _hooked(tiny_model, recorder)
    try:
        with recorder:
            text = grounder.encode_text(["cat", "sofa"])
            encoded = grounder.encode_image(image, 224)
    finally:
        for handle in handles:
            handle.remove()
    assert set(recorder.seen) == {"text", "trunk", "neck"}
    for stage, dtypes in recorder.seen.items():
        assert dtypes == ({torch.bfloat16} if stage in reduced else {torch.float32}), stage
    # Each stage hands float32 on.
    assert all(t.dtype == torch.float32 for t in encoded.backbone_out["backbone_fpn"])
    assert text["language_features"].dtype == torch.float32


def test_decode_and_heads_run_in_bfloat16_only_when_named(tiny_model, image):
    for reduced, low in ((REDUCED, set()), (("decode", "heads"), {"decode", "heads"})):
        grounder = Grounder(tiny_model, CPU, torch.bfloat16, reduced=reduced)
        text = grounder.encode_text(["cat", "sofa"])
        encoded = grounder.encode_image(image, 224)
        batch = TextBatch(text["language_features"], text["language_mask"])
        recorder = MatmulDtypes("decode")
        with recorder:
            decoded = grounder.decode(encoded, batch)
        recorder.label = "heads"
        with recorder:
            masks, semantic = grounder.instance_logits(decoded)
        assert set(recorder.seen) == {"decode", "heads"}
        for stage, dtypes in recorder.seen.items():
            assert dtypes == ({torch.bfloat16} if stage in low else {torch.float32}), (reduced, stage)
        assert {decoded.hs.dtype, decoded.memory.dtype, masks.dtype, semantic.dtype} == {torch.float32}


def test_the_engine_runs_the_rule_for_a_reduced_dtype_and_float32_otherwise(tiny_model, image):
    config = ActiveSAMConfig(device="cpu", resolution=224, hypernym_tokens=0)
    low = ActiveSAM(tiny_model, ["cat", "sofa"], config.replace(dtype="bfloat16"))
    plain = ActiveSAM(tiny_model, ["cat", "sofa"], config)
    assert low.grounder.precision == Precision(torch.bfloat16)
    assert not any(plain.grounder.precision.low(s) for s in STAGES)
    # The rule's labels are those of a Grounder built with it by hand.
    by_hand = ActiveSAM(tiny_model, ["cat", "sofa"], config, wrap_grounder=lambda g: Grounder(
        g.model, g.device, torch.bfloat16, reduced=REDUCED))
    assert np.array_equal(low.segment(image).labels, by_hand.segment(image).labels)


def test_a_reduced_stage_changes_its_output_only_by_rounding(tiny_model, image):
    reference = Grounder(tiny_model, CPU, torch.float32)
    low = Grounder(tiny_model, CPU, torch.bfloat16, reduced=("trunk",))
    a, b = reference.encode_image(image, 224), low.encode_image(image, 224)
    fa, fb = a.backbone_out["vision_features"], b.backbone_out["vision_features"]
    assert fb.dtype == torch.float32 and not torch.equal(fa, fb)
    assert torch.allclose(fa, fb, rtol=0.1, atol=0.1)
    text = reference.encode_text(["cat", "sofa"])
    assert torch.equal(text["language_features"], low.encode_text(["cat", "sofa"])["language_features"])


@pytest.mark.slow
def test_the_default_all_and_each_stage_alone_are_measured_below_the_threshold(tiny_model, image):
    frames = [image, np.ascontiguousarray(image[:, ::-1])]
    config = ActiveSAMConfig(device="cpu", resolution=224)
    rows = measure_precision(tiny_model, frames, {"pets": ["cat", "sofa", "floor"]}, config, modes=("fast",),
                             threshold=1.01)
    by = {r["variant"]: r for r in rows}
    assert set(by) == {"default", "all"} | {s for s in STAGES if (s,) != tuple(REDUCED)}
    assert by["default"]["bfloat16"] == list(REDUCED) and by["all"]["bfloat16"] == list(STAGES)
    assert all(0.0 <= r["agreement_worst"] <= r["agreement_mean"] <= 1.0 for r in rows)
    assert len(by["all"]["agreement_per_frame"]) == 2
    assert VARIANTS["default"] == REDUCED


@pytest.mark.skipif(not VIDEO.is_file(), reason="the opencv-doc video is not on this machine")
def test_bench_precision_prints_the_figures_as_json(tmp_path, capsys):
    out = tmp_path / "precision.json"
    assert main(["bench", "--video", str(VIDEO), "--precision", "--model", "tiny", "--device", "cpu",
                 "--video-frames", "1", "--video-side", "96", "--video-vocab", "voc21",
                 "--precision-modes", "fast", "--no-precision-each-stage", "--json", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["schema"] == "activesam-bench-precision/1" and printed["resolution"] == 336  # the tiny model's
    rows = printed["rows"]
    assert [(r["mode"], r["variant"]) for r in rows] == [("fast", "default"), ("fast", "all")]
    for r in rows:
        assert len(r["agreement_per_frame"]) == 1 and r["vocabulary"] == "voc21"
        assert r["agreement_mean"] == pytest.approx(float(np.mean(r["agreement_per_frame"])), abs=1e-4)
