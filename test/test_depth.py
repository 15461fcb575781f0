"""Labels in 3D against a real scene with real depth: Middlebury 2014's
Motorcycle (scikit-image's copy, calibration from the dataset's calib.txt,
``benchmark.stereo``). A projected point's depth must equal the ground truth
at its pixel after the depth image's unit conversion, the cloud must span
the scene's depth range, and each instance's 3D box must sit on its own
points however its mask bleeds over the object's edge."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from activesam_ros.benchmark.stereo import motorcycle
from activesam_ros.stream.depth import (
    EDGE_PIXELS,
    DepthError,
    DepthImage,
    Intrinsics,
    depth_metres,
    interior,
    objects_3d,
    on_depth_grid,
    project,
)

MM = 1e-3


@pytest.fixture(scope="module")
def scene():
    return motorcycle()


def depth_image(scene, raw):
    return DepthImage(depth_metres(raw), scene.intrinsics)


def depth_bands(scene, bands=4):
    """A label image from the ground truth: the depth range cut into ``bands`` classes, 255 unknown."""
    labels = np.full(scene.depth_mm.shape, 255, dtype=np.uint8)
    known = np.isfinite(scene.depth_mm)
    edges = np.quantile(scene.depth_mm[known], np.linspace(0, 1, bands + 1)[1:-1])
    labels[known] = np.searchsorted(edges, scene.depth_mm[known])
    return labels


def test_the_shipped_copy_is_calib_txt_reduced_by_four(scene):
    """scikit-image's docstring gives the reduced focal length 994.978 px and doffs 31.086 px."""
    assert scene.scale == pytest.approx(0.25)
    assert scene.intrinsics.fx == pytest.approx(994.978, abs=1e-3)
    assert (scene.intrinsics.width, scene.intrinsics.height) == (741, 500)


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_a_points_depth_is_the_ground_truth_at_its_pixel(scene, encoding):
    raw = scene.depth_16uc1() if encoding == "16UC1" else scene.depth_32fc1()
    cloud = project(depth_image(scene, raw), scene.rgb, depth_bands(scene))
    rows, cols = cloud.pixel.T
    error = np.abs(cloud.xyz[:, 2].astype(np.float64) - scene.depth_mm[rows, cols] * MM)
    assert error.max() <= 1 * MM, f"worst {error.max() / MM:.3f} mm"
    # Every pixel with ground truth made exactly one point; none without.
    assert len(cloud) == np.count_nonzero(np.isfinite(scene.depth_mm))
    # x and y put the point back on its pixel through the camera.
    info = scene.intrinsics
    u = info.fx * cloud.xyz[:, 0] / cloud.xyz[:, 2] + info.cx
    v = info.fy * cloud.xyz[:, 1] / cloud.xyz[:, 2] + info.cy
    assert np.abs(u - cols).max() < 1e-3 and np.abs(v - rows).max() < 1e-3


def test_the_clouds_extent_is_the_scenes(scene):
    """calib.txt's vmin and vmax bound the scene's depths; the cloud spans most of that range."""
    cloud = project(depth_image(scene, scene.depth_32fc1()), scene.rgb, depth_bands(scene))
    near, far = scene.depth_range_m
    z = cloud.xyz[:, 2]
    assert near - MM <= z.min() and z.max() <= far + MM, (z.min(), z.max(), near, far)
    assert z.max() - z.min() > 0.85 * (far - near)
    # Sideways, the cloud fills the camera's field of view at its depths.
    info = scene.intrinsics
    left = (0 - info.cx) / info.fx * z
    right = (info.width - 1 - info.cx) / info.fx * z
    assert np.all(cloud.xyz[:, 0] >= left - 1e-6) and np.all(cloud.xyz[:, 0] <= right + 1e-6)
    assert np.isclose(cloud.xyz[:, 0] / z, (0 - info.cx) / info.fx).any()


