"""The eight benchmarks: layouts found on disk, labels mapped, vocabularies
that match the datasets' class counts."""

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest
from PIL import Image

from activesam_ros.engine.vocabulary import load_vocabulary_file
from activesam_ros.evaluation.datasets import BENCHMARKS, DatasetError, get_benchmark

from conftest import paper_vocabulary

# The mmsegmentation layouts of the method doc, written out independently of
# the code under test: (image path, ground-truth path, split file) per name.
LAYOUTS: Dict[str, Tuple[str, str, Optional[str]]] = {
    "voc21": ("VOC2012/JPEGImages/{}.jpg", "VOC2012/SegmentationClass/{}.png", "VOC2012/ImageSets/Segmentation/val.txt"),
    "context60": ("VOC2010/JPEGImages/{}.jpg", "VOC2010/SegmentationClassContext/{}.png",
                  "VOC2010/ImageSets/SegmentationContext/val.txt"),
    "coco_object": ("images/val2017/{}.jpg", "annotations/val2017/{}_instanceTrainIds.png", None),
    "coco_stuff": ("images/val2017/{}.jpg", "annotations/val2017/{}_labelTrainIds.png", None),
    "cityscapes": ("leftImg8bit/val/{}_leftImg8bit.png", "gtFine/val/{}_gtFine_labelTrainIds.png", None),
    "ade20k": ("ADEChallengeData2016/images/validation/{}.jpg", "ADEChallengeData2016/annotations/validation/{}.png", None),
}
LAYOUTS["voc20"], LAYOUTS["context59"] = LAYOUTS["voc21"], LAYOUTS["context60"]
NAMES = {
    "voc21": ["2007_000032", "2007_000033"], "context60": ["2008_000002", "2008_000003"],
    "coco_object": ["000000000139", "000000000285"], "cityscapes": ["frankfurt/frankfurt_000000_000294", "lindau/lindau_000000_000019"],
    "ade20k": ["ADE_val_00000001", "ADE_val_00000002"],
}
NAMES.update(voc20=NAMES["voc21"], context59=NAMES["context60"], coco_stuff=NAMES["coco_object"])
CLASS_COUNTS = {"voc21": 21, "voc20": 20, "context60": 60, "context59": 59,
                "coco_object": 81, "coco_stuff": 171, "cityscapes": 19, "ade20k": 150}
PAPER_LISTS = {"cityscapes": "city_scapes"}


def scene(height: int = 48, width: int = 64, ids: Tuple[int, int] = (1, 2)) -> Tuple[np.ndarray, np.ndarray]:
    """A flat background with a bright rectangle and a dark disc, their label
    map (background 0, rectangle ids[0], disc ids[1]) and a 255 border."""
    yy, xx = np.mgrid[:height, :width]
    label = np.zeros((height, width), np.uint8)
    rect = (yy >= height // 4) & (yy < height // 2) & (xx >= width // 8) & (xx < width // 2)
    disc = (yy - 3 * height // 4) ** 2 + (xx - 3 * width // 4) ** 2 < (height // 6) ** 2
    label[rect], label[disc] = ids
    image = np.full((height, width, 3), (90, 140, 60), np.uint8)
    image[rect], image[disc] = (240, 220, 200), (20, 20, 80)
    label[0, :] = label[-1, :] = 255
    return image, label


def write_dataset(root: Path, name: str, samples: List[Tuple[str, np.ndarray, np.ndarray]],
                  split: Optional[List[str]] = None) -> Path:
    """Write images and label maps in ``name``'s layout; the split file lists
    ``split`` (default: every sample). VOC labels are palette PNGs as in VOC."""
    image_fmt, label_fmt, split_file = LAYOUTS[name]
    for sample_name, image, label in samples:
        image_path, label_path = root / image_fmt.format(sample_name), root / label_fmt.format(sample_name)
        image_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(image_path, quality=95)
        png = Image.fromarray(label)
        if name.startswith("voc"):
            png = png.convert("P")
            png.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)])
        png.save(label_path)
    if split_file:
        path = root / split_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{n}\n" for n in (split if split is not None else [s[0] for s in samples])))
    return root


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_every_benchmark_finds_its_mmseg_layout(tmp_path, name):
    names = NAMES[name]
    write_dataset(tmp_path, name, [(n, *scene()) for n in names])
    (tmp_path / "README.txt").write_text("not an image")
    samples = get_benchmark(name).samples(tmp_path)
    assert sorted(s.name for s in samples) == sorted(names)
    image_fmt, label_fmt, _ = LAYOUTS[name]
    for s in samples:
        assert s.image == tmp_path / image_fmt.format(s.name)
        assert s.label == tmp_path / label_fmt.format(s.name)


