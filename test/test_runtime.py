"""The stream runtime: newest-frame slots, fairness across cameras,
failures, clean stop, parameter swaps between frames, bounded state.

Threading is tested against a fake engine whose frames the test holds and
releases (events and semaphores, no sleeps or timed assertions; timeouts
only turn a deadlock into a failure). A few tests run the tiny SAM 3.
"""

from __future__ import annotations

import collections
import queue
import threading

import numpy as np
import pytest

from activesam_ros.engine.config import ActiveSAMConfig, ConfigError
from activesam_ros.engine.vocabulary import Vocabulary, VocabularyError
from activesam_ros.stream.runtime import Frame, FrameResult, StreamProcessor, StreamRuntime
from activesam_ros.stream.stats import RATE_WINDOW, StreamStatistics
from activesam_ros.stream.temporal import TemporalConfig

from fake_engine import FakeEngine

GUARD = 30.0  # seconds before a wait counts as a deadlock
VOCAB = [f"class {i}" for i in range(50)]   # more than max_active: previews run
OTHER = [f"thing {i}" for i in range(60)]


def make_frame(camera: str = "a", tag: int = 0, fail: bool = False) -> Frame:
    rgb = np.full((4, 4, 3), tag % 200, dtype=np.uint8)
    if fail:
        rgb[0, 0, 0] = FakeEngine.FAIL
    return Frame(rgb, stamp=float(tag), frame_id=f"{camera}{tag}", camera=camera, context={"tag": tag})


def returns(fn, *args):
    """Run ``fn`` on another thread and fail if it does not return."""
    out = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    thread.start()
    thread.join(GUARD)
    assert not thread.is_alive(), f"{fn.__name__} blocked"
    return out[0]


PER_FRAME = TemporalConfig(refresh_interval=1, propagate=False)
"""The paper's per-frame behaviour, a replaced frame dropped: the runtime's mechanics alone."""


class Stream:
    """A runtime on a fake engine, collecting what its callbacks hear."""

    def __init__(self, vocabulary=VOCAB, temporal=PER_FRAME, config=None):
        self.engine = FakeEngine(vocabulary, config)
        self.results: "queue.Queue[FrameResult]" = queue.Queue()
        self.errors: "queue.Queue[tuple]" = queue.Queue()
        self.runtime = StreamRuntime(self.engine, self.results.put,
                                     lambda frame, error: self.errors.put((frame, error)), temporal)

    def result(self) -> FrameResult:
        return self.results.get(timeout=GUARD)

    def error(self) -> tuple:
        return self.errors.get(timeout=GUARD)

    def entered(self) -> None:
        """Wait until a frame is inside the engine."""
        assert self.engine.started.acquire(timeout=GUARD)

    def run(self, frame: Frame) -> FrameResult:
        assert self.runtime.submit(frame)
        return self.result()


@pytest.fixture
def stream():
    s = Stream()
    s.runtime.start()
    yield s
    s.engine.unhold()
    s.runtime.stop()


def test_only_the_newest_waiting_frame_is_kept(stream):
    stream.engine.hold()
    stream.runtime.submit(make_frame("a", 0))
    stream.entered()
    frames = [make_frame("a", t) for t in (1, 2, 3)]
    for frame in frames:
        assert returns(stream.runtime.submit, frame)  # never waits for the busy worker
    stream.engine.release(2)
    first, second = stream.result(), stream.result()
    assert (first.frame.frame_id, second.frame.frame_id) == ("a0", "a3")
    assert second.frame is frames[-1] and second.frame.context == {"tag": 3}
    stats = stream.runtime.stats("a")
    assert (stats.received, stats.processed, stats.dropped, stats.failed) == (4, 2, 2, 0)
    assert stream.results.empty()


def test_cameras_with_a_waiting_frame_are_served_in_turn(stream):
    stream.engine.hold()
    stream.runtime.submit(make_frame("a", 0))
    served = []
    for tag in range(1, 10):
        stream.entered()
        # Camera a sends three frames for every one of b and c.
        for camera in ("a", "a", "b", "c", "a"):
            stream.runtime.submit(make_frame(camera, tag))
        stream.engine.release()
        served.append(stream.result().frame.camera)
    assert served == ["a", "b", "c"] * 3
    assert stream.runtime.stats("a").dropped > stream.runtime.stats("b").dropped
    assert stream.runtime.stats().processed == 9


