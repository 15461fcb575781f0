"""``activesam labelspace`` and the label space it writes, read back as the
mapping stacks read them.

The readers below follow the consumers' own code (MIT-SPARK):

- Hydra's label space: ``declare_config(Labelspace)`` in
  ``src/common/labelspace.cpp`` (and ``LabelSpaceConfig`` /
  ``PipelineConfig::label_names`` of earlier releases): the keys
  ``total_semantic_labels`` (size_t), ``dynamic_labels``, ``invalid_labels``,
  ``object_labels``, ``surface_places_labels`` (``std::set<uint32_t>``) and
  ``label_names`` (a list of string-to-string maps with ``label`` and
  ``name``; ``label`` goes through ``std::stoi``).
- Kimera-Semantics' colour table: ``SemanticLabel2Color`` (``color.cpp``):
  every line split on ``,`` (no quoting), the header line included, exactly
  6 cells, ``std::atoi`` of cells 1-5 cast to ``uint8_t``; colour (r, g, b,
  a) -> id in a hash map, later rows winning; lookups with alpha 255.
- Hydra's colour decoding: ``SemanticColorMap::fromCsv``: cells by header
  name (``red``, ``green``, ``blue``, ``id`` required, ``alpha`` optional).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
import yaml
from made_results import make_result

from activesam_ros.cli import main
from activesam_ros.engine.vocabulary import Vocabulary, load_vocabulary_file
from activesam_ros.render.labels import INT32, MONO, label_array, unlabeled_value
from activesam_ros.render.labelspace import LabelSpace, LabelSpaceError, Roles, parse_roles, resolve_roles
from activesam_ros.render.overlay import overlay
from activesam_ros.render.palette import color_labels

UINT32_MAX = 2**32 - 1
HYDRA_KEYS = {"total_semantic_labels", "dynamic_labels", "invalid_labels", "object_labels",
              "surface_places_labels", "label_names"}


def hydra_read(text: str) -> Dict[str, object]:
    """The label space as Hydra's config parser takes it; AssertionError where it would fail."""
    data = yaml.safe_load(text)
    assert isinstance(data, dict) and HYDRA_KEYS <= set(data), set(data)
    total = data["total_semantic_labels"]
    assert isinstance(total, int) and total >= 0
    parsed: Dict[str, object] = {"total": total}
    for key in HYDRA_KEYS - {"total_semantic_labels", "label_names"}:
        values = data[key]
        assert isinstance(values, list) and all(isinstance(v, int) and 0 <= v <= UINT32_MAX for v in values), \
            (key, values)
        parsed[key] = set(values)
    names = {}
    for entry in data["label_names"]:
        assert isinstance(entry, dict) and {"label", "name"} <= set(entry), entry
        label, name = str(entry["label"]), str(entry["name"])  # yaml-cpp reads every scalar as a string
        assert re.fullmatch(r"[+-]?\d+", label.strip()), label      # std::stoi
        names[int(label)] = name
    parsed["names"] = names
    return parsed


def kimera_read(text: str) -> Dict[Tuple[int, int, int, int], int]:
    """Colour -> id as Kimera-Semantics builds it (module doc)."""
    def atoi(cell: str) -> int:
        match = re.match(r"\s*([+-]?\d+)", cell)
        return int(match.group(1)) if match else 0

    table = {}
    for number, line in enumerate(text.split("\n")[:-1], start=1):   # std::getline: no last empty line
        cells = line.split(",")
        assert len(cells) == 6, f"row {number} is invalid: {line!r}"
        values = [atoi(c) for c in cells[1:]]
        assert all(0 <= v <= 255 for v in values), (number, values)     # uint8_t casts would wrap
        r, g, b, a, label = values
        table[(r, g, b, a)] = label
    return table


def hydra_colors(text: str) -> Dict[Tuple[int, int, int], int]:
    """Colour -> id as Hydra's SemanticColorMap::fromCsv builds it (by header name)."""
    header, *rows = [line.split(",") for line in text.splitlines()]
    column = {name: i for i, name in enumerate(header)}
    assert {"red", "green", "blue", "id"} <= set(column)
    return {tuple(int(row[column[c]]) for c in ("red", "green", "blue")): int(row[column["id"]]) for row in rows}


