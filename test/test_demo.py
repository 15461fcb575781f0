"""scripts/demo.sh as a new user runs it: coloured regions in every overlay,
said to be random, a second run and --overwrite keep the tiny model, and a
model flag replaces it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import photo_path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("astronaut", "chelsea", "coffee", "motorcycle_left")


def demo(*argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, VENV=str(Path(sys.executable).parent.parent), OMP_NUM_THREADS="2")
    return subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_demo_paints_regions_says_they_are_random_and_runs_again(tmp_path):
    out = tmp_path / "demo"
    first = demo("--out", str(out), "--resolution", "112")  # flags pass through; 112 px keeps it quick
    assert first.returncode == 0, first.stderr[-2000:]
    assert "random-weight SAM 3 and mean nothing" in first.stdout
    for stem in PHOTOS:
        labels = cv2.imread(str(out / f"{stem}_labels.png"), cv2.IMREAD_UNCHANGED)
        classes = set(np.unique(labels).tolist())
        assert len(classes) >= 3 and 255 not in classes, (stem, classes)  # regions, none unlabeled
        photo = cv2.imread(str(photo_path(f"{stem}.png")))
        overlay = cv2.imread(str(out / f"{stem}_overlay.png"))
        tinted = np.abs(overlay.astype(int) - photo.astype(int)).max(axis=2) > 20
        assert tinted.mean() > 0.5, (stem, tinted.mean())  # most pixels carry a class colour
        summary = json.loads((out / f"{stem}.json").read_text())
        assert summary["model"].startswith("tiny") and "background" not in summary["vocabulary"]
        assert f"demo: {stem}.png: " in first.stdout
    again = demo("--out", str(out), "--resolution", "112", "--overwrite")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "chelsea.json").read_text())["model"].startswith("tiny")


def test_a_model_flag_replaces_the_tiny_model(tmp_path):
    run = demo("--out", str(tmp_path / "demo"), "--checkpoint", str(tmp_path / "missing.pt"))
    assert run.returncode == 2
    assert "missing.pt" in run.stderr and "does not exist" in run.stderr  # not "not allowed with --model"