def test_split_file_decides_which_images_are_evaluated(tmp_path):
    write_dataset(tmp_path, "voc21", [(n, *scene()) for n in ("a", "b", "c")], split=["c", "a"])
    assert [s.name for s in get_benchmark("voc21").samples(tmp_path)] == ["c", "a"]


@pytest.mark.parametrize("name, folder", [("voc21", "VOC2012"), ("context59", "VOC2010"), ("ade20k", "ADEChallengeData2016")])
def test_data_root_may_name_the_datasets_own_folder(tmp_path, name, folder):
    write_dataset(tmp_path, name, [(NAMES[name][0], *scene())])
    assert len(get_benchmark(name).samples(tmp_path / folder)) == 1


def test_missing_root_or_layout_names_the_expected_path(tmp_path):
    voc = get_benchmark("voc21")
    with pytest.raises(DatasetError, match=f"data root {tmp_path / 'nowhere'} does not exist"):
        voc.samples(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=str(tmp_path / "VOC2012" / "JPEGImages")):
        voc.samples(tmp_path)
    write_dataset(tmp_path, "voc21", [("a", *scene())])
    (tmp_path / LAYOUTS["voc21"][2]).unlink()
    with pytest.raises(DatasetError, match="split file not found: expected .*ImageSets/Segmentation/val.txt"):
        voc.samples(tmp_path)


def test_missing_ground_truth_is_named(tmp_path):
    write_dataset(tmp_path, "cityscapes", [(n, *scene()) for n in NAMES["cityscapes"]])
    missing = tmp_path / "gtFine/val/lindau/lindau_000000_000019_gtFine_labelTrainIds.png"
    missing.unlink()
    with pytest.raises(DatasetError, match=f"1 label file.*{missing}"):
        get_benchmark("cityscapes").samples(tmp_path)


def test_empty_image_folder_is_an_error(tmp_path):
    (tmp_path / "images/validation").mkdir(parents=True)
    (tmp_path / "annotations/validation").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no ADE20K images"):
        get_benchmark("ade20k").samples(tmp_path)


def test_palette_labels_read_as_ids_and_reduced_where_the_dataset_says(tmp_path):
    image, label = scene(ids=(15, 20))
    write_dataset(tmp_path, "voc21", [("a", image, label)])
    path = get_benchmark("voc21").samples(tmp_path)[0].label
    assert Image.open(path).mode == "P"
    np.testing.assert_array_equal(get_benchmark("voc21").load_label(path), label)
    reduced = get_benchmark("voc20").load_label(path)
    assert set(np.unique(reduced)) == {14, 19, 255}
    assert (reduced[label == 0] == 255).all() and (reduced[label == 15] == 14).all()


def test_colour_label_maps_are_refused(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    with pytest.raises(DatasetError, match="RGB image, not a map of label ids"):
        get_benchmark("ade20k").load_label(path)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_shipped_vocabulary_has_the_datasets_class_count(name):
    bench = get_benchmark(name)
    vocabulary = bench.vocabulary()
    assert len(vocabulary) == CLASS_COUNTS[name] == bench.num_classes


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_shipped_vocabulary_has_as_many_classes_as_the_papers_list(name):
    paper = paper_vocabulary(PAPER_LISTS.get(name, name))
    assert len(get_benchmark(name).vocabulary()) == len(paper)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_background_calibration_only_where_the_paper_uses_it(name):
    bench = get_benchmark(name)
    thresholds = {"voc21": 0.4, "context60": 0.1, "coco_object": 0.4}
    assert bench.background_threshold == thresholds.get(name, 0.0)
    # A calibrated dataset prompts background as class 0; the others have none.
    assert bench.vocabulary().background_index == (0 if name in thresholds else None)
    assert bench.reduce_zero_label == (name in ("voc20", "context59", "ade20k"))


def test_reduced_vocabularies_are_the_full_ones_without_background():
    assert get_benchmark("voc21").vocabulary().classes[1:] == get_benchmark("voc20").vocabulary().classes
    assert get_benchmark("context60").vocabulary().classes[1:] == get_benchmark("context59").vocabulary().classes
    assert get_benchmark("coco_stuff").vocabulary().classes[:80] == get_benchmark("coco_object").vocabulary().classes[1:]


@pytest.mark.parametrize("name, low, high", [("driving.txt", 20, 30), ("indoor.txt", 30, 40)])
def test_robot_vocabularies_load(name, low, high):
    assert low <= len(load_vocabulary_file(Path(name).stem)) <= high


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(DatasetError, match="voc21, voc20, context60"):
        get_benchmark("voc")
