"""Label propagation: labels carried along optical flow on real photographs,
refused when the flow cannot be trusted, and wired into the runtime so that
every frame the camera sends is labelled once or counted."""

from __future__ import annotations

import math
import queue
import threading

import cv2
import numpy as np
import pytest

from activesam_ros.engine.result import SegmentationResult
from activesam_ros.engine.vocabulary import Vocabulary
from activesam_ros.stream.propagation import LabelPropagator, small_grey
from activesam_ros.stream.runtime import MODEL, PROPAGATED, Frame, StreamProcessor, StreamRuntime
from activesam_ros.stream.temporal import TemporalConfig

from fake_engine import FakeEngine

VOCAB = Vocabulary.from_classes(["dark", "mid", "light", "bright"])
GUARD = 30.0


def shifted(rgb: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The scene moved by (dx, dy) pixels (the camera panning the other way)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(rgb, matrix, (rgb.shape[1], rgb.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def labelled(rgb: np.ndarray) -> SegmentationResult:
    """A result whose labels follow the image: four grey bands."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    labels = np.minimum(grey // 64, 3).astype(np.int32)
    return SegmentationResult(labels=labels, scores=grey.astype(np.float32) / 255, vocabulary=VOCAB,
                              active_queries=[0, 1, 2, 3], query_presence=np.ones(4, np.float32),
                              preview_presence=None, preview_ran=True, background_index=None)


def interior(a: np.ndarray, margin: int = 12) -> np.ndarray:
    return a[margin:-margin, margin:-margin]


@pytest.mark.parametrize("dx, dy", [(5.0, 2.0), (-8.0, 4.0), (0.0, 0.0)])
def test_labels_follow_the_motion_of_a_real_photograph(photos, dx, dy):
    rgb = photos["chelsea.png"]
    propagator = LabelPropagator(TemporalConfig())
    propagator.anchor(rgb, labelled(rgb), stamp=0.0)
    moved = shifted(rgb, dx, dy)
    out = propagator.propagate(moved, stamp=0.1)
    assert out.refused == "" and out.result is not None
    truth = labelled(moved).labels
    carried = np.mean(interior(out.result.labels) == interior(truth))
    standing = np.mean(interior(labelled(rgb).labels) == interior(truth))  # no motion compensation
    assert carried >= 0.93
    if dx or dy:
        assert carried > standing + 0.05
    assert out.result.vocabulary == VOCAB and not out.result.preview_ran
    assert out.flow.residual < 10 and out.result.timings["propagation"] > 0


def test_a_cut_large_motion_and_old_labels_are_refused(photos):
    rgb = photos["chelsea.png"]
    propagator = LabelPropagator(TemporalConfig(propagation_max_age=0.5))
    assert propagator.propagate(rgb, 0.0).refused == "no model frame yet"
    propagator.anchor(rgb, labelled(rgb), stamp=0.0)
    other = cv2.resize(photos["coffee.png"], (rgb.shape[1], rgb.shape[0]))
    assert propagator.propagate(other, 0.1).refused.startswith("residual")       # a cut
    far = shifted(rgb, 0.4 * rgb.shape[1], 0.0)
    assert propagator.propagate(far, 0.1).result is None                          # beyond what the flow tracks
    assert propagator.propagate(rgb, 0.6).refused == "model frame 0.60 s old"
    assert propagator.propagate(rgb[:-2], 0.1).refused == "the image size changed"


def test_labels_are_carried_forward_in_time_only(photos):
    """A frame stamped before its model frame (age -99.9 s) or with a stamp
    that is not a number gets no labels, whatever the flow says."""
    rgb = photos["chelsea.png"]
    propagator = LabelPropagator(TemporalConfig())
    propagator.anchor(rgb, labelled(rgb), stamp=100.0)
    assert propagator.propagate(rgb, 100.5).result is not None
    assert propagator.propagate(rgb, 100.0).result is not None  # the model frame's own stamp: age 0
    for stamp, why in ((0.1, "stamped 99.900 s before the model frame"), (math.nan, "not a number"),
                       (math.inf, "not a number")):
        carried = propagator.propagate(rgb, stamp)
        assert carried.result is None and why in carried.refused


def test_the_flow_image_is_small_and_keeps_the_aspect():
    grey = small_grey(np.zeros((480, 640, 3), np.uint8))
    assert grey.shape == (120, 160) and grey.dtype == np.uint8


# -- in the runtime ---------------------------------------------------------------

def frame(tag: int, rgb: np.ndarray, camera: str = "a") -> Frame:
    return Frame(rgb, stamp=tag / 30, frame_id=f"{camera}{tag}", camera=camera, context={"tag": tag})


class Collected:
    def __init__(self, temporal: TemporalConfig):
        self.engine = FakeEngine(VOCAB)
        self.results: "queue.Queue" = queue.Queue()
        self.threads: "queue.Queue" = queue.Queue()

        def on_result(out):
            self.threads.put(threading.current_thread().name)
            self.results.put(out)

        self.runtime = StreamRuntime(self.engine, on_result, temporal=temporal)

    def get(self):
        return self.results.get(timeout=GUARD)


def test_frames_the_busy_model_skips_get_propagated_labels_at_once(photos):
    """The newest frame waits for the model; each frame it replaces is
    labelled from the last model frame on the submitting thread, so every
    frame is labelled once, and nothing queues. The model frame that
    finishes after later frames went out is withheld (stamps never go
    back, ``stream.ordering``) but anchors the next propagation."""
    rgb = photos["chelsea.png"]
    c = Collected(TemporalConfig())
    with c.runtime:
        c.runtime.submit(frame(0, rgb))
        first = c.get()                                    # the model's: the anchor
        assert first.source == MODEL and first.age == 0
        c.engine.started.acquire(timeout=GUARD)            # (frame 0 entered the engine)
        c.engine.hold()
        c.runtime.submit(frame(1, shifted(rgb, 2, 0)))
        c.engine.started.acquire(timeout=GUARD)            # the model is busy with frame 1
        for tag in range(2, 6):
            c.runtime.submit(frame(tag, shifted(rgb, 2 * tag, 0)))   # 2, 3, 4 get replaced
        carried = [c.get() for _ in range(3)]
        assert [o.frame.frame_id for o in carried] == ["a2", "a3", "a4"]
        assert all(o.source == PROPAGATED and o.model_stamp == 0.0 and o.plan is None for o in carried)
        assert [round(o.age, 3) for o in carried] == [round(t / 30, 3) for t in (2, 3, 4)]
        assert all(o.model_context == {"tag": 0} for o in carried)
        c.engine.unhold()
        published = [first, *carried, c.get()]             # frame 1 is withheld: frame 4 went out first
        assert (published[-1].frame.frame_id, published[-1].source) == ("a5", MODEL)
        c.engine.started.acquire(timeout=GUARD)            # (frame 5 entered the engine)
        c.engine.hold()
        c.runtime.submit(frame(6, shifted(rgb, 12, 0)))
        c.engine.started.acquire(timeout=GUARD)            # the model is busy with frame 6
        for tag in (7, 8):
            c.runtime.submit(frame(tag, shifted(rgb, 2 * tag, 0)))  # 7 replaced: carried from frame 5
        published.append(c.get())
        c.engine.release()                                 # frame 6 done (withheld), the model takes frame 8
        c.engine.started.acquire(timeout=GUARD)
        for tag in (9, 10):
            c.runtime.submit(frame(tag, shifted(rgb, 2 * tag, 0)))  # 9 replaced: carried from frame 6
        published.append(c.get())
        c.engine.unhold()                                  # frame 8 withheld, frame 10 published
        published.append(c.get())
    assert [(o.frame.frame_id, o.source, (o.model_context or {}).get("tag")) for o in published[-4:]] == [
        ("a5", MODEL, 5), ("a7", PROPAGATED, 5), ("a9", PROPAGATED, 6), ("a10", MODEL, 10)]
    stamps = [o.frame.stamp for o in published]
    assert stamps == sorted(stamps) and len(published) == 8  # never back; withheld frames still anchor
    threads = [c.threads.get() for _ in range(8)]
    assert threads.count("activesam-runtime") == 3  # model frames on the worker, the rest where they came
    stats = c.runtime.stats("a")
    assert (stats.received, stats.processed, stats.propagated, stats.withheld, stats.dropped) == (11, 6, 5, 3, 0)


def test_without_propagation_skipped_frames_are_dropped_and_counted(photos):
    c = Collected(TemporalConfig(propagate=False))
    rgb = photos["chelsea.png"]
    with c.runtime:
        c.runtime.submit(frame(0, rgb))
        c.get()
        c.engine.started.acquire(timeout=GUARD)
        c.engine.hold()
        c.runtime.submit(frame(1, rgb))
        c.engine.started.acquire(timeout=GUARD)
        for tag in (2, 3):
            c.runtime.submit(frame(tag, rgb))
        c.engine.unhold()
        assert sorted(c.get().frame.frame_id for _ in range(2)) == ["a1", "a3"]
    stats = c.runtime.stats("a")
    assert (stats.processed, stats.propagated, stats.dropped) == (3, 0, 1)


def test_nothing_is_carried_across_a_vocabulary_change(photos):
    """Labels made with the old vocabulary are never delivered after the new
    one is in force: the next skipped frame waits for a new model frame."""
    rgb = photos["chelsea.png"]
    processor = StreamProcessor(FakeEngine(VOCAB), TemporalConfig())
    processor.process(frame(0, rgb))
    assert processor.propagate(frame(1, rgb)).source == PROPAGATED
    processor.set_vocabulary(["cat", "dog"])
    new = processor.process(frame(2, rgb))
    assert new.result.vocabulary.names == ("cat", "dog")
    carried = processor.propagate(frame(3, rgb))
    assert carried.result.vocabulary.names == ("cat", "dog") and carried.model_stamp == new.frame.stamp
    processor.set_vocabulary(["cup"])
    processor.process(frame(4, rgb, camera="b"))  # the swap happens on the next model frame, of any camera
    assert processor.propagate(frame(5, rgb)) is None  # camera a has no model frame under "cup" yet
    assert processor.stats.snapshot("a").dropped == 1


def test_a_cut_refreshes_the_model_frame_of_the_cut(photos):
    """The scene-change measure is the image's, taken before the model runs:
    a cut to another photograph refreshes that frame, a small pan does not."""
    rgb = photos["chelsea.png"]
    other = cv2.resize(photos["coffee.png"], (rgb.shape[1], rgb.shape[0]))
    processor = StreamProcessor(FakeEngine(VOCAB), TemporalConfig(refresh_interval=100, refresh_period=0.0,
                                                                  stale_score_drop=0.0))
    frames = [rgb, shifted(rgb, 3, 1), shifted(rgb, 6, 2), other, other, other]
    reasons = [processor.process(frame(t, f)).plan.reason for t, f in enumerate(frames)]
    assert reasons == ["first", "reuse", "reuse", "scene_change", "reuse", "reuse"]
