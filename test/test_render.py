"""render: the class palette, the colour label image, the overlay and its legend."""

from __future__ import annotations

import zlib

import cv2
import numpy as np
import pytest

from activesam_ros.engine.vocabulary import load_vocabulary_file
from activesam_ros.render import legend, palette
from activesam_ros.render import overlay as render

from made_results import RNG, VOCAB, H, W, make_result, random_labels


def test_overlay_alpha_extremes():
    labels = random_labels(4)
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    result = make_result(VOCAB, labels)
    np.testing.assert_array_equal(render.overlay(rgb, result, 0.0), rgb)
    np.testing.assert_array_equal(render.overlay(rgb, result, 1.0), palette.colorize(labels, len(VOCAB), None))
    with pytest.raises(ValueError, match="alpha"):
        render.overlay(rgb, result, 1.5)


def _old_hash_colors(names):
    """The rule the palette replaced: a hue from a hash of each name (for comparison)."""
    keys = np.array([zlib.crc32(n.strip().lower().encode("utf-8")) for n in names], np.uint32).reshape(-1, 1)
    hsv = np.empty((len(names), 1, 3), np.uint8)
    hsv[:, :, 0], hsv[:, :, 1], hsv[:, :, 2] = keys % 180, 160 + (keys >> 8) % 96, 170 + (keys >> 16) % 86
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(-1, 3)


def _lab(rgb):
    """CIE L*a*b* by OpenCV (not the palette's own conversion)."""
    return cv2.cvtColor(rgb.reshape(-1, 1, 3).astype(np.float32) / 255, cv2.COLOR_RGB2Lab).reshape(-1, 3)


def _min_difference(rgb):
    """The smallest CIE76 colour difference between two of the colours."""
    lab = _lab(rgb)
    distance = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    return distance[~np.eye(len(lab), dtype=bool)].min()


def test_palette_separates_classes_far_better_than_a_hash_of_the_name():
    """Measured over vocabularies of 2 to 40 classes: the closest two colours
    of the new palette against those of the name hash on the shipped lists."""
    lists = [load_vocabulary_file(name).names for name in ("ade20k", "driving", "indoor")]
    for count in range(2, 41):
        new = _min_difference(palette.class_colors(count))
        old = min(_min_difference(_old_hash_colors(names[:count])) for names in lists)
        assert new >= 24 and new >= 3 * old, (count, new, old)
        if count <= 10:
            assert new >= 45, (count, new)


def test_car_road_and_sky_are_no_longer_alike():
    """The issue's six-class vocabulary: the hash gave car, road and sky three near-identical greens."""
    names = ["person", "car", "road", "sky", "building", "tree"]
    greens = _old_hash_colors(names)[[names.index(n) for n in ("car", "road", "sky")]]
    assert _min_difference(greens) < 30 and (greens[:, 1] > greens[:, [0, 2]].max(axis=1)).all()
    assert _min_difference(palette.class_colors(len(names))) > 80


def test_palette_is_by_index_and_appending_keeps_the_colours():
    long = palette.class_colors(50)
    np.testing.assert_array_equal(palette.class_colors(7), long[:7])
    assert len({tuple(c) for c in palette.class_colors(palette.PALETTE_SIZE)}) == palette.PALETTE_SIZE
    np.testing.assert_array_equal(palette.class_colors(palette.PALETTE_SIZE + 3)[-3:], long[:3])  # then it repeats


def test_every_colour_is_light_enough_to_see_on_unlabeled_black():
    lab = _lab(palette.palette())
    assert lab[:, 0].min() >= palette.MIN_LIGHTNESS - 0.5  # OpenCV and the palette's conversion agree closely
    assert np.abs(palette.srgb_to_lab(palette.palette()) - lab).max() < 1.0


