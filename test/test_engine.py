"""The pipeline on the tiny SAM 3: equivalences that pin the method."""

import threading

import numpy as np
import pytest
import torch

from activesam_ros.engine import ActiveSAM, ImageError
from activesam_ros.engine.config import ActiveSAMConfig, ConfigError
from activesam_ros.engine.grounding import resolution_view
from activesam_ros.engine.vocabulary import VocabularyError

from conftest import paper_vocabulary

SMALL = ["background", "person", "cat", "dog, puppy", "car", "tree", "sky", "road"]


def synthetic(seed=0, h=120, w=160):
    """Flat regions with edges: a cheap stand-in for a scene."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 255, 3)
    for _ in range(4):
        y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
        img[y : y + rng.integers(10, 60), x : x + rng.integers(10, 80)] = rng.integers(0, 255, 3)
    return img


@pytest.fixture(scope="module")
def engine(tiny_model):
    return ActiveSAM(tiny_model, SMALL, ActiveSAMConfig(mode="exact"))


def test_labels_have_the_image_size_and_index_the_vocabulary(engine, photos):
    rgb = photos["chelsea.png"]
    result = engine.segment(rgb)
    assert result.labels.shape == rgb.shape[:2]
    assert result.labels.dtype == np.int32
    assert 0 <= result.labels.min() and result.labels.max() < len(SMALL)
    assert result.scores.shape == rgb.shape[:2]
    assert not result.preview_ran  # 9 queries <= max_active
    assert result.active_queries == list(range(9))
    assert set(result.timings) >= {"encode", "decode", "fusion", "calibration", "total"}


def test_bucketed_decoding_equals_one_prompt_at_a_time(tiny_model, photos):
    rgb = photos["coffee.png"]
    batched = ActiveSAM(tiny_model, SMALL, ActiveSAMConfig(bucket_size=32)).segment(rgb)
    single = ActiveSAM(tiny_model, SMALL, ActiveSAMConfig(bucket_size=1)).segment(rgb)
    np.testing.assert_allclose(batched.query_presence, single.query_presence, atol=1e-5)
    np.testing.assert_allclose(batched.scores, single.scores, atol=1e-4)
    assert (batched.labels == single.labels).mean() > 0.999


def test_no_preview_when_everything_is_active_and_equal_to_full_decode(engine, photos):
    rgb = photos["astronaut.png"]
    auto = engine.segment(rgb)
    forced = engine.segment(rgb, active_queries=range(len(SMALL) + 1))
    assert not auto.preview_ran and not forced.preview_ran
    np.testing.assert_array_equal(auto.labels, forced.labels)


def test_pruned_equals_full_when_the_cap_admits_everything(tiny_model, photos):
    """With max_active >= N the preview is skipped; forcing a preview-free
    decode of all queries of a large vocabulary gives the same labels."""
    vocab = paper_vocabulary("context59")
    rgb = photos["chelsea.png"][::2, ::2].copy()
    everything = ActiveSAM(tiny_model, vocab, ActiveSAMConfig(max_active=1000)).segment(rgb)
    assert not everything.preview_ran
    forced = ActiveSAM(tiny_model, vocab, ActiveSAMConfig()).segment(rgb, active_queries=range(len(vocab)))
    np.testing.assert_array_equal(everything.labels, forced.labels)


def test_preview_selects_about_a_fifth_of_a_large_vocabulary(tiny_model, photos):
    vocab = paper_vocabulary("ade20k")
    engine = ActiveSAM(tiny_model, vocab, ActiveSAMConfig(mode="fast"))
    result = engine.segment(photos["coffee.png"])
    n = len(engine.vocabulary.queries)
    assert result.preview_ran and result.preview_presence.shape == (n,)
    assert 1 <= len(result.active_queries) <= 40
    assert result.active_queries == sorted(result.active_queries)
    inactive = np.setdiff1d(np.arange(n), result.active_queries)
    assert np.all(result.query_presence[inactive] == 0)
    assert set(np.unique(result.labels)) <= set(result.active_classes) | {0}


def test_fast_mode_agrees_with_exact_mode(tiny_model, photos):
    exact = ActiveSAM(tiny_model, SMALL, ActiveSAMConfig(mode="exact"))
    fast = ActiveSAM(tiny_model, SMALL, ActiveSAMConfig(mode="fast"))
    agreements = []
    for rgb in [synthetic(1), synthetic(2), *photos.values()]:
        a, b = exact.segment(rgb), fast.segment(rgb)
        agreements.append((a.labels == b.labels).mean())
        np.testing.assert_allclose(a.query_presence, b.query_presence, atol=1e-5)
    # Same decisions; only the resize order of the fused maps differs.
    assert min(agreements) > 0.95, agreements
    assert np.mean(agreements) > 0.98, agreements


def test_segment_is_deterministic(tiny_model, photos):
    rgb = photos["coffee.png"]
    first = ActiveSAM(tiny_model, SMALL).segment(rgb)
    second = ActiveSAM(tiny_model, SMALL).segment(rgb)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.scores, second.scores)


def test_vocabulary_change_between_two_calls(engine, photos):
    rgb = photos["chelsea.png"]
    engine.set_vocabulary(["cat", "sofa"])
    try:
        result = engine.segment(rgb)
        assert result.vocabulary.names == ("cat", "sofa")
        assert set(np.unique(result.labels)) <= {0, 1}
        assert result.query_presence.shape == (2,)
    finally:
        engine.set_vocabulary(SMALL)
    assert engine.segment(rgb).vocabulary.names[0] == "background"


def test_text_encodings_are_cached_per_string(tiny_model, photos):
    engine = ActiveSAM(tiny_model, ["cat", "dog"], ActiveSAMConfig(hypernym_tokens=0))
    misses = engine.text.misses
    engine.segment(photos["chelsea.png"])
    assert engine.text.misses == misses  # prepared up front, none on the hot path
    engine.set_vocabulary(["cat", "dog", "sofa"])
    assert engine.text.misses == misses + 1  # only "sofa" is new


def test_background_threshold_needs_a_background_class(tiny_model):
    with pytest.raises(VocabularyError, match="background"):
        ActiveSAM(tiny_model, ["cat", "dog"], ActiveSAMConfig(background_threshold=0.4))


def test_background_calibration_assigns_class_zero(tiny_model, photos):
    engine = ActiveSAM(tiny_model, SMALL, ActiveSAMConfig(background_threshold=0.99))
    result = engine.segment(photos["chelsea.png"])
    assert result.background_index == 0
    assert (result.labels == 0).all()  # nothing clears a threshold that high


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
                                 np.zeros((10, 10, 3), np.float32), "image.png"])
def test_bad_images_are_rejected(engine, bad):
    with pytest.raises(ImageError):
        engine.segment(bad)


def test_reconfigure_validates_and_keeps_the_text_cache(tiny_model):
    engine = ActiveSAM(tiny_model, SMALL)
    with pytest.raises(ConfigError):
        engine.reconfigure(engine.config.replace(mode="fast", bucket_size=4).__class__(bucket_size=-1))
    misses = engine.text.misses
    engine.reconfigure(engine.config.replace(bucket_size=4, mode="fast"))
    assert engine.config.bucket_size == 4 and engine.text.misses == misses


def test_reconfigure_is_all_or_nothing(tiny_model):
    engine = ActiveSAM(tiny_model, SMALL)
    before = engine.config
    with pytest.raises(ConfigError, match="multiple of the patch"):
        engine.reconfigure(before.replace(resolution=100, bucket_size=3))
    assert engine.config == before and engine.resolution == 224
    with pytest.raises(ConfigError, match="device"):
        engine.check_config(ActiveSAMConfig(device="cpu"))
    prepared = engine.prepare(SMALL, before.replace(hypernym_tokens=0))
    assert engine.needs_prepare(before.replace(hypernym_tokens=0))
    engine.reconfigure(before.replace(hypernym_tokens=0), prepared)
    assert engine.config.hypernym_tokens == 0 and engine._prepared is prepared


def test_preview_threshold_is_the_quantile_rule(tiny_model, photos):
    result = ActiveSAM(tiny_model, paper_vocabulary("context59")).segment(photos["coffee.png"][::2, ::2].copy())
    assert result.preview_ran
    expected = np.quantile(result.preview_presence, 0.8)
    assert result.preview_threshold == pytest.approx(expected, abs=1e-6)
    assert all(result.preview_presence[q] >= result.preview_threshold - 1e-7 for q in result.active_queries)


def test_preview_view_shares_weights_and_leaves_the_model_untouched(tiny_model):
    trunk = tiny_model.backbone.vision_backbone.trunk
    before = [b.attn.freqs_cis.clone() for b in trunk.blocks]
    view = resolution_view(tiny_model, 112)
    view_trunk = view.backbone.vision_backbone.trunk
    assert view_trunk.blocks[0].attn.qkv.weight is trunk.blocks[0].attn.qkv.weight
    for block, saved in zip(trunk.blocks, before):
        assert torch.equal(block.attn.freqs_cis, saved)
    assert any(v.attn.freqs_cis.shape != b.attn.freqs_cis.shape for v, b in zip(view_trunk.blocks, trunk.blocks))


def test_preview_rope_table_equals_a_model_built_at_that_size():
    from activesam_ros.model import build_tiny_sam3

    big, small = build_tiny_sam3(image_size=336), build_tiny_sam3(image_size=224)
    view = resolution_view(big, 224)
    for v, s in zip(view.backbone.vision_backbone.trunk.blocks, small.backbone.vision_backbone.trunk.blocks):
        assert torch.allclose(v.attn.freqs_cis, s.attn.freqs_cis)


def test_repeated_previews_do_not_grow_the_decoder_cache(tiny_model, photos):
    engine = ActiveSAM(tiny_model, paper_vocabulary("context59"))
    rgb = photos["coffee.png"][::2, ::2].copy()
    decoder = tiny_model.transformer.decoder
    engine.segment(rgb)
    sizes = (len(decoder.coord_cache), len(engine.grounder._view(engine.preview_resolution).transformer.decoder.coord_cache))
    for _ in range(2):
        engine.segment(rgb)
    assert (len(decoder.coord_cache), len(engine.grounder._view(engine.preview_resolution).transformer.decoder.coord_cache)) == sizes


def test_preview_and_full_resolution_calls_are_thread_safe(tiny_model, photos):
    engine = ActiveSAM(tiny_model, SMALL)
    rgb = photos["astronaut.png"]
    expected_full = engine.segment(rgb).labels
    expected_preview = engine.preview(rgb).numpy()
    results = {}

    def full():
        results["full"] = [engine.segment(rgb).labels for _ in range(2)]

    def preview():
        results["preview"] = [engine.preview(rgb).numpy() for _ in range(3)]

    threads = [threading.Thread(target=full), threading.Thread(target=preview)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for labels in results["full"]:
        np.testing.assert_array_equal(labels, expected_full)
    for presence in results["preview"]:
        np.testing.assert_allclose(presence, expected_preview, atol=1e-6)


def test_fast_preview_without_screening_equals_the_exact_preview(tiny_model, photos):
    vocab = paper_vocabulary("context59")
    rgb = photos["coffee.png"]
    exact = ActiveSAM(tiny_model, vocab, ActiveSAMConfig(mode="exact")).preview(rgb)
    unscreened = ActiveSAM(tiny_model, vocab, ActiveSAMConfig(mode="fast", fast_screen_keep=1.0)).preview(rgb)
    np.testing.assert_allclose(unscreened.numpy(), exact.numpy(), atol=1e-6)


def test_fast_screen_keeps_the_exact_active_set_on_photographs(tiny_model, photos):
    """The screen only drops queries; the quantile rule then sees the same
    top presences, so the active sets match whenever the screen ranks the
    present queries in its top 40 %. Measured on real photographs."""
    vocab = paper_vocabulary("ade20k")
    exact = ActiveSAM(tiny_model, vocab, ActiveSAMConfig(mode="exact"))
    fast = ActiveSAM(tiny_model, vocab, ActiveSAMConfig(mode="fast"))
    overlaps, agreements = [], []
    for rgb in (photos["chelsea.png"], photos["astronaut.png"]):
        a, b = exact.segment(rgb), fast.segment(rgb)
        assert "screen" in b.timings and "screen" not in a.timings
        dropped = np.flatnonzero(b.preview_presence == 0)
        kept = np.flatnonzero(b.preview_presence > 0)
        assert len(kept) == int(np.ceil(0.4 * len(b.preview_presence)))
        assert b.preview_presence[dropped].max(initial=0) <= b.preview_presence[kept].min()
        overlaps.append(len(set(a.active_queries) & set(b.active_queries)) / len(a.active_queries))
        agreements.append((a.labels == b.labels).mean())
    assert min(overlaps) >= 0.9, overlaps
    assert np.mean(agreements) >= 0.98, agreements


@pytest.mark.parametrize("resolution", [224, 112])
def test_shared_encoding_equals_the_batched_forward(tiny_model, photos, resolution):
    """Geometry tokens and the first self-attention computed once per image
    give sam3's own K-prompt forward to float rounding."""
    from activesam_ros.engine.grounding import Grounder, TextBatch

    grounder = Grounder(tiny_model, torch.device("cpu"), torch.float32)
    text = grounder.encode_text(["cat", "dog", "a red car", "sky"])
    batch = TextBatch(text["language_features"], text["language_mask"])
    image = grounder.encode_image(photos["chelsea.png"], resolution)
    plain = grounder.ground(image, batch)
    shared = grounder.ground(image, batch, share=True)
    for name in ("presence_logits", "pred_logits", "pred_masks", "semantic_seg"):
        torch.testing.assert_close(getattr(shared, name), getattr(plain, name), atol=1e-5, rtol=1e-4)


