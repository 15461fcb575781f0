"""Prompt-independent work of a grounding forward, done once per image.

SAM 3 grounds K prompts on one image as a batch of K copies of the image.
Two parts of its encoding do not depend on the prompt: the geometry
encoding of the (empty) dummy prompt and the first encoder layer's
self-attention over the image tokens (text enters the encoder only through
the cross attention that follows it). The engine computes them once per
encoded image (``image_part``, kept with the image, so every bucket of
prompts reuses them) and broadcasts them to the K prompts; the results equal
the batched forward's (tested to float rounding). The heads' image-only work
is shared in ``fused_heads``.

The feature map's size is handed to sam3's decoder as a host array
(``spatial_shapes``): the decoder compares it with its cached size and reads
it in every layer, which on a device tensor would make the host wait for
the device each time.

Only the structure of the released model is supported (pre-norm encoder
layers, one feature level, no pooled-text fusion); ``supported`` says
whether a model qualifies, and the caller falls back to sam3's own forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import torch


def supported(model: torch.nn.Module) -> bool:
    encoder = model.transformer.encoder
    layer = encoder.layers[0]
    return (
        getattr(layer, "pre_norm", False)
        and not layer.pos_enc_at_cross_attn_keys  # sam3 passes no key positions
        and encoder.num_feature_levels == 1
        and not getattr(encoder, "add_pooled_text_to_img_feat", True)
        and model.num_feature_levels == 1
    )


def host_shapes(sizes: List[Tuple[int, int]]) -> np.ndarray:
    """sam3's ``spatial_shapes`` ([levels, 2] (h, w)) on the host."""
    return np.asarray([[int(h), int(w)] for h, w in sizes], dtype=np.int64)


@dataclass
class ImagePart:
    """What every prompt's forward on one image shares."""

    geometry: torch.Tensor        # [G, 1, C] tokens of the empty geometry prompt
    geometry_mask: torch.Tensor   # [1, G]
    tokens: torch.Tensor          # [1, L, C] image tokens after the first self-attention
    token_pos: torch.Tensor       # [1, L, C] their position (and level) embedding
    sizes: List[Tuple[int, int]]  # sam3's vis_feat_sizes
    level_start: torch.Tensor     # [1]
    valid_ratios: torch.Tensor    # [1, 1, 2]


def image_part(view, backbone_out: Dict) -> ImagePart:
    """The prompt-independent encoding of one image (once per image)."""
    _, feats, pos, sizes = view._get_img_feats(backbone_out, slice(0, 1))
    geo, geo_mask = view.geometry_encoder(
        geo_prompt=view._get_dummy_prompt(num_prompts=1), img_feats=feats, img_sizes=sizes, img_pos_embeds=pos,
    )
    encoder = view.transformer.encoder
    tokens = feats[0].transpose(0, 1)        # [1, L, C], row-major over the grid as sam3 flattens it
    token_pos = pos[0].transpose(0, 1)
    if encoder.level_embed is not None:
        token_pos = token_pos + encoder.level_embed[0].view(1, 1, -1)
    first = encoder.layers[0]
    normed = first.norm1(tokens)
    query = normed + token_pos if first.pos_enc_at_attn else normed
    attended = first.self_attn(query, query, value=normed, attn_mask=None, key_padding_mask=None)[0]
    tokens = tokens + first.dropout1(attended)
    device = tokens.device
    return ImagePart(
        geometry=geo, geometry_mask=geo_mask, tokens=tokens, token_pos=token_pos,
        sizes=[(int(h), int(w)) for h, w in sizes],
        level_start=torch.zeros(1, dtype=torch.long, device=device),
        valid_ratios=torch.ones(1, 1, 2, dtype=torch.float32, device=device),
    )


def encode_prompt(part: ImagePart, text: torch.Tensor, text_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Text tokens of each of the K prompts ([S, K, C], mask [K, S]) followed
    by the shared geometry tokens."""
    k = text.shape[1]
    prompt = torch.cat([text, part.geometry.expand(-1, k, -1).to(text.dtype)], dim=0)
    prompt_mask = torch.cat([text_mask, part.geometry_mask.expand(k, -1)], dim=1)
    return prompt, prompt_mask


def _rest_of_layer(layer, tgt: torch.Tensor, pos: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
    """A pre-norm encoder layer after its self-attention: cross-attention to
    the prompt tokens, then the feed-forward block."""
    normed = layer.norm2(tgt)
    attended = layer.cross_attn_image(
        query=normed + pos if layer.pos_enc_at_cross_attn_queries else normed,
        key=memory, value=memory, attn_mask=None, key_padding_mask=memory_mask,
    )[0]
    tgt = tgt + layer.dropout2(attended)
    normed = layer.norm3(tgt)
    return tgt + layer.dropout3(layer.linear2(layer.dropout(layer.activation(layer.linear1(normed)))))


def run_encoder(view, part: ImagePart, prompt: torch.Tensor, prompt_mask: torch.Tensor) -> Dict:
    """The fusion encoder for K prompts with its first self-attention shared;
    returns the ``encoder_out`` dict sam3's decoder and heads expect."""
    k = prompt.shape[1]
    encoder = view.transformer.encoder
    memory = prompt.transpose(0, 1)
    token_pos = part.token_pos.expand(k, -1, -1)
    out = _rest_of_layer(encoder.layers[0], part.tokens.expand(k, -1, -1), token_pos, memory, prompt_mask)
    for layer in encoder.layers[1:]:
        out = layer(tgt=out, memory=memory, memory_key_padding_mask=prompt_mask, query_pos=token_pos,
                    tgt_key_padding_mask=None)
    return {
        "encoder_hidden_states": out.transpose(0, 1),
        "pos_embed": token_pos.transpose(0, 1),
        "padding_mask": None,
        "level_start_index": part.level_start,
        "spatial_shapes": host_shapes(part.sizes),
        "valid_ratios": part.valid_ratios.expand(k, -1, -1),
        "vis_feat_sizes": part.sizes,
        "prompt_before_enc": prompt,
        "prompt_after_enc": prompt,
        "prompt_mask": prompt_mask,
    }
