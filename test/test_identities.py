"""Persistent object ids: matched by mask overlap within a class, kept while
an object goes unseen for a while, never reused within the stated horizon,
and carried through propagated frames with the labels."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from activesam_ros.engine.result import Instance, SegmentationResult
from activesam_ros.engine.vocabulary import Vocabulary
from activesam_ros.stream.identities import (
    MAX_ID,
    IdentityTracker,
    TrackedObject,
    boxes,
    greedy_pairs,
    mask_iou,
)
from activesam_ros.stream.propagation import LabelPropagator
from activesam_ros.stream.temporal import TemporalConfig

VOCAB = Vocabulary.from_classes(["person", "car", "dog"])


def frame(objects, shape=(48, 64)) -> SegmentationResult:
    """A model result whose instances are rectangles: (class, x0, y0, x1, y1) each, later ones on top."""
    instance_map = np.zeros(shape, np.int32)
    labels = np.zeros(shape, np.int32)
    for k, (cls, x0, y0, x1, y1) in enumerate(objects, start=1):
        instance_map[y0:y1, x0:x1] = k
        labels[y0:y1, x0:x1] = cls
    instances = []
    for k, (cls, *_rest) in enumerate(objects, start=1):
        ys, xs = np.nonzero(instance_map == k)
        instances.append(Instance(cls, 0.5, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)))
    return SegmentationResult(labels=labels, scores=np.ones(shape, np.float32), vocabulary=VOCAB,
                              active_queries=[0, 1, 2], query_presence=np.ones(3, np.float32),
                              preview_presence=None, preview_ran=False, background_index=None,
                              instances=tuple(instances), instance_map=instance_map)


def ids_of(tracker, objects, **kw):
    tracked, image = tracker.update(frame(objects, **kw))
    return [o.id for o in tracked], image


def test_mask_iou_is_intersection_over_union_of_the_pixel_sets():
    a = np.zeros((10, 10), np.int64)
    b = np.zeros((10, 10), np.int64)
    a[0:4, 0:4] = 1   # 16 pixels
    b[2:6, 2:6] = 2   # 16 pixels, 4 shared
    b[8:10, 8:10] = 1
    iou = mask_iou(a, b, 1, 2)
    assert iou.shape == (2, 3)
    assert iou[1, 2] == pytest.approx(4 / 28) and iou[1, 1] == 0
    assert not iou[0].any() and not iou[:, 0].any()


def test_greedy_pairs_take_the_highest_overlap_first_and_each_side_once():
    iou = np.array([[0, 0, 0], [0, 0.5, 0.4], [0, 0.45, 0.1]])
    allowed = np.ones_like(iou, dtype=bool)
    assert greedy_pairs(iou, allowed, 0.05) == [(1, 1), (2, 2)]
    assert greedy_pairs(iou, allowed, 0.2) == [(1, 1)]
    allowed[1, 1] = False
    assert greedy_pairs(iou, allowed, 0.2) == [(2, 1), (1, 2)]


def test_an_object_keeps_its_id_while_it_moves_and_the_id_image_names_its_pixels():
    tracker = IdentityTracker(match_iou=0.2, max_unseen=2)
    first, image = ids_of(tracker, [(0, 5, 5, 20, 30), (1, 40, 10, 60, 20)])
    assert first == [1, 2]
    assert image.dtype == np.uint16 and set(np.unique(image)) == {0, 1, 2}
    assert (image[5:30, 5:20] == 1).all() and (image[10:20, 40:60] == 2).all()
    moved, _ = ids_of(tracker, [(1, 42, 11, 61, 21), (0, 8, 6, 23, 31)])  # listed the other way round
    assert moved == [2, 1]


def test_a_class_change_or_no_overlap_is_a_new_object():
    tracker = IdentityTracker(match_iou=0.2, max_unseen=2)
    ids_of(tracker, [(0, 5, 5, 20, 30)])
    assert ids_of(tracker, [(2, 5, 5, 20, 30)])[0] == [2]      # same pixels, another class
    assert ids_of(tracker, [(2, 40, 30, 60, 45)])[0] == [3]    # same class, elsewhere


def test_an_unseen_object_gets_its_id_back_within_max_unseen_frames_only():
    tracker = IdentityTracker(match_iou=0.2, max_unseen=2)
    ids_of(tracker, [(0, 5, 5, 20, 30)])
    ids_of(tracker, [])
    ids_of(tracker, [])
    assert ids_of(tracker, [(0, 5, 5, 20, 30)])[0] == [1]      # unseen for 2 frames: still alive
    for _ in range(3):
        ids_of(tracker, [])
    assert tracker.live == 0
    assert ids_of(tracker, [(0, 5, 5, 20, 30)])[0] == [2]      # unseen for 3: a new object


def test_ids_count_up_and_come_back_only_after_the_count_went_round():
    """Every frame brings 192 new objects (the class alternates, so none
    matches; each lives two frames): ids count up to MAX_ID without
    repeating, then wrap to 1, never giving out one that is alive, and an
    id comes back only after MAX_ID - (objects alive) newer objects."""
    tracker = IdentityTracker(match_iou=0.2, max_unseen=1)
    tiles = [(x, y, x + 4, y + 4) for y in range(0, 48, 4) for x in range(0, 64, 4)]  # 192
    issued, last = [], {}
    step = 0
    while len(issued) < MAX_ID + 3 * len(tiles):
        alive = set(issued[-2 * len(tiles):])
        ids, image = ids_of(tracker, [(step % 2, *tile) for tile in tiles])
        assert len(set(ids)) == len(ids) and not set(ids) & alive
        assert set(np.unique(image)) - {0} == set(ids)
        for ident in ids:
            if ident in last:
                assert len(issued) - last[ident] >= MAX_ID - 2 * len(tiles)
            last[ident] = len(issued)
            issued.append(ident)
        step += 1
    assert issued[:MAX_ID] == list(range(1, MAX_ID + 1))
    assert issued[MAX_ID] == 1 and max(issued) == MAX_ID


def test_boxes_of_an_id_image_are_exclusive_pixel_bounds():
    image = np.zeros((20, 30), np.uint16)
    image[3:7, 4:12] = 9
    image[10, 25] = 700
    assert boxes(image, [9, 700, 5]) == {9: (4, 3, 12, 7), 700: (25, 10, 26, 11)}


def textured(seed=0, shape=(96, 128)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grey = cv2.GaussianBlur(rng.integers(0, 255, shape).astype(np.uint8), (0, 0), 2)
    grey = cv2.normalize(grey, None, 0, 255, cv2.NORM_MINMAX)
    return np.repeat(grey[..., None], 3, axis=-1)


def test_propagated_frames_carry_the_ids_with_the_labels():
    """A textured scene moved by (4, 2) pixels: the carried id image is the
    model frame's moved alike, and the objects' boxes follow."""
    rgb = textured()
    result = frame([(0, 20, 20, 50, 60), (1, 70, 30, 110, 80)], shape=rgb.shape[:2])
    tracker = IdentityTracker(match_iou=0.2, max_unseen=2)
    objects, ids = tracker.update(result, stamp=0.0)
    propagator = LabelPropagator(TemporalConfig())
    propagator.anchor(rgb, result, 0.0, objects=objects, instance_ids=ids)
    moved = np.roll(rgb, (2, 4), axis=(0, 1))
    carried = propagator.propagate(moved, 0.1)
    assert carried.refused == ""
    expected = np.roll(ids, (2, 4), axis=(0, 1))
    inner = (slice(8, -8), slice(8, -8))
    assert (carried.instance_ids[inner] == expected[inner]).mean() > 0.97
    assert carried.instance_ids.dtype == np.uint16
    assert [o.id for o in carried.objects] == [o.id for o in objects]
    for before, after in zip(objects, carried.objects):
        assert abs(after.box[0] - before.box[0] - 4) <= 1 and abs(after.box[1] - before.box[1] - 2) <= 1
    # the propagated result's own instance map moved the same way
    assert ((carried.result.instance_map > 0) == (carried.instance_ids > 0)).all()
    # the tracker takes the carried pixels as the objects' last known ones:
    # the next model frame, moved further, still matches
    tracker.carried(carried.instance_ids, 0.0)
    further = frame([(0, 30, 25, 60, 65), (1, 80, 35, 120, 85)], shape=rgb.shape[:2])
    assert [o.id for o in tracker.update(further, stamp=0.2)[0]] == [o.id for o in objects]


def test_a_carried_id_image_older_than_the_last_model_frame_is_ignored():
    tracker = IdentityTracker(match_iou=0.5, max_unseen=2)
    tracker.update(frame([(0, 5, 5, 20, 30)]), stamp=1.0)
    stale = np.zeros((48, 64), np.uint16)
    stale[30:45, 40:60] = 1
    tracker.carried(stale, model_stamp=0.5)
    assert [o.id for o in tracker.update(frame([(0, 5, 5, 20, 30)]), stamp=2.0)[0]] == [1]


def test_tracked_objects_are_what_the_contract_names():
    obj = TrackedObject(id=3, class_index=1, score=0.5, box=(0, 0, 2, 2))
    assert (obj.id, obj.class_index, obj.score, obj.box) == (3, 1, 0.5, (0, 0, 2, 2))


def test_ids_count_on_across_a_parameter_change_of_the_stream():
    """A parameter change starts a camera's state over: its objects get new
    ids, counted on from the last one issued, never one given out before."""
    from activesam_ros.stream.runtime import Frame, StreamProcessor

    from fake_engine import FakeEngine

    class Boxes(FakeEngine):
        def segment(self, image, active_queries=None, screen=True):
            base = super().segment(image, active_queries, screen)
            made = frame([(0, 5, 5, 20, 30), (1, 30, 10, 50, 40)], shape=image.shape[:2])
            return dataclasses.replace(made, active_queries=base.active_queries,
                                       query_presence=base.query_presence, vocabulary=base.vocabulary)

    processor = StreamProcessor(Boxes(VOCAB), TemporalConfig(propagate=False))
    rgb = np.zeros((48, 64, 3), np.uint8)
    first = processor.process(Frame(rgb, 0.0))
    again = processor.process(Frame(rgb, 0.1))
    assert [o.id for o in first.objects] == [o.id for o in again.objects] == [1, 2]
    assert again.instance_ids.dtype == np.uint16 and set(np.unique(again.instance_ids)) == {0, 1, 2}
    processor.set_temporal(TemporalConfig(propagate=False, object_match_iou=0.3))
    after = processor.process(Frame(rgb, 0.2))
    assert [o.id for o in after.objects] == [3, 4]
