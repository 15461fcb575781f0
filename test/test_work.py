"""activesam bench --work: counted work per frame. The counter against hand
counts from the layer shapes, shape-only counts against real execution,
the linear model of a forward, and the cost model's rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from activesam_ros.benchmark import work
from activesam_ros.benchmark.counting import Count, ShapeOnly, count, released_sam3, shapes_only
from activesam_ros.benchmark.plot import plot_work
from activesam_ros.benchmark.stream_mix import measure_stream_mix
from activesam_ros.benchmark.work_report import stream_mixes_from_json, work_report, work_tables
from activesam_ros.cli import main
from activesam_ros.engine import ActiveSAM, ActiveSAMConfig
from activesam_ros.engine.grounding import Grounder
from activesam_ros.engine.pipeline import input_sizes
from activesam_ros.engine.vocabulary import Vocabulary
from activesam_ros.stream.temporal import TemporalConfig

# The released image encoder, as sam3.model_builder writes it: ViT
# (_create_vit_backbone) and its neck (_create_vit_neck, d_model 256).
RELEASED_VIT = dict(image=1008, patch=14, dim=1024, depth=32, mlp_ratio=4.625, window=24,
                    global_blocks=(7, 15, 23, 31), d_model=256)
# The tiny test model at 224 px (engine/model.py build_tiny_sam3).
TINY_VIT = dict(image=224, patch=14, dim=96, depth=4, mlp_ratio=4.0, window=8, global_blocks=(1, 3), d_model=64)


def hand_count(image, patch, dim, depth, mlp_ratio, window, global_blocks, d_model, scales=(4, 2, 1, 0.5)):
    """FLOPs (2 per multiply-add) of SAM 3's image encoder from its layer shapes."""
    grid = image // patch
    tokens = grid * grid
    flops = 2 * tokens * (3 * patch * patch) * dim                   # patch embedding, a 14x14 convolution
    hidden = int(dim * mlp_ratio)
    per_block = 2 * tokens * (3 * dim * dim + dim * dim + 2 * dim * hidden)  # qkv, proj, mlp
    padded = -(-grid // window) * window
    windows, window_tokens = (padded // window) ** 2, window * window
    for block in range(depth):
        flops += per_block
        if block in global_blocks:
            flops += 4 * tokens * tokens * dim                       # q.k and attention.v over all tokens
        else:
            flops += 4 * windows * window_tokens * window_tokens * dim

    def conv(pixels, c_in, c_out, k):                                 # per input pixel for a transposed conv
        return 2 * pixels * c_in * c_out * k * k

    for scale in scales:                                              # the neck: one FPN level per scale
        if scale == 4:
            flops += conv(grid ** 2, dim, dim // 2, 2) + conv((2 * grid) ** 2, dim // 2, dim // 4, 2)
            out, side = dim // 4, 4 * grid
        elif scale == 2:
            flops += conv(grid ** 2, dim, dim // 2, 2)
            out, side = dim // 2, 2 * grid
        else:
            out, side = dim, int(grid * scale)
        flops += conv(side ** 2, out, d_model, 1) + conv(side ** 2, d_model, d_model, 3)
    return flops


@pytest.fixture(scope="module")
def released():
    """SAM 3's released architecture, weights as shapes only (about a second)."""
    return released_sam3()


@pytest.fixture(scope="module")
def tiny_shapes(tiny_model):
    return shapes_only(tiny_model)


@pytest.fixture(scope="module")
def tiny_stages(tiny_shapes):
    return work.count_stages(tiny_shapes, ActiveSAMConfig(resolution=224, bucket_size=4))


def test_released_encoder_count_equals_the_hand_count(released):
    counter = work.StageCounter(released, ActiveSAMConfig())
    counted, _ = counter.encode(1008)
    expected = hand_count(**RELEASED_VIT)
    assert abs(counted.flops - expected) / expected < 0.10
    assert math.isclose(counted.flops, expected, rel_tol=1e-9)  # in fact, to the operation
    assert counted.attention > 0.1 * counted.flops  # the ViT's attention is in it


def test_the_hand_count_is_the_same_function_at_the_tiny_size(tiny_model):
    grounder = Grounder(tiny_model, torch.device("cpu"), torch.float32)
    rgb = np.zeros((224, 224, 3), np.uint8)
    counted, _ = count(lambda: grounder.encode_image(rgb, 224))  # real execution
    assert math.isclose(counted.flops, hand_count(**TINY_VIT), rel_tol=1e-9)


def test_a_plain_cpu_flop_counter_misses_the_vit_attention(tiny_model):
    """Why ``count`` adds attention: torch's counter does not list the CPU kernel."""
    from torch.utils.flop_counter import FlopCounterMode

    grounder = Grounder(tiny_model, torch.device("cpu"), torch.float32)
    rgb = np.zeros((224, 224, 3), np.uint8)
    with FlopCounterMode(display=False) as plain:
        grounder.encode_image(rgb, 224)
    ours, _ = count(lambda: grounder.encode_image(rgb, 224))
    assert math.isclose(plain.get_total_flops() + ours.attention, ours.flops, rel_tol=1e-9)


SIZES = {"preview": 154, "preview_sam3": 154, "screen_fast": 70}


@pytest.fixture(scope="module")
def both(tiny_model, tiny_shapes):
    """Counters on the tiny model run for real and shape-only, and each
    one's encoded images (with the encode counts) at the sizes counted."""
    config = ActiveSAMConfig(resolution=224, confidence_threshold=0.0)  # real scores: every instance kept
    real = work.StageCounter(tiny_model, config, shape_only=False)
    shaped = work.StageCounter(tiny_shapes, config, kept=real.num_queries)
    return {counter: {size: counter.encode(size) for size in (224, 154, 70)} for counter in (real, shaped)}


@pytest.mark.parametrize("kind", list(work.FORWARDS))
def test_shape_only_counts_equal_real_execution(both, kind):
    """The meta-device count of every forward kind is the count of really running it."""
    (real, real_images), (shaped, shaped_images) = both.items()
    size = SIZES.get(kind, 224)
    assert real_images[size][0].flops == shaped_images[size][0].flops
    text = real.batch(2, 36, 64)
    assert real.forward(kind, real_images[size][1], text).flops == \
        shaped.forward(kind, shaped_images[size][1], text).flops


def test_forwards_are_linear_in_prompts_and_extrapolate_exactly(tiny_stages):
    check = tiny_stages.check["bucket"]
    assert check["prompts"] == 4 and check["relative_difference"] == 0.0
    for line in tiny_stages.forward.values():
        assert line.per_prompt.flops > 0 and line.fixed.flops >= 0


def test_counts_are_reproducible(released):
    """Same numbers twice, at the released size: an image encode and a bucket of each full-size forward."""
    def counts():
        counter = work.StageCounter(released, ActiveSAMConfig())
        encode, image = counter.encode(644)
        text = counter.batch(3, 36, 256)
        return [encode] + [counter.forward(kind, image, text) for kind in ("exact_full", "fast_full")]

    first, second = counts(), counts()
    assert first == second and all(c.flops > 0 and c.bytes > 0 for c in first)


def test_the_engine_shares_work_and_its_heads_cost_less_than_sam3s(tiny_stages):
    f = tiny_stages.forward
    for ours, sam3 in (("preview", "preview_sam3"), ("decoder_shared", "decoder_full")):
        assert f[ours].per_prompt.flops < f[sam3].per_prompt.flops  # the first self-attention once per forward
        assert f[ours].fixed.flops > 0 == f[sam3].fixed.flops
    assert f["exact_full"].per_prompt.flops < f["sam3_full"].per_prompt.flops
    assert f["decoder_shared"].per_prompt.flops < f["exact_full"].per_prompt.flops


def test_stage_sizes_follow_the_engine(tiny_model, tiny_shapes):
    grounder = Grounder(tiny_shapes, torch.device("cpu"), torch.float32)
    for resolution in (224, 644, 1008):
        config = ActiveSAMConfig(resolution=resolution)
        engine = ActiveSAM(tiny_model, ["cat"], config)
        sizes = input_sizes(config, grounder)
        assert (sizes.full, sizes.preview, sizes.screen) == (
            engine.resolution, engine.preview_resolution, engine.fast_preview_resolution)


def test_active_count_is_the_methods_rule():
    config = ActiveSAMConfig()
    assert [work.active_count(n, config) for n in (21, 40, 41, 150, 1000)] == [21, 40, 9, 30, 40]


def test_linear_prompts_are_summed_over_buckets():
    line = work.Linear(Count(10.0, 1.0), Count(3.0, 2.0))
    assert line.prompts(0, 32) == Count()
    assert line.prompts(33, 32).flops == 2 * 10 + 33 * 3
    assert line.prompts(32, 32).flops == 10 + 32 * 3


def test_frame_work_composes_the_modes(tiny_stages):
    config = ActiveSAMConfig(resolution=224, bucket_size=4)
    f, s = tiny_stages.forward, tiny_stages.sizes
    small = work.frame_work(tiny_stages, 21, 21, config)["modes"]
    assert small["decode_all"]["model_gflop"] == small["exact"]["model_gflop"]  # no preview at 21 queries
    large = work.frame_work(tiny_stages, 150, 150, config)
    assert large["active"] == 30
    exact = (tiny_stages.encode[s.preview] + f["preview"].prompts(150, 4)
             + tiny_stages.encode[s.full] + f["exact_full"].prompts(30, 4))
    assert math.isclose(large["modes"]["exact"]["model_gflop"], exact.gflop)
    fast = (tiny_stages.encode[s.screen] + f["screen_fast"].prompts(150, 4) + tiny_stages.encode[s.preview]
            + f["preview"].prompts(60, 4) + tiny_stages.encode[s.full] + f["fast_full"].prompts(30, 4))
    assert math.isclose(large["modes"]["fast"]["model_gflop"], fast.gflop)
    assert large["modes"]["fast"]["gflop"] < large["modes"]["exact"]["gflop"] < large["modes"]["decode_all"]["gflop"]
    published = (tiny_stages.encode[s.preview] + f["preview_sam3"].prompts(150, 4)
                 + tiny_stages.encode[s.full] + f["sam3_full"].prompts(30, 4))
    assert math.isclose(large["modes"]["exact_sam3_forward"]["model_gflop"], published.gflop)
    assert large["modes"]["exact"]["gflop"] < large["modes"]["exact_sam3_forward"]["gflop"]


def test_stream_modes_follow_the_mix(tiny_stages):
    config = ActiveSAMConfig(resolution=224, bucket_size=4)
    f, s = tiny_stages.forward, tiny_stages.sizes

    def model(mix):
        return work.frame_work(tiny_stages, 150, 150, config, mix)["modes"]

    always = model(work.StreamMix(refresh_fraction=1.0, reuse_decoded_queries=5, model_fraction=1.0))
    unscreened = (tiny_stages.encode[s.preview] + f["preview"].prompts(150, 4)
                  + tiny_stages.encode[s.full] + f["fast_full"].prompts(30, 4))
    assert math.isclose(always["stream_reuse"]["model_gflop"], unscreened.gflop)
    never = model(work.StreamMix(refresh_fraction=0.0, reuse_decoded_queries=5, model_fraction=0.25))
    reuse = tiny_stages.encode[s.full] + f["fast_full"].prompts(5, 4)
    assert math.isclose(never["stream_reuse"]["model_gflop"], reuse.gflop)
    assert math.isclose(never["stream_propagation"]["gflop"], 0.25 * never["stream_reuse"]["gflop"])
    capped = model(work.StreamMix(refresh_fraction=0.0, reuse_decoded_queries=500))
    assert capped["stream_reuse"]["decoded_queries"] == 30  # a reuse frame decodes at most the active set


@pytest.mark.parametrize("bad", [{"refresh_fraction": 1.5, "reuse_decoded_queries": 3},
                                 {"refresh_fraction": 0.5, "reuse_decoded_queries": -1},
                                 {"refresh_fraction": 0.5, "reuse_decoded_queries": 3, "colour": "red"},
                                 ["not", "an", "object"]])
def test_bad_stream_mixes_are_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        stream_mixes_from_json(bad, ["ade20k"])


def test_stream_mixes_from_a_file_apply_per_vocabulary_or_to_all():
    one = stream_mixes_from_json({"refresh_fraction": 0.2, "reuse_decoded_queries": 7}, ["voc21", "ade20k"])
    assert set(one) == {"voc21", "ade20k"} and one["ade20k"].reuse_decoded_queries == 7
    per = stream_mixes_from_json({"ade20k": {"refresh_fraction": 0.2, "reuse_decoded_queries": 7}}, ["voc21", "ade20k"])
    assert set(per) == {"ade20k"}


def _video(n=6, h=72, w=96):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w + 4 * n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, 4 * i: 4 * i + w]) for i in range(n)]  # a slow pan


def test_stream_mix_is_measured_through_the_stream_processor(tiny_model):
    engine = ActiveSAM(tiny_model, [f"thing {i}" for i in range(8)],
                       ActiveSAMConfig(mode="fast", max_active=4, resolution=112, hypernym_tokens=0))
    frames = _video(n=5)
    mix = measure_stream_mix(engine, frames, 10.0, TemporalConfig(refresh_interval=3), model_every=2)
    assert 1 / len(frames) <= mix.refresh_fraction < 1
    assert 0 < mix.reuse_decoded_queries <= 4
    assert 0.5 <= mix.model_fraction <= 1
    every = measure_stream_mix(engine, frames, 10.0, TemporalConfig(refresh_interval=1), model_every=1)
    assert every.refresh_fraction == 1.0 and every.reuse_decoded_queries == 0.0 and every.model_fraction == 1.0


def test_report_tables_figures_and_plot(tiny_stages, tmp_path):
    config = ActiveSAMConfig(resolution=224, bucket_size=4)
    vocabularies = {"voc21": Vocabulary.coerce([f"c{i}" for i in range(21)]),
                    "ade20k": Vocabulary.coerce([f"c{i}" for i in range(150)])}
    mixes = {"ade20k": work.StreamMix(0.125, 20, 0.25)}
    report = work_report({224: tiny_stages}, vocabularies, mixes, config, parameters=1)
    report = json.loads(json.dumps(report))
    ade = next(f for f in report["frames"] if f["vocabulary"] == "ade20k")
    assert set(work.MODES) <= set(ade["modes"])
    voc = next(f for f in report["frames"] if f["vocabulary"] == "voc21")
    assert "stream_reuse" not in voc["modes"]  # no mix measured for it
    cal = report["calibration"]
    assert math.isclose(cal["implied_efficiency"],
                        cal["gflop_per_frame"] * 1e9 * 1.92 / 209.5e12)
    for row in report["estimates"]:
        for mode, fps in row["fps"].items():
            frame = next(f for f in report["frames"] if f["vocabulary"] == row["vocabulary"])
            gpu = next(g for g in work.GPUS if g.name == row["gpu"])
            assert math.isclose(fps, gpu.bf16_dense_tflops * 1e3 * cal["implied_efficiency"]
                                / frame["modes"][mode]["gflop"])
    by_name = {f["name"]: f["value"] for f in report["figures"]}
    reuse = by_name["stream with reuse / exact, ADE20K 150 classes at 224 px (counted GFLOP)"]
    assert math.isclose(reuse, ade["modes"]["stream_reuse"]["gflop"] / ade["modes"]["exact"]["gflop"])
    assert "ESTIMATES" in work_tables(report)
    assert plot_work([ade], work.MODES, "test")[:8] == b"\x89PNG\r\n\x1a\n"


def test_shape_only_refuses_to_read_a_value():
    from activesam_ros.benchmark.counting import CountError

    with pytest.raises(CountError, match="data-dependent"):
        count(lambda: float(torch.empty(3, device="meta").sum()), ShapeOnly())


def test_work_command_needs_a_stream_mix_source(tmp_path, capsys):
    out = str(tmp_path / "work.json")
    assert main(["bench", "--work", "--model", "tiny", "--json", out]) == 2
    assert "--work needs --video" in capsys.readouterr().err
    bad = tmp_path / "mix.json"
    bad.write_text('{"refresh_fraction": 2, "reuse_decoded_queries": 1}')
    assert main(["bench", "--work", "--model", "tiny", "--work-stream", str(bad), "--json", out]) == 2
    assert "refresh_fraction must be" in capsys.readouterr().err
    assert not (tmp_path / "work.json").exists()