def run_labelspace(tmp_path: Path, *argv: str) -> Tuple[str, str]:
    out = tmp_path / "out"
    assert main(["labelspace", "--out", str(out), *argv]) == 0
    return ((out / "activesam_label_space.yaml").read_text(encoding="utf-8"),
            (out / "activesam.csv").read_text(encoding="utf-8"))


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("activesam labelspace: error: "), err
    return err[0]


# -- Hydra's label space --------------------------------------------------------------------------

def test_the_yaml_reads_back_as_hydra_reads_it_with_every_class_and_role(tmp_path):
    text, _ = run_labelspace(tmp_path, "--vocab-file", "voc21", "--objects", "Cat; dog", "--objects", "chair",
                             "--surfaces", "diningtable", "--dynamic", "person")
    space = hydra_read(text)
    vocabulary = load_vocabulary_file("voc21")
    assert space["total"] == len(vocabulary) == 21
    assert space["names"] == dict(enumerate(vocabulary.names))
    index = {name: i for i, name in enumerate(vocabulary.names)}
    assert space["object_labels"] == {index["cat"], index["dog"], index["chair"]}
    assert space["surface_places_labels"] == {index["diningtable"]}
    assert space["dynamic_labels"] == {index["person"]}
    assert space["invalid_labels"] == {index["background"], unlabeled_value(len(vocabulary))}


def test_a_roles_file_and_flags_add_up_and_aliases_name_their_class(tmp_path):
    roles = tmp_path / "roles.yaml"
    roles.write_text("objects: [couch, Chair]\nsurfaces:\n  - floor\ndynamic: []\n", encoding="utf-8")
    text, _ = run_labelspace(tmp_path, "--vocab-file", "indoor", "--roles", str(roles), "--objects", "table")
    space = hydra_read(text)
    names = load_vocabulary_file("indoor").names
    assert {names[i] for i in space["object_labels"]} == {"sofa", "chair", "table"}
    assert {names[i] for i in space["surface_places_labels"]} == {"floor"}
    assert space["dynamic_labels"] == set()
    assert space["invalid_labels"] == {255}  # indoor has no background class


@pytest.mark.parametrize("encoding", [MONO, INT32])
@pytest.mark.parametrize("background", [None, 3])
def test_every_value_of_the_labels_image_is_a_named_class_or_invalid(encoding, background):
    """The label space describes the labels image exactly: each pixel value
    is a class Hydra integrates under its name, or one it never integrates
    (listed invalid, or Hydra's own "no label" -1, which it skips unlisted)."""
    lines = ["car, automobile", "person", "tree", "background"]
    labels = np.arange(4 * 6).reshape(4, 6) % 4
    result = make_result(lines, labels, background=background)
    space = hydra_read(LabelSpace.of(result.vocabulary, Roles(), encoding).hydra_yaml("t"))
    pixels = label_array(result, encoding).astype(np.int64)
    integrated = {v for v in np.unique(pixels) if 0 <= v < space["total"] and v not in space["invalid_labels"]}
    skipped = {v for v in np.unique(pixels) if v not in integrated}
    assert {space["names"][v] for v in integrated} == {"car", "person", "tree"}  # background: never integrated
    for value in skipped:
        assert value in space["invalid_labels"] or (value & UINT32_MAX) == UINT32_MAX, value
    if background is not None:
        assert unlabeled_value(4, encoding) in pixels


# -- the colour table -----------------------------------------------------------------------------

def test_the_csv_parses_as_kimera_and_hydra_read_it_with_the_overlay_colours(tmp_path):
    _, text = run_labelspace(tmp_path, "--vocab-file", "voc21")
    vocabulary = load_vocabulary_file("voc21")
    lines = text.split("\n")
    assert lines[0] == "name,red,green,blue,alpha,id"
    rows = [line.split(",") for line in lines[1:-1]]
    assert [row[0] for row in rows[: len(vocabulary)]] == list(vocabulary.names)
    assert [int(row[5]) for row in rows[: len(vocabulary)]] == list(range(len(vocabulary)))

    # The overlay at full weight shows each class in its colour; the table holds the same colours.
    labels = np.arange(len(vocabulary))[None, :]
    result = make_result(list(vocabulary.lines), labels)
    shown = overlay(np.zeros((1, len(vocabulary), 3), np.uint8), result, 1.0)[0]
    kimera = kimera_read(text)
    hydra = hydra_colors(text)
    for index, color in enumerate(shown):
        assert kimera[(*map(int, color), 255)] == index
        assert hydra[tuple(map(int, color))] == index


