"""How long the model took to be ready: measured where it is loaded,
reported by the CLI and on the node's /diagnostics."""

import pytest

from activesam_ros.engine.model import (
    LoadReport,
    ModelLoadError,
    build_model_with_random_weights,
    load_model_with_report,
)
from activesam_ros.ros.diagnostics import load_values


def test_the_tiny_model_reports_its_build_and_nothing_loaded():
    model, report = load_model_with_report(tiny=True, device="cpu", seed=2)
    assert report.build_seconds > 0 and report.weights_seconds == 0 and report.skipped == ""
    assert report.total_seconds == pytest.approx(report.build_seconds + report.device_seconds)
    assert report.line().startswith("tiny SAM 3 (random weights, seed 2) ready in ")
    assert not model.training


def test_random_models_are_named_and_exclusive_with_a_checkpoint():
    with pytest.raises(ModelLoadError, match="unknown random-weight model 'huge'"):
        build_model_with_random_weights("huge")
    with pytest.raises(ModelLoadError, match="give one model"):
        load_model_with_report(checkpoint="sam3.pt", random="released")


def test_diagnostics_carry_the_load_times_and_the_first_label_once_known():
    report = LoadReport("SAM 3 checkpoint 'sam3.pt'", 1.25, 10.0, 0.5)
    values = dict(load_values(report, None))
    assert values == {"model build (s)": "1.2", "model weights load (s)": "10.0", "model ready (s)": "11.8",
                      "time to first label (s)": ""}
    assert dict(load_values(report, 42.31))["time to first label (s)"] == "42.3"
