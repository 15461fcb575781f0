"""One label convention (render/labels.py) for `segment`'s PNG, `bag`'s labels
topic and the labels the node publishes, on one photograph: class indices,
and 255 for the class `background` when calibration is on. Here the node's
side is its message builder; test_lifecycle_launch.py checks the running
node on the same photograph against the same engine."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from bags import IMAGE, raw_image, read_outputs, run_bag, write_bag
from rosbags.rosbag2 import StoragePlugin

from activesam_ros.cli import main
from activesam_ros.engine import ActiveSAM, ActiveSAMConfig, load_model
from activesam_ros.render.labels import label_array, unlabeled_value
from activesam_ros.ros import messages
from activesam_ros.ros.rosbags_types import RosbagsMessages

from conftest import load_photo

VOCAB = "background; cat; sofa, couch; floor"
# With the tiny model (seed 0) on this photograph this threshold leaves some
# pixels to classes and calibrates the rest to background: both kinds occur.
FLAGS = ["--vocab", VOCAB, "--background-threshold", "0.03", "--mode", "fast", "--model", "tiny",
         "--device", "cpu"]


@pytest.fixture(scope="module")
def photo():
    return load_photo("chelsea.png", 160)


@pytest.fixture(scope="module")
def segment_png(photo, tmp_path_factory):
    folder = tmp_path_factory.mktemp("segment")
    cv2.imwrite(str(folder / "cat.png"), photo[:, :, ::-1])
    assert main(["segment", str(folder / "cat.png"), *FLAGS, "--out", str(folder / "out")]) == 0
    return cv2.imread(str(folder / "out" / "cat_labels.png"), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def bag_labels(photo, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bag")
    write_bag(folder / "in", StoragePlugin.MCAP, [("/camera/image_raw", IMAGE, 1, raw_image(0, photo))])
    code, err = run_bag(str(folder / "in"), str(folder / "out"), "--image-topic", "/camera/image_raw", *FLAGS)
    assert code == 0, err
    (_, msg), = read_outputs(folder / "out")["/activesam/labels"]
    return msg


@pytest.fixture(scope="module")
def node_labels(photo):
    """What the node publishes for a frame: its engine's result through messages.labels_image."""
    engine = ActiveSAM(load_model(tiny=True, device="cpu"), VOCAB,
                       ActiveSAMConfig(background_threshold=0.03, mode="fast", device="cpu"))
    result = engine.segment(photo)
    header = messages.make_header(RosbagsMessages, 1, 0, "camera")
    return result, messages.labels_image(RosbagsMessages, result, header)


@pytest.mark.slow
def test_segment_bag_and_node_write_the_same_labels_for_one_photograph(segment_png, bag_labels, node_labels):
    result, node_msg = node_labels
    node = np.asarray(node_msg.data).reshape(node_msg.height, node_msg.width)
    bag = np.asarray(bag_labels.data).reshape(bag_labels.height, bag_labels.width)
    assert node_msg.encoding == bag_labels.encoding == "mono8" and segment_png.dtype == np.uint8
    np.testing.assert_array_equal(segment_png, node)
    np.testing.assert_array_equal(bag, node)
    # Both kinds of pixel occur, and background's own index (0) never does.
    assert result.background_index == 0
    values = set(np.unique(node).tolist())
    assert unlabeled_value(4) == 255 and 255 in values and values - {255}, values
    assert 0 not in values
    assert np.array_equal(node == 255, result.labels == 0)


def test_without_calibration_background_is_an_ordinary_class():
    from activesam_ros.engine.result import SegmentationResult
    from activesam_ros.engine.vocabulary import Vocabulary

    vocab = Vocabulary.from_string("background; cat")
    labels = np.array([[0, 1], [1, 0]], np.int32)
    common = dict(labels=labels, scores=np.ones((2, 2), np.float32), vocabulary=vocab, active_queries=[0, 1],
                  query_presence=np.ones(2, np.float32), preview_presence=None, preview_ran=False)
    plain = SegmentationResult(background_index=None, **common)
    calibrated = SegmentationResult(background_index=0, **common)
    np.testing.assert_array_equal(label_array(plain), labels)
    np.testing.assert_array_equal(label_array(calibrated), [[255, 1], [1, 255]])
