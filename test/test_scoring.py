"""Active-set selection, head fusion and MABC on hand-made tensors."""

import math

import torch

from activesam_ros.engine.grounding import Grounding
from activesam_ros.engine.scoring import class_maxima, exact_query_scores, labels_from_scores, select_active


def test_select_active_keeps_the_top_quantile_in_index_order():
    presence = torch.tensor([0.1, 0.9, 0.3, 0.8, 0.2, 0.7, 0.05, 0.6, 0.4, 0.5])
    tau = torch.quantile(presence, 0.8)
    active = select_active(presence, alpha=0.2, max_active=40)
    assert active == sorted(active)
    assert active == [i for i, p in enumerate(presence.tolist()) if p >= float(tau)]
    assert active == [1, 3]


def test_select_active_caps_at_max_active_by_score():
    presence = torch.linspace(0, 1, 500)  # 20 % of 500 = 100 pass the quantile
    active = select_active(presence, alpha=0.2, max_active=40)
    assert len(active) == 40
    assert active == list(range(460, 500))


def test_select_active_is_never_empty():
    presence = torch.tensor([float("nan")] * 3 + [0.2])
    assert select_active(torch.tensor([0.3, 0.3, 0.3]), 0.2, 40) == [0, 1, 2]
    assert len(select_active(presence, 0.2, 40)) == 1


def test_select_active_keeps_about_alpha_of_the_queries():
    torch.manual_seed(0)
    presence = torch.rand(41)
    active = select_active(presence, alpha=0.2, max_active=40)
    assert 8 <= len(active) <= 10


def _grounding(k=2, q=3, h=4, w=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Grounding(
        presence_logits=torch.randn(k, generator=g),
        pred_logits=torch.randn(k, q, generator=g) * 2,
        pred_masks=torch.randn(k, q, h, w, generator=g) * 3,
        semantic_seg=torch.randn(k, 1, h, w, generator=g),
    )


def test_exact_scores_follow_the_method_formula():
    g = _grounding()
    scores, presence = exact_query_scores(g, confidence=0.3, height=4, width=4)
    for k in range(2):
        p = torch.sigmoid(g.presence_logits[k])
        o = torch.sigmoid(g.pred_logits[k]) * p
        inst = torch.zeros(4, 4)
        for i in range(3):
            if o[i] > 0.3:
                inst = torch.maximum(inst, torch.sigmoid(g.pred_masks[k, i]) * o[i])
        expected = torch.maximum(inst, torch.sigmoid(g.semantic_seg[k, 0])) * p
        assert torch.allclose(scores[k], expected, atol=1e-6)
        assert math.isclose(float(presence[k]), float(p), rel_tol=1e-6)


def test_class_maxima_takes_the_max_over_aliases():
    scores = torch.tensor([[[0.1]], [[0.5]], [[0.3]]])
    out, classes = class_maxima(scores, [2, 0, 2])
    assert classes == [0, 2]
    assert out[:, 0, 0].tolist() == [0.5, 0.30000001192092896]


def test_labels_argmax_over_all_classes_including_unscored_zeros():
    scores = torch.tensor([[[0.0, 0.2]], [[0.0, 0.6]]])  # classes 3 and 5 of 6
    labels, top = labels_from_scores(scores, [3, 5], 6, None, 0.0, 1.25)
    assert labels.tolist() == [[0, 5]]  # all-zero pixel -> first class, as argmax
    assert top.tolist() == [[0.0, 0.6000000238418579]]


def test_mabc_marks_low_margin_pixels_as_background():
    # Three classes, background = 0. Pixel A: clear winner; B: tie; C: weak.
    full = torch.tensor([
        [[0.0, 0.1, 0.0]],
        [[0.9, 0.5, 0.2]],
        [[0.1, 0.5, 0.0]],
    ])
    threshold, exponent = 0.4, 1.25
    labels, _ = labels_from_scores(full, [0, 1, 2], 3, 0, threshold, exponent)
    s = torch.topk(full, 2, dim=0).values
    energy = s[0] * (s[0] - s[1]).clamp_min(0).sqrt()
    expected = full.argmax(0)
    expected[energy < threshold ** exponent] = 0
    assert labels.tolist() == expected.tolist() == [[1, 0, 0]]


def test_mabc_single_scored_class_uses_zero_runner_up():
    scores = torch.tensor([[[0.9, 0.2]]])  # only class 1 scored, of 2
    labels, _ = labels_from_scores(scores, [1], 2, 0, 0.4, 1.25)
    # energy = s1 * sqrt(s1): 0.854 passes 0.318, 0.089 does not.
    assert labels.tolist() == [[1, 0]]