def test_each_point_carries_the_colour_label_and_instance_of_its_pixel(scene):
    labels = depth_bands(scene)
    ids = np.zeros(labels.shape, dtype=np.uint16)
    ids[100:200, 300:500] = 7
    cloud = project(depth_image(scene, scene.depth_16uc1()), scene.rgb, labels, ids)
    rows, cols = cloud.pixel.T
    assert np.array_equal(cloud.rgb, scene.rgb[rows, cols])
    assert np.array_equal(cloud.label, labels[rows, cols])
    assert np.array_equal(cloud.instance, ids[rows, cols])
    assert set(np.unique(cloud.instance)) == {0, 7}


@pytest.mark.parametrize("decimation", [2, 5])
def test_decimation_keeps_every_nth_pixel_along_each_axis(scene, decimation):
    depth = depth_image(scene, scene.depth_16uc1())
    full = project(depth, scene.rgb, depth_bands(scene))
    thin = project(depth, scene.rgb, depth_bands(scene), decimation=decimation)
    kept = np.all(full.pixel % decimation == 0, axis=1)
    assert np.array_equal(thin.pixel, full.pixel[kept])
    assert np.array_equal(thin.xyz, full.xyz[kept])


def test_invalid_depth_makes_no_point():
    raw = np.array([[0, 1000, 2000], [65535, 0, 1]], dtype=np.uint16)
    metres = depth_metres(raw)
    assert np.isnan(metres[0, 0]) and np.isnan(metres[1, 1])
    assert metres[1, 0] == pytest.approx(65.535) and metres[1, 2] == pytest.approx(0.001)
    floats = np.array([[np.nan, np.inf, -1.0], [0.0, 2.5, -np.inf]], dtype=np.float32)
    cloud = project(DepthImage(depth_metres(floats), Intrinsics(1, 1, 0, 0, 3, 2)),
                    np.zeros((2, 3, 3), np.uint8), np.zeros((2, 3), np.uint8))
    assert cloud.pixel.tolist() == [[1, 1]] and cloud.xyz[0, 2] == np.float32(2.5)


def test_a_depth_image_of_another_resolution_is_sampled_at_its_pixel_centres(scene):
    """Depth at half the colour resolution (same view): each point takes the
    label and colour of the colour pixel nearest its depth pixel's centre."""
    half = cv2.resize(scene.depth_16uc1(), (370, 250), interpolation=cv2.INTER_NEAREST)
    info = scene.intrinsics
    sx, sy = 370 / info.width, 250 / info.height
    depth = DepthImage(depth_metres(half), Intrinsics(info.fx * sx, info.fy * sy, (info.cx + 0.5) * sx - 0.5,
                                                      (info.cy + 0.5) * sy - 0.5, 370, 250))
    labels = depth_bands(scene)
    cloud = project(depth, scene.rgb, labels)
    rows, cols = cloud.pixel.T
    colour_rows = np.floor((rows + 0.5) * info.height / 250).astype(int)
    colour_cols = np.floor((cols + 0.5) * info.width / 370).astype(int)
    assert np.array_equal(cloud.label, labels[colour_rows, colour_cols])
    assert np.array_equal(cloud.rgb, scene.rgb[colour_rows, colour_cols])
    assert np.array_equal(on_depth_grid(labels, (250, 370))[rows, cols], cloud.label)


def test_a_depth_image_of_another_shape_is_refused(scene):
    crop = DepthImage(depth_metres(scene.depth_16uc1()[:, :500]), Intrinsics(1, 1, 0, 0, 500, 500))
    with pytest.raises(DepthError, match="aspect ratios"):
        project(crop, scene.rgb, depth_bands(scene))


def test_camera_info_of_another_size_is_refused(scene):
    with pytest.raises(DepthError, match="camera info is for a 640 x 480 image"):
        DepthImage(depth_metres(scene.depth_16uc1()), Intrinsics(500, 500, 320, 240, 640, 480))
    with pytest.raises(DepthError, match="focal length"):
        Intrinsics.from_k([0.0] * 9, 741, 500)


