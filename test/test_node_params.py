"""The node's parameter table and validation, its /diagnostics levels, the
YAML file and the launch arguments, checked without ROS
(runs in CI)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from docs_support import table

from activesam_ros.engine.config import ActiveSAMConfig
from activesam_ros.engine.vocabulary import load_vocabulary_file, shipped_names
from activesam_ros.ros import names
from activesam_ros.ros import node_params as P
from activesam_ros.ros.diagnostics import ERROR, OK, SILENCE_WARN, WARN, camera_report, memory_value
from activesam_ros.stream import parameters as S
from activesam_ros.stream.stats import StreamStats
from activesam_ros.stream.temporal import TemporalConfig

ROOT = Path(__file__).resolve().parents[1]
YAML_FILE = ROOT / "config" / "activesam.yaml"
LAUNCH_FILE = ROOT / "launch" / "segment.launch.py"


def values(**changes: Any) -> Dict[str, Any]:
    """The node's defaults with a small vocabulary and a model, plus ``changes``."""
    out = P.default_values()
    out.update(model="tiny", vocabulary=["person", "dog"])
    out.update(changes)
    return out


def reason(**changes: Any) -> str:
    with pytest.raises(S.ParameterError) as info:
        P.settings(values(**changes))
    return str(info.value)


# -- the table -------------------------------------------------------------------

def test_every_engine_and_temporal_field_is_a_parameter_with_its_library_default():
    engine = {f.name: f.default for f in dataclasses.fields(ActiveSAMConfig) if f.name != "extra"}
    temporal = {f.name: f.default for f in dataclasses.fields(TemporalConfig)}
    assert {p.name for p in S.ENGINE_PARAMS} == set(engine)
    assert {p.name for p in S.TEMPORAL_PARAMS} == set(temporal)
    for name, default in {**engine, **temporal}.items():
        expected = S.STREAM_DEFAULTS.get(name, default)
        assert P.BY_NAME[name].default == (0 if expected is None else expected), name


def test_defaults_mean_the_library_defaults_in_fast_mode():
    settings = P.settings(values())
    assert settings.engine == ActiveSAMConfig(mode="fast")
    assert settings.temporal == TemporalConfig()
    assert settings.vocabulary.names == ("person", "dog")


def test_every_parameter_is_described_and_device_and_model_are_read_only():
    assert len(P.BY_NAME) == len(P.PARAMS)
    for spec in P.PARAMS:
        assert len(spec.description) > 20, spec.name
        assert S.value_error(spec, spec.default) is None, spec.name
    for name in ("checkpoint", "hub_id", "model", "device", "dtype", "image_topics", "compressed"):
        assert P.BY_NAME[name].read_only, name
    for name in ("vocabulary", "vocabulary_file", "confidence_threshold", "refresh_interval", "propagate",
                 "overlay_alpha"):
        assert not P.BY_NAME[name].read_only, name


@pytest.mark.parametrize("spec", [p for p in S.ENGINE_PARAMS + S.TEMPORAL_PARAMS if p.low is not None],
                         ids=lambda p: p.name)
