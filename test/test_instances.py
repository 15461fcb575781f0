"""The instances the fusion keeps: equal however the prompts are batched,
in either mode, to the definition written out on sam3's own head outputs,
and consistent with the labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from activesam_ros.engine import ActiveSAM, ActiveSAMConfig
from activesam_ros.engine.scoring import MASK_THRESHOLD, object_scores

VOCAB = ["background", "person", "cat", "dog, puppy", "car", "tree", "sky", "road"]


def check_consistent(result):
    """Every instance has pixels, all of its class, and its box bounds them."""
    assert result.instance_map.shape == result.labels.shape and result.instance_map.dtype == np.int32
    assert result.instance_map.min() == 0 and result.instance_map.max() == len(result.instances)
    for index, instance in enumerate(result.instances, start=1):
        ys, xs = np.nonzero(result.instance_map == index)
        assert len(ys), instance
        assert (result.labels[ys, xs] == instance.class_index).all()
        assert instance.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert instance.class_index != result.vocabulary.background_index
        assert 0.3 < instance.score <= 1


def reference(engine: ActiveSAM, rgb: np.ndarray, labels: np.ndarray):
    """The instance map as documented, from sam3's heads for every query at
    once: per class and pixel (at mask resolution, read at the nearest
    pixel), the kept instance with the highest sigmoid(mask) * score among
    those whose mask probability is above one half; the pixel takes the one
    of its label's class. Returns (map of (prompt, query) keys, key -> score)."""
    g = engine.grounder
    prepared = engine._prepared
    image = g.encode_image(g.upload(rgb), engine.resolution)
    n = prepared.num_queries
    out = g.ground(image, prepared.text(g.indices(range(n)), memory=True), share=True)
    presence, objects = object_scores(out)
    keep = objects > engine.config.confidence_threshold
    probability = out.pred_masks.float().sigmoid()
    weighted = torch.where((probability > MASK_THRESHOLD) & keep[:, :, None, None],
                           probability * objects[:, :, None, None], torch.zeros_like(probability))
    queries = objects.shape[1]
    height, width = labels.shape
    small_h, small_w = probability.shape[-2:]
    ys = np.arange(height) * small_h // height
    xs = np.arange(width) * small_w // width
    query_class = np.asarray(prepared.vocabulary.query_class)
    best = np.zeros((height, width))
    key = np.zeros((height, width), np.int64)
    for prompt in range(n):
        value, arg = weighted[prompt].max(0)
        value, arg = value.numpy()[ys][:, xs], arg.numpy()[ys][:, xs]
        better = (labels == query_class[prompt]) & (value > best)
        best[better] = value[better]
        key[better] = prompt * queries + arg[better] + 1
    scores = {prompt * queries + q + 1: float(objects[prompt, q]) for prompt, q in zip(*np.nonzero(keep.numpy()))}
    return key, scores


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_instances_equal_the_definition_on_sam3s_heads(tiny_model, photos, mode):
    rgb = photos["chelsea.png"]
    engine = ActiveSAM(tiny_model, VOCAB, ActiveSAMConfig(mode=mode, fast_presence_floor=0.0))
    result = engine.segment(rgb)
    assert len(result.instances) >= 3  # not vacuous on this photograph
    check_consistent(result)
    key, scores = reference(engine, rgb, result.labels)
    # each engine instance is the reference instance with its score
    by_score = {round(s, 5): k for k, s in scores.items()}
    mapped = np.zeros(len(result.instances) + 1, np.int64)
    for index, instance in enumerate(result.instances, start=1):
        mapped[index] = by_score[round(instance.score, 5)]
    key[result.labels == result.vocabulary.background_index] = 0  # the background is no object
    agree = (mapped[result.instance_map] == key).mean()
    assert agree > 0.999, agree


def test_batched_instances_equal_one_prompt_at_a_time(tiny_model, photos):
    rgb = photos["coffee.png"]
    batched = ActiveSAM(tiny_model, VOCAB, ActiveSAMConfig(bucket_size=32)).segment(rgb)
    single = ActiveSAM(tiny_model, VOCAB, ActiveSAMConfig(bucket_size=1)).segment(rgb)
    assert [i.class_index for i in batched.instances] == [i.class_index for i in single.instances]
    np.testing.assert_allclose([i.score for i in batched.instances], [i.score for i in single.instances], atol=1e-5)
    assert (batched.instance_map == single.instance_map).mean() > 0.999


def test_fast_mode_finds_the_instances_exact_mode_does(tiny_model, photos):
    rgb = photos["astronaut.png"]
    exact = ActiveSAM(tiny_model, VOCAB, ActiveSAMConfig(mode="exact")).segment(rgb)
    fast = ActiveSAM(tiny_model, VOCAB, ActiveSAMConfig(mode="fast", fast_presence_floor=0.0)).segment(rgb)
    assert [i.class_index for i in fast.instances] == [i.class_index for i in exact.instances]
    np.testing.assert_allclose([i.score for i in fast.instances], [i.score for i in exact.instances], atol=1e-5)
    same_label = fast.labels == exact.labels
    assert (fast.instance_map[same_label] == exact.instance_map[same_label]).mean() > 0.99


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_instances_off_leaves_the_labels_as_they_are(tiny_model, photos, mode):
    rgb = photos["chelsea.png"]
    engine = ActiveSAM(tiny_model, VOCAB, ActiveSAMConfig(mode=mode))
    on = engine.segment(rgb)
    engine.reconfigure(engine.config.replace(instances=False))
    off = engine.segment(rgb)
    assert off.instances == () and off.instance_map is None
    np.testing.assert_array_equal(off.labels, on.labels)
    np.testing.assert_array_equal(off.scores, on.scores)


def test_a_high_threshold_keeps_no_instance(tiny_model, photos):
    result = ActiveSAM(tiny_model, VOCAB, ActiveSAMConfig(confidence_threshold=0.999)).segment(photos["chelsea.png"])
    assert result.instances == () and not result.instance_map.any()
