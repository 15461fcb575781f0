"""render: class colours, the overlay and the label image's pixels."""

from __future__ import annotations

import numpy as np
import pytest

from activesam_ros.render import overlay as render

from made_results import RNG, VOCAB, H, W, make_result, random_labels


def test_overlay_alpha_extremes():
    labels = random_labels(4)
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    result = make_result(VOCAB, labels)
    np.testing.assert_array_equal(render.overlay(rgb, result, 0.0), rgb)
    np.testing.assert_array_equal(render.overlay(rgb, result, 1.0),
                                  render.colorize(labels, result.vocabulary.names, None))
    with pytest.raises(ValueError, match="alpha"):
        render.overlay(rgb, result, 1.5)


def test_colours_follow_names_not_indices():
    """The same scene labelled with a reordered vocabulary looks the same."""
    names_a = ["car", "person", "tree", "road"]
    names_b = ["Road", "tree", "dog", "car", "person"]  # reordered, one more, other case
    labels_a = random_labels(4)
    lower_b = [name.lower() for name in names_b]
    to_b = np.array([lower_b.index(name) for name in names_a])
    labels_b = to_b[labels_a]
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    over_a = render.overlay(rgb, make_result(names_a, labels_a), 0.6)
    over_b = render.overlay(rgb, make_result(names_b, labels_b), 0.6)
    np.testing.assert_array_equal(over_a, over_b)
    table = render.class_colors(names_b)
    assert len({tuple(c) for c in table}) == len(names_b)  # these names get distinct colours


def test_colorize_blanks_background():
    labels = random_labels(3)
    colours = render.colorize(labels, ["a", "b", "c"], 1)
    assert (colours[labels == 1] == 0).all()
    assert (colours[labels != 1].max(axis=-1) >= 170).all()  # vivid, never black


def test_blend_checks_sizes():
    with pytest.raises(ValueError, match="differ"):
        render.blend(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 3, 3), np.uint8),
                       np.ones((2, 2), bool), 0.5)
