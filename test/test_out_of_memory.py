"""Never die of memory, checked on the CPU by fault injection: a grounder
that raises torch's CUDA out-of-memory error when a forward has more
prompts than the memory it pretends to have takes. The engine tries the
frame again with half the bucket and keeps it; below one prompt the frame
is dropped and counted and the stream goes on. The auto bucket is checked
against the memory model with the device's free memory faked."""

from __future__ import annotations

import dataclasses
import logging
import math
import queue

import numpy as np
import pytest
import torch
from rosbags.rosbag2 import StoragePlugin

from activesam_ros.cli import main
from activesam_ros.engine import ActiveSAM, ActiveSAMConfig
from activesam_ros.engine.bucket import AUTO_MAX_BUCKET, FrameOutOfMemory, auto_bucket, free_bytes
from activesam_ros.engine.grounding import Grounder
from activesam_ros.engine.memory_model import MARGIN, FrameShape, released
from activesam_ros.ros.diagnostics import OK, WARN, camera_report
from activesam_ros.stream.runtime import Frame, StreamProcessor, StreamRuntime
from activesam_ros.stream.stats import StreamStats
from activesam_ros.stream.temporal import TemporalConfig

from bags import IMAGE, photo, raw_image, read_outputs, run_bag, write_bag

NAMES = ["person", "cat", "dog", "car", "tree", "sky", "road", "building", "grass", "water", "chair", "table"]
SMALL = ActiveSAMConfig(device="cpu", resolution=112, hypernym_tokens=0, bucket_size=8)
MODES = {"exact, every class decoded": {"mode": "exact", "max_active": 40},
         "fast, the preview picks": {"mode": "fast", "max_active": 4}}


class OutOfMemoryAbove:
    """The engine's grounder, with a device that holds at most ``limit``
    prompts per forward (the preview's and the decoder's): a wider one
    raises what CUDA raises. ``encode_failures`` image encodes fail first."""

    def __init__(self, inner, limit: int, encode_failures: int = 0):
        self.inner, self.limit, self.encode_failures = inner, limit, encode_failures
        self.widths = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _forward(self, prompts: int) -> None:
        self.widths.append(prompts)
        if prompts > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory: a forward of {prompts} prompts")

    def ground(self, image, text, **kwargs):
        self._forward(len(text))
        return self.inner.ground(image, text, **kwargs)

    def decode(self, image, text, **kwargs):
        self._forward(len(text))
        return self.inner.decode(image, text, **kwargs)

    def encode_image(self, image, resolution=None):
        if self.encode_failures:
            self.encode_failures -= 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory: an image encode")
        return self.inner.encode_image(image, resolution)


def injected(model, config, limit, **kwargs):
    """An engine on ``model`` whose grounder runs out of memory above ``limit`` prompts."""
    holder = {}

    def wrap(grounder):
        holder["g"] = OutOfMemoryAbove(grounder, limit, **kwargs)
        return holder["g"]

    engine = ActiveSAM(model, NAMES, config, wrap_grounder=wrap)
    return engine, holder["g"]


