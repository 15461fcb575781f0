"""bench --objects: switches counted as documented, the greedy baseline as
documented, and the command on a real video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from activesam_ros.benchmark.objects import GreedyIds, count_switches, same_object_pairs
from activesam_ros.cli import main

from test_identities import frame

VTEST = Path("/tmp/data/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def test_same_object_pairs_need_the_class_and_half_the_pixels():
    before = frame([(0, 0, 0, 10, 10), (1, 20, 0, 30, 10), (0, 40, 0, 50, 10)])
    after = frame([(0, 1, 0, 11, 10), (2, 20, 0, 30, 10), (0, 46, 0, 56, 10)])
    # moved by 1 (IoU 9/11): same; same pixels, another class: not; moved by 6 (IoU 4/16): not
    assert same_object_pairs(before, after) == [(0, 0)]


def test_switches_are_same_object_pairs_whose_ids_differ():
    results = [frame([(0, 0, 0, 10, 10), (1, 20, 0, 30, 10)]), frame([(1, 20, 0, 30, 10), (0, 0, 0, 10, 10)])]
    assert count_switches(results, [[1, 2], [2, 1]]) == {"pairs": 2, "switches": 0}
    assert count_switches(results, [[1, 2], [1, 2]]) == {"pairs": 2, "switches": 2}
    assert count_switches(results, [[1, 2], [1, 2]], classes=[1]) == {"pairs": 1, "switches": 1}


def test_greedy_matching_takes_what_it_overlaps_most_in_list_order_whatever_the_class():
    greedy = GreedyIds()
    assert greedy.update(frame([(0, 0, 0, 10, 10), (1, 20, 0, 30, 10)])) == [1, 2]
    # the first instance overlaps both old ones, the second old one more: it takes id 2,
    # and the second instance, over the second old one only, gets a new id
    assert greedy.update(frame([(2, 6, 0, 26, 10), (1, 25, 0, 35, 10)])) == [2, 3]


@pytest.mark.skipif(not VTEST.is_file(), reason="opencv-doc's vtest.avi is not installed")
def test_the_objects_bench_on_a_real_video(tiny_cli, tmp_path, capsys):
    out = tmp_path / "objects.json"
    code = main(["bench", "--video", str(VTEST), "--objects", "--model", "tiny", "--video-frames", "5",
                 "--video-side", "160", "--model-every", "2", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["schema"] == "activesam-bench-objects/1" and report["random_weights"]
    every = {run["model_every"]: run for run in report["runs"]}
    assert set(every) == {1, 2}
    assert every[1]["model_frames"] == 5 and every[1]["propagated_frames"] == 0
    assert every[2]["propagated_frames"] >= 1 and every[2]["propagated_frames_with_foreign_ids"] == 0
    one = every[1]["all_objects"]
    assert one["persistent"]["pairs"] == one["greedy"]["pairs"] == one["index"]["pairs"] > 0
    assert one["persistent"]["switches"] <= one["index"]["switches"]
    cost = report["added_cost"]
    assert cost["labels_seconds"] > 0 and cost["added_fraction"] is not None
