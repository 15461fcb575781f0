"""From grounding outputs to labels: active-set selection, head fusion,
class aggregation and margin-aware background calibration (MABC).

Pure tensor functions, so each step of the method can be tested on
hand-made inputs. Every one runs where its inputs are, batched over the
prompts, with no value read back to the host: the pipeline decides what to
read, and when (``ActiveSAM.segment``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .grounding import Grounding

FUSION_CHUNK_BYTES = {"cpu": 64 * 2**20, "other": 512 * 2**20}
"""Largest image-size map the fusion makes at once, by device type. A GPU
resizes every instance of a chunk of prompts at once (few, large launches);
a CPU one instance at a time, whose maps its allocator reuses rather than
mapping fresh pages for each."""


INSTANCE_LIMIT = 32767
"""Most instances one frame reports (the first kept, in active-query order):
an instance's 1-based index shares a 32-bit word with its pixel's class index
on the way back from the device (``pack_instances``)."""

MASK_THRESHOLD = 0.5
"""An instance's mask: the pixels where its mask probability is above this
(SAM 3's own binarisation of ``pred_masks``)."""


def resize_logits(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of [N, C, h, w] logits to the image size (float32)."""
    if x.shape[-2:] == (height, width):
        return x.float()
    return F.interpolate(x.float(), size=(height, width), mode="bilinear", align_corners=False)


def quantile(presence: torch.Tensor, alpha: float) -> torch.Tensor:
    """tau: the (1 - alpha) quantile of the presences (linear interpolation), on their device."""
    return torch.quantile(presence.float(), 1.0 - alpha)


def quantile_threshold(presence: torch.Tensor, alpha: float) -> float:
    """``quantile`` on the host."""
    return float(quantile(presence, alpha))


def active_mask(presence: torch.Tensor, alpha: float, max_active: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(mask [N], tau): the queries whose preview presence reaches the
    (1 - alpha) quantile tau, at most ``max_active`` (the highest), never
    none (the argmax when nothing passes). On the presences' device."""
    scores = presence.float()
    tau = quantile(scores, alpha)
    passing = scores >= tau
    if max_active < len(scores):  # the top max_active of the passing ones
        order = torch.sort(torch.where(passing, scores, float("-inf")), descending=True, stable=True).indices
        rank = torch.empty_like(order).scatter_(0, order, torch.arange(len(order), device=order.device))
        passing = passing & (rank < max_active)
    first = torch.arange(len(scores), device=scores.device) == scores.argmax()
    return passing | (first & ~passing.any()), tau


def select_active(presence: torch.Tensor, alpha: float, max_active: int) -> List[int]:
    """``active_mask``'s queries in index order (on the host)."""
    mask, _ = active_mask(presence, alpha, max_active)
    return torch.nonzero(mask).flatten().tolist()


def object_probabilities(presence_logits: torch.Tensor, pred_logits: torch.Tensor
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Presence P [K] and object probabilities o = sigmoid(logit) * P [K, Q]."""
    presence = presence_logits.float().sigmoid()
    return presence, pred_logits.float().sigmoid() * presence[:, None]


def object_scores(g: "Grounding") -> Tuple[torch.Tensor, torch.Tensor]:
    """``object_probabilities`` of a grounding."""
    return object_probabilities(g.presence_logits, g.pred_logits)


def top_instances(objects: torch.Tensor, confidence: float, count: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``count`` highest-scoring object queries of each prompt (indices
    [K, count]) and their weights in the fusion: the object score where it
    is above ``confidence``, else 0. With ``count`` at least the most any
    prompt keeps, every kept instance is among them."""
    values, index = torch.topk(objects, k=min(count, objects.shape[1]), dim=1)
    return index, torch.where(values > confidence, values, torch.zeros_like(values))


def _probabilities(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """sigmoid(resize_logits(...)) in a new tensor (in place on the resized copy)."""
    resized = resize_logits(logits, height, width)
    return resized.sigmoid_() if resized.data_ptr() != logits.data_ptr() else resized.sigmoid()


def fuse_at_image(masks: torch.Tensor, weights: torch.Tensor, semantic: torch.Tensor, presence: torch.Tensor,
                  height: int, width: int) -> torch.Tensor:
    """The method's per-query score maps [K, H, W] at the image size.

    Instance mask logits [K, T, h, w] are resized, passed through a sigmoid
    and weighted ([K, T]: the object score, 0 for an instance not kept); the
    pixelwise max over instances is fused with the resized semantic map
    ([K, 1, h, w] logits) by max, then gated by presence [K]. Prompts go in
    chunks whose maps fit FUSION_CHUNK_BYTES (a bucket is one chunk unless
    the image is large): the operations are the same for any number of
    prompts in a chunk.
    """
    k, t = weights.shape
    plane = height * width * 4
    cpu = presence.device.type == "cpu"
    budget = FUSION_CHUNK_BYTES["cpu" if cpu else "other"]
    step = max(1, min(k, budget // plane))
    out = torch.empty(k, height, width, dtype=torch.float32, device=presence.device)
    for start in range(0, k, step):
        part = slice(start, min(k, start + step))
        fused = _probabilities(semantic[part], height, width)[:, 0]
        group = 1 if cpu else max(1, budget // ((part.stop - part.start) * plane))
        for first in range(0, t, group):
            some = slice(first, min(t, first + group))
            instance = _probabilities(masks[part, some], height, width).mul_(weights[part, some, None, None])
            torch.maximum(fused, instance.amax(1) if group > 1 else instance[:, 0], out=fused)
        out[part] = fused.mul_(presence[part, None, None])
    return out


def mask_instance_keys(masks: torch.Tensor, weights: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``instance_keys`` [K, h, w] of mask logits [K, T, h, w] at their own
    (mask) resolution, weighted by the object scores [K, T]."""
    probabilities = masks.float().sigmoid().flatten(2)
    keys = instance_keys(probabilities * weights[:, :, None].float(), probabilities > MASK_THRESHOLD, ids)
    return keys.view(len(masks), *masks.shape[-2:])


def instance_keys(weighted: torch.Tensor, covered: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Per pixel, the instance whose mask covers it with the highest weighted
    probability (sigmoid(mask) * object score), as one sortable int64 key:
    the float32 bits of that value (positive floats sort as their bits)
    shifted left 16, or'ed with the instance's id (1 ... INSTANCE_LIMIT;
    0 for none). ``weighted``/``covered`` [K, T, P], ``ids`` [K, T] (0 for
    an instance not kept). Returns [K, P]; a max over keys picks the
    strongest instance, so keys merge per class by ``add_class_maxima``."""
    if not ids.shape[1]:
        return torch.zeros(weighted.shape[0], weighted.shape[2], dtype=torch.int64, device=weighted.device)
    best, arg = torch.where(covered, weighted, 0).max(1)
    key = (best.view(torch.int32).to(torch.int64) << 16) | ids.gather(1, arg)
    return torch.where(best > 0, key, 0)


def pack_instances(labels: torch.Tensor, class_keys: torch.Tensor, class_row: torch.Tensor, count: int,
                   top: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """A frame's instances beside its labels, ready for one fetch.

    ``class_keys`` [R, h, w] holds each scored class's strongest instance
    per pixel (``instance_keys``, at the labels' size or a smaller one,
    read at the nearest pixel); ``class_row`` [C] maps a class to its row
    (-1: no instances, e.g. the background). A pixel belongs to the
    instance of the class that won it there. Instances left without a
    pixel are dropped; the others are numbered 1 ... n in id order.

    Returns (labels | index << 16 as int32 [H, W]; top [H * W] followed by
    the boxes [count, 4]: x0, y0, x1, y1 with x1/y1 exclusive, inf for a
    dropped instance), all on the device.
    """
    height, width = labels.shape
    rows = class_row[labels]
    small_h, small_w = class_keys.shape[-2:]
    ys = torch.arange(height, device=labels.device) * small_h // height
    xs = torch.arange(width, device=labels.device) * small_w // width
    key = class_keys[rows.clamp_min(0), ys[:, None], xs[None, :]]
    ident = torch.where(rows >= 0, key & 0xFFFF, 0).flatten()
    coords = torch.stack(torch.meshgrid(torch.arange(width, device=labels.device, dtype=torch.float32),
                                        torch.arange(height, device=labels.device, dtype=torch.float32),
                                        indexing="xy")).flatten(1)                    # [2, H * W]: x, y
    extent = torch.full((4, count + 1), math.inf, dtype=torch.float32, device=labels.device)
    extent.scatter_reduce_(1, ident.expand(4, -1), torch.cat([coords, -1 - coords]), "amin")
    present = torch.isfinite(extent[0])
    present[0] = False
    index = torch.cumsum(present, 0) * present
    packed = labels.to(torch.int32) | (index[ident].view(height, width).to(torch.int32) << 16)
    boxes = torch.cat([extent[:2], -extent[2:]]).t()[1:]                              # [count, 4]
    return packed, torch.cat([top.flatten().float(), boxes.flatten()])


def exact_query_scores(g: "Grounding", confidence: float, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-query score maps at the image size, as the method states them,
    from a grounding with every object query's mask (``fuse_at_image``).
    Reads how many instances the prompts keep at most (one value; a frame
    of ``ActiveSAM`` gets it with the others it fetches).
    Returns (scores [K, H, W], presence [K])."""
    presence, objects = object_scores(g)
    kept = int((objects > confidence).sum(1).max()) if objects.numel() else 0
    index, weights = top_instances(objects, confidence, kept)
    masks = g.pred_masks.gather(1, index[:, :, None, None].expand(-1, -1, *g.pred_masks.shape[-2:]))
    return fuse_at_image(masks, weights, g.semantic_seg, presence, height, width), presence


def class_rows(query_class: Sequence[int]) -> Tuple[List[int], List[int]]:
    """(the classes of ``query_class`` in index order, each query's row among them)."""
    classes = sorted(set(query_class))
    row = {c: i for i, c in enumerate(classes)}
    return classes, [row[c] for c in query_class]


def add_class_maxima(out: torch.Tensor, rows: torch.Tensor, query_scores: torch.Tensor) -> torch.Tensor:
    """``out[rows[i]] = max(out[rows[i]], query_scores[i])`` for every i, in place."""
    source = query_scores.to(out.dtype)
    index = rows.view(-1, *([1] * (source.dim() - 1))).expand_as(source)
    return out.scatter_reduce_(0, index, source, "amax")


def class_maxima(query_scores: torch.Tensor, query_class: Sequence[int]) -> Tuple[torch.Tensor, List[int]]:
    """Max over each class's queries. Returns (scores [A, ...], the A classes
    in index order) for the classes that have at least one scored query."""
    classes, rows = class_rows(query_class)
    out = torch.zeros((len(classes),) + tuple(query_scores.shape[1:]), dtype=query_scores.dtype,
                      device=query_scores.device)
    index = torch.as_tensor(rows, dtype=torch.long, device=query_scores.device)
    return add_class_maxima(out, index, query_scores), classes


def label_dtype(num_classes: int) -> torch.dtype:
    """The smallest unsigned type that holds every class index of a label image."""
    return torch.uint8 if num_classes <= 256 else torch.uint16


def labels_from_scores(
    scores: torch.Tensor,
    classes: Union[Sequence[int], torch.Tensor],
    num_classes: int,
    background_index: Optional[int],
    background_threshold: float,
    exponent: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Argmax labels (vocabulary indices, int64) and the top score, with
    MABC, on the scores' device.

    ``scores`` holds only the scored classes (``classes``, one per row);
    every other class scores 0 everywhere, which this reproduces exactly:
    where no scored class is above 0 the label is class 0 (argmax's first
    index), and the runner-up of a single scored class is 0.
    """
    index = torch.as_tensor(classes, dtype=torch.long, device=scores.device)
    top, arg = scores.max(0)
    labels = torch.where(top > 0, index[arg], 0)
    if background_index is not None and background_threshold > 0 and num_classes >= 2:
        if scores.shape[0] >= 2:
            pair = torch.topk(scores, k=2, dim=0).values
            s1, s2 = pair[0], pair[1]
        else:
            s1, s2 = scores[0], torch.zeros_like(scores[0])
        energy = s1 * (s1 - s2).clamp_min(0).sqrt()
        labels = torch.where(energy < background_threshold ** exponent, background_index, labels)
    return labels, top

