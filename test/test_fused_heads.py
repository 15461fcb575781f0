"""Fast mode's fused heads equal sam3's heads followed by the fusion formula."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from activesam_ros.engine import fused_heads
from activesam_ros.engine.grounding import Grounder, TextBatch
from activesam_ros.engine.scoring import object_scores

PROMPTS = ["cat", "dog", "a red car", "sky", "person", "tree"]


def reference_scores(g, confidence):
    """The method's fusion at mask resolution, written out on sam3's heads."""
    presence, obj = object_scores(g)
    weight = torch.where(obj > confidence, obj, torch.zeros_like(obj))
    instance = (g.pred_masks.sigmoid() * weight[:, :, None, None]).amax(1)
    return torch.maximum(instance, g.semantic_seg.sigmoid()[:, 0]) * presence[:, None, None]


@pytest.fixture(scope="module")
def grounder(tiny_model):
    return Grounder(tiny_model, torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def batch(grounder):
    text = grounder.encode_text(PROMPTS)
    return TextBatch(text["language_features"], text["language_mask"])


def test_upsampling_kernel_equals_conv_of_the_upsampled_map():
    torch.manual_seed(0)
    weight, x = torch.randn(5, 3, 3, 3), torch.randn(2, 3, 7, 9)
    expected = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), weight, padding=1)
    got = F.conv_transpose2d(x, fused_heads.upsampling_kernel(weight), stride=2, padding=1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("resolution", [224, 112])
@pytest.mark.parametrize("confidence", [0.0, 0.3, 0.99])
def test_fused_scores_equal_sam3_heads_then_fusion(grounder, batch, photos, resolution, confidence):
    image = grounder.encode_image(photos["chelsea.png"], resolution)
    plain = grounder.ground(image, batch)
    expected = reference_scores(plain, confidence)
    fused = grounder.score(image, batch, confidence, presence_floor=0.0)
    assert fused.scored == list(range(len(PROMPTS)))
    torch.testing.assert_close(fused.maps, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fused.presence, plain.presence_logits.sigmoid(), atol=1e-6, rtol=1e-5)


def test_confidence_keeps_some_instances_on_this_model(grounder, batch, photos):
    """The cases above cover kept and dropped instances (not vacuous)."""
    image = grounder.encode_image(photos["chelsea.png"])
    _, obj = object_scores(grounder.ground(image, batch, heads=False))
    kept = (obj > 0.3).sum(1)
    assert kept.max() > 0 and (kept < obj.shape[1]).any()


def test_chunked_equals_whole_bucket(grounder, batch, photos, monkeypatch):
    image = grounder.encode_image(photos["coffee.png"])
    whole = grounder.score(image, batch, 0.3, 0.0).maps
    monkeypatch.setattr(fused_heads, "CPU_CHUNK_BYTES", 1)  # one prompt per chunk
    assert grounder.fused_heads.chunk_size(6, 64, 64, 64, torch.device("cpu")) == 1
    torch.testing.assert_close(grounder.score(image, batch, 0.3, 0.0).maps, whole, atol=1e-6, rtol=1e-6)


def test_presence_floor_skips_the_heads_of_absent_prompts(grounder, batch, photos):
    image = grounder.encode_image(photos["chelsea.png"])
    everything = grounder.score(image, batch, 0.3, 0.0)
    floor = float(everything.presence.median())
    some = grounder.score(image, batch, 0.3, floor)
    assert some.scored == [i for i, p in enumerate(everything.presence.tolist()) if p >= floor]
    assert 0 < len(some.scored) < len(PROMPTS)
    torch.testing.assert_close(some.maps, everything.maps[some.scored], atol=1e-6, rtol=1e-6)


def test_models_without_the_released_head_are_refused(tiny_model):
    assert fused_heads.applies(tiny_model)
    headless = SimpleNamespace(segmentation_head=None)
    head = tiny_model.segmentation_head
    bilinear = SimpleNamespace(segmentation_head=SimpleNamespace(
        no_dec=False, aux_masks=False, use_encoder_inputs=True,
        instance_seg_head=head.instance_seg_head, semantic_seg_head=head.semantic_seg_head,
        pixel_decoder=SimpleNamespace(conv_layers=head.pixel_decoder.conv_layers, interpolation_mode="bilinear"),
    ))
    for model in (headless, bilinear):
        assert not fused_heads.applies(model)
        with pytest.raises(ValueError, match="released SAM 3 structure"):
            fused_heads.FusedHeads(model)


@pytest.mark.parametrize("sizes", [((32, 32), (16, 16), (8, 8)), ((30, 31), (15, 15), (7, 8))])
def test_pixel_embedding_equals_sam3_pixel_decoder(tiny_model, sizes):
    """Exact doublings take the transposed convolution, other sizes the
    upsample-then-convolve path; both equal sam3's decoder."""
    torch.manual_seed(0)
    heads = fused_heads.FusedHeads(tiny_model)
    feats = [torch.randn(1, 64, *sizes[0]), torch.randn(1, 64, *sizes[1]), torch.randn(3, 64, *sizes[2])]
    expected = tiny_model.segmentation_head.pixel_decoder(feats)
    images = [conv(level) for (conv, _), level in zip(heads.stages, feats[:-1][::-1])]
    with torch.no_grad():
        got = heads._pixel_embedding(feats[-1], images)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def reference(tiny_model):
    """The same model through sam3's own segmentation heads."""
    return Grounder(tiny_model, torch.device("cpu"), torch.float32, reference_heads=True)


