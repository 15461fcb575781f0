"""The temporal policy alone: which frames refresh, which classes a reuse
frame decodes, on label images made by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable

import numpy as np
import pytest

from activesam_ros.engine.config import ConfigError
from activesam_ros.engine.result import SegmentationResult
from activesam_ros.engine.vocabulary import Vocabulary
from activesam_ros.stream.temporal import ActiveSetTracker, FramePlan, ModelPeriod, TemporalConfig

# 30 classes, class 2 with two aliases: 31 queries.
VOCAB = Vocabulary.from_classes(["c0", "c1", "c2, second name"] + [f"c{i}" for i in range(3, 30)])
SIDE = 10  # label images of 10 x 10 pixels


def make(decoded: Iterable[int], winners: Dict[int, int], score: float = 0.5) -> SegmentationResult:
    """A result whose label image gives each class of ``winners`` that many
    pixels (the rest to the first decoded class), decoding ``decoded``."""
    decoded = sorted(decoded)
    queries = [q for q, c in enumerate(VOCAB.query_class) if c in decoded]
    labels = np.full(SIDE * SIDE, decoded[0], dtype=np.int32)
    at = 0
    for cls, pixels in winners.items():
        labels[at:at + pixels] = cls
        at += pixels
    return SegmentationResult(
        labels=labels.reshape(SIDE, SIDE), scores=np.full((SIDE, SIDE), score, np.float32), vocabulary=VOCAB,
        active_queries=queries, query_presence=np.zeros(len(VOCAB.queries), np.float32), preview_presence=None,
        preview_ran=False, background_index=None)


def tracker(**temporal) -> ActiveSetTracker:
    return ActiveSetTracker(TemporalConfig(**{"refresh_period": 0.0, **temporal}), VOCAB.query_class)


def step(t: ActiveSetTracker, winners: Dict[int, int], refresh_decodes=range(12), score: float = 0.5,
         residual: float = 0.0, stamp: float = 0.0) -> FramePlan:
    """Plan a frame; a refresh decodes ``refresh_decodes`` (the engine's
    choice), a reuse frame what the plan says; the labels show ``winners``
    (among the decoded classes only, as an argmax would)."""
    plan = t.plan(stamp, residual)
    decoded = set(refresh_decodes) if plan.refresh else {VOCAB.query_class[q] for q in plan.active_queries}
    shown = {c: n for c, n in winners.items() if c in decoded}
    t.update(plan, make(decoded, shown, score), stamp)
    return plan


def classes(plan: FramePlan) -> set:
    return {VOCAB.query_class[q] for q in plan.active_queries}


def test_config_rejects_bad_values_with_every_reason():
    bad = TemporalConfig(refresh_interval=0, refresh_period=-1.0, active_ttl=-1, present_fraction=2.0,
                         scene_change_threshold=300.0, stale_score_drop=1.5, propagate="yes",
                         propagation_max_age=0.0, propagation_max_motion=2.0)
    problems = bad.errors()
    for name in ("refresh_interval", "refresh_period", "active_ttl", "present_fraction", "scene_change_threshold",
                 "stale_score_drop", "propagate", "propagation_max_age", "propagation_max_motion"):
        assert any(p.startswith(name) for p in problems), name
    with pytest.raises(ConfigError, match="refresh_interval"):
        bad.validate()
    assert TemporalConfig(refresh_interval=5).validate().refresh_interval == 5
    with pytest.raises(ConfigError):
        ActiveSetTracker(TemporalConfig(refresh_interval=0), VOCAB.query_class)


def test_interval_one_refreshes_every_frame_like_the_paper():
    t = tracker(refresh_interval=1)
    plans = [step(t, {1: 5}) for _ in range(5)]
    assert all(p.refresh and p.active_queries is None for p in plans)
    assert [p.reason for p in plans] == ["first"] + ["interval"] * 4
    assert not TemporalConfig(refresh_interval=1).reuses and TemporalConfig().reuses


def test_reuse_frames_decode_the_refresh_queries_of_the_classes_that_won_pixels():
    t = tracker(refresh_interval=4, active_ttl=0)
    step(t, {1: 5, 2: 5, 7: 1})
    plan = step(t, {1: 5, 2: 5, 7: 1})
    assert not plan.refresh and plan.reason == "reuse"
    assert classes(plan) == {0, 1, 2, 7}  # 0 wins the remaining pixels
    assert set(plan.active_queries) == {0, 1, 2, 3, 8}  # both queries of class 2 (2, 3); class 7 is query 8


def test_a_reuse_frame_decodes_no_query_the_refresh_did_not():
    """The refresh (preview) chooses queries, not classes: an alias it did
    not select stays out, so a reuse frame never costs more than a refresh."""
    t = tracker(refresh_interval=4, active_ttl=0)
    plan = t.plan()
    refreshed = make([2, 5], {2: 50})
    refreshed.active_queries = [2, 6]  # class 2 by its first query only (3 is its alias), class 5
    t.update(plan, refreshed)
    assert t.plan().active_queries == (2,)


def test_refreshes_on_the_interval_and_reuses_between():
    t = tracker(refresh_interval=4)
    plans = [step(t, {3: 10}) for _ in range(10)]
    assert [i for i, p in enumerate(plans) if p.refresh] == [0, 4, 8]


@pytest.mark.parametrize("ttl", [0, 2])
def test_an_absent_class_is_decoded_ttl_more_frames_then_dropped(ttl):
    t = tracker(refresh_interval=100, active_ttl=ttl)
    step(t, {5: 10})
    decoded = [5 in classes(step(t, {})) for _ in range(ttl + 3)]
    # Seen absent on frame 1, kept for ttl more frames, then dropped.
    assert decoded == [True] * (ttl + 1) + [False] * 2


def test_present_means_a_share_of_the_pixels():
    for fraction, kept in ((0.0, True), (0.05, False)):
        t = tracker(refresh_interval=100, active_ttl=0, present_fraction=fraction)
        step(t, {4: 3, 6: 40})  # class 4 wins 3 % of the pixels
        assert (4 in classes(step(t, {4: 3, 6: 40}))) is kept


def test_a_class_labelled_but_not_decoded_is_not_present():
    """Background calibration labels pixels of a class the refresh may not
    have decoded: that class must not start being decoded on reuse frames."""
    t = tracker(refresh_interval=100, active_ttl=0)
    plan = t.plan()
    t.update(plan, make(range(5), {20: 30}))  # class 20 in the labels, not decoded
    assert 20 not in classes(t.plan())


def test_the_decoded_set_cannot_collapse_while_its_classes_win_pixels():
    """The failure the old policy had on real video: reuse frames' presences
    (full resolution) compared with the preview's bar (low resolution) shrank
    the set until whole regions changed class. Presence values play no part
    now: classes that keep winning pixels keep being decoded."""
    t = tracker(refresh_interval=1000, active_ttl=1)
    shown = {c: 8 for c in range(1, 10)}
    step(t, shown)
    for _ in range(50):
        plan = step(t, shown, score=0.5)
        assert classes(plan) == set(range(10))


def test_a_reuse_frame_never_decodes_a_class_the_last_refresh_did_not():
    rng = np.random.default_rng(0)
    t = tracker(refresh_interval=6, active_ttl=2)
    refreshed = None
    for _ in range(200):
        engine_choice = set(rng.choice(30, size=8, replace=False).tolist())
        winners = {int(c): int(rng.integers(1, 10)) for c in rng.choice(30, size=10, replace=False)}
        plan = step(t, winners, refresh_decodes=engine_choice)
        if plan.refresh:
            refreshed = engine_choice
        else:
            assert classes(plan) <= refreshed


def test_a_refresh_period_in_seconds():
    t = tracker(refresh_interval=1000, refresh_period=0.5, refresh_min_interval=1)
    stamps = [0.0, 0.1, 0.2, 0.45, 0.55, 0.6, 1.0, 1.1]
    refreshed = [step(t, {1: 5}, stamp=s).refresh for s in stamps]
    assert refreshed == [True, False, False, False, True, False, False, True]
    assert t.plan(5.0).reason == "period"


def run_at(rate: float, frames: int, **temporal) -> list:
    """The plans of ``frames`` model frames ``1 / rate`` stamp seconds apart
    (the stream defaults but for ``temporal``; nothing stale, no scene change)."""
    t = ActiveSetTracker(TemporalConfig(**temporal), VOCAB.query_class)
    return [step(t, {1: 5}, stamp=i / rate) for i in range(frames)]


@pytest.mark.parametrize("rate, refreshes", [(30.0, 8), (10.0, 8), (3.0, 3), (1.0, 3), (0.5, 3), (0.3, 3)])
def test_the_refresh_period_counts_model_frames_when_the_model_is_slow(rate, refreshes):
    """1 s of stamps is 8 frames or more at 10 Hz (the interval refreshes),
    3 frames at 3 Hz, less than refresh_min_interval below: a slow model
    refreshes every third frame, not on every one, and reuses between."""
    plans = run_at(rate, 24)
    assert [i for i, p in enumerate(plans) if p.refresh] == list(range(0, 24, refreshes))
    assert {p.reason for p in plans[1:] if p.refresh} == {"interval" if refreshes == 8 else "period"}
    every = run_at(rate, 24, refresh_min_interval=1)  # the period alone
    assert sum(p.refresh for p in every) == (24 if rate <= 1 else sum(p.refresh for p in plans))


def test_refresh_min_interval_is_checked():
    assert any(p.startswith("refresh_min_interval") for p in TemporalConfig(refresh_min_interval=0).errors())
    assert TemporalConfig(refresh_min_interval=1).validate().refresh_min_interval == 1


def test_the_model_period_is_the_median_interval_of_the_recent_model_frames():
    period = ModelPeriod()
    assert period.seconds == 0.0
    period.add(10.0, False)
    assert period.seconds == 0.0  # one frame: no interval yet
    for stamp in (12.0, 14.0, 30.0, 32.0):  # a 16 s pause of the camera among 2 s periods
        period.add(stamp, False)
    assert period.seconds == 2.0
    for stamp in (float("nan"), float("inf"), 31.0, 31.0):  # not finite: ignored; backwards: no interval
        period.add(stamp, False)
    assert period.seconds == 2.0
    for stamp in np.arange(33.0, 40.0):  # the device sped up: the window follows
        period.add(float(stamp), False)
    assert period.seconds == 1.0


def test_the_model_period_is_that_of_the_slower_kind_of_model_frame():
    """A refresh in three takes three times a reuse frame (a large
    vocabulary's preview): the labels carried while a refresh runs are a
    reuse and a refresh old, so the period is the refresh's, not the
    median of all intervals (a reuse frame's)."""
    period, stamp = ModelPeriod(), 0.0
    for frame in range(12):
        refresh = frame % 3 == 0
        period.add(stamp, refresh)
        stamp += 3.0 if refresh else 1.0
    assert period.seconds == 3.0
    assert TemporalConfig().propagation_age_limit(period.seconds) >= 3.0 + 1.0  # the oldest labels in normal running


def test_labels_may_be_carried_for_a_number_of_model_periods_when_that_is_longer():
    c = TemporalConfig(propagation_max_age=2.0, propagation_max_age_periods=3.0)
    assert c.propagation_age_limit(0.0) == 2.0      # not known yet
    assert c.propagation_age_limit(0.1) == 2.0      # 10 Hz: the seconds bound
    assert c.propagation_age_limit(2.0) == 6.0      # 0.5 Hz: 3 periods
    assert TemporalConfig(propagation_max_age_periods=0.0).propagation_age_limit(5.0) == 2.0
    t = ActiveSetTracker(c, VOCAB.query_class)
    for stamp in (0.0, 3.0, 6.0):
        step(t, {1: 5}, stamp=stamp)
    assert t.propagation_age_limit == 9.0
    assert any(p.startswith("propagation_max_age_periods")
               for p in TemporalConfig(propagation_max_age_periods=-1.0).errors())


def test_a_scene_change_refreshes_that_very_frame():
    """The residual after aligning a frame to the refresh frame (grey levels;
    the runtime measures it by optical flow before the model runs) above the
    threshold."""
    t = tracker(refresh_interval=100, scene_change_threshold=12.0)
    step(t, {1: 5})
    assert not step(t, {1: 5}, residual=5.0).refresh   # the same scene, moved
    plan = step(t, {1: 5}, residual=35.0)               # a cut
    assert plan.refresh and plan.reason == "scene_change"
    assert not step(t, {1: 5}, residual=3.0).refresh

    off = tracker(refresh_interval=100, scene_change_threshold=0.0)
    step(off, {1: 5})
    assert not any(step(off, {1: 5}, residual=100.0).refresh for _ in range(3))


def test_weakened_labels_refresh_the_next_frame():
    """Something the decoded set does not name is won weakly: the mean
    winning score falls below the refresh frame's."""
    t = tracker(refresh_interval=100, stale_score_drop=0.2)
    step(t, {1: 5}, score=0.5)
    assert not step(t, {1: 5}, score=0.45).refresh   # a 10 % drop
    assert not step(t, {1: 5}, score=0.35).refresh   # 30 %: this frame is stale...
    plan = step(t, {1: 5}, score=0.35)
    assert plan.refresh and plan.reason == "stale"   # ...the next one refreshes
    off = tracker(refresh_interval=100, stale_score_drop=0.0)
    step(off, {1: 5}, score=0.5)
    assert not any(step(off, {1: 5}, score=0.1).refresh for _ in range(3))


def bound_frames(c: TemporalConfig, rate: float) -> int:
    """The documented bound: k = min(refresh_interval, max(refresh_min_interval,
    refresh_period / model period rounded up))."""
    return min(c.refresh_interval, max(c.refresh_min_interval, int(np.ceil(c.refresh_period * rate - 1e-9))))


@pytest.mark.parametrize("rate", [30.0, 10.0, 3.5, 3.0, 1.0, 0.7, 0.5, 0.3])
def test_a_class_that_enters_is_decoded_within_the_documented_bound(rate):
    """The module doc's bound with the defaults: within k model frames, k
    periods of stamps after it entered."""
    c = TemporalConfig(stale_score_drop=0.0, scene_change_threshold=0.0)
    k = bound_frames(c, rate)
    worst = (0, 0.0)
    for enters in range(1, 3 * c.refresh_interval):
        t = ActiveSetTracker(c, VOCAB.query_class)
        for i in range(60):
            winners = {1: 5, **({25: 5} if i >= enters else {})}
            plan = step(t, winners, refresh_decodes={0, 1, 25}, stamp=i / rate)
            if i >= enters and plan.refresh:
                # it entered after the model frame before (stamp (enters - 1) / rate)
                worst = max(worst, (i - enters + 1, (i - enters + 1) / rate))
                break
    assert worst[0] <= k and worst[1] <= k / rate + 1e-9
    assert worst[0] == k  # the bound is reached: it says something


def test_the_documented_bound_table_is_the_policy_with_its_defaults():
    text = (Path(__file__).resolve().parents[1] / "docs" / "streams.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.split("## Slow devices", 1)[1].splitlines():
        if rows and not line.startswith("|"):
            break  # the first table only
        if line.startswith("|") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    rates = [float(r) for r in rows["model frames/s"]]
    assert min(rates) <= 0.3 and max(rates) >= 30
    for rate, frames, seconds in zip(rates, rows["k, model frames"], rows["decoded within, s"]):
        k = bound_frames(TemporalConfig(), rate)
        assert int(frames) == k and float(seconds) == pytest.approx(k / rate, abs=0.01), rate


def test_a_class_that_enters_is_decoded_by_the_next_refresh():
    """The bound stated in the module doc: within refresh_interval frames."""
    interval = 5
    for enters in range(1, 12):
        t = tracker(refresh_interval=interval, stale_score_drop=0.0, scene_change_threshold=0.0)
        frames = 0
        for i in range(40):
            winners = {1: 5, **({25: 5} if i >= enters else {})}
            plan = step(t, winners, refresh_decodes={0, 1, 25})
            if i >= enters:
                frames += 1
                if plan.refresh:
                    break
        assert frames <= interval


def test_nothing_left_present_refreshes():
    """With a share required, a frame may leave no class present."""
    t = tracker(refresh_interval=100, active_ttl=0, present_fraction=0.5)
    step(t, {1: 25, 2: 25, 3: 25}, refresh_decodes={0, 1, 2, 3})  # 25 % each: none present
    plan = t.plan()
    assert plan.refresh and plan.reason == "empty"


def test_class_pixels_counts_each_class():
    pixels = make([0, 4], {4: 7}).class_pixels
    assert pixels[4] == 7 and pixels[0] == SIDE * SIDE - 7 and pixels.sum() == SIDE * SIDE


def test_a_failed_frame_is_planned_again():
    t = tracker(refresh_interval=100)
    step(t, {1: 5})
    plan = t.plan()
    assert t.plan() == plan  # no update (the engine raised): same plan

