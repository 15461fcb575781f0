"""ImageNet-C corruptions: seeded, shape-preserving, harsher with severity."""

import numpy as np
import pytest

from activesam_ros.evaluation.corruptions import CORRUPTIONS, corrupt, motion_kernel, plasma_fractal

from conftest import load_photo

RANDOM = ("gaussian_noise", "motion_blur", "fog")


@pytest.fixture(scope="module")
def photo():
    return load_photo("chelsea.png", max_side=160)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_same_seed_same_image_and_shape_dtype_kept(photo, name):
    odd = np.ascontiguousarray(photo[:37, :53])
    first, second = corrupt(odd, name, 3, seed=7), corrupt(odd, name, 3, seed=7)
    assert first.shape == odd.shape and first.dtype == np.uint8
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, odd)


@pytest.mark.parametrize("name", RANDOM)
def test_other_seed_other_draw(photo, name):
    assert not np.array_equal(corrupt(photo, name, 3, seed=[0, 1]), corrupt(photo, name, 3, seed=[0, 2]))


@pytest.mark.parametrize("name", ["gaussian_noise", "motion_blur", "jpeg_compression"])
def test_each_severity_degrades_more(photo, name):
    scores = [psnr(corrupt(photo, name, s, seed=1), photo) for s in range(1, 6)]
    assert all(a > b for a, b in zip(scores, scores[1:])), scores


def test_fog_at_severity_5_is_thicker_than_at_1(photo):
    # ImageNet-C's fog is not monotone level by level (severities 3 and 4
    # share their strength), but the ends are ordered for every draw.
    for seed in range(3):
        assert psnr(corrupt(photo, "fog", 5, seed), photo) < psnr(corrupt(photo, "fog", 1, seed), photo) - 1
    fogged = corrupt(photo, "fog", 5, seed=0)
    assert fogged.std() < photo.std()  # haze lowers the contrast


def test_noise_has_imagenet_c_strength():
    grey = np.full((200, 200, 3), 128, np.uint8)
    for severity, std in ((1, 0.08), (3, 0.18)):  # narrow enough not to clip
        noisy = corrupt(grey, "gaussian_noise", severity, seed=0).astype(float) / 255
        assert noisy.std() == pytest.approx(std, rel=0.05)


def test_motion_kernel_is_a_one_sided_line_along_the_angle():
    kernel = motion_kernel(radius=3, sigma=2.0, angle_degrees=0.0)
    centre = kernel.shape[0] // 2
    assert kernel.sum() == pytest.approx(1.0)
    rows, cols = np.nonzero(kernel)
    assert set(rows) == {centre} and sorted(cols) == list(range(centre, centre + 7))
    assert np.all(np.diff(kernel[centre, centre:centre + 7]) < 0)  # Gaussian fall-off
    diagonal = motion_kernel(radius=3, sigma=2.0, angle_degrees=45.0)
    rows, cols = np.nonzero(diagonal)
    np.testing.assert_array_equal(rows - centre, cols - centre)


def test_motion_blur_smears_along_one_direction_only():
    image = np.zeros((41, 41, 3), np.uint8)
    image[20, 20] = 255
    blurred = corrupt(image, "motion_blur", 1, seed=0)[..., 0]
    ys, xs = np.nonzero(blurred)
    assert len(ys) > 5
    # every lit pixel lies on one line through the dot, on one side of it
    direction = np.stack([ys - 20, xs - 20], 1)
    far = direction[np.argmax(np.abs(direction).sum(1))]
    cross = direction[:, 0] * far[1] - direction[:, 1] * far[0]
    assert np.abs(cross).max() <= np.abs(far).max()
    assert (direction @ far >= 0).all()


def test_plasma_fractal_spans_the_unit_range_and_needs_a_power_of_two():
    cloud = plasma_fractal(64, 2.0, np.random.default_rng(0))
    assert cloud.shape == (64, 64) and cloud.min() == 0.0 and cloud.max() == 1.0
    # smooth: neighbours differ far less than the whole range
    assert np.abs(np.diff(cloud, axis=1)).mean() < 0.1
    with pytest.raises(ValueError, match="power of two"):
        plasma_fractal(48, 2.0, np.random.default_rng(0))


def test_bad_arguments_are_rejected(photo):
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(photo, "snow", 1)
    with pytest.raises(ValueError, match="severity must be 1 to 5"):
        corrupt(photo, "fog", 6)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(photo.astype(np.float32), "fog", 1)
