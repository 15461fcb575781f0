"""Prompt-independent work of a grounding forward, done once per image.

SAM 3 grounds K prompts on one image as a batch of K copies of the image.
Two parts of its encoding do not depend on the prompt: the geometry
encoding of the (empty) dummy prompt and the first encoder layer's
self-attention over the image tokens (text enters the encoder only through
the cross attention that follows it). The engine computes them for one copy
and broadcasts them to the K prompts; the results equal the batched
forward's (tested to float rounding). The heads' image-only work is shared
in ``fused_heads``.

Only the structure of the released model is supported (pre-norm encoder
layers, one feature level, no pooled-text fusion); ``supported`` says
whether a model qualifies, and the caller falls back to sam3's own forward.
"""

from __future__ import annotations

from typing import Dict, Tuple

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


def encode_prompt(view, backbone_out: Dict, find, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Text tokens of each prompt followed by the shared geometry tokens."""
    text = backbone_out["language_features"][:, find.text_ids]
    text_mask = backbone_out["language_mask"][find.text_ids]
    _, feats, pos, sizes = view._get_img_feats(backbone_out, find.img_ids[:1])
    geo, geo_mask = view.geometry_encoder(
        geo_prompt=view._get_dummy_prompt(num_prompts=1), img_feats=feats, img_sizes=sizes, img_pos_embeds=pos,
    )
    prompt = torch.cat([text, geo.expand(-1, k, -1).to(text.dtype)], dim=0)
    prompt_mask = torch.cat([text_mask, geo_mask.expand(k, -1)], dim=1)
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


def run_encoder(view, backbone_out: Dict, find, prompt: torch.Tensor, prompt_mask: torch.Tensor) -> Dict:
    """The fusion encoder for K prompts with its first self-attention shared;
    returns the ``encoder_out`` dict sam3's decoder and heads expect."""
    k = prompt.shape[1]
    encoder = view.transformer.encoder
    _, feats, pos, sizes = view._get_img_feats(backbone_out, find.img_ids[:1])
    (h, w), = sizes
    src = [feats[0].reshape(h, w, 1, -1).permute(2, 3, 0, 1)]
    src_pos = [pos[0].reshape(h, w, 1, -1).permute(2, 3, 0, 1)]
    tokens, _, token_pos, level_start, ratios, shapes = encoder._prepare_multilevel_features(src, [None], src_pos)
    first = encoder.layers[0]
    normed = first.norm1(tokens)
    query = normed + token_pos if first.pos_enc_at_attn else normed
    tokens = tokens + first.dropout1(first.self_attn(query, query, value=normed, attn_mask=None, key_padding_mask=None)[0])
    memory = prompt.transpose(0, 1)
    token_pos = token_pos.expand(k, -1, -1)
    out = _rest_of_layer(first, tokens.expand(k, -1, -1), token_pos, memory, prompt_mask)
    for layer in encoder.layers[1:]:
        out = layer(tgt=out, memory=memory, memory_key_padding_mask=prompt_mask, query_pos=token_pos,
                    tgt_key_padding_mask=None)
    return {
        "encoder_hidden_states": out.transpose(0, 1),
        "pos_embed": token_pos.transpose(0, 1),
        "padding_mask": None,
        "level_start_index": level_start,
        "spatial_shapes": shapes,
        "valid_ratios": ratios.expand(k, -1, -1),
        "vis_feat_sizes": sizes,
        "prompt_before_enc": prompt,
        "prompt_after_enc": prompt,
        "prompt_mask": prompt_mask,
    }

