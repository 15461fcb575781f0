"""The temporal policy alone: which frames preview, which queries are
decoded or scanned, on presences chosen by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from activesam_ros.engine.config import ActiveSAMConfig, ConfigError
from activesam_ros.engine.vocabulary import Vocabulary
from activesam_ros.stream.temporal import ActiveSetTracker, FramePlan, TemporalConfig, cosine_distance

from fake_engine import fake_result

VOCAB = Vocabulary.from_lines(f"class {i}" for i in range(50))
ENGINE = ActiveSAMConfig(max_active=12, bucket_size=8)
# Queries 0..9 present: the preview's quantile rule selects exactly them
# (tau = the 0.8 quantile = 0.18), leaving 40 inactive queries.
BASE = np.where(np.arange(50) < 10, 0.9, 0.0).astype(np.float32)
SEEN = set(range(10))


def tracker(**temporal) -> ActiveSetTracker:
    """A tracker that scans one bucket per reuse frame unless told otherwise."""
    return ActiveSetTracker(TemporalConfig(**{"scan_buckets_per_frame": 1, **temporal}), ENGINE, len(VOCAB.queries))


def step(t: ActiveSetTracker, presence=BASE, embedding=None) -> FramePlan:
    """Plan a frame, let a faithful fake engine run it, take the result in."""
    plan = t.plan()
    result = fake_result(VOCAB, ENGINE, presence, plan.active_queries, plan.scan_queries, embedding)
    assert result.preview_ran == plan.run_preview
    t.update(plan, result)
    return plan


def with_present(*queries, value=0.9, base=BASE):
    p = base.copy()
    p[list(queries)] = value
    return p


def test_the_scan_is_off_by_default_so_reuse_decodes_a_subset_of_the_preview():
    t = ActiveSetTracker(TemporalConfig(preview_interval=4, active_ttl=10), ENGINE, len(VOCAB.queries))
    step(t)
    plans = [step(t, with_present(*range(10, 30))) for _ in range(3)]
    assert all(not p.scan_queries and set(p.active_queries) <= SEEN for p in plans)


def test_config_rejects_bad_values_with_every_reason():
    bad = TemporalConfig(preview_interval=0, active_ttl=-1, scene_change_threshold=3.0,
                         scan_buckets_per_frame=True, presence_threshold=-0.1)
    problems = bad.errors()
    for name in ("preview_interval", "active_ttl", "scene_change_threshold",
                 "scan_buckets_per_frame", "presence_threshold"):
        assert any(p.startswith(name) for p in problems), name
    with pytest.raises(ConfigError, match="preview_interval"):
        bad.validate()
    assert TemporalConfig(preview_interval=5).validate().preview_interval == 5
    with pytest.raises(ConfigError):
        ActiveSetTracker(TemporalConfig(preview_interval=0), ENGINE, 50)


def test_small_vocabulary_is_decoded_whole_without_preview():
    small = Vocabulary.from_lines(["a", "b", "c"])
    t = ActiveSetTracker(TemporalConfig(preview_interval=3), ENGINE, 3)
    for _ in range(4):
        plan = t.plan()
        assert plan == FramePlan(False, None, (), "all")
        result = fake_result(small, ENGINE, np.ones(3), plan.active_queries, plan.scan_queries)
        assert result.active_queries == [0, 1, 2] and not result.preview_ran
        t.update(plan, result)


def test_interval_one_previews_every_frame_like_the_paper():
    t = tracker(preview_interval=1)
    plans = [step(t) for _ in range(5)]
    assert all(p.run_preview and p.active_queries is None and not p.scan_queries for p in plans)
    assert [p.reason for p in plans] == ["first"] + ["interval"] * 4


def test_previews_every_interval_and_reuses_the_set_between():
    t = tracker(preview_interval=4, active_ttl=10)
    plans = [step(t) for _ in range(10)]
    assert [i for i, p in enumerate(plans) if p.run_preview] == [0, 4, 8]
    for p in plans:
        if not p.run_preview:
            assert set(p.active_queries) == SEEN
            assert p.scan_queries and not SEEN & set(p.scan_queries)


@pytest.mark.parametrize("ttl", [0, 2])
def test_an_absent_query_is_decoded_ttl_more_frames_then_dropped(ttl):
    t = tracker(preview_interval=100, active_ttl=ttl)
    step(t)  # preview: query 3 selected
    gone = with_present(3, value=0.0)
    decoded = [3 in step(t, gone).active_queries for _ in range(ttl + 3)]
    # Seen absent on frame 1, kept for ttl more frames, then dropped.
    assert decoded == [True] * (ttl + 1) + [False] * 2


def test_present_means_above_the_last_preview_tau_or_the_set_threshold():
    weak = with_present(20, value=0.3)  # above tau = 0.18, below 0.5
    for threshold, found in ((0.0, True), (0.5, False)):
        t = tracker(preview_interval=100, presence_threshold=threshold)
        step(t)
        assert t.tau == pytest.approx(0.18, abs=1e-6)
        while 20 not in step(t, weak).scan_queries:
            pass
        assert (20 in t.plan().active_queries) is found


@pytest.mark.parametrize("buckets", [1, 2])
def test_a_new_query_is_found_within_the_documented_bound(buckets):
    inactive = 50 - len(SEEN)
    bound = math.ceil(math.ceil(inactive / ENGINE.bucket_size) / buckets)
    assert bound == math.ceil(inactive / (buckets * ENGINE.bucket_size))
    worst = 0
    for q in range(10, 50):
        for appears in range(1, 6):  # every phase of the scan cursor
            t = tracker(preview_interval=1000, active_ttl=1000, scan_buckets_per_frame=buckets)
            for _ in range(appears):
                step(t)
            frames = 1
            while q not in step(t, with_present(q)).scan_queries:
                frames += 1
                assert frames <= bound, (q, appears)
            worst = max(worst, frames)
            assert q in t.plan().active_queries  # decoded from the next frame on
    assert worst == bound  # the bound is reached, so it is the tight one


def test_the_scan_covers_every_inactive_query_once_per_bound():
    t = tracker(preview_interval=1000, active_ttl=1000)
    step(t)
    scanned = [step(t).scan_queries for _ in range(5)]
    assert all(len(s) == ENGINE.bucket_size for s in scanned)
    assert sorted(q for s in scanned for q in s) == list(range(10, 50))


def test_without_scanning_a_new_query_waits_for_the_next_preview():
    t = tracker(preview_interval=4, active_ttl=10, scan_buckets_per_frame=0)
    step(t)
    plans = [step(t, with_present(30)) for _ in range(4)]
    assert [p.run_preview for p in plans] == [False, False, False, True]
    assert all(not p.scan_queries and 30 not in p.active_queries for p in plans[:3])
    assert 30 in t.plan().active_queries


def test_a_scene_change_previews_the_next_frame():
    t = tracker(preview_interval=100, scene_change_threshold=0.1)
    step(t, embedding=np.array([1.0, 0.0]))
    assert not step(t, embedding=np.array([1.0, 0.05])).run_preview  # small drift
    assert not step(t, embedding=np.array([0.0, 1.0])).run_preview   # changed on this frame...
    plan = step(t, embedding=np.array([0.0, 1.0]))
    assert plan.run_preview and plan.reason == "scene_change"        # ...so the next one previews
    assert not step(t, embedding=np.array([0.0, 1.0])).run_preview   # new reference

    off = tracker(preview_interval=100, scene_change_threshold=0.0)
    step(off, embedding=np.array([1.0, 0.0]))
    assert not any(step(off, embedding=np.array([0.0, 1.0])).run_preview for _ in range(3))


def test_cosine_distance():
    assert cosine_distance(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(0.0)
    assert cosine_distance(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(1.0)
    assert cosine_distance(np.zeros(2), np.ones(2)) == 0.0


def test_nothing_left_present_previews():
    t = tracker(preview_interval=100, active_ttl=0)
    step(t)
    assert not step(t, np.zeros(50, np.float32)).run_preview
    plan = t.plan()
    assert plan.run_preview and plan.reason == "empty"


def test_a_preview_drops_what_it_did_not_select():
    t = tracker(preview_interval=3, active_ttl=100)
    step(t)
    step(t, with_present(12))  # scanned (first bucket after 0..9) and found
    assert 12 in t.plan().active_queries
    step(t, with_present(12))
    assert step(t).run_preview  # this preview does not select 12
    assert set(t.plan().active_queries) == SEEN


def test_the_cap_keeps_the_most_recently_present():
    t = tracker(preview_interval=100, active_ttl=100)
    step(t)
    stronger = with_present(*range(10, 18), value=0.95)
    assert step(t, stronger).scan_queries == tuple(range(10, 18))
    active = t.plan().active_queries
    assert len(active) == ENGINE.max_active
    assert set(range(10, 18)) <= set(active)  # found last frame, and the stronger


def test_a_failed_frame_is_planned_again():
    t = tracker(preview_interval=100)
    step(t)
    step(t)
    plan = t.plan()
    assert t.plan() == plan  # no update (the engine raised): same plan
    step(t)
    assert t.plan().scan_queries != plan.scan_queries