def test_a_failing_frame_is_dropped_counted_and_reported(stream):
    bad = make_frame("a", 1, fail=True)
    stream.runtime.submit(bad)
    frame, error = stream.error()
    assert frame is bad and isinstance(error, RuntimeError)
    assert stream.run(make_frame("a", 2)).frame.frame_id == "a2"
    stats = stream.runtime.stats()
    assert (stats.received, stats.processed, stats.failed) == (2, 1, 1)


def test_a_raising_result_callback_does_not_stop_the_worker():
    delivered = []

    def on_result(out):
        delivered.append(out.frame.frame_id)
        if len(delivered) == 1:
            raise ValueError("subscriber bug")

    errors = queue.Queue()
    runtime = StreamRuntime(FakeEngine(VOCAB), on_result, lambda f, e: errors.put((f, e)))
    with runtime:
        runtime.submit(make_frame("a", 1))
        frame, error = errors.get(timeout=GUARD)
        assert frame.frame_id == "a1" and isinstance(error, ValueError)
        done = threading.Event()
        runtime.on_result = lambda out: done.set()
        runtime.submit(make_frame("a", 2))
        assert done.wait(GUARD)


def test_stop_joins_the_worker_and_rejects_later_frames():
    s = Stream()
    assert not s.runtime.submit(make_frame("a", 0))  # not started yet
    s.runtime.start()
    s.engine.hold()
    s.runtime.submit(make_frame("a", 1))
    s.entered()
    s.runtime.submit(make_frame("b", 1))  # still waiting when stop comes
    stopper = threading.Thread(target=s.runtime.stop)
    stopper.start()
    s.engine.release()
    stopper.join(GUARD)
    assert not stopper.is_alive() and not s.runtime.running
    assert s.result().frame.frame_id == "a1"  # the frame in progress finishes
    assert not s.runtime.submit(make_frame("a", 2))
    assert s.results.empty()
    assert not any(t.name == "activesam-runtime" for t in threading.enumerate())
    a, b = s.runtime.stats("a"), s.runtime.stats("b")
    assert (a.rejected, a.processed, b.dropped, b.processed) == (2, 1, 1, 0)


def test_a_vocabulary_is_swapped_between_two_frames(stream):
    stream.engine.hold()
    stream.runtime.submit(make_frame("a", 0))
    stream.entered()
    assert returns(stream.runtime.set_vocabulary, OTHER).lines == tuple(OTHER)
    assert stream.engine.vocabulary.lines == tuple(VOCAB)  # not during the frame
    stream.engine.release(2)
    before = stream.result()
    after = stream.run(make_frame("a", 1))
    assert before.result.vocabulary.lines == tuple(VOCAB)
    assert after.result.vocabulary.lines == tuple(OTHER)
    assert after.plan.reason == "first"  # temporal state starts over
    assert stream.engine.overlaps == []


def test_no_result_mixes_vocabularies_while_they_change(stream):
    vocabularies = [VOCAB, OTHER, [f"item {i}" for i in range(45)]]
    seen = []
    for i in range(60):
        stream.runtime.submit(make_frame("ab"[i % 2], i))
        if i % 4 == 0:  # while that frame waits or runs
            stream.runtime.set_vocabulary(vocabularies[i % 3])
        seen.append(stream.result())
    assert {out.result.vocabulary.lines for out in seen} == {tuple(v) for v in vocabularies}
    assert stream.runtime.stats().failed == 0 and stream.engine.overlaps == []
    for out in seen:
        n = len(out.result.vocabulary.queries)
        assert len(out.result.query_presence) == n
        assert all(q < n for q in (out.plan.active_queries or ()))


def test_a_vocabulary_is_prepared_without_holding_up_the_stream(stream):
    stream.engine.prepare_gate = threading.Event()
    setter = threading.Thread(target=stream.runtime.set_vocabulary, args=(OTHER,))
    setter.start()
    assert stream.engine.preparing.wait(GUARD)
    # While the new vocabulary is being prepared, frames go on with the old one.
    assert stream.run(make_frame("a", 1)).result.vocabulary.lines == tuple(VOCAB)
    stream.engine.prepare_gate.set()
    setter.join(GUARD)
    assert stream.run(make_frame("a", 2)).result.vocabulary.lines == tuple(OTHER)


