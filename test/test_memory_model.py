"""Peak memory: the measurement, the fit and the memory model's answers."""

import pytest
import torch

from activesam_ros.benchmark import memory as M
from activesam_ros.engine.memory_model import FrameShape, MemoryModel, StageFit, tokens


def test_the_fit_recovers_a_linear_cost_and_is_checked_on_points_it_did_not_see():
    truth = StageFit(fixed=5e6, per_token=1e3, per_prompt=2e6, per_prompt_token=300.0)
    rows = [{"dtype": "float32", "stage": "exact", "resolution": r, "prompts": k, "held_out": k == 12,
             "peak_bytes": truth.bytes(tokens(r), k)} for r in (336, 672) for k in (1, 2, 4, 8, 12)]
    rows += [{"dtype": "float32", "stage": "encode", "resolution": r, "prompts": 0, "held_out": False,
              "peak_bytes": 1e6 + 50.0 * tokens(r) + 0.01 * tokens(r) ** 2, "retained_bytes": 7.0 * tokens(r)}
             for r in (224, 336, 672)]
    fitted = M.fit(rows)["float32"]
    assert fitted["stages"]["exact"] == pytest.approx(truth.__dict__, rel=1e-6, abs=1e-3)
    assert fitted["features_per_token"] == pytest.approx(7.0)
    assert fitted["worst_held_out_error"] == pytest.approx(0.0, abs=1e-9)
    assert [c["prompts"] for c in fitted["checks"] if c["held_out"]] == [12, 12]


def _model() -> MemoryModel:
    stage = StageFit(fixed=1e8, per_prompt=2e8)
    return MemoryModel("float32", weights_bytes=3e9, encode=StageFit(fixed=5e8), features_per_token=0.0,
                       stages={"exact": stage, "fast": stage, "presence": StageFit(fixed=1e7, per_prompt=1e7)},
                       instances_per_query_pixel=8.0)


def test_a_frame_peaks_at_its_largest_step_and_reuse_skips_the_preview():
    model = _model()
    frame = FrameShape(1008, 672, 336, queries=150, active=31, bucket=16, frame_pixels=480 * 640, kept=5)
    steps = model.steps("exact", frame)
    assert steps["decode"] == pytest.approx(1e8 + 16 * 2e8 + 8.0 * 5 * 480 * 640)
    assert steps["preview"] == pytest.approx(1e7 + 16 * 1e7)
    assert "preview" not in model.steps("fast", frame, reuse=True)
    assert model.steps("fast", frame)["preview"] == pytest.approx(1e7 + 16 * 1e7)  # 60 screened in, bucket 16
    assert model.frame_bytes("exact", frame) == pytest.approx(3e9 + steps["decode"])
    small = FrameShape(1008, 672, 336, queries=21, active=21, bucket=32, frame_pixels=0)
    assert set(model.steps("exact", small)) == {"encode", "decode"}  # no preview at or below max_active


def test_the_largest_bucket_fits_with_its_margin():
    model = _model()
    free = 1.2 * (1e8 + 10 * 2e8)
    assert model.largest_bucket(free, "fast", 1008) == 10
    assert model.largest_bucket(free - 1, "fast", 1008) == 9
    assert model.largest_bucket(1e8, "fast", 1008) == 0


def test_the_released_fit_is_a_memory_model():
    from activesam_ros.engine.memory_model import RELEASED, released

    for dtype in RELEASED:
        model = released(dtype)
        assert model.forward_bytes("exact", 1008, 16) > model.forward_bytes("exact", 1008, 8) > 0
        assert 2.5e9 < model.frame_bytes("exact", FrameShape(1008, 672, 336, 150, 31, 32, 480 * 640)) < 2e10
    with pytest.raises(KeyError, match="no memory measurement for float16"):
        released("float16")


@pytest.mark.slow
def test_measured_peaks_grow_with_the_prompts():
    # The bench's own path: a fresh worker process with a fixed mmap threshold, so memory freed by
    # earlier work in this process cannot hide a stage's growth.
    points = [M.Point("encode", 224), M.Point("fast", 224, 1), M.Point("fast", 224, 8)]
    rows = [r for r in M.measure("tiny", ["float32"], points, threads=1) if r["stage"] != "model"]
    peaks = {(r["stage"], r["prompts"]): r["peak_bytes"] for r in rows}
    assert peaks[("fast", 8)] > peaks[("fast", 1)] > 0
    assert rows[0]["retained_bytes"] > 0
    with torch.inference_mode():
        assert M.resident_bytes() > 0