def test_overlay_colour_labels_and_cli_share_one_palette():
    labels = random_labels(4)
    result = make_result(VOCAB, labels, background=3)
    colours = palette.color_labels(result)
    np.testing.assert_array_equal(colours[labels != 3], palette.class_colors(4)[labels[labels != 3]])
    assert (colours[labels == 3] == 0).all()
    rgb = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    tinted = render.overlay(rgb, result, 1.0)
    np.testing.assert_array_equal(tinted[labels != 3], colours[labels != 3])
    np.testing.assert_array_equal(tinted[labels == 3], rgb[labels == 3])


def test_colorize_blanks_background():
    labels = random_labels(3)
    colours = palette.colorize(labels, 3, 1)
    assert (colours[labels == 1] == 0).all()
    assert (colours[labels != 1].max(axis=-1) >= 150).all()  # vivid, never black


# -- the legend ---------------------------------------------------------------------------

def _scene(active=(0, 1, 2, 4), background=None, size=(240, 320)):
    """Five classes: 2 holds most pixels, then 0, then 1; 3 and 4 none (4 decoded)."""
    labels = np.full(size, 2)
    labels[:, : size[1] * 3 // 10] = 0
    labels[: size[0] // 4, -size[1] // 3:] = 1
    lines = ["car", "road", "sky", "tree", "person"]
    return make_result(lines, labels, active=[list(range(5)).index(c) for c in active], background=background)


def test_legend_lists_the_classes_in_the_frame_first_by_pixels_then_decoded_then_the_rest():
    assert legend.legend_entries(_scene()) == [(2, True), (0, True), (1, True), (4, False), (3, False)]
    calibrated = _scene(background=0)
    assert [c for c, _ in legend.legend_entries(calibrated)] == [2, 1, 4, 3]  # background has no colour, no row


def test_legend_rows_are_drawn_in_that_order_in_the_class_colours():
    result = _scene()
    black = np.zeros((240, 320, 3), np.uint8)
    plain = render.overlay(black, result, 0.0)
    drawn = render.overlay(black, result, 0.0, legend=True)
    changed = np.argwhere((drawn != plain).any(axis=-1))
    assert changed[:, 0].max() < 240 * 0.6 and changed[:, 1].max() < 320 * 0.6  # a corner panel, not the image
    colours = palette.class_colors(5)
    first_row = []
    for index, _ in legend.legend_entries(result):
        rows = np.argwhere((drawn == colours[index]).all(axis=-1))[:, 0]
        assert len(rows) > 20, index  # its swatch (filled or outlined) and its name
        first_row.append(rows.min())
    assert first_row == sorted(first_row)
    swatch = {c: int((drawn == colours[c]).all(axis=-1).sum()) for c in range(5)}
    assert min(swatch[c] for c in (0, 1, 2)) > max(swatch[c] for c in (3, 4))  # filled: in the frame


def test_a_long_vocabulary_ends_in_a_count_of_the_rows_left_out():
    lines = [f"class {i}" for i in range(150)]
    result = make_result(lines, RNG.integers(0, 150, (96, 128)))
    image = legend.draw_legend(np.zeros((96, 128, 3), np.uint8), result)
    rows = (96 // 2 - 2 * 2) // 12  # half the height in the smallest rows: 12 pixels, 2 of padding
    changed = np.argwhere(image.any(axis=-1))
    assert changed[:, 0].max() <= 2 + rows * 12 + 2 <= 96 // 2  # the panel ends in the upper half
    colours = palette.class_colors(150)
    for index, _ in legend.legend_entries(result)[: rows - 1]:
        assert (image == colours[index]).all(axis=-1).any(), index
    grey = (image[..., 0] == image[..., 1]) & (image[..., 1] == image[..., 2]) & (image[..., 0] > 100)
    assert grey[2 + (rows - 1) * 12:].any()  # the last row, "+N more", in light grey (no class colour is grey)


def test_a_legend_never_draws_outside_a_tiny_image():
    result = make_result(VOCAB, random_labels(4))
    image = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
    np.testing.assert_array_equal(legend.draw_legend(image.copy(), result), image)


def test_blend_checks_sizes():
    with pytest.raises(ValueError, match="differ"):
        render.blend(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 3, 3), np.uint8),
                       np.ones((2, 2), bool), 0.5)