def test_an_engine_config_waits_while_a_vocabulary_is_prepared(stream):
    before = stream.engine.config.bucket_size
    stream.runtime.set_config(stream.engine.config.replace(bucket_size=16))
    stream.engine.prepare_gate = threading.Event()
    setter = threading.Thread(target=stream.runtime.set_vocabulary, args=(OTHER,))
    setter.start()
    assert stream.engine.preparing.wait(GUARD)
    stream.run(make_frame("a", 1))
    assert stream.engine.configs_seen[-1].bucket_size == before != 16  # deferred, not mixed in
    stream.engine.prepare_gate.set()
    setter.join(GUARD)
    out = stream.run(make_frame("a", 2))
    assert stream.engine.configs_seen[-1].bucket_size == 16
    assert out.result.vocabulary.lines == tuple(OTHER)
    assert stream.engine.overlaps == []


def test_invalid_parameters_are_rejected_with_a_reason(stream):
    runtime = stream.runtime
    with pytest.raises(ConfigError, match="bucket_size"):
        runtime.set_config(ActiveSAMConfig(bucket_size=-1))
    with pytest.raises(ConfigError, match="device"):
        runtime.set_config(ActiveSAMConfig(device="cuda"))
    with pytest.raises(ConfigError, match="background"):
        runtime.set_config(ActiveSAMConfig(background_threshold=0.4))
    with pytest.raises(ConfigError, match="active_ttl"):
        runtime.set_temporal(TemporalConfig(active_ttl=-1))
    with pytest.raises(VocabularyError, match="empty"):
        runtime.set_vocabulary("")
    assert stream.run(make_frame("a", 1)).result.vocabulary.lines == tuple(VOCAB)
    assert stream.engine.config == ActiveSAMConfig()  # nothing was staged

    with_background = ["background"] + VOCAB
    runtime.set_vocabulary(with_background)
    runtime.set_config(ActiveSAMConfig(background_threshold=0.4))  # checked against the staged vocabulary
    with pytest.raises(VocabularyError, match="background"):
        runtime.set_vocabulary(OTHER)  # the staged config needs a background class
    assert stream.run(make_frame("a", 2)).result.vocabulary.lines == tuple(with_background)
    assert stream.engine.config.background_threshold == 0.4 and stream.errors.empty()


def test_a_config_the_engine_cannot_take_is_refused_on_the_callers_thread(stream):
    with pytest.raises(ConfigError, match="multiple of the patch"):
        stream.runtime.set_config(ActiveSAMConfig(resolution=100))
    out = stream.run(make_frame("a", 1))
    assert out.result.vocabulary.lines == tuple(VOCAB)
    assert stream.engine.config.resolution is None and stream.errors.empty()


def test_a_failure_while_applying_a_change_fails_the_frame_and_is_no_refusal():
    """Out of memory while swapping parameters in is a failure of the
    machine: the frame fails (counted, reported with it), nothing is
    reported as a refused parameter, and the stream goes on."""
    s = Stream()
    broken = ActiveSAMConfig(bucket_size=7)
    reconfigure = s.engine.reconfigure

    def out_of_memory(config, prepared=None):
        if config == broken:
            raise MemoryError("no memory left for the new buffers")
        reconfigure(config, prepared)

    s.engine.reconfigure = out_of_memory
    with s.runtime:
        s.runtime.set_config(broken)
        assert s.runtime.submit(make_frame("a", 1))
        frame, error = s.error()
        assert frame is not None and frame.frame_id == "a1" and isinstance(error, MemoryError)
        assert s.run(make_frame("a", 2)).frame.frame_id == "a2"
        assert s.engine.config == ActiveSAMConfig()  # the engine kept what it had
        assert s.errors.empty()
        assert s.runtime.stats("a").failed == 1


def test_a_temporal_config_applies_from_the_next_frame(stream):
    assert stream.run(make_frame("a", 0)).result.preview_ran
    assert stream.run(make_frame("a", 1)).result.preview_ran  # per frame
    stream.runtime.set_temporal(TemporalConfig(refresh_interval=3, refresh_period=0.0))
    ran = [stream.run(make_frame("a", t)).result.preview_ran for t in range(2, 8)]
    assert ran == [True, False, False, True, False, False]
    assert stream.runtime.stats().preview_rate == pytest.approx(4 / 8)
    assert stream.runtime.stats().refresh_rate == pytest.approx(4 / 8)


def test_the_defaults_reuse():
    """A default is a promise: a stream reuses without being told to."""
    processor = StreamProcessor(FakeEngine(VOCAB))
    outs = [processor.process(Frame(np.zeros((4, 4, 3), np.uint8), stamp=t / 30, camera="a")) for t in range(4)]
    assert [o.plan.refresh for o in outs] == [True, False, False, False]
    refreshed = set(outs[0].result.active_queries)
    for out in outs[1:]:  # the fake's labels are all class 0: only it is present
        assert out.result.active_queries == [0] and set(out.result.active_queries) < refreshed


