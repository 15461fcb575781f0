"""A recording replayed at a simulated device rate: which frames the model
takes, when its labels become available, and what the stream policy does
with a slow model (the replay and the policy together, on real photographs
panned slowly, with a stand-in engine)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from activesam_ros.engine.vocabulary import Vocabulary
from activesam_ros.stream.device_rate import replay
from activesam_ros.stream.runtime import MODEL, PROPAGATED, Frame, StreamProcessor
from activesam_ros.stream.temporal import TemporalConfig

from fake_engine import FakeEngine

VOCAB = Vocabulary.from_classes(["dark", "mid", "light", "bright"])
NEUTRAL = dict(refresh_min_interval=1, propagation_max_age_periods=0.0)
"""The new parameters at the values that make the policy what it was before them."""


def pan(photo: np.ndarray, count: int, width: int = 160, step: float = 0.5) -> list:
    """``count`` frames of a slow pan over a photograph, ``width`` pixels wide."""
    height = width * 3 // 4
    return [np.ascontiguousarray(photo[:height, int(i * step) % 40:int(i * step) % 40 + width]) for i in range(count)]


def outcomes(frames, fps: float, period: float, cameras=("a",), **temporal) -> list:
    processor = StreamProcessor(FakeEngine(VOCAB), TemporalConfig(**temporal))
    stream = (Frame(rgb, stamp=i / fps, frame_id=str(i), camera=camera)
              for i, rgb in enumerate(frames) for camera in cameras)
    return list(replay(processor, stream, period))


def test_the_model_takes_the_newest_frame_when_it_is_free_and_its_labels_arrive_a_period_later(photos):
    """At 8 fps and 0.375 s per model frame (three camera frames), exactly as
    the runtime: frame 0 is taken at once; frame 1 is replaced before any
    model frame is done (dropped); frame 2 waits when frame 0 is done and is
    taken; 3 and 4 are replaced while 2 is in the model, and carried from 0."""
    frames = pan(photos["chelsea.png"], 10)
    got = [(int(frame.frame_id), None if out is None else out.source, None if out is None else out.model_stamp)
           for frame, out in outcomes(frames, 8.0, 0.375)]
    assert got == [(1, None, None), (0, MODEL, 0.0), (3, PROPAGATED, 0.0), (4, PROPAGATED, 0.0),
                   (2, MODEL, 0.25), (6, PROPAGATED, 0.25), (7, PROPAGATED, 0.25), (5, MODEL, 0.625),
                   (8, MODEL, 1.0), (9, MODEL, 1.125)]


def test_every_frame_has_one_outcome_and_labels_are_at_least_a_period_old(photos):
    frames = pan(photos["chelsea.png"], 60)
    got = outcomes(frames, 10.0, 0.7)
    assert sorted(int(frame.frame_id) for frame, _ in got) == list(range(60))
    carried = [out for _, out in got if out is not None and out.source == PROPAGATED]
    assert carried and all(out.age >= 0.7 - 1e-9 for out in carried)
    stamps = [out.frame.stamp for _, out in got if out is not None and out.source == MODEL][:-1]  # not the last
    gaps = np.diff(stamps)  # the frame waiting when the model is free: within a camera period of the device's
    assert len(gaps) >= 6 and np.all(np.abs(gaps - 0.7) <= 0.1 + 1e-9)


def test_cameras_are_served_in_turn(photos):
    frames = pan(photos["chelsea.png"], 20)
    got = outcomes(frames, 10.0, 0.25, cameras=("a", "b"))
    models = [frame.camera for frame, out in got if out is not None and out.source == MODEL]
    assert models[:6] == ["a", "b"] * 3


@pytest.mark.parametrize("period", [0, -1.0, float("nan"), float("inf"), "1"])
def test_the_period_must_be_a_positive_number_of_seconds(period):
    with pytest.raises(ValueError, match="model period"):
        next(replay(StreamProcessor(FakeEngine(VOCAB)), iter(()), period))


def shares(got) -> tuple:
    """(share of model frames that reuse, share of frames labelled)."""
    plans = [out.plan for _, out in got if out is not None and out.source == MODEL]
    return sum(p.reason == "reuse" for p in plans) / len(plans), sum(out is not None for _, out in got) / len(got)


def test_a_slow_device_keeps_reusing_and_labels_every_frame_it_can(photos):
    """0.5 model frames/s on a 5 fps camera panning slowly over a real
    photograph, 60 s: at least half the model frames reuse and nine camera
    frames in ten get labels; with the new parameters neutral (the period in
    seconds alone, the age in seconds alone) every model frame refreshes and
    most frames go unlabelled, as users saw at that rate."""
    frames = pan(photos["chelsea.png"], 300, step=0.1)
    reuse, labelled = shares(outcomes(frames, 5.0, 2.0))
    assert reuse >= 0.5 and labelled >= 0.9
    before_reuse, before_labelled = shares(outcomes(frames, 5.0, 2.0, **NEUTRAL))
    assert before_reuse == 0.0 and before_labelled < 0.5


def test_a_stalled_model_stops_the_carrying(photos):
    """The age bound follows the model's period, not the wall: when model
    frames stop coming, frames past three periods of the last one are dropped."""
    rgb = cv2.resize(photos["chelsea.png"], (160, 120))
    processor = StreamProcessor(FakeEngine(VOCAB), TemporalConfig())
    for stamp in (0.0, 2.0, 4.0):  # 0.5 Hz
        processor.process(Frame(rgb, stamp=stamp))
    assert processor.propagate(Frame(rgb, stamp=9.5)).age == 5.5   # within 3 periods (6 s)
    assert processor.propagate(Frame(rgb, stamp=10.5)) is None     # beyond
    assert processor.stats.snapshot().dropped == 1
    seconds = StreamProcessor(FakeEngine(VOCAB), TemporalConfig(**NEUTRAL))
    for stamp in (0.0, 2.0, 4.0):
        seconds.process(Frame(rgb, stamp=stamp))
    assert seconds.propagate(Frame(rgb, stamp=6.5)) is None        # 2 s: propagation_max_age alone
