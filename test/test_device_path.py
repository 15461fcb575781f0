"""The frame's way through the device, checked by the proxies a CPU has for
a GPU: the source (every tensor the engine makes names its device), the
``meta`` device (refuses to mix with host tensors and to give up values),
counted host synchronisations and aten calls, and a log of what the
second stream overlaps. Nothing here is timed."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from activesam_ros.benchmark.host_syncs import AtenCalls, HostSyncs, per_prompt
from activesam_ros.engine import ActiveSAM, ActiveSAMConfig, pipeline, shared_encoding
from activesam_ros.engine.config import ConfigError
from activesam_ros.engine.fused_heads import FusedHeads
from activesam_ros.engine.grounding import native_resolution, resolution_view
from activesam_ros.engine.model import DeviceSpec

ENGINE = Path(__file__).resolve().parents[1] / "activesam_ros" / "engine"
FACTORIES = {"zeros", "ones", "empty", "full", "arange", "linspace", "logspace", "eye", "rand", "randn",
             "randint", "randperm", "tensor", "as_tensor", "empty_strided", "scalar_tensor"}
"""torch functions that make a tensor from nothing (or from host data): each
must say where. ``*_like``, ``new_*`` and ``from_numpy`` (a view of host
memory, uploaded by ``Grounder.to_device``) derive theirs."""

NAMES = ["person", "cat", "dog", "car", "tree", "sky", "road", "building", "grass", "water", "chair", "table",
         "window", "door", "floor", "wall", "ceiling", "lamp", "bed", "sofa", "book", "bottle", "cup", "plant",
         "bicycle", "boat", "bird", "horse", "sheep", "cow", "train", "bus"]
SMALL = ActiveSAMConfig(resolution=112, hypernym_tokens=0)


def factory_calls(path: Path):
    """(line, name, names its device) for every torch factory call in a file."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        func = getattr(node, "func", None)
        if (isinstance(node, ast.Call) and isinstance(func, ast.Attribute) and func.attr in FACTORIES
                and isinstance(func.value, ast.Name) and func.value.id == "torch"):
            yield node.lineno, func.attr, any(k.arg == "device" for k in node.keywords)


def test_every_tensor_factory_in_the_engine_names_its_device():
    found, missing = 0, []
    for path in sorted(ENGINE.glob("*.py")):
        for line, name, has_device in factory_calls(path):
            found += 1
            if not has_device:
                missing.append(f"{path.name}:{line} torch.{name} without device=")
    assert found >= 10  # the scan sees the engine's factories
    assert not missing, "\n".join(missing)