def instances_from_depth(scene):
    """Instances of the real scene: connected regions of each depth band."""
    bands = depth_bands(scene)
    ids = np.zeros(bands.shape, dtype=np.uint16)
    next_id = 1
    for band in range(4):
        count, regions = cv2.connectedComponents((bands == band).astype(np.uint8), connectivity=4)
        for region in range(1, count):
            mask = regions == region
            if mask.sum() >= 500:
                ids[mask] = next_id
                next_id += 1
    return ids


def test_each_centroid_lies_inside_its_instances_points(scene):
    depth = depth_image(scene, scene.depth_16uc1())
    ids = instances_from_depth(scene)
    cloud = project(depth, scene.rgb, depth_bands(scene), ids)
    found = objects_3d(depth, ids)
    assert len(found) >= 5
    for obj in found:
        points = cloud.xyz[cloud.instance == obj.id]
        low, high = points.min(axis=0), points.max(axis=0)
        centroid = np.array(obj.centroid)
        assert np.all(low <= centroid) and np.all(centroid <= high), obj
        box_low, box_high = np.array(obj.center) - np.array(obj.size) / 2, np.array(obj.center) + np.array(obj.size) / 2
        assert np.all(low - 1e-6 <= box_low) and np.all(box_high <= high + 1e-6)
        assert np.all(box_low - 1e-9 <= centroid) and np.all(centroid <= box_high + 1e-9)


def test_a_mask_that_bleeds_onto_the_background_keeps_its_objects_depth(scene):
    """The nearest large region of the scene (the motorcycle's front), its
    mask grown 4 pixels onto what lies behind: the 3D box measures the
    object, where a plain mean of the masked depth is pulled backwards."""
    bands = depth_bands(scene)
    count, regions = cv2.connectedComponents((bands == 0).astype(np.uint8), connectivity=4)
    sizes = np.bincount(regions.ravel())[1:]
    object_mask = regions == 1 + int(np.argmax(sizes))
    truth = np.nanmedian(scene.depth_mm[object_mask]) * MM
    grown = cv2.dilate(object_mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    behind = grown & ~object_mask & np.isfinite(scene.depth_mm)
    assert np.nanmedian(scene.depth_mm[behind]) * MM > truth + 0.2  # the grown rim lies on farther things
    ids = grown.astype(np.uint16)
    depth = depth_image(scene, scene.depth_16uc1())
    [obj] = objects_3d(depth, ids)
    naive = np.nanmean(scene.depth_mm[grown]) * MM
    assert abs(obj.centroid[2] - truth) < abs(naive - truth) / 2, (obj.centroid[2], truth, naive)
    on_object = project(depth, scene.rgb, bands, object_mask.astype(np.uint16))
    object_xyz = on_object.xyz[on_object.instance == 1]
    low, high = object_xyz.min(axis=0), object_xyz.max(axis=0)
    box_low, box_high = np.array(obj.center) - np.array(obj.size) / 2, np.array(obj.center) + np.array(obj.size) / 2
    assert box_high[2] <= high[2] + 0.05 and box_low[2] >= low[2] - 0.05, (box_low, box_high, low, high)


def test_interior_leaves_out_pixels_near_another_id():
    ids = np.zeros((20, 20), dtype=np.uint16)
    ids[5:15, 5:15] = 3
    inner = interior(ids)
    edge = EDGE_PIXELS
    assert inner[5 + edge: 15 - edge, 5 + edge: 15 - edge].all()
    assert not inner[5:5 + edge, 5:15].any() and not inner[5:15, 15 - edge:15].any()


def test_an_instance_without_enough_depth_gets_no_box(scene):
    depth = depth_image(scene, scene.depth_16uc1())
    ids = np.zeros(scene.depth_mm.shape, dtype=np.uint16)
    unknown = np.argwhere(~np.isfinite(scene.depth_mm))[:3]
    ids[unknown[:, 0], unknown[:, 1]] = 9
    ids[200:240, 300:340] = 4
    assert [o.id for o in objects_3d(depth, ids)] == [4]