@pytest.mark.parametrize("background", [None, 0])
def test_the_colour_labels_image_decodes_through_the_table_to_the_labels_image(background):
    """What Kimera (and Hydra without a labels image) do: colour -> id. Every
    pixel of the colour labels image decodes to its labels-image value; an
    unlabeled pixel (black) to the background class, which the label space
    lists invalid."""
    lines = ["background", "car, automobile", "person", "tree"]
    labels = np.arange(5 * 8).reshape(5, 8) % 4
    result = make_result(lines, labels, background=background)
    space = LabelSpace.of(result.vocabulary)
    table = kimera_read(space.kimera_csv())
    colours = color_labels(result)
    decoded = np.array([[table[(*map(int, c), 255)] for c in row] for row in colours])
    expected = label_array(result).astype(np.int64)
    unlabeled = expected == unlabeled_value(len(lines))
    assert unlabeled.any() == (background is not None)
    np.testing.assert_array_equal(decoded[~unlabeled], expected[~unlabeled])
    assert (decoded[unlabeled] == 0).all() and 0 in space.invalid


def test_a_vocabulary_with_more_classes_than_colours_gets_no_table():
    from activesam_ros.render.palette import PALETTE_SIZE

    vocabulary = Vocabulary(tuple((f"c{i}",) for i in range(PALETTE_SIZE + 1)))
    with pytest.raises(LabelSpaceError, match="a colour per class"):
        LabelSpace.of(vocabulary).kimera_csv()


# -- roles -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("named, message", [
    ({"objects": ["chair", "spaceship"]}, "not a class of the vocabulary: 'spaceship'"),
    ({"furniture": ["chair"]}, "unknown role 'furniture'"),
    ({"objects": ["background"]}, "is the background class"),
    ({"objects": ["person"], "dynamic": ["Person"]}, "'person' is dynamic and also an object"),
])
def test_roles_that_cannot_be_used_are_refused(named, message):
    vocabulary = Vocabulary.from_string("background; person; chair")
    with pytest.raises(LabelSpaceError, match=message):
        resolve_roles(vocabulary, named)


def test_an_alias_in_two_classes_is_ambiguous():
    with pytest.raises(LabelSpaceError, match="names several classes"):
        resolve_roles(Vocabulary.from_string("shelf, rack; rack, stand"), {"objects": ["rack"]})


@pytest.mark.parametrize("text, message", [
    ("objects: [chair", "is not valid YAML"),
    ("- chair\n", "expected a mapping"),
    ("objects: chair\n", "objects must be a list of class names"),
    ("objects: [1, 2]\n", "objects must be a list of class names"),
    ("things: [chair]\n", "unknown key 'things'"),
])
def test_a_malformed_roles_file_is_refused(text, message):
    with pytest.raises(LabelSpaceError, match=message):
        parse_roles(text, "roles.yaml")


# -- refusals of the command, one line each, nothing written ---------------------------------------

def test_bad_class_names_in_the_roles_file_are_refused_and_nothing_written(tmp_path, capsys):
    roles = tmp_path / "roles.yaml"
    roles.write_text("objects: [chair, warp drive]\n", encoding="utf-8")
    assert main(["labelspace", "--vocab-file", "indoor", "--roles", str(roles), "--out", str(tmp_path / "o")]) == 2
    assert "not a class of the vocabulary: 'warp drive'" in one_line(capsys)
    assert not (tmp_path / "o").exists()