def test_fast_mode_needs_the_released_head_structure(tiny_model):
    from activesam_ros.engine.grounding import _module_view

    model = _module_view(tiny_model)  # shares the weights; the original is untouched
    model.segmentation_head.pixel_decoder.interpolation_mode = "bilinear"
    with pytest.raises(ConfigError, match="mode 'fast' needs"):
        ActiveSAM(model, SMALL, ActiveSAMConfig(mode="fast"))
    engine = ActiveSAM(model, SMALL, ActiveSAMConfig(mode="exact"))
    with pytest.raises(ConfigError, match="mode 'fast' needs"):
        engine.reconfigure(engine.config.replace(mode="fast"))
    assert engine.config.mode == "exact"
    assert tiny_model.segmentation_head.pixel_decoder.interpolation_mode == "nearest"


def test_a_reconfiguration_from_another_thread_never_mixes_two_configs_in_one_frame(tiny_model, photos):
    """Every size and bucket of a frame comes from the config it started
    with, even when another thread reconfigures the engine in the middle of
    it (after the preview's encode); the next frame runs the new config."""
    first = ActiveSAMConfig(device="cpu", preview_resolution=112, bucket_size=16)
    second = first.replace(preview_resolution=168, resolution=196, bucket_size=8)
    calls, swap = [], threading.Event()

    class SwapsMidFrame:
        """The engine's grounder, recording sizes; the first encode while
        ``swap`` is set reconfigures the engine from another thread."""

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode_image(self, rgb, resolution=None):
            calls.append(("encode", resolution))
            if swap.is_set():
                swap.clear()
                other = threading.Thread(target=engine.reconfigure, args=(second,))
                other.start()
                other.join()
            return self.inner.encode_image(rgb, resolution)

        def ground(self, image, text, **kwargs):
            calls.append(("ground", len(text)))
            return self.inner.ground(image, text, **kwargs)

    vocabulary = [f"thing number {i}" for i in range(60)]  # more than max_active: the preview runs
    engine = ActiveSAM(tiny_model, vocabulary, first, wrap_grounder=SwapsMidFrame)
    swap.set()
    result = engine.segment(photos["chelsea.png"])
    assert result.preview_ran and engine.config == second
    assert [size for kind, size in calls if kind == "encode"] == [112, 224]
    assert max(size for kind, size in calls if kind == "ground") == 16
    calls.clear()
    engine.segment(photos["chelsea.png"])
    assert [size for kind, size in calls if kind == "encode"] == [168, 196]
    assert max(size for kind, size in calls if kind == "ground") == 8


