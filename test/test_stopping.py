"""Stopping never waits on a frame, and published label stamps never go
back: the engine's stop flag (checked before each encode and between
buckets, the preview's too), the runtime that takes it as a dropped frame,
and the stamp order per camera (``stream.ordering``)."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from activesam_ros.engine import ActiveSAM, ActiveSAMConfig
from activesam_ros.engine.stopping import Interrupted, StopFlag
from activesam_ros.stream.ordering import StampOrder
from activesam_ros.stream.runtime import Frame, StreamProcessor, StreamRuntime
from activesam_ros.stream.temporal import TemporalConfig

from fake_engine import FakeEngine

CLASSES = [f"thing {i}" for i in range(16)]


class Counting:
    """A grounder wrapper that counts forwards and requests a stop after ``after`` of them."""

    def __init__(self, grounder, stop: StopFlag, after: int):
        self.grounder, self.stop, self.after, self.forwards = grounder, stop, after, 0

    def __getattr__(self, name):
        return getattr(self.grounder, name)

    def _count(self) -> None:
        self.forwards += 1
        if self.forwards == self.after:
            self.stop.set()

    def ground(self, *args, **kwargs):  # the preview's forwards
        self._count()
        return self.grounder.ground(*args, **kwargs)

    def decode(self, *args, **kwargs):  # the frame's decoder forwards, one a bucket
        self._count()
        return self.grounder.decode(*args, **kwargs)


@pytest.mark.parametrize("max_active, where", [(100, "decode buckets"), (4, "preview buckets")])
def test_the_engine_stops_between_two_buckets(tiny_model, photos, max_active, where):
    flag = StopFlag()
    holder = {}

    def wrap(grounder):
        holder["g"] = Counting(grounder, flag, after=3)
        return holder["g"]

    engine = ActiveSAM(tiny_model, CLASSES, ActiveSAMConfig(device="cpu", bucket_size=2, max_active=max_active),
                       wrap_grounder=wrap)
    engine.stop = flag
    with pytest.raises(Interrupted, match="a stop was requested"):
        engine.segment(photos["chelsea.png"])
    assert holder["g"].forwards == 3, where  # 8 buckets in all; none after the request


def test_stopping_the_runtime_mid_frame_returns_at_once_and_drops_the_frame(tiny_model, photos):
    engine = ActiveSAM(tiny_model, [f"c {i}" for i in range(600)],
                       ActiveSAMConfig(device="cpu", bucket_size=1, max_active=600))
    started = threading.Event()
    real = engine.grounder.decode

    def decode(*args, **kwargs):  # a bucket's decoder forward
        started.set()
        return real(*args, **kwargs)

    engine.grounder.decode = decode
    results = []
    runtime = StreamRuntime(engine, results.append, temporal=TemporalConfig(refresh_interval=1, propagate=False))
    runtime.start()
    runtime.submit(Frame(photos["chelsea.png"], 1.0, "f", "cam"))
    assert started.wait(120)
    began = time.monotonic()
    assert runtime.stop(timeout=30)
    assert time.monotonic() - began < 5  # one bucket, not 600
    stats = runtime.stats("cam")
    assert results == [] and (stats.dropped, stats.failed) == (1, 0)


def test_a_processor_counts_an_interrupted_frame_as_dropped():
    engine = FakeEngine(["a", "b"])
    processor = StreamProcessor(engine)
    engine.segment = lambda *args, **kwargs: (_ for _ in ()).throw(Interrupted("a stop was requested"))
    with pytest.raises(Interrupted):
        processor.process(Frame(np.zeros((4, 4, 3), np.uint8), camera="c"))
    assert (processor.stats.snapshot("c").dropped, processor.stats.snapshot("c").failed) == (1, 0)


# -- stamp order -------------------------------------------------------------------------------------------

def test_stamps_never_go_back_per_camera():
    order = StampOrder()
    assert [order.admit("a", t) for t in (1.0, 3.0, 2.0, 3.0, 4.0)] == [True, True, False, True, True]
    assert order.admit("b", 0.5) and order.last("a") == 4.0  # cameras apart
    assert order.admit("a", math.nan) and order.last("a") == 4.0  # not a number: published, the mark stays
    assert not order.admit("a", 3.9)