def test_an_existing_file_is_kept_without_overwrite_and_replaced_with_it(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "activesam.csv"
    mine.write_text("my own colours\n", encoding="utf-8")
    assert main(["labelspace", "--vocab", "cat; dog", "--out", str(out)]) == 2
    assert "exists already (pass --overwrite to replace it)" in one_line(capsys)
    assert mine.read_text(encoding="utf-8") == "my own colours\n"
    assert not (out / "activesam_label_space.yaml").exists()
    assert main(["labelspace", "--vocab", "cat; dog", "--out", str(out), "--overwrite"]) == 0
    assert kimera_read(mine.read_text(encoding="utf-8"))


def test_a_link_is_never_written_through_even_with_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.yaml"
    victim.write_text("precious\n", encoding="utf-8")
    os.symlink(victim, out / "activesam_label_space.yaml")
    assert main(["labelspace", "--vocab", "cat; dog", "--out", str(out), "--overwrite"]) == 2
    assert "is a link" in one_line(capsys)
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert not (out / "activesam.csv").exists()


@pytest.mark.parametrize("argv, message", [
    (["--vocab", "cat", "--name", "../x"], "--name '../x' may hold only"),
    (["--vocab", "cat", "--roles", "/no/such/roles.yaml"], "cannot read roles file"),
    (["--vocab", "cat", "--dynamic", "dog"], "not a class of the vocabulary: 'dog'"),
])
def test_other_mistakes_get_one_line(argv, message, tmp_path, capsys):
    assert main(["labelspace", "--out", str(tmp_path / "o"), *argv]) == 2
    assert message in one_line(capsys)


def test_the_files_are_named_as_hydra_launch_files_build_a_label_space_path(tmp_path):
    """Hydra's launch files read ``<label_spaces dir>/<labelspace>_label_space.yaml``."""
    assert main(["labelspace", "--vocab", "cat", "--out", str(tmp_path), "--name", "kitchen"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kitchen.csv", "kitchen_label_space.yaml"]


# -- the Labelspace message ------------------------------------------------------------------------

def hydra_read_message(msg) -> Dict[str, object]:
    """What Hydra's RosLabelspace takes from the message: the label count is
    the number of names, a non-empty name names its label value, ``invalid``
    as unsigned labels, the roles from the metadata's JSON."""
    import json

    metadata = json.loads(msg.metadata)
    return {
        "total": len(msg.names),
        "names": {i: name for i, name in enumerate(msg.names) if name},
        "invalid_labels": {int(v) & UINT32_MAX for v in msg.invalid},
        **{key: set(metadata.get(key, [])) for key in ("object_labels", "dynamic_labels", "surface_places_labels")},
    }


@pytest.mark.parametrize("encoding", [MONO, INT32])
def test_the_labelspace_message_says_what_the_yaml_says_and_survives_cdr(encoding):
    from activesam_ros.ros.labelspace_msg import MSGTYPE, labelspace_message
    from activesam_ros.ros.rosbags_types import typestore

    vocabulary = load_vocabulary_file("voc21")
    roles = resolve_roles(vocabulary, {"objects": ["cat", "chair"], "surfaces": ["diningtable"],
                                       "dynamic": ["person"]})
    space = LabelSpace.of(vocabulary, roles, encoding)
    for distro in ("humble", "jazzy"):
        store = typestore(distro)
        message = labelspace_message(store.types[MSGTYPE], space, lambda v: np.asarray(v, np.int32))
        data = store.serialize_cdr(message, MSGTYPE)
        back = store.deserialize_cdr(data, MSGTYPE)
        from_message = hydra_read_message(back)
        from_file = hydra_read(space.hydra_yaml("t"))
        assert from_message["total"] == from_file["total"] and from_message["names"] == from_file["names"]
        for key in ("object_labels", "dynamic_labels", "surface_places_labels"):
            assert from_message[key] == from_file[key], key
        unlabeled = unlabeled_value(len(vocabulary), encoding)
        assert from_message["invalid_labels"] == from_file["invalid_labels"] | {unlabeled & UINT32_MAX}
    assert list(back.invalid) == sorted(space.invalid)


# -- the labels image Hydra takes as it is ------------------------------------------------------------

@pytest.mark.parametrize("encoding, ros, dtype", [(MONO, "mono8", "u1"), (INT32, "32SC1", "<i4")])
def test_the_labels_message_carries_the_encoding_and_the_unlabeled_value(encoding, ros, dtype):
    """cv_bridge maps mono8 to CV_8UC1 and 32SC1 to CV_32SC1, both integer
    types Hydra converts to its int32 labels; the pixels read back as
    cv_bridge reads them (little-endian, ``step`` bytes a row) are the
    labels image's, unlabeled 255 or -1."""
    from activesam_ros.ros.messages import labels_image, make_header
    from activesam_ros.ros.rosbags_types import RosbagsMessages, typestore

    labels = np.arange(3 * 5).reshape(3, 5) % 4
    result = make_result(["background", "car", "person", "tree"], labels, background=0)
    message = labels_image(RosbagsMessages, result, make_header(RosbagsMessages, 1, 2, "cam"), encoding)
    store = typestore("humble")
    back = store.deserialize_cdr(store.serialize_cdr(message, "sensor_msgs/msg/Image"), "sensor_msgs/msg/Image")
    assert back.encoding == ros and back.is_bigendian == 0
    item = np.dtype(dtype)
    pixels = np.frombuffer(bytes(back.data), item).reshape(back.height, back.step // item.itemsize)
    np.testing.assert_array_equal(pixels[:, : back.width], label_array(result, encoding))
    assert set(pixels[labels == 0].tolist()) == {unlabeled_value(4, encoding)} == {255 if encoding == MONO else -1}


def test_the_node_leaves_out_roles_a_live_vocabulary_lacks_and_says_so():
    from activesam_ros.ros.labelspace_msg import node_label_space

    named = {"objects": ["chair", "sofa"], "dynamic": ["person"]}
    space, warnings = node_label_space(Vocabulary.from_string("floor; chair; person"), named, MONO)
    assert space.roles == Roles(objects=(1,), dynamic=(2,))
    assert len(warnings) == 1 and "'sofa'" in warnings[0] and "left out" in warnings[0]
    space, warnings = node_label_space(Vocabulary.from_string("chair; person"), {"objects": ["person"],
                                                                                "dynamic": ["person"]}, INT32)
    assert space.roles == Roles() and "without roles" in warnings[0]
    assert space.invalid == (-1,)


# -- the YAML through yaml-cpp, the library Hydra's config parser reads it with ------------------------

@pytest.fixture(scope="module")
def yaml_cpp_reader(tmp_path_factory) -> Path:
    """test/hydra_label_space_reader.cpp, compiled against the system's yaml-cpp."""
    import shutil
    import subprocess

    compiler = shutil.which("g++")
    if compiler is None or not Path("/usr/include/yaml-cpp/yaml.h").exists():
        pytest.skip("needs g++ and yaml-cpp's headers (apt install g++ libyaml-cpp-dev)")
    binary = tmp_path_factory.mktemp("reader") / "reader"
    source = Path(__file__).with_name("hydra_label_space_reader.cpp")
    subprocess.run([compiler, "-std=c++17", str(source), "-o", str(binary), "-lyaml-cpp"], check=True)
    return binary


def read_with_yaml_cpp(reader: Path, text: str, tmp_path: Path) -> Dict[str, object]:
    import subprocess

    path = tmp_path / "space.yaml"
    path.write_text(text, encoding="utf-8")
    out = subprocess.run([str(reader), str(path)], capture_output=True, text=True, encoding="utf-8")
    assert out.returncode == 0, out.stderr
    read: Dict[str, object] = {"names": {}}
    for line in out.stdout.splitlines():
        key, _, rest = line.partition(" ")
        if key == "label":
            index, _, name = rest.partition(" ")
            read["names"][int(index)] = name
        elif key == "total_semantic_labels":
            read["total"] = int(rest)
        else:
            read[key] = {int(v) for v in rest.split()}
    return read


@pytest.mark.parametrize("encoding", [MONO, INT32])
def test_yaml_cpp_reads_every_name_and_label_as_hydra_types_them(encoding, yaml_cpp_reader, tmp_path):
    """Names YAML would take for something else (null, yes, 1e3, a colon, a
    quote, a leading dash) come back as the same strings; the 32SC1 space
    reads too (its -1 is not listed: yaml-cpp refuses -1 as a uint32)."""
    lines = ["null", "yes", "1e3", "a: b", "it's", "- dash", "~", "ünïcode", "x #y", "background", "chair"]
    vocabulary = Vocabulary.from_lines(lines)
    roles = resolve_roles(vocabulary, {"objects": ["chair", "null"], "dynamic": ["yes"], "surfaces": ["1e3"]})
    space = LabelSpace.of(vocabulary, roles, encoding)
    read = read_with_yaml_cpp(yaml_cpp_reader, space.hydra_yaml("t"), tmp_path)
    assert read["names"] == dict(enumerate(vocabulary.names)) and read["total"] == len(vocabulary)
    expected = hydra_read(space.hydra_yaml("t"))
    for key in HYDRA_KEYS - {"total_semantic_labels", "label_names"}:
        assert read[key] == expected[key], key
    listed = space.hydra_yaml("t").replace("invalid_labels: [", "invalid_labels: [-1, ")
    bad = tmp_path / "negative"
    bad.mkdir()
    with pytest.raises(AssertionError, match="bad conversion"):
        read_with_yaml_cpp(yaml_cpp_reader, listed, bad)


# -- activesam bag --labelspace ----------------------------------------------------------------------

def test_the_bag_writes_the_labelspace_the_node_publishes_latched_once(tmp_path, tiny_model, monkeypatch):
    from bags import IMAGE, photo, raw_image, read_outputs, run_bag, topic_info, write_bag
    from rosbags.interfaces import QosDurability
    from rosbags.rosbag2 import StoragePlugin

    monkeypatch.setattr("activesam_ros.engine.model.build_tiny_sam3", lambda seed=0: tiny_model)
    source = tmp_path / "in"
    write_bag(source, StoragePlugin.MCAP, [("/cam/image_raw", IMAGE, 7_000_000_000 + i, raw_image(i, photo(i, 48, 32)))
                                           for i in range(2)])
    roles = tmp_path / "roles.yaml"
    roles.write_text("objects: [chair]\ndynamic: [person]\n", encoding="utf-8")
    code, err = run_bag(str(source), str(tmp_path / "out"), "--image-topic", "/cam/image_raw", "--model", "tiny",
                        "--vocab", "background; person; chair", "--labelspace", "--labelspace-roles", str(roles),
                        "--label-encoding", "32SC1")
    assert code == 0, err
    written = read_outputs(tmp_path / "out")
    assert [t for t, _ in written["/activesam/labelspace"]] == [7_000_000_000]
    msgtype, connection = topic_info(tmp_path / "out")["/activesam/labelspace"]
    assert msgtype == "semantic_inference_msgs/msg/Labelspace"
    assert connection.ext.offered_qos_profiles[0].durability == QosDurability.TRANSIENT_LOCAL
    read = hydra_read_message(written["/activesam/labelspace"][0][1])
    assert read["names"] == {0: "background", 1: "person", 2: "chair"}
    assert read["object_labels"] == {2} and read["dynamic_labels"] == {1}
    assert read["invalid_labels"] == {0, UINT32_MAX}  # background and 32SC1's -1
    assert {m.encoding for _, m in written["/activesam/labels"]} == {"32SC1"}


def test_the_bag_refuses_roles_without_labelspace_and_roles_of_no_class(tmp_path):
    from bags import run_bag

    common = [str(tmp_path / "no_input"), str(tmp_path / "out"), "--image-topic", "/cam", "--model", "tiny",
              "--vocab", "person; chair"]
    roles = tmp_path / "roles.yaml"
    roles.write_text("objects: [sofa]\n", encoding="utf-8")
    code, err = run_bag(*common, "--labelspace-roles", str(roles))
    assert code == 2 and "--labelspace-roles gives the roles of --labelspace" in err
    code, err = run_bag(*common, "--labelspace", "--labelspace-roles", str(roles))
    assert code == 2 and "not a class of the vocabulary: 'sofa'" in err


def test_without_the_message_package_the_node_publishes_no_labelspace(monkeypatch):
    """No semantic_inference_msgs, or a release of it without Labelspace: None, not an error."""
    import sys
    import types

    from activesam_ros.ros.labelspace_msg import rclpy_labelspace_class

    monkeypatch.setitem(sys.modules, "semantic_inference_msgs", None)
    assert rclpy_labelspace_class() is None
    old = types.ModuleType("semantic_inference_msgs.msg")
    monkeypatch.setitem(sys.modules, "semantic_inference_msgs", types.ModuleType("semantic_inference_msgs"))
    monkeypatch.setitem(sys.modules, "semantic_inference_msgs.msg", old)
    assert rclpy_labelspace_class() is None
    old.Labelspace = type("Labelspace", (), {})
    assert rclpy_labelspace_class() is old.Labelspace