def test_each_camera_keeps_its_own_temporal_state():
    processor = StreamProcessor(FakeEngine(VOCAB), TemporalConfig(refresh_interval=2, refresh_period=0.0))
    ran = [processor.process(make_frame(c, t)).result.preview_ran
           for t, c in enumerate(["a", "a", "b", "a", "b", "b"])]
    assert ran == [True, False, True, True, False, True]


def test_the_synchronous_processor_applies_the_same_policy():
    engine = FakeEngine(VOCAB)
    processor = StreamProcessor(engine, TemporalConfig(refresh_interval=4, active_ttl=5, refresh_period=0.0))
    outs = [processor.process(make_frame("a", t)) for t in range(6)]
    assert [o.result.preview_ran for o in outs] == [True, False, False, False, True, False]
    reused = outs[1].result
    assert set(reused.active_queries) <= set(outs[0].result.active_queries)
    processor.set_vocabulary(OTHER)
    out = processor.process(make_frame("a", 6))
    assert out.result.vocabulary.lines == tuple(OTHER) and out.plan.reason == "first"
    with pytest.raises(RuntimeError):
        processor.process(make_frame("a", 7, fail=True))
    stats = processor.stats.snapshot()
    assert (stats.received, stats.processed, stats.failed) == (8, 7, 1)


def footprint(obj, skip, seen=None) -> int:
    """Entries in every container and array reachable from ``obj``."""
    seen = set() if seen is None else seen
    if id(obj) in seen or obj is skip or callable(obj):
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.size
    if isinstance(obj, dict):
        return len(obj) + sum(footprint(k, skip, seen) + footprint(v, skip, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset, collections.deque)):
        return len(obj) + sum(footprint(x, skip, seen) for x in obj)
    if hasattr(obj, "__dict__"):
        return sum(footprint(v, skip, seen) for v in vars(obj).values())
    return 0


def test_state_stays_bounded_over_a_long_run():
    s = Stream(temporal=TemporalConfig(refresh_interval=4, propagate=False))
    sizes = {}
    with s.runtime:
        for i in range(400):
            s.runtime.submit(make_frame("abc"[i % 3], i))
            if i % 5 == 0:
                s.runtime.submit(make_frame("abc"[i % 3], i))  # one dropped
            s.result()
            if i in (249, 399):
                sizes[i] = footprint(s.runtime, skip=s.engine)
    assert s.runtime.stats().processed == 400 and s.runtime.stats().dropped == 80
    assert sizes[399] == sizes[249]  # statistics windows are full by frame 200


def test_statistics_rates_latency_refreshes_and_label_age():
    now = [0.0]
    stats = StreamStatistics(window=6, clock=lambda: now[0])
    for t in (0.0, 0.5, 1.0, 1.5, 2.0):
        stats.received("a", t)
    for t, latency, refresh, preview, classes in ((1.0, 0.2, True, True, 3), (2.0, 0.4, False, False, 5),
                                                  (3.0, 0.6, True, False, 7)):
        now[0] = t
        stats.processed("a", latency, refresh, preview, classes)
    for t, age in ((3.5, 0.3), (4.0, 0.5)):
        now[0] = t
        stats.propagated("a", 0.01, age)
    stats.count("b", "dropped")
    a = stats.snapshot("a")
    # Rates over the stream's four seconds so far: 5 arrivals, 3 model frames, 5 outputs.
    assert a.input_rate == pytest.approx(5 / 4) and a.model_rate == pytest.approx(3 / 4)
    assert a.output_rate == pytest.approx(5 / 4)
    assert (a.since_input, a.since_output) == (pytest.approx(2.0), pytest.approx(0.0))
    assert a.latency_last == pytest.approx(0.01)
    assert a.label_age_mean == pytest.approx(0.8 / 5) and a.label_age_max == pytest.approx(0.5)
    assert a.refresh_rate == pytest.approx(2 / 3) and a.preview_rate == pytest.approx(1 / 3)
    assert (a.active_classes_mean, a.active_classes_last) == (5.0, 7)
    total = stats.snapshot()
    assert (total.received, total.processed, total.propagated, total.dropped) == (5, 3, 2, 1)
    assert stats.snapshot("nobody").received == 0 and stats.cameras == ("a", "b")


