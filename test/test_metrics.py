"""mIoU / aAcc as mmsegmentation's IoUMetric computes them, checked by hand."""

import math

import numpy as np
import pytest

from activesam_ros.evaluation.metrics import IGNORE_INDEX, ConfusionMatrix, reduce_zero_label

X = IGNORE_INDEX


def test_confusion_matrix_accumulates_over_images_and_skips_ignored_pixels():
    m = ConfusionMatrix(3)
    m.update(np.array([[0, 0, 1], [2, 2, 1]]), np.array([[0, 1, 1], [2, X, X]]))
    m.update(np.array([[1, 0]]), np.array([[1, 0]]))
    # rows: ground truth, columns: prediction
    expected = np.array([[2, 0, 0], [1, 2, 0], [0, 0, 1]])
    np.testing.assert_array_equal(m.matrix, expected)
    # IoU: class 0: 2 / (2 + 1), class 1: 2 / (2 + 1), class 2: 1 / 1
    np.testing.assert_allclose(m.iou(), [2 / 3, 2 / 3, 1.0])
    assert m.miou() == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m.aacc() == pytest.approx(5 / 6)


def test_class_absent_from_gt_and_prediction_is_left_out_of_the_mean():
    m = ConfusionMatrix(4)
    m.update(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]))
    iou = m.iou()
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert iou[0] == pytest.approx(2 / 3) and iou[1] == pytest.approx(1 / 2)
    assert m.miou() == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_class_only_predicted_counts_as_zero_iou():
    m = ConfusionMatrix(3)
    m.update(np.array([0, 0, 2]), np.array([0, 0, 0]))
    np.testing.assert_allclose(m.iou()[[0, 2]], [2 / 3, 0.0])
    assert math.isnan(m.iou()[1])
    assert m.miou() == pytest.approx(1 / 3)


def test_predictions_on_ignored_pixels_do_not_count():
    m = ConfusionMatrix(2)
    m.update(np.array([1, 1, 0]), np.array([X, X, 0]))
    np.testing.assert_allclose(m.iou(), [1.0, np.nan])
    assert m.aacc() == 1.0


def test_nothing_labelled_gives_nan_not_an_error():
    m = ConfusionMatrix(2)
    m.update(np.array([0, 1]), np.array([X, X]))
    assert math.isnan(m.miou()) and math.isnan(m.aacc())


def test_reduce_zero_label_maps_other_to_ignore_and_shifts_the_rest():
    gt = np.array([[0, 1, 2], [150, 255, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(reduce_zero_label(gt), [[X, 0, 1], [149, X, X]])


def test_reduced_gt_scores_predictions_in_vocabulary_indices():
    # VOC20-style: GT id 15 (person) is vocabulary line 14; GT 0 is not scored.
    gt = reduce_zero_label(np.array([0, 15, 15, 1], dtype=np.uint8))
    m = ConfusionMatrix(20)
    m.update(np.array([3, 14, 0, 0]), gt)
    assert m.iou()[14] == pytest.approx(1 / 2) and m.iou()[0] == pytest.approx(1 / 2)
    assert m.miou() == pytest.approx(1 / 2)


def test_ids_outside_the_classes_are_rejected():
    m = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="label holds class id 7"):
        m.update(np.array([0, 1]), np.array([0, 7]))
    with pytest.raises(ValueError, match="prediction holds class id 3"):
        m.update(np.array([3, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="differ in shape"):
        m.update(np.zeros((2, 2), int), np.zeros((2, 3), int))
    assert m.matrix.sum() == 0
