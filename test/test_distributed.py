"""``activesam eval`` and ``activesam bag`` under torchrun (gloo on this CPU):
the same results as one process, one progress bar, a failing rank failing
the job with its error; and the pure parts (torchrun's variables, devices,
shards) without processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pytest
import torch
from rosbags.rosbag2 import Reader, StoragePlugin
from test_datasets import write_dataset

from activesam_ros.cli import main
from activesam_ros.commands import distributed
from activesam_ros.commands.common import UserError
from activesam_ros.commands.distributed import (
    DistributedJob,
    PeerFailed,
    Placement,
    balanced,
    placement,
    rank_device,
    strided,
)
from activesam_ros.ros import bagio

from bags import IMAGE, photo, raw_image, run_bag, write_bag
from conftest import photo_path

ROOT = Path(__file__).resolve().parents[1]
HANG_GUARD = 300  # seconds: a run that takes longer has hung (the job's own limit is --dist-timeout 60)


# -- torchrun's variables, devices and shards, without processes ------------------------------

def test_no_torchrun_variables_is_one_process_and_one_process_needs_no_group():
    assert placement({}) is None
    assert placement({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}) is None


def test_torchrun_variables_give_the_rank_and_the_ranks_on_this_machine():
    env = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    assert placement(env) == Placement(rank=5, world_size=8, local_rank=1, local_world_size=4)
    assert placement({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}).local_world_size == 2


@pytest.mark.parametrize("env, message", [
    ({"RANK": "1"}, "incomplete: RANK set but WORLD_SIZE, LOCAL_RANK not"),
    ({"RANK": "one", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "RANK='one' is not a whole number"),
    ({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "do not fit: RANK=2, WORLD_SIZE=2"),
])
def test_broken_torchrun_variables_are_refused(env, message):
    with pytest.raises(UserError, match=re.escape(message)):
        placement(env)


def test_each_rank_of_a_machine_takes_its_own_gpu_and_cpus_stay_cpus():
    second = Placement(rank=3, world_size=4, local_rank=1, local_world_size=2)
    assert rank_device("auto", second, cuda_devices=2) == "cuda:1"
    assert rank_device("cuda", second, cuda_devices=2) == "cuda:1"
    assert rank_device("auto", second, cuda_devices=0) == "cpu"
    assert rank_device("cpu", second, cuda_devices=2) == "cpu"
    alone = Placement(rank=1, world_size=2, local_rank=0, local_world_size=1)
    assert rank_device("cuda:1", alone, cuda_devices=2) == "cuda:1"  # one process per machine: its choice
    with pytest.raises(UserError, match="all 2 processes of this machine on one GPU"):
        rank_device("cuda:0", second, cuda_devices=2)
    with pytest.raises(UserError, match="2 processes on this machine but it has 1 CUDA device"):
        rank_device("cuda", second, cuda_devices=1)


def test_strided_shards_cover_every_item_once_in_order():
    items = list(range(11))
    shards = [strided(items, rank, 3) for rank in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert sorted(sum(shards, [])) == items


def test_balanced_shards_put_the_heaviest_first_on_the_least_loaded_rank():
    weights = [10, 1, 1, 7, 3, 3]
    shards = balanced(weights, 2)
    # 10 -> rank 0; 7, 3 -> rank 1; 3 -> rank 0 (tie: the lower rank); 1, 1 -> rank 1: loads 13 and 12
    assert shards == [[0, 5], [1, 2, 3, 4]]
    assert sorted(sum(shards, [])) == list(range(len(weights)))
    assert balanced(weights, 2) == shards  # deterministic: every rank computes the same split
    assert balanced([5], 3) == [[0], [], []]


class MemoryStore:
    """torch.distributed's key-value store interface (set, get, add, check, compare_set) in a dict."""

    def __init__(self):
        self.data: Dict[str, bytes] = {}

    def set(self, key: str, value: str) -> None:
        self.data[key] = value.encode()

    def get(self, key: str) -> bytes:
        return self.data[key]

    def add(self, key: str, amount: int) -> int:
        value = int(self.data.get(key, b"0")) + amount
        self.data[key] = str(value).encode()
        return value

    def check(self, keys: List[str]) -> bool:
        return all(key in self.data for key in keys)

    def compare_set(self, key: str, expected: str, desired: str) -> bytes:
        if self.data.get(key, b"").decode() == expected:
            self.data[key] = desired.encode()
        return self.data[key]