def test_the_scan_finds_a_factory_without_a_device(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text("import torch\nx = torch.zeros(3)\ny = torch.arange(4, device=x.device)\n")
    assert list(factory_calls(source)) == [(2, "zeros", False), (3, "arange", True)]


def picture(seed: int = 0, height: int = 60, width: int = 80) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = rng.integers(0, 255, 3)
    image[10:40, 20:60] = rng.integers(0, 255, 3)
    return image


# -- the meta device -------------------------------------------------------------------

def run_on_the_cpu(model: torch.nn.Module) -> None:
    """One image encode by the model itself at its own size (not through
    the engine's views), as a model used before the engine gets it: sam3's
    position encodings keep the tables they computed, on the CPU."""
    size = native_resolution(model)
    with torch.inference_mode():
        model.backbone.forward_image(torch.zeros(1, 3, size, size))

@pytest.fixture(scope="module")
def meta_model(tiny_model):
    """The tiny model with shapes only, after it ran on the CPU at the size
    the tests use (``run_on_the_cpu``). torchvision's roi_align (in sam3's geometry encoder) has no
    meta path on this install, so the encoder of the empty geometry prompt
    returns its output's shape: its one token."""
    model = copy.deepcopy(tiny_model)
    run_on_the_cpu(model)
    model = model.to("meta")
    width = model.transformer.d_model

    def geometry(geo_prompt, img_feats, img_sizes, img_pos_embeds):
        return (torch.zeros(1, 1, width, device="meta"), torch.zeros(1, 1, dtype=torch.bool, device="meta"))

    model.geometry_encoder.forward = geometry
    return model


@pytest.mark.parametrize("instances", [True, False])
@pytest.mark.parametrize("mode, max_active", [("exact", 40), ("fast", 40), ("exact", 4), ("fast", 4)])
def test_a_frame_runs_on_the_meta_device_up_to_its_labels(meta_model, monkeypatch, mode, max_active, instances):
    """Meta tensors refuse to meet host tensors and to give up values: the
    whole frame runs on them, and the host reads nothing but what
    ``Grounder.fetch`` brings back: the labels as uint8 and their scores,
    made on the device; with the instances, the labels and instance
    indices packed in int32 and the scores followed by each instance's box
    and score (``scoring.pack_instances``)."""
    meta = DeviceSpec(torch.device("meta"), torch.float32)
    monkeypatch.setattr(pipeline, "resolve_device", lambda device, dtype: meta)
    config = SMALL.replace(mode=mode, max_active=max_active, bucket_size=5, resolution=None, instances=instances)
    engine = ActiveSAM(meta_model, NAMES[:12], config)
    fetched = []

    def fetch(*tensors):
        assert all(t.device.type == "meta" for t in tensors)
        fetched.append([(tuple(t.shape), t.dtype) for t in tensors])
        return [np.ones(tuple(t.shape), dtype=torch.empty(0, dtype=t.dtype).numpy().dtype) for t in tensors]

    engine.grounder.fetch = fetch
    rgb = picture()
    result = engine.segment(rgb)
    assert result.labels.shape == rgb.shape[:2] and result.labels.dtype == np.int32
    previewed = max_active < 12
    assert result.preview_ran == previewed
    assert len(fetched) == 2 + previewed
    if not instances:
        assert fetched[-1] == [(rgb.shape[:2], torch.uint8), (rgb.shape[:2], torch.float32)]
        return
    (packed, packed_type), (floats, float_type) = fetched[-1]
    pixels = rgb.shape[0] * rgb.shape[1]
    assert (packed, packed_type, float_type) == (rgb.shape[:2], torch.int32, torch.float32)
    assert len(floats) == 1 and floats[0] > pixels and (floats[0] - pixels) % 5 == 0


def test_resolution_views_build_the_decoder_cache_on_the_engine_device(tiny_model):
    """sam3 builds the box-bias coordinates on ``cuda`` (device 0), keeps
    the position encodings it computed where it computed them, and
    ``.to()`` moves neither: every view, the native size's too, owns them on
    the device it is made for; the model keeps its own."""
    from sam3.model.position_encoding import PositionEmbeddingSine

    model = copy.deepcopy(tiny_model)
    run_on_the_cpu(model)
    decoder = model.transformer.decoder
    before = decoder.compilable_cord_cache
    encodings = [m for m in model.modules() if isinstance(m, PositionEmbeddingSine)]
    cached = [dict(m.cache) for m in encodings]
    assert any(cached)
    for resolution in (224, 112):
        view = resolution_view(model, resolution, torch.device("meta"))
        assert all(c.device.type == "meta" for c in view.transformer.decoder.compilable_cord_cache)
        for module in view.modules():
            if isinstance(module, PositionEmbeddingSine):
                assert all(t.device.type == "meta" for t in module.cache.values())
    assert decoder.compilable_cord_cache is before
    assert [m.cache for m in encodings] == cached
    engine = ActiveSAM(tiny_model, ["cat"], SMALL)
    native = engine.grounder._view(engine.grounder.native)
    assert native is not tiny_model and native.transformer.decoder is not decoder


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_a_frame_where_no_instance_passes_the_threshold(tiny_model, mode):
    """Zero instances kept: the heads compute the semantic maps alone."""
    engine = ActiveSAM(tiny_model, NAMES[:3], SMALL.replace(mode=mode, confidence_threshold=0.999))
    result = engine.segment(picture(7))
    assert result.labels.shape == (60, 80) and np.isfinite(result.scores).all()


# -- host synchronisations and aten calls -------------------------------------------------

CONFIGS = {"one bucket": {}, "buckets of 4": {"bucket_size": 4}, "preview": {"max_active": 3, "bucket_size": 4}}


@pytest.fixture(scope="module")
def frame_counts(tiny_model):
    """(host syncs, aten calls) of one frame at 8 and 32 prompts, per mode
    and CONFIGS entry; one engine each, counted once."""
    cache = {}

    def counts(mode: str, config: str):
        if (mode, config) not in cache:
            engine = ActiveSAM(tiny_model, NAMES[:32], SMALL.replace(mode=mode, **CONFIGS[config]))
            rgb = picture(1)
            engine.segment(rgb)  # views and heads built
            out = {}
            for prompts in (32, 8):
                engine.set_vocabulary(NAMES[:prompts])
                with HostSyncs() as syncs, AtenCalls() as calls:
                    engine.segment(rgb)
                out[prompts] = syncs, calls
            cache[mode, config] = out
        return cache[mode, config]

    return counts


@pytest.mark.parametrize("mode", ["exact", "fast"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_host_syncs_per_frame_are_a_few_whatever_the_vocabulary(frame_counts, mode, config):
    """No value is read per prompt or per bucket: the syncs of a frame are
    its fetches (each tensor counted), the same at 8 and 32 prompts."""
    counts = {n: syncs for n, (syncs, _) in frame_counts(mode, config).items()}
    assert counts[8].by_kind == counts[32].by_kind, {n: dict(c.by_kind) for n, c in counts.items()}
    assert counts[8].total <= 4 and not [k for k in counts[8].by_kind if k.startswith("dispatch:")]


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_aten_calls_added_per_prompt_are_few(frame_counts, mode):
    """Per-prompt work is batched: a prompt adds at most 10 operations
    (each at least one kernel launch on a GPU), not one loop body each."""
    calls = {n: calls.total for n, (_, calls) in frame_counts(mode, "one bucket").items()}
    assert per_prompt(calls) <= 10, calls


def test_the_counter_sees_what_a_gpu_would_wait_for():
    x = torch.arange(6.0)
    with HostSyncs() as syncs:
        bool(x.sum() > 0)
        x[x > 2]
        torch.nonzero(x)
        x.tolist()
        torch.tensor([1, 2], device="cpu")
        torch.where(x > 2, x, 0)
    kinds = dict(syncs.by_kind)
    value_read = kinds.pop("dispatch:is_nonzero", 0) + kinds.pop("dispatch:_local_scalar_dense", 0)
    assert value_read == 1 and syncs.total == 5
    assert kinds == {"dispatch:boolean_index": 1, "dispatch:nonzero": 1, "transfer:tolist": 1,
                     "transfer:tensor_upload": 1}


# -- once per frame, once per image ---------------------------------------------------------

def test_a_frame_is_uploaded_once_and_its_image_only_work_done_once_per_size(tiny_model, monkeypatch):
    """Three encodes (screen, preview, full) share one upload; the shared
    encoder part and the heads' image convolutions run once per encoded
    image, not once per bucket of prompts."""
    engine = ActiveSAM(tiny_model, NAMES[:12], SMALL.replace(mode="fast", max_active=5, bucket_size=2))
    counts = {"upload": 0, "image_part": 0, "image_convs": 0}

    def counted(name, fn):
        def call(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)
        return call

    monkeypatch.setattr(engine.grounder, "upload", counted("upload", engine.grounder.upload))
    monkeypatch.setattr(shared_encoding, "image_part", counted("image_part", shared_encoding.image_part))
    monkeypatch.setattr(FusedHeads, "image_convs", counted("image_convs", FusedHeads.image_convs))
    result = engine.segment(picture(2))
    assert result.preview_ran and "screen" in result.timings
    assert counts == {"upload": 1, "image_part": 3, "image_convs": 1}


# -- the second stream -------------------------------------------------------------------

class Recording:
    """The engine's grounder, logging encodes (and on which stream) and fetches."""

    def __init__(self, inner, log):
        self.inner, self.log, self.side = inner, log, False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def side_stream(self):
        recording = self

        class Side:
            def __enter__(self):
                recording.side = True
                return recording.inner.side_stream().__enter__()

            def __exit__(self, *exc):
                recording.side = False
                return False

        return Side()

    def upload(self, rgb):
        self.log.append(("upload", int(rgb[0, 0, 0]), self.side))
        return self.inner.upload(rgb)

    def encode_image(self, image, resolution=None):
        self.log.append(("encode", resolution, self.side))
        return self.inner.encode_image(image, resolution)

    def fetch(self, *tensors):
        self.log.append(("fetch", len(tensors), self.side))
        return self.inner.fetch(*tensors)


def test_segment_many_issues_the_next_encode_before_the_current_decode(tiny_model):
    """Counted on the CPU: every frame after the first is uploaded and
    encoded on the second stream before the previous frame's decode reads
    anything back, so on a GPU the two overlap; the labels are those of
    one frame at a time."""
    log = []
    engine = ActiveSAM(tiny_model, NAMES[:6], SMALL, wrap_grounder=lambda g: Recording(g, log))
    frames = [picture(seed) for seed in (3, 4, 5)]
    alone = [engine.segment(rgb) for rgb in frames]
    log.clear()
    many = list(engine.segment_many(frames))
    for a, b in zip(alone, many):
        np.testing.assert_array_equal(a.labels, b.labels)
    uploads = [i for i, entry in enumerate(log) if entry[0] == "upload"]
    fetches = [i for i, entry in enumerate(log) if entry[0] == "fetch"]
    assert [log[i][1] for i in uploads] == [int(f[0, 0, 0]) for f in frames]
    assert all(entry[2] for entry in log if entry[0] in ("upload", "encode"))  # on the second stream
    assert all(not entry[2] for entry in log if entry[0] == "fetch")
    per_frame = len(fetches) // len(frames)
    overlapping = [uploads[i + 1] < fetches[i * per_frame] for i in range(len(frames) - 1)]
    assert overlapping == [True, True]


def test_prefetched_frames_must_match_their_segment_call(tiny_model):
    engine = ActiveSAM(tiny_model, NAMES[:3], SMALL)
    ahead = engine.prefetch(picture(6))
    with pytest.raises(ValueError, match="prefetched"):
        engine.segment(picture(6), prefetched=ahead)  # an equal image, not the same one


# -- compilation and the process settings ------------------------------------------------

@pytest.mark.slow
def test_the_grounding_forward_compiles_as_one_graph_with_padded_buckets(tiny_model, photos, monkeypatch):
    """TorchDynamo traces the shared forward whole (no graph break: what
    CUDA graphs need) and gives the eager results; prompts are padded to a
    power of two, so 3 and 4 prompts share one graph. Backend ``eager``:
    the trace without a C compiler."""
    from torch._dynamo.utils import counters

    from activesam_ros.engine.grounding import Grounder, TextBatch

    monkeypatch.delenv("TORCHDYNAMO_DISABLE", raising=False)
    torch._dynamo.reset()
    counters.clear()
    plain = Grounder(tiny_model, torch.device("cpu"), torch.float32)
    compiled = Grounder(tiny_model, torch.device("cpu"), torch.float32, compile="default", compile_backend="eager")
    text = plain.encode_text(NAMES[:4])
    image = plain.encode_image(photos["chelsea.png"], 112)
    for k in (3, 4):
        batch = TextBatch(text["language_features"][:, :k], text["language_mask"][:k])
        ours, theirs = compiled.decode(image, batch), plain.decode(image, batch)
        assert len(ours) == k
        for name in ("presence", "objects", "memory", "hs"):
            torch.testing.assert_close(getattr(ours, name), getattr(theirs, name), atol=1e-5, rtol=1e-4)
    assert "graph_break" not in counters
    assert counters["stats"]["unique_graphs"] == 1  # 3 prompts padded to 4
    torch._dynamo.reset()


def test_compile_is_refused_where_torchdynamo_is_off(tiny_model, monkeypatch):
    monkeypatch.setenv("TORCHDYNAMO_DISABLE", "1")
    with pytest.raises(ConfigError, match="needs TorchDynamo"):
        ActiveSAM(tiny_model, ["cat"], SMALL.replace(compile="default"))
    engine = ActiveSAM(tiny_model, ["cat"], SMALL)
    with pytest.raises(ConfigError, match="compile are fixed"):
        engine.check_config(engine.config.replace(compile="reduce-overhead"))


def test_torchdynamo_is_disabled_only_on_machines_without_a_gpu(tmp_path, monkeypatch):
    from activesam_ros.engine import environment

    driver = tmp_path / "nvidiactl"
    for files, visible, disabled in [((str(tmp_path / "absent"),), None, True), ((str(driver),), None, False),
                                     ((str(driver),), "", True)]:
        driver.write_text("")
        monkeypatch.setattr(environment, "GPU_DEVICE_FILES", files)
        monkeypatch.delenv("TORCHDYNAMO_DISABLE", raising=False)
        if visible is None:
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        else:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        environment.set_process_defaults()
        assert (environment.os.environ.get("TORCHDYNAMO_DISABLE") == "1") == disabled, files


def test_torchvisions_pure_pytorch_roi_align_runs_eagerly():
    """Without torchvision's compiled ops its fallback would compile itself
    on first use; the engine's shims run it as written."""
    import sys

    module = sys.modules["torchvision.ops.roi_align"]
    if module._has_ops():
        pytest.skip("torchvision's compiled roi_align is installed: no fallback to run")
    assert not hasattr(module._roi_align, "__wrapped__")
