"""activesam bench: the report's structure and its internal consistency on a
very small run. No timed assertions: speed is what the benchmark measures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from activesam_ros.benchmark.inputs import SyntheticVideo, class_names
from activesam_ros.benchmark.plot import plot_scaling
from activesam_ros.benchmark.run import BenchPlan, run_benchmark
from activesam_ros.benchmark.summary import STAGES, table
from activesam_ros.cli import main
from activesam_ros.engine.config import ActiveSAMConfig

pytest.importorskip("skimage", reason="the benchmark's photographs ship in scikit-image")

# One photograph and three video frames at 112 px, and max_active 4 so a
# vocabulary of 12 runs the preview and temporal reuse: seconds, not minutes.
TINY = BenchPlan(photos=("astronaut.png",), photo_side=96, photo_repeats=1, video_frames=3, video_side=96,
                 vocabulary_size=12, reference_every=1, vocabulary_sizes=(3, 50, 60),
                 scaling_frames=1, scaling_stream_frames=2)
CONFIG = ActiveSAMConfig(resolution=112, max_active=4, hypernym_tokens=0)
SECTIONS = {"photos": ("full_vocabulary", "exact", "fast"),
            "video": ("full_vocabulary", "exact", "fast", "temporal")}


@pytest.fixture(scope="module")
def report(tiny_model):
    out = run_benchmark(tiny_model, "tiny SAM 3 (random weights)", random_weights=True,
                        config=CONFIG, plan=TINY)
    return json.loads(json.dumps(out))  # exactly what --json writes


def _mode_summaries(report):
    for section in SECTIONS:
        yield from report[section]["modes"].items()
    for row in report["scaling"]["rows"]:
        yield from row["modes"].items()


@pytest.mark.slow
def test_report_has_every_section_mode_and_stage(report):
    assert report["model"]["random_weights"] is True
    assert report["environment"]["device"] == "cpu" and report["environment"]["torch"]
    for section, modes in SECTIONS.items():
        assert tuple(report[section]["modes"]) == modes
    assert [row["vocabulary_size"] for row in report["scaling"]["rows"]] == [3, 50, 60]
    for row in report["scaling"]["rows"]:
        assert set(row["modes"]) == {"fast", "exact", "temporal"}
        assert row["text_bytes"] > 0 and row["text_strings"] >= row["vocabulary_size"]
        assert all("peak_memory_growth_bytes" in m for m in row["modes"].values())
    for _, mode in _mode_summaries(report):
        assert set(mode["stages_s"]) == set(STAGES)
    assert report["video"]["modes"]["temporal"]["kinds"].keys() <= {"refresh", "reuse"}
    assert all(f["value"] is None or math.isfinite(f["value"]) for f in report["figures"])
    assert "key figures:" in table(report)


@pytest.mark.slow
def test_the_table_reads_as_english(report):
    text = table(report)
    assert "photographs: 1 photograph, each 1 time, longer side at most 96 px" in text
    assert "per-frame modes on every frame" in text
    quick = dict(report, video=dict(report["video"], reference_every=6),
                 environment=dict(report["environment"], torch_threads=1))
    text = table(quick)
    assert "per-frame modes on 1 frame in 6" in text and " 1 thread," in text
    assert ". frame" not in text and "1 threads" not in text and "<=" not in text


@pytest.mark.slow
def test_ratios_are_the_quotients_of_the_numbers_beside_them(report):
    for _, m in _mode_summaries(report):
        assert math.isclose(m["fps"], 1 / m["time_per_frame_s"])
        assert math.isclose(m["overhead_ratio"], m["time_per_frame_s"] / m["forward_per_frame_s"])
        assert math.isclose(m["overhead_ratio_with_messages"],
                            (m["time_per_frame_s"] + m["messages_per_frame_s"]) / m["forward_per_frame_s"])
        assert sum(m["kinds"].values()) == m["frames"]
    video = report["video"]["modes"]
    for base, ratios in report["video"]["speedups"].items():
        for name, ratio in ratios.items():
            assert math.isclose(ratio, video[name]["fps"] / video[base]["fps"])
    small, large = report["scaling"]["rows"][1], report["scaling"]["rows"][2]
    by_name = {f["name"]: f for f in report["figures"]}
    scaling = by_name["temporal reuse time per frame |V|=60 / |V|=50"]
    assert math.isclose(scaling["value"], large["modes"]["temporal"]["time_per_frame_s"]
                        / small["modes"]["temporal"]["time_per_frame_s"])
    temporal = by_name["frames/s temporal reuse / per-frame fast (video)"]
    assert math.isclose(temporal["value"], video["temporal"]["fps"] / video["fast"]["fps"])


@pytest.mark.slow
def test_agreement_is_a_fraction_and_exact_is_the_reference(report):
    for section in SECTIONS:
        modes = report[section]["modes"]
        assert modes["exact"]["agreement_with_exact"] is None
        for name, m in modes.items():
            if name != "exact":
                assert 0.0 <= m["agreement_with_exact"] <= 1.0


@pytest.mark.slow
def test_wall_time_includes_the_model_forwards(report):
    for name, m in _mode_summaries(report):
        assert m["forward_per_frame_s"] > 0, name
        assert m["overhead_ratio"] >= 1.0, name


@pytest.mark.slow
def test_plot_is_a_png(report, tmp_path):
    import cv2

    png = plot_scaling(report["scaling"]["rows"], "test")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[2] == 3


def test_synthetic_video_is_deterministic_and_moves():
    rng = np.random.default_rng(0)
    backgrounds = [rng.integers(0, 255, (60, 80, 3), dtype=np.uint8) for _ in range(2)]
    a, b = SyntheticVideo(backgrounds, 10, 64, 48), SyntheticVideo(backgrounds, 10, 64, 48)
    assert all(np.array_equal(a[i], b[i]) for i in range(10))
    assert a[0].shape == (48, 64, 3) and a[0].dtype == np.uint8
    assert not np.array_equal(a[0], a[1])
    with pytest.raises(IndexError):
        a[10]


def test_vocabularies_are_distinct_nested_and_reach_a_thousand():
    names, sources = class_names(1000)
    assert len(names) == len({n.lower() for n in names}) == 1000
    assert class_names(50)[0] == names[:50]
    assert sources["listed"] + sources["generated"] == 1000
    assert "background" not in {n.lower() for n in names}


def test_bench_refuses_an_unwritable_report_before_loading_a_model(tmp_path, capsys):
    assert main(["bench", "--model", "tiny", "--json", str(tmp_path / "missing" / "out.json")]) == 2
    assert f"the folder {tmp_path / 'missing'} does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("mode, heads, other", [("exact", "instance_logits", "fused_scores"),
                                                ("fast", "fused_scores", "instance_logits")])
def test_every_grounding_forward_is_timed(tiny_model, photos, mode, heads, other):
    """The model time behind the overhead ratio covers each mode's decoder and heads."""
    from activesam_ros.benchmark.measure import timed_engine

    engine, timer = timed_engine(tiny_model, ["person", "cat", "sky"], CONFIG.replace(mode=mode))
    engine.segment(photos["chelsea.png"])
    assert timer.seconds["decode"] > 0 and timer.seconds[heads] > 0 and timer.seconds[other] == 0
    assert timer.image_forward_seconds == pytest.approx(
        timer.seconds["encode_image"] + timer.seconds["decode"] + timer.seconds[heads])


def test_warming_builds_what_first_calls_would_otherwise_pay_for(tiny_model):
    """Every scaling engine is warmed before it is timed: after ``_warm`` the
    resolution views of the full, preview and screen sizes and fast mode's
    heads exist, so no timed frame builds them."""
    from activesam_ros.benchmark import run
    from activesam_ros.engine.pipeline import input_sizes
    from activesam_ros.stream.temporal import TemporalConfig

    names, _ = class_names(12)
    engine, timer, _ = run._engine(tiny_model, CONFIG, names)
    assert engine.grounder._fused is None and set(engine.grounder._views) == {engine.grounder.native}
    rng = np.random.default_rng(0)
    video = SyntheticVideo([rng.integers(0, 255, (60, 80, 3), dtype=np.uint8) for _ in range(2)], 2, 96, 72)
    frames = [video[0], video[1]]
    run._warm(engine, timer, CONFIG, TemporalConfig(), ("fast", "exact", "temporal"), frames)
    sizes = input_sizes(CONFIG, engine.grounder)
    assert {sizes.full, sizes.preview, sizes.screen} <= set(engine.grounder._views)
    assert engine.grounder._fused is not None