def test_ranges_agree_with_the_config_checks(spec):
    """Inside its ROS range every value is valid; an edge may be refused by
    the config (an open interval), with a reason naming the parameter; just
    outside the range ROS refuses it."""
    step = spec.step or (1 if spec.kind == S.INT else (spec.high - spec.low) / 10)
    count = int(round((spec.high - spec.low) / step))
    for k in sorted({0, count, *range(1, count, max(1, count // 10))}):
        value = spec.low + k * step
        value = int(value) if spec.kind == S.INT else float(value)
        try:
            P.settings(values(vocabulary=["background", "person"], **{spec.name: value}))
        except S.ParameterError as exc:
            assert k in (0, count), (value, str(exc))
            assert spec.name in str(exc), (value, str(exc))
    outside = spec.high + (spec.step or 1)
    assert S.value_error(spec, int(outside) if spec.kind == S.INT else float(outside))


# -- validation reasons --------------------------------------------------------------

def test_empty_vocabulary_is_refused():
    assert "empty" in reason(vocabulary=[""], vocabulary_file="")
    assert "empty" in reason(vocabulary=None, vocabulary_file="  ")


def test_duplicate_classes_are_refused():
    assert "duplicate class 'dog'" in reason(vocabulary=["dog", "person", "Dog"])


def test_out_of_range_and_off_step_numbers_are_refused():
    assert "quantile_alpha must be in [0, 1]" in reason(quantile_alpha=1.5)
    assert "quantile_alpha must be in (0, 1]" in reason(quantile_alpha=0.0)
    assert "resolution must be a multiple of 14" in reason(resolution=500)
    assert P.settings(values(resolution=1008)).engine.resolution == 1008
    assert P.settings(values(resolution=0)).engine.resolution is None


def test_wrong_types_are_refused_as_ros_would():
    assert "of type double" in reason(overlay_alpha=1)
    assert "of type int" in reason(bucket_size=True)
    assert "list of strings" in reason(vocabulary=["person", 3])


def test_unknown_mode_and_dtype_are_refused():
    assert "mode must be one of: exact, fast, got 'slow'" in reason(mode="slow")
    assert "dtype must be one of" in reason(dtype="int8")


def test_background_calibration_needs_a_background_class():
    assert "needs a class named 'background'" in reason(background_threshold=0.4)
    settings = P.settings(values(background_threshold=0.4, vocabulary=["background", "person"]))
    assert settings.vocabulary.background_index == 0


def test_several_problems_are_reported_together():
    text = reason(mode="slow", vocabulary=["a", "a"])
    assert "mode" in text and "duplicate" in text


def test_a_class_written_as_a_comment_is_refused():
    assert "starts with '#'" in reason(vocabulary=["person", "# dog"])


def test_read_only_parameters_cannot_change_but_may_be_set_to_their_value():
    current = values()
    with pytest.raises(S.ParameterError, match="device is read-only"):
        P.check_change(current, {"device": "cpu"})
    P.check_change(current, {"device": current["device"]})


def test_a_change_is_validated_with_the_other_values():
    current = values(vocabulary=["background", "person"])
    assert P.check_change(current, {"background_threshold": 0.4}).engine.background_threshold == 0.4
    with pytest.raises(S.ParameterError, match="'background'"):
        P.check_change(values(), {"background_threshold": 0.4})
    both = P.check_change(values(), {"background_threshold": 0.4, "vocabulary": ["background", "cat"]})
    assert both.vocabulary.names == ("background", "cat")


def test_vocabulary_file_is_used_while_vocabulary_is_empty():
    current = values(vocabulary=None, vocabulary_file="voc21")
    assert len(P.settings(current).vocabulary) == 21
    with pytest.raises(S.ParameterError, match="used only while vocabulary is empty"):
        P.check_change(values(), {"vocabulary_file": "driving"})
    switched = P.check_change(values(), {"vocabulary_file": "driving", "vocabulary": [""]})
    assert switched.vocabulary == load_vocabulary_file("driving")


def test_vocabulary_file_by_path_and_by_shipped_name(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("# robots\nperson\nsofa, couch\n", encoding="utf-8")
    assert load_vocabulary_file(str(path)).classes == (("person",), ("sofa", "couch"))
    assert "indoor" in shipped_names() and "ade20k" in shipped_names()
    assert load_vocabulary_file("voc21").names[0] == "background"
    with pytest.raises(Exception, match="neither a file nor a shipped vocabulary .*indoor"):
        load_vocabulary_file("no_such_list")
    with pytest.raises(Exception, match="cannot read vocabulary file"):
        load_vocabulary_file(str(tmp_path / "missing.txt"))


def test_exactly_one_model_source():
    assert S.model_source(values()).tiny
    assert S.model_source(values(model="", checkpoint="/x/sam3.pt")).checkpoint == "/x/sam3.pt"
    for wrong in (dict(model=""), dict(checkpoint="/x/sam3.pt"), dict(hub_id="facebook/sam3")):
        with pytest.raises(S.ParameterError, match="exactly one model"):
            S.model_source(values(**wrong))


def test_image_topics_and_their_output_namespaces():
    assert "image_topics is empty" in reason(image_topics=[])
    assert "names one topic twice: 'a' and 'a' are both /a" in reason(image_topics=["a", "a"])
    # One normalisation (namespace, ~, relative, trailing /), duplicates named by both spellings.
    assert ("names one topic twice: '/cam0/image_raw' and 'cam0/image_raw/' are both /cam0/image_raw"
            in reason(image_topics=["/cam0/image_raw", "cam0/image_raw/"]))
    with pytest.raises(S.ParameterError, match="'/r/cam' and 'cam' are both /r/cam"):
        P.settings(values(image_topics=["/r/cam", "cam"]), P.NodeContext("/r"))
    with pytest.raises(S.ParameterError, match="'/cam' and 'cam' are both ~/cam: rename one"):  # /cam and /r/cam
        P.settings(values(image_topics=["/cam", "cam"]), P.NodeContext("/r"))
    assert "'~/x' and 'x' are both ~/x: rename one" in reason(image_topics=["~/x", "x"])
    for bad, why in (("a b", "holds ' '"), ("a//b", "empty part"), ("cam/0raw", "starting with a digit"),
                     ("a~b", "'~' may only start"), ("~x", "'~' may only start"), ("", "empty topic name")):
        assert why in reason(image_topics=[bad, "/ok"]), bad
    assert "longer than 247" in reason(image_topics=["/" + "a" * 250])
    assert names.output_namespaces(["image"]) == {"image": "~"}
    assert names.output_namespaces(["/front/image_raw", "rear/image"]) == {
        "/front/image_raw": "~/front/image_raw", "rear/image": "~/rear/image"}


def test_incompatible_qos_warnings_name_the_resolved_topic_and_the_fix():
    text = P.incompatible_qos_warning("/cam1/activesam/labels", "RELIABILITY", True, "best_effort")
    assert text.startswith("a subscription to /cam1/activesam/labels requests QoS incompatible")
    assert "(RELIABILITY)" in text and "subscribe best effort" in text
    latched = P.incompatible_qos_warning("/activesam/labels", "DURABILITY", True, "reliable")
    assert "subscribe to the others volatile" in latched and "best effort" not in latched
    camera = P.incompatible_qos_warning("/camera/image_raw", "RELIABILITY", False, "reliable")
    assert "publisher on /camera/image_raw" in camera and "input_reliability" in camera


# -- files that must match the table ----------------------------------------------------

def _flatten(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """rcl's reading of nested YAML keys: ``a: {b: 1}`` is parameter ``a.b``."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_yaml_file_lists_every_parameter_with_its_default_and_a_comment():
    text = YAML_FILE.read_text(encoding="utf-8")
    tree = yaml.safe_load(text)
    assert list(tree) == ["/**"]
    params = _flatten(tree["/**"]["ros__parameters"])
    assert set(params) == set(P.BY_NAME)
    for name, value in params.items():
        default = P.BY_NAME[name].default
        assert value == ([] if default is None else default), name
    for line in text.splitlines():  # each value line explains itself or follows a comment
        if ":" in line and not line.strip().startswith("#") and line.startswith("    ") and not line.rstrip().endswith(":"):
            name = line.split(":")[0].strip()
            index = text.splitlines().index(line)
            assert "#" in line or text.splitlines()[index - 1].strip().startswith("#"), name


def _launch_arguments() -> Dict[str, Any]:
    """ARGUMENTS and OVERRIDES of the launch file, read without importing launch."""
    tree = ast.parse(LAUNCH_FILE.read_text(encoding="utf-8"))
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = node.value
    arguments = {}
    for item in found["ARGUMENTS"].elts:
        name, default, description = item.elts
        arguments[name.value] = (default, ast.literal_eval(description))
    return {"arguments": arguments, "overrides": ast.literal_eval(found["OVERRIDES"])}


def test_launch_arguments_are_the_documented_ones_each_with_a_description():
    launch = _launch_arguments()
    assert set(launch["arguments"]) == {
        "image", "params_file", "checkpoint", "hub_id", "model", "device", "namespace",
        "vocabulary_file", "autostart", "rviz", "rviz_config", "log_level"}
    for name, (_, description) in launch["arguments"].items():
        assert len(description) > 15, name
    assert set(launch["overrides"]) <= set(P.BY_NAME)
    assert ast.literal_eval(launch["arguments"]["rviz"][0]) == "false"
    assert ast.literal_eval(launch["arguments"]["autostart"][0]) == "true"  # by hand, it comes up segmenting
    assert ast.literal_eval(launch["arguments"]["rviz_config"][0]) == ""  # empty: written for the launch's topics
    assert ast.literal_eval(launch["arguments"]["image"][0]) == "/camera/image_raw"
    # The node page's table of the launch's arguments has a row for each, with its non-empty default.
    documented = table("docs/node.md", "### `segment.launch.py`")
    assert set(documented) == set(launch["arguments"])
    for name, (default, _) in launch["arguments"].items():
        if isinstance(default, ast.Constant) and default.value:
            assert documented[name][0] == f"`{default.value}`", name


# -- /diagnostics ------------------------------------------------------------------------

def test_diagnostics_level_says_what_happened_since_the_last_report():
    before = StreamStats(received=10, processed=8, failed=1)
    flowing = StreamStats(received=15, processed=12, failed=1, input_rate=5.0, output_rate=4.0, model_rate=1.5,
                          latency_mean=0.25, propagated=3, label_age_mean=0.4, since_input=0.1, since_output=0.2)
    report = camera_report("/cam", flowing, before, 2, 2, running=True)
    assert (report.level, report.message) == (OK, "5.0 Hz in, 4.0 Hz out (1.5 Hz model), latency 250 ms")
    assert dict(report.values)["frames labelled by propagation"] == "3"
    assert dict(report.values)["label age mean (ms)"] == "400.0"
    assert dict(report.values)["frames undecodable"] == "2"
    assert camera_report("/cam", flowing, before, 3, 2, running=True).level == WARN
    failing = dataclasses.replace(flowing, failed=3)
    assert "2 frame(s) failed" in camera_report("/cam", failing, before, 2, 2, running=True).message
    assert "no images on /cam" in camera_report("/cam", before, before, 2, 2, running=True).message
    assert camera_report("/cam", flowing, before, 2, 2, running=False).level == ERROR
    # Images arrive but no labels went out for longer than SILENCE_WARN: a WARN, whatever the old rates say.
    silent = dataclasses.replace(flowing, since_output=SILENCE_WARN + 70, output_rate=0.0)
    report = camera_report("/cam", silent, before, 2, 2, running=True)
    assert report.level == WARN and report.message.startswith(f"no labels published for {SILENCE_WARN + 70:.0f} s")
    assert dict(report.values)["seconds since the last labels"] == f"{SILENCE_WARN + 70:.1f}"
    never = dataclasses.replace(flowing, since_output=None)
    assert camera_report("/cam", never, before, 2, 2, running=True).message.startswith("no labels published yet")
    stopped = dataclasses.replace(before, since_input=42.0)
    assert "no images on /cam for 42 s" in camera_report("/cam", stopped, before, 2, 2, running=True).message


def test_diagnostics_memory_of_a_cpu_engine_is_the_process_rss():
    key, value = memory_value("cpu")
    assert key == "process RSS (MB)" and int(value) > 10


# -- the docs document every parameter ---------------------------------------------------

def _documented_default(spec) -> str:
    if spec.default is None:
        return "unset"
    if spec.kind == P.BOOL:
        return "true" if spec.default else "false"
    if spec.kind == P.STRING:
        return f"`{spec.default}`" if spec.default else '`""`'
    if spec.kind == P.STRING_ARRAY:
        return "`" + str(spec.default).replace("'", '"') + "`"
    return str(spec.default)


def test_the_node_page_documents_every_node_parameter_with_its_default():
    node = table("docs/node.md", "### Node parameters")
    engine = {s.name for s in S.ENGINE_PARAMS if not s.read_only}
    assert set(node) == set(P.BY_NAME) - engine
    for name, (kind, default, live, description) in node.items():
        spec = P.BY_NAME[name]
        assert kind == spec.kind.replace("_", " "), name
        assert default == _documented_default(spec), name
        assert live == ("no" if spec.read_only else "yes"), name
        assert len(description) > 20, name
    assert set(table("docs/node.md", "### Engine parameters")) == engine
