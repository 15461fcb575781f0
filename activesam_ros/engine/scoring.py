"""From grounding outputs to labels: active-set selection, head fusion,
class aggregation and margin-aware background calibration (MABC).

Pure tensor functions, so each step of the method can be tested on
hand-made inputs.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from .grounding import Grounding, resize_logits


def quantile_threshold(presence: torch.Tensor, alpha: float) -> float:
    """tau: the (1 - alpha) quantile of the presences (linear interpolation)."""
    return float(torch.quantile(presence.float(), 1.0 - alpha))


def select_active(presence: torch.Tensor, alpha: float, max_active: int) -> List[int]:
    """Queries whose preview presence reaches the (1 - alpha) quantile.

    Never empty (the argmax when nothing passes), at most ``max_active``
    (the highest), returned in index order.
    """
    scores = presence.float()
    tau = quantile_threshold(scores, alpha)
    idx = torch.nonzero(scores >= tau).flatten()
    if idx.numel() == 0:
        return [int(scores.argmax())]
    if idx.numel() > max_active:
        idx = idx[torch.topk(scores[idx], k=max_active).indices]
    return sorted(int(i) for i in idx)


def object_scores(g: Grounding) -> Tuple[torch.Tensor, torch.Tensor]:
    """Presence P [K] and object probabilities o = sigmoid(logit) * P [K, Q]."""
    presence = g.presence_logits.float().sigmoid()
    return presence, g.pred_logits.float().sigmoid() * presence[:, None]


def exact_query_scores(g: Grounding, confidence: float, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-query score maps at the image size, as the method states them.

    Instance masks above the confidence threshold are resized as logits,
    passed through a sigmoid and weighted by their object score; the
    pixelwise max over instances is fused with the resized semantic map by
    max, then gated by presence. Returns (scores [K, H, W], presence [K]).
    """
    presence, obj = object_scores(g)
    semantic = resize_logits(g.semantic_seg, height, width).sigmoid()[:, 0]
    out = torch.zeros(len(presence), height, width)
    for k in range(len(presence)):
        keep = obj[k] > confidence
        if keep.any():
            masks = resize_logits(g.pred_masks[k][keep].unsqueeze(1), height, width).sigmoid()[:, 0]
            out[k] = (masks * obj[k][keep][:, None, None]).amax(0).clamp_min(0)
        out[k] = torch.maximum(out[k], semantic[k])
    return out * presence[:, None, None], presence


def class_maxima(query_scores: torch.Tensor, query_class: Sequence[int]) -> Tuple[torch.Tensor, List[int]]:
    """Max over each class's queries. Returns (scores [A, ...], the A classes
    in index order) for the classes that have at least one scored query."""
    classes = sorted(set(query_class))
    row = {c: i for i, c in enumerate(classes)}
    out = torch.zeros((len(classes),) + tuple(query_scores.shape[1:]), dtype=query_scores.dtype)
    for slot, c in enumerate(query_class):
        out[row[c]] = torch.maximum(out[row[c]], query_scores[slot])
    return out, classes


def labels_from_scores(
    scores: torch.Tensor,
    classes: Sequence[int],
    num_classes: int,
    background_index: Optional[int],
    background_threshold: float,
    exponent: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Argmax labels (vocabulary indices) and the top score, with MABC.

    ``scores`` holds only the scored classes; every other class scores 0
    everywhere, which this reproduces exactly: where no scored class is
    above 0 the label is class 0 (argmax's first index), and the runner-up
    of a single scored class is 0.
    """
    index = torch.as_tensor(list(classes), dtype=torch.long)
    top, arg = scores.max(0)
    labels = index[arg]
    labels[top <= 0] = 0
    if background_index is not None and background_threshold > 0 and num_classes >= 2:
        if scores.shape[0] >= 2:
            pair = torch.topk(scores, k=2, dim=0).values
            s1, s2 = pair[0], pair[1]
        else:
            s1, s2 = scores[0], torch.zeros_like(scores[0])
        energy = s1 * (s1 - s2).clamp_min(0).sqrt()
        labels[energy < background_threshold ** exponent] = background_index
    return labels, top