def test_rates_fall_to_zero_when_the_stream_stops():
    """A camera that stopped never shows the rate it had: the rates count
    the last RATE_WINDOW seconds only, and the time since the last frame
    and the last labels is reported."""
    now = [0.0]
    stats = StreamStatistics(clock=lambda: now[0])
    for i in range(300):  # 30 Hz in, 10 Hz out, for 10 s
        now[0] = i / 30
        stats.received("a", now[0])
        if i % 3 == 0:
            stats.processed("a", 0.05, False, False, 2)
    steady = stats.snapshot("a")
    assert steady.input_rate == pytest.approx(30, rel=0.06) and steady.output_rate == pytest.approx(10, rel=0.06)
    rates = []
    for later in (5.0, RATE_WINDOW - 0.1, RATE_WINDOW + 0.6, 80.0):
        now[0] = 10.0 + later
        snap = stats.snapshot("a")
        rates.append((snap.input_rate, snap.output_rate))
        assert snap.since_input == pytest.approx(later + 1 / 30, abs=1e-6)
    assert rates[0][0] < steady.input_rate * 0.6 and rates[1][0] < 1.0
    assert rates[2:] == [(0.0, 0.0), (0.0, 0.0)]
    assert stats.snapshot("a").received == 300  # the counts stay


# -- the tiny SAM 3 ----------------------------------------------------------


def moving_square(photo: np.ndarray, frames: int, side: int = 48):
    """A bright square gliding across a photograph."""
    h, w = photo.shape[:2]
    for t in range(frames):
        rgb = photo.copy()
        x = (t * 7) % (w - side)
        rgb[h // 3 : h // 3 + side, x : x + side] = (250, 40, 40)
        yield rgb


@pytest.mark.slow
def test_tiny_sam3_stream_reuses_the_active_set(tiny_model, photos):
    from activesam_ros.engine import ActiveSAM

    from conftest import paper_vocabulary

    # Fast mode keeps this affordable on a CPU; the policy is the same in both modes.
    engine = ActiveSAM(tiny_model, paper_vocabulary("ade20k"), ActiveSAMConfig(device="cpu", mode="fast"))
    n = len(engine.vocabulary.queries)
    processor = StreamProcessor(engine, TemporalConfig(refresh_interval=5, active_ttl=1, refresh_period=0.0,
                                                       scene_change_threshold=0.0, stale_score_drop=0.0))
    photo = photos["astronaut.png"][::2, ::2]
    results = [processor.process(Frame(rgb, stamp=float(t), frame_id=str(t), camera="cam")).result
               for t, rgb in enumerate(moving_square(photo, 12, side=24))]
    assert [t for t, r in enumerate(results) if r.preview_ran] == [0, 5, 10]
    for t, r in enumerate(results):
        if r.preview_ran:
            continue
        refresh = results[t - t % 5]
        # Reuse frames decode the classes that won pixels on the last
        # active_ttl + 1 frames since the refresh: all their queries.
        recent = results[max(t - t % 5, t - 2):t]
        won = set().union(*(set(np.unique(p.labels)) & set(p.active_classes) for p in recent))
        assert set(r.active_classes) == won
        assert set(r.active_queries) <= set(refresh.active_queries)
    # Per frame, the preview alone puts all n queries through the decoder.
    passes = sum(n * r.preview_ran + len(r.active_queries) for r in results)
    assert passes < len(results) * n


@pytest.mark.slow
def test_tiny_sam3_vocabulary_changed_mid_stream(tiny_model, photos):
    from activesam_ros.engine import ActiveSAM

    from conftest import paper_vocabulary

    engine = ActiveSAM(tiny_model, paper_vocabulary("ade20k"), ActiveSAMConfig(device="cpu"))
    results = queue.Queue()
    runtime = StreamRuntime(engine, results.put, temporal=TemporalConfig(refresh_interval=5))
    frames = moving_square(photos["coffee.png"], 4)
    with runtime:
        runtime.submit(Frame(next(frames), frame_id="0"))
        first = results.get(timeout=300)
        runtime.submit(Frame(next(frames), frame_id="1"))
        second = results.get(timeout=300)
        runtime.set_vocabulary("cup, mug; saucer; spoon; table")
        runtime.submit(Frame(next(frames), frame_id="2"))
        third = results.get(timeout=300)
    assert first.result.preview_ran and not second.result.preview_ran
    assert third.result.vocabulary == Vocabulary.from_string("cup, mug; saucer; spoon; table")
    assert third.plan.reason == "first" and third.result.active_queries == [0, 1, 2, 3, 4]
    assert set(np.unique(third.result.labels)) <= {0, 1, 2, 3}
