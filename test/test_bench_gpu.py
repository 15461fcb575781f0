"""activesam bench --gpu, run here on the CPU with the tiny model so that the
command a GPU's first run needs keeps working: its report's structure, the
counts it takes, and the tables the GPU page shows. Nothing is timed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from activesam_ros.benchmark.gpu import FORWARD_HEADER, FRAME_HEADER, GPU, GpuPlan, gpu_tables, run_gpu_bench
from activesam_ros.cli import main
from activesam_ros.engine.bucket import AUTO_MAX_BUCKET
from activesam_ros.engine.config import ActiveSAMConfig

pytest.importorskip("skimage", reason="the video's backgrounds ship in scikit-image")

DOCS = Path(__file__).resolve().parents[1] / "docs" / "gpu.md"
TINY = GpuPlan(buckets=(1, 2), vocabularies=("voc21",), width=96, height=72, frames=4, model_every=2, repeats=1,
               agreement_frames=1, warm_frames=1)


@pytest.fixture(scope="module")
def report(tiny_model):
    out = run_gpu_bench(tiny_model, "tiny SAM 3 (random weights)", random_weights=True,
                        config=ActiveSAMConfig(resolution=112, hypernym_tokens=0), plan=TINY)
    return json.loads(json.dumps(out))  # exactly what --json writes


def test_the_report_has_every_measurement(report):
    assert report["environment"]["device"] == "cpu" and report["dtype"] == "float32" and not report["autocast"]
    forwards = report["forwards"]
    assert forwards["resolution"] == 112 and forwards["image_encode_ms"] > 0
    assert [row["bucket"] for row in forwards["grounding"]] == [1, 2]
    # The last frames ran with the config's bucket_size: auto, which is AUTO_MAX_BUCKET on a CPU; nothing halved.
    assert (report["bucket_size_last"], report["bucket_halvings"]) == (AUTO_MAX_BUCKET, 0)
    for row in forwards["grounding"]:
        for mode in ("exact", "fast"):
            assert row[f"{mode}_ms_per_prompt"] == pytest.approx(row[f"{mode}_ms"] / row["bucket"])
    voc = report["frames"]["voc21"]
    assert voc["title"] == "VOC-21" and voc["classes"] == 21
    assert list(voc["modes"]) == ["exact", "fast", "reuse", "propagation"]
    for name, mode in voc["modes"].items():
        assert mode["ms_per_frame"] > 0 and mode["peak_memory_bytes"] > 0 and 0 < mode["model_fraction"] <= 1
        assert 0 <= mode["agreement_with_exact"] <= 1
    assert voc["modes"]["exact"]["agreement_with_exact"] == 1.0
    assert voc["modes"]["propagation"]["model_fraction"] == 0.5  # every second frame carried by the flow
    for name in ("exact", "fast"):
        counts = voc["modes"][name]["counts"]
        assert 1 <= counts["host_syncs"] <= 4 and counts["aten_ops"] > 100
        assert counts["kernel_launches"] is None and counts["synchronizing_calls"] is None  # CUDA only
    # The CPU's default dtype is float32: the "compute dtype" run is float32 too, so they agree by construction.
    assert voc["bf16_fp32_agreement"] == {"exact": 1.0, "fast": 1.0}


def test_the_tables_are_the_ones_the_gpu_page_shows(report):
    text = gpu_tables(report)
    assert FORWARD_HEADER.format(resolution=112) in text and FRAME_HEADER.format(width=96, height=72) in text
    assert text.count("\n| exact: ") == 2 and "| propagation | VOC-21 |" in text
    page = DOCS.read_text(encoding="utf-8")
    assert FORWARD_HEADER.format(resolution=1008) in page
    assert FRAME_HEADER.format(width=GPU.width, height=GPU.height) in page
    assert "activesam bench --gpu" in page


@pytest.mark.slow
def test_the_gpu_command_runs_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "gpu.json"
    assert main(["bench", "--gpu", "--quick", "--model", "tiny", "--device", "cpu", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["schema"] == "activesam-bench-gpu/1" and list(report["frames"]) == ["voc21"]
    assert "| forward at 336 px |" in capsys.readouterr().err