def bucket_warnings(caplog):
    return [r for r in caplog.records if r.name == "activesam_ros.engine.bucket" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("mode", list(MODES))
def test_a_smaller_bucket_that_fits_loses_no_frame_and_labels_as_that_bucket_from_the_start(tiny_model, photos,
                                                                                           mode):
    config = SMALL.replace(**MODES[mode])
    engine, grounder = injected(tiny_model, config, limit=3)
    result = engine.segment(photos["chelsea.png"])
    assert (result.bucket_size, result.bucket_halvings) == (2, 2)   # 8 -> 4 -> 2
    assert max(grounder.widths) == 8 and grounder.widths[-1] <= 2
    reference = ActiveSAM(tiny_model, NAMES, config.replace(bucket_size=2)).segment(photos["chelsea.png"])
    np.testing.assert_array_equal(result.labels, reference.labels)
    np.testing.assert_array_equal(result.scores, reference.scores)
    assert result.active_queries == reference.active_queries


def test_the_smaller_bucket_is_kept_and_the_warning_given_once(tiny_model, photos, caplog):
    caplog.set_level(logging.INFO, logger="activesam_ros.engine.bucket")
    engine, grounder = injected(tiny_model, SMALL, limit=3)
    engine.segment(photos["chelsea.png"])
    grounder.widths.clear()
    kept = engine.segment(photos["coffee.png"])
    assert (kept.bucket_size, kept.bucket_halvings) == (2, 0) and max(grounder.widths) == 2
    assert len(bucket_warnings(caplog)) == 1
    assert engine.buckets.report() == {"bucket_size_last": 2, "bucket_halvings": 2}  # what bench reports say
    # A new bucket_size lifts the cap: it is tried, halved again, and not warned of again.
    engine.reconfigure(engine.config.replace(bucket_size=16))
    again = engine.segment(photos["chelsea.png"])
    assert (again.bucket_size, again.bucket_halvings) == (3, 2)     # 12 queries -> 6 -> 3
    assert len(bucket_warnings(caplog)) == 1
    assert engine.buckets.report() == {"bucket_size_last": 3, "bucket_halvings": 4}


def test_below_one_prompt_the_frame_is_dropped_and_the_next_one_labelled(tiny_model, photos):
    engine, grounder = injected(tiny_model, SMALL, limit=0)
    with pytest.raises(FrameOutOfMemory, match="even at one prompt") as caught:
        engine.segment(photos["chelsea.png"])
    assert caught.value.halvings == 3                               # 8 -> 4 -> 2 -> 1, then dropped
    grounder.limit = len(NAMES)                                     # memory came back
    result = engine.segment(photos["coffee.png"])
    assert (result.bucket_size, result.bucket_halvings) == (1, 0)   # the smaller bucket is kept
    reference = ActiveSAM(tiny_model, NAMES, SMALL.replace(bucket_size=1)).segment(photos["coffee.png"])
    np.testing.assert_array_equal(result.labels, reference.labels)


def test_an_image_encode_out_of_memory_is_tried_once_more_and_never_halves_the_bucket(tiny_model, photos):
    engine, _ = injected(tiny_model, SMALL, limit=len(NAMES), encode_failures=1)
    result = engine.segment(photos["chelsea.png"])
    assert (result.bucket_size, result.bucket_halvings) == (8, 0)
    engine, _ = injected(tiny_model, SMALL, limit=len(NAMES), encode_failures=2)
    with pytest.raises(FrameOutOfMemory, match="image encode at 112 px"):
        engine.segment(photos["chelsea.png"])
    assert engine.segment(photos["chelsea.png"]).bucket_size == 8


# -- the auto bucket -------------------------------------------------------------------

def fake_cuda(monkeypatch, free: float, reserved: float = 0.0, allocated: float = 0.0) -> torch.device:
    """torch.cuda, for this test only, reporting ``free`` bytes free on the
    device and ``reserved`` - ``allocated`` cached by torch's allocator."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(free), 80 << 30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: int(reserved))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: int(allocated))
    return torch.device("cuda")


PIXELS = 640 * 480


@pytest.mark.parametrize("mode", ["exact", "fast"])
@pytest.mark.parametrize("prompts", [1, 5, 17, 31])
def test_auto_picks_the_largest_bucket_the_memory_model_fits_with_its_margin(monkeypatch, mode, prompts):
    peak = released("float32").forward_bytes(mode, 1008, prompts, PIXELS, FrameShape.kept)
    just = math.ceil(peak * (1 + MARGIN))   # whole bytes, as the device reports them
    for free, expected in ((just, prompts), (just - 1, max(1, prompts - 1))):
        device = fake_cuda(monkeypatch, free - 2 ** 20, reserved=3 * 2 ** 20, allocated=2 * 2 ** 20)
        assert auto_bucket(free_bytes(device), mode, 1008, 672, PIXELS, "float32") == expected


def test_auto_is_never_above_32_nor_below_one(monkeypatch):
    assert auto_bucket(free_bytes(fake_cuda(monkeypatch, 1 << 50)), "fast", 1008, 672, PIXELS, "bfloat16") == 32
    assert auto_bucket(free_bytes(fake_cuda(monkeypatch, 1 << 20)), "fast", 1008, 672, PIXELS, "float32") == 1
    assert AUTO_MAX_BUCKET == 32


def test_auto_on_a_cpu_is_32_without_asking_cuda(tiny_model, photos, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a CPU engine asked CUDA for its memory")

    monkeypatch.setattr(torch.cuda, "mem_get_info", refuse)
    engine = ActiveSAM(tiny_model, NAMES, ActiveSAMConfig(device="cpu", resolution=112))
    assert engine.config.bucket_size == 0
    assert engine.segment(photos["chelsea.png"]).bucket_size == AUTO_MAX_BUCKET
    assert free_bytes(torch.device("cpu")) is None


# -- the stream, /diagnostics and the commands -------------------------------------------

GUARD = 60.0  # seconds before a wait counts as a deadlock
PER_FRAME = TemporalConfig(refresh_interval=1, propagate=False)


def test_the_stream_counts_halvings_and_frames_dropped_for_memory(tiny_model, photos):
    engine, grounder = injected(tiny_model, SMALL, limit=3)
    processor = StreamProcessor(engine, PER_FRAME)
    processor.process(Frame(photos["chelsea.png"], 1.0, "f1", "cam"))   # 8 -> 4 -> 2: labelled
    grounder.limit = 0
    with pytest.raises(FrameOutOfMemory):
        processor.process(Frame(photos["coffee.png"], 2.0, "f2", "cam"))  # 2 -> 1 -> dropped
    stats = processor.stats.snapshot("cam")
    assert (stats.processed, stats.out_of_memory, stats.failed) == (1, 1, 0)
    assert (stats.bucket_halvings, stats.bucket_size_last) == (3, 2)


def test_the_runtime_drops_a_frame_out_of_memory_and_labels_the_next(tiny_model, photos):
    engine, grounder = injected(tiny_model, SMALL, limit=0)
    results, errors = queue.Queue(), queue.Queue()
    runtime = StreamRuntime(engine, results.put, lambda frame, error: errors.put((frame, error)), PER_FRAME)
    with runtime:
        runtime.submit(Frame(photos["chelsea.png"], 1.0, "f1", "cam"))
        frame, error = errors.get(timeout=GUARD)
        assert frame.frame_id == "f1" and isinstance(error, FrameOutOfMemory)
        grounder.limit = len(NAMES)
        runtime.submit(Frame(photos["coffee.png"], 2.0, "f2", "cam"))
        out = results.get(timeout=GUARD)
        assert out.frame.frame_id == "f2" and runtime.running
        stats = runtime.stats("cam")
    assert (stats.processed, stats.out_of_memory, stats.failed) == (1, 1, 0)
    assert (stats.bucket_halvings, stats.bucket_size_last) == (3, 1)


def test_diagnostics_warn_of_frames_dropped_and_buckets_halved_since_the_last_report():
    before = StreamStats(received=10, processed=8, bucket_size_last=32)
    flowing = dataclasses.replace(before, received=15, processed=12, input_rate=5.0, output_rate=4.0,
                                  since_input=0.1, since_output=0.2)
    assert camera_report("/cam", flowing, before, 0, 0, running=True).level == OK
    halved = dataclasses.replace(flowing, bucket_halvings=2, bucket_size_last=8)
    report = camera_report("/cam", halved, before, 0, 0, running=True)
    assert report.level == WARN and "halved 2 time(s), now 8 prompt(s) per forward" in report.message
    dropped = dataclasses.replace(halved, out_of_memory=1)
    report = camera_report("/cam", dropped, halved, 0, 0, running=True)
    assert report.level == WARN and report.message.startswith("1 frame(s) dropped: out of device memory")
    values = dict(report.values)
    assert (values["frames dropped for memory"], values["bucket halvings (out of memory)"],
            values["bucket size (last model frame)"], values["frames failed"]) == ("1", "2", "8", "0")
    later = dataclasses.replace(dropped, received=20, processed=17)
    assert camera_report("/cam", later, dropped, 0, 0, running=True).level == OK  # nothing new since


@pytest.fixture
def small_camera_out_of_memory(monkeypatch):
    """Every forward on an image 64 px wide runs out of CUDA memory (the grounder's class, for this test only)."""
    decode = Grounder.decode

    def failing(self, image, text, *args, **kwargs):
        if image.width == 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return decode(self, image, text, *args, **kwargs)

    monkeypatch.setattr(Grounder, "decode", failing)


def test_bag_skips_and_counts_frames_out_of_memory(tiny_model, small_camera_out_of_memory, monkeypatch, tmp_path):
    monkeypatch.setattr("activesam_ros.engine.model.build_tiny_sam3", lambda seed=0: tiny_model)
    small, large = "/small/image_raw", "/large/image_raw"
    source, out = tmp_path / "in", tmp_path / "out"
    write_bag(source, StoragePlugin.SQLITE3, [
        (small, IMAGE, 5_000_000_000, raw_image(0, photo(0, 64, 48))),
        (large, IMAGE, 5_050_000_000, raw_image(1, photo(1, 80, 60))),
        (small, IMAGE, 5_100_000_000, raw_image(2, photo(2, 64, 48))),
        (large, IMAGE, 5_150_000_000, raw_image(3, photo(3, 80, 60))),
    ])
    code, err = run_bag(str(source), str(out), "--image-topic", small, "--image-topic", large,
                        "--vocab", "person; car; dog", "--model", "tiny", "--model-every", "1")
    assert code == 0, err
    assert (f"{small} -> /activesam/small/image_raw/*: 0 frame(s) segmented (0 refreshed, 0 with a preview), 0 "
            "labelled by propagation, 2 skipped (2 out of device memory; first: out of device memory") in err
    assert "bucket halved 1 time(s) for device memory" in err.split(f"{small} ->")[1].splitlines()[0]
    assert f"{large} -> /activesam/large/image_raw/*: 2 frame(s) segmented" in err
    written = read_outputs(out)
    assert len(written["/activesam/large/image_raw/labels"]) == 2
    assert "/activesam/small/image_raw/labels" not in written


def test_segment_reports_an_image_out_of_memory_in_one_line(tiny_cli, small_camera_out_of_memory, tmp_path, capsys):
    import cv2

    for name, (width, height) in {"small": (64, 48), "large": (80, 60)}.items():
        cv2.imwrite(str(tmp_path / f"{name}.png"), photo(1, width, height)[:, :, ::-1])
    code = main(["segment", str(tmp_path / "small.png"), str(tmp_path / "large.png"), "--vocab", "cat; dog",
                 "--model", "tiny", "--out", str(tmp_path / "out")])
    assert code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "out of device memory" in line]
    assert len(lines) == 1 and "activesam segment: error: out of device memory" in lines[0], lines
    assert (tmp_path / "out" / "large_labels.png").exists() and not (tmp_path / "out" / "small_labels.png").exists()
