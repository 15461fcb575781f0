"""``activesam bench --depth-outputs``: the report's counts are the scene's
(points: the decimated depth pixels with ground truth), its ratio is its
own numbers', and the reduced scene keeps the camera's geometry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from activesam_ros.benchmark.outputs_3d import outputs_3d_table
from activesam_ros.benchmark.stereo import motorcycle, scaled
from activesam_ros.cli import main
from activesam_ros.stream.depth import DepthImage, depth_metres, project


def test_the_reduced_scene_keeps_the_cameras_geometry():
    """A point of the reduced depth image projects to where the full-size camera sees it."""
    full = motorcycle()
    small = scaled(full, 384)
    assert max(small.rgb.shape[:2]) == 384 and small.depth_mm.shape == small.rgb.shape[:2]
    cloud = project(DepthImage(depth_metres(small.depth_32fc1()), small.intrinsics), small.rgb,
                    np.zeros(small.depth_mm.shape, np.uint8))
    # A reduced pixel's point lands on its centre in full-size pixels, and its depth is that of the
    # full-size pixel under that centre.
    info = full.intrinsics
    u = info.fx * cloud.xyz[:, 0] / cloud.xyz[:, 2] + info.cx
    v = info.fy * cloud.xyz[:, 1] / cloud.xyz[:, 2] + info.cy
    rows, cols = cloud.pixel.T
    sx, sy = small.rgb.shape[1] / full.rgb.shape[1], small.rgb.shape[0] / full.rgb.shape[0]
    np.testing.assert_allclose(u, (cols + 0.5) / sx - 0.5, atol=1e-3)
    np.testing.assert_allclose(v, (rows + 0.5) / sy - 0.5, atol=1e-3)
    source = np.floor((rows + 0.5) / sy).astype(int), np.floor((cols + 0.5) / sx).astype(int)
    assert np.abs(cloud.xyz[:, 2] * 1000 - full.depth_mm[source]).max() < 1e-3


@pytest.mark.slow
def test_bench_depth_outputs_report_is_consistent(tmp_path, capsys, monkeypatch, tiny_model):
    monkeypatch.setattr("activesam_ros.commands.bench.load_model_from_args", lambda args: tiny_model)
    out = tmp_path / "depth.json"
    assert main(["bench", "--model", "tiny", "--json", str(out), "--depth-outputs", "--depth-frames", "3",
                 "--depth-side", "196"]) == 0
    report = json.loads(out.read_text())
    assert report["random_weights"] and report["frames"] == 3 and max(report["frame_size"]) == 196
    small = scaled(motorcycle(), 196)
    step = report["points_decimation"]
    assert report["points_per_frame"] == np.count_nonzero(np.isfinite(small.depth_mm[::step, ::step]))
    cpu = report["cpu_ms_per_frame"]
    assert set(cpu) == {"model_frame", "points", "detections_3d"} and all(v >= 0 for v in cpu.values())
    assert report["added_fraction"] == pytest.approx((cpu["points"] + cpu["detections_3d"]) / cpu["model_frame"],
                                                     rel=1e-2, abs=1e-3)
    assert "| points + detections_3d / model frame |" in outputs_3d_table(report) in capsys.readouterr().err
