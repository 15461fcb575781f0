"""bench --precision: bfloat16 runs where it is asked to and nowhere else."""

import numpy as np
import pytest
import torch

from activesam_ros.benchmark.precision import MixedPrecisionGrounder, measure_precision
from activesam_ros.engine.config import ActiveSAMConfig
from activesam_ros.engine.grounding import Grounder, TextBatch


@pytest.fixture(scope="module")
def image(photos):
    return photos["chelsea.png"]


def test_a_stage_runs_in_bfloat16_only_when_named_and_hands_float32_on(tiny_model, image):
    reference = Grounder(tiny_model, torch.device("cpu"), torch.float32)
    low = MixedPrecisionGrounder(tiny_model, torch.device("cpu"), ("encode",))
    a, b = reference.encode_image(image, 224), low.encode_image(image, 224)
    fa, fb = a.backbone_out["vision_features"], b.backbone_out["vision_features"]
    assert fb.dtype == torch.float32 and not torch.equal(fa, fb)
    assert torch.allclose(fa, fb, rtol=0.1, atol=0.1)
    text = reference.encode_text(["cat", "sofa"])
    assert torch.equal(text["language_features"], low.encode_text(["cat", "sofa"])["language_features"])
    batch = TextBatch(text["language_features"], text["language_mask"])
    assert torch.equal(reference.ground(a, batch).pred_logits, low.ground(a, batch).pred_logits)


@pytest.mark.slow
def test_all_stages_then_each_alone_are_measured_below_the_threshold(tiny_model, image):
    frames = [image, np.ascontiguousarray(image[:, ::-1])]
    config = ActiveSAMConfig(device="cpu", resolution=224)
    rows = measure_precision(tiny_model, frames, {"pets": ["cat", "sofa", "floor"]}, config, modes=("fast",),
                             threshold=1.01)
    by = {r["bfloat16"]: r for r in rows}
    assert set(by) == {"all", "text", "encode", "decode", "encode+decode"}
    assert all(0.5 < r["agreement_mean"] <= 1.0 for r in rows)
    assert len(by["all"]["agreement_per_frame"]) == 2