def waiting_rank(monkeypatch, timeout: float) -> DistributedJob:
    """Rank 0 of 2 on a store the other rank never writes to."""
    monkeypatch.setattr(distributed, "POLL_SECONDS", 0.01)
    job = DistributedJob(Placement(rank=0, world_size=2, local_rank=0, local_world_size=2), "cpu", timeout)
    job._store = MemoryStore()
    return job


def test_a_rank_that_never_arrives_fails_the_wait_after_the_timeout_naming_it(monkeypatch):
    job = waiting_rank(monkeypatch, timeout=0.3)
    with pytest.raises(UserError, match=r"rank\(s\) 1 made no progress for 0.3 s \(--dist-timeout\) while rank 0 "
                                        r"waited for them \(shard\)"):
        job.shard(list(range(4)))


def test_a_failed_rank_stops_a_waiting_one_with_its_error(monkeypatch):
    job = waiting_rank(monkeypatch, timeout=60)
    job._store.compare_set("failed", "", "rank 1 failed: cannot read image x.jpg")
    with pytest.raises(PeerFailed, match="stopped: rank 1 failed: cannot read image x.jpg"):
        job.shard(list(range(4)))


# -- torchrun with two processes ----------------------------------------------------------------

def torchrun(*argv: str, processes: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node N activesam ARGV`` (one thread per process, as torchrun sets)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "activesam_ros.cli", *argv, "--dist-timeout", "60"]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD)