def test_an_unscreened_fast_preview_chooses_what_exact_mode_does(tiny_model, photos):
    """A stream's refresh runs fast mode's preview without the screen: its
    active set is exact mode's."""
    vocabulary = paper_vocabulary("context59")
    fast = ActiveSAM(tiny_model, vocabulary, ActiveSAMConfig(device="cpu", mode="fast"))
    exact = ActiveSAM(tiny_model, vocabulary, ActiveSAMConfig(device="cpu", mode="exact"))
    small = photos["chelsea.png"][::2, ::2].copy()
    unscreened = fast.segment(small, screen=False)
    assert unscreened.active_queries == exact.segment(small).active_queries
    assert unscreened.preview_ran and "screen" not in unscreened.timings
    assert "screen" in fast.segment(small).timings


def test_exact_mode_shares_the_prompt_independent_work_without_changing_labels(tiny_model, photos, monkeypatch):
    """Exact mode computes the first encoder layer's self-attention once per
    forward (shared_encoding), preview and full decode alike; forced back to
    sam3's per-prompt forward, every label and score stays the same."""
    vocabulary = ["background", "person", "cat", "dog, puppy", "car", "tree", "sky", "road", "cup", "table"]
    engine = ActiveSAM(tiny_model, vocabulary, ActiveSAMConfig(mode="exact", max_active=6, bucket_size=4))
    ground = engine.grounder.ground
    shares = []

    def recording(*args, **kwargs):
        shares.append(kwargs.get("share", False))
        return ground(*args, **kwargs)

    monkeypatch.setattr(engine.grounder, "ground", recording)
    for name, rgb in photos.items():
        shares.clear()
        ours = engine.segment(rgb)
        assert ours.preview_ran and len(shares) >= 3 and all(shares), name
        monkeypatch.setattr(engine.grounder, "ground", lambda *a, **k: ground(*a, **{**k, "share": False}))
        theirs = engine.segment(rgb)
        monkeypatch.setattr(engine.grounder, "ground", recording)
        assert ours.active_queries == theirs.active_queries, name
        assert np.array_equal(ours.labels, theirs.labels), name
        np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-5)
