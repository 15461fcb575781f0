"""Never die of memory, checked on the CPU by fault injection: a grounder
that raises torch's CUDA out-of-memory error when a forward has more
prompts than the memory it pretends to have takes. The engine tries the
frame again with half the bucket and keeps it; below one prompt the frame
is dropped and counted and the stream goes on. The auto bucket is checked
against the memory model with the device's free memory faked."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from activesam_ros.engine import ActiveSAM, ActiveSAMConfig
from activesam_ros.engine.bucket import AUTO_MAX_BUCKET, MARGIN, FrameOutOfMemory, auto_bucket, free_bytes
from activesam_ros.engine.memory_model import FrameShape, released

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
    # A new bucket_size lifts the cap: it is tried, halved again, and not warned of again.
    engine.reconfigure(engine.config.replace(bucket_size=16))
    again = engine.segment(photos["chelsea.png"])
    assert (again.bucket_size, again.bucket_halvings) == (3, 2)     # 12 queries -> 6 -> 3
    assert len(bucket_warnings(caplog)) == 1


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