@pytest.fixture
def one_thread():
    """In-process runs with torchrun's one thread per process, so both do the same arithmetic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


PHOTOGRAPHS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "camera.png")


def voc_samples(count: int) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """Real photographs (96 px) with VOC ground truth by brightness band: background, person, car,
    chair, dog, tv; a 255 (ignored) top row."""
    samples = []
    for i in range(count):
        bgr = cv2.imread(str(photo_path(PHOTOGRAPHS[i % len(PHOTOGRAPHS)])), cv2.IMREAD_COLOR)
        scale = 96 / max(bgr.shape[:2])
        rgb = np.ascontiguousarray(cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)[:, :, ::-1])
        if i >= len(PHOTOGRAPHS):
            rgb = np.ascontiguousarray(rgb[:, ::-1])
        band = np.clip((rgb.mean(axis=2) / 256 * 6).astype(int), 0, 5)
        label = np.array([0, 15, 7, 9, 12, 20], np.uint8)[band]
        label[0, :] = 255
        samples.append((f"2007_{i:06d}", rgb, label))
    return samples


EVAL = ("eval", "--dataset", "voc21", "--model", "tiny", "--background-threshold", "0", "--mode", "fast")


@pytest.mark.slow
def test_eval_over_two_processes_gives_the_single_process_confusion_matrix(tmp_path, one_thread, capsys):
    data = write_dataset(tmp_path / "VOCdevkit", "voc21", voc_samples(5))  # 3 images for rank 0, 2 for rank 1
    assert main([*EVAL, "--data-root", str(data), "--json", str(tmp_path / "one.json")]) == 0
    capsys.readouterr()
    run = torchrun(*EVAL, "--data-root", str(data), "--json", str(tmp_path / "two.json"))
    assert run.returncode == 0, run.stderr[-3000:]
    one, two = (json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json"))
    assert two["confusion_matrix_sha256"] == one["confusion_matrix_sha256"]
    assert two["mIoU"] == one["mIoU"] and two["aAcc"] == one["aAcc"]
    assert two["per_class_iou"] == one["per_class_iou"]
    assert sum(c["iou"] is not None for c in one["per_class_iou"]) >= 4  # a matrix with something in it
    assert two["images"] == one["images"] == 5
    assert (two["processes"], two["backend"]) == (2, "gloo") and "processes" not in one
    assert (one["device"], one["threads_per_process"]) == (two["device"], two["threads_per_process"]) == ("cpu", 1)
    assert set(two["seconds_per_image"]) == set(one["seconds_per_image"])
    # Rank 0 alone reports, and its one progress bar counts the images of both ranks.
    assert run.stdout.count("mIoU") == 1
    bars = re.findall(r"eval voc21: +\d+%\|[^|]*\| (\d+)/(\d+)", run.stderr)
    assert bars and {total for _, total in bars} == {"5"} and bars[-1][0] == "5"


@pytest.mark.slow
def test_a_failing_rank_fails_the_job_with_its_error_and_stops_the_other(tmp_path):
    data = write_dataset(tmp_path / "VOCdevkit", "voc21", voc_samples(12))
    broken = data / "VOC2012" / "JPEGImages" / "2007_000001.jpg"  # rank 1's first image
    broken.write_bytes(b"not a JPEG")
    predictions = tmp_path / "predictions"
    run = torchrun(*EVAL, "--data-root", str(data), "--save-predictions", str(predictions))
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert f"cannot read image {broken}" in output  # the rank's own error, and torchrun's summary of it
    assert "Root Cause" in run.stderr and "rank      : 1" in run.stderr.split("Root Cause")[1]
    assert "mIoU" not in run.stdout
    # Rank 0 stopped before its sixth image: it did not run to the end of its shard first.
    assert len(list(predictions.glob("*.png"))) < 6


def two_bags(root: Path) -> List[Path]:
    """Two recordings: three frames of one camera, and two of two cameras."""
    first, second = root / "morning", root / "evening"
    write_bag(first, StoragePlugin.MCAP,
              [("/cam", IMAGE, 1_000_000_000 + 50_000_000 * i, raw_image(i, photo(i, 64, 48))) for i in range(3)])
    write_bag(second, StoragePlugin.SQLITE3,
              [(topic, IMAGE, 2_000_000_000 + 50_000_000 * i, raw_image(i, photo(i + 3, 64, 48)))
               for i in range(2) for topic in ("/cam", "/cam2")])
    return [first, second]


def bag_messages(path: Path) -> Dict[str, List[Tuple[int, bytes]]]:
    """topic -> [(bag time, CDR bytes)] of every message, in bag order."""
    out: Dict[str, List[Tuple[int, bytes]]] = {}
    with Reader(path) as reader:
        for connection, timestamp, data in reader.messages():
            out.setdefault(connection.topic, []).append((timestamp, bytes(data)))
    return out


@pytest.mark.slow
def test_bags_over_two_processes_are_the_bags_of_one_process(tmp_path, one_thread):
    sources = two_bags(tmp_path / "in")
    flags = ("--image-topic", "/cam", "--vocab", "person; car; dog", "--model", "tiny", "--include-input")
    code, err = run_bag(*map(str, sources), str(tmp_path / "one"), *flags)
    assert code == 0, err
    run = torchrun("bag", *map(str, sources), str(tmp_path / "two"), *flags)
    assert run.returncode == 0, run.stderr[-3000:]
    for name, frames in (("morning", 3), ("evening", 2)):
        single, shared = bag_messages(tmp_path / "one" / name), bag_messages(tmp_path / "two" / name)
        assert shared == single, name
        assert len(single["/activesam/labels"]) == frames
        assert bagio.status_of(tmp_path / "two" / name) == bagio.COMPLETE
    # Each rank segmented one bag (balanced by frames) and said so; one progress bar over both.
    assert run.stderr.count("activesam bag: wrote ") == 2
    bars = re.findall(r"bag: +\d+%\|[^|]*\| (\d+)/(\d+)", run.stderr)
    assert bars and {total for _, total in bars} == {"5"}


def test_several_bags_need_different_names(tmp_path):
    sources = two_bags(tmp_path / "in")
    code, err = run_bag(str(sources[0]), str(sources[0]), str(tmp_path / "out"), "--image-topic", "/cam",
                        "--vocab", "person", "--model", "tiny")
    assert code == 2 and "input bags must have different names" in err and "(all morning)" in err
    (tmp_path / "file").write_text("mine")
    code, err = run_bag(*map(str, sources), str(tmp_path / "file"), "--image-topic", "/cam",
                        "--vocab", "person", "--model", "tiny")
    assert code == 2 and "is not a folder" in err
    assert (tmp_path / "file").read_text() == "mine"