@pytest.mark.parametrize("resolution", [224, 112])
def test_exact_heads_equal_sam3_heads(grounder, reference, batch, photos, resolution):
    """ground()'s mask and semantic logits are sam3's, computed the cheaper way."""
    assert not grounder.reference_heads
    image = grounder.encode_image(photos["chelsea.png"], resolution)
    ours, theirs = grounder.ground(image, batch), reference.ground(image, batch)
    assert ours.pred_masks.shape == theirs.pred_masks.shape and ours.semantic_seg.shape == theirs.semantic_seg.shape
    scale = float(theirs.pred_masks.abs().max())
    torch.testing.assert_close(ours.pred_masks, theirs.pred_masks, atol=1e-5 * scale, rtol=1e-4)
    torch.testing.assert_close(ours.semantic_seg, theirs.semantic_seg, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours.presence_logits, theirs.presence_logits)


def test_exact_heads_chunked_equal_whole_bucket(grounder, batch, photos, monkeypatch):
    image = grounder.encode_image(photos["coffee.png"])
    whole = grounder.ground(image, batch)
    monkeypatch.setattr(fused_heads, "CPU_CHUNK_BYTES", 1)  # one prompt per chunk
    chunked = grounder.ground(image, batch)
    torch.testing.assert_close(chunked.pred_masks, whole.pred_masks, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(chunked.semantic_seg, whole.semantic_seg, atol=1e-6, rtol=1e-6)


def test_exact_mode_labels_are_unchanged_by_the_cheaper_heads(tiny_model, photos):
    """Exact mode with the engine's heads labels every pixel as with sam3's."""
    from activesam_ros.engine import ActiveSAM, ActiveSAMConfig

    vocabulary = ["background", "person", "cat", "dog, puppy", "car", "tree", "sky", "road", "cup", "table"]
    engine = ActiveSAM(tiny_model, vocabulary, ActiveSAMConfig(mode="exact", max_active=6, bucket_size=4,
                                                                background_threshold=0.1))
    for name, rgb in photos.items():
        engine.grounder.reference_heads = False
        ours = engine.segment(rgb)
        engine.grounder.reference_heads = True
        theirs = engine.segment(rgb)
        assert ours.preview_ran and ours.active_queries == theirs.active_queries, name
        assert np.array_equal(ours.labels, theirs.labels), name
        np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-5)


def test_models_without_the_released_head_run_sam3_heads(tiny_model):
    head = tiny_model.segmentation_head
    bilinear = SimpleNamespace(segmentation_head=SimpleNamespace(
        no_dec=False, aux_masks=False, use_encoder_inputs=True,
        instance_seg_head=head.instance_seg_head, semantic_seg_head=head.semantic_seg_head,
        pixel_decoder=SimpleNamespace(conv_layers=head.pixel_decoder.conv_layers, interpolation_mode="bilinear"),
    ), backbone=tiny_model.backbone)
    assert Grounder(bilinear, torch.device("cpu"), torch.float32).reference_heads
