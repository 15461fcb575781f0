"""SAM 3's weights in the Hugging Face transformers layout (``Sam3Model``,
the hub's ``model.safetensors``), renamed to sam3's image model.

The two layouts hold the same network with different names and a few
different tensor shapes:

- attention: transformers keeps ``q_proj``, ``k_proj``, ``v_proj`` apart;
  sam3 fuses them (``in_proj_weight``, the ViT's ``qkv``) in q, k, v order;
- the text encoder's ``text_projection`` is a ``Linear`` weight there and
  the transposed matrix here;
- the ViT's position embedding: sam3 keeps a first row for the class token
  and drops it before use; transformers left it out. It is filled with
  zeros (never read);
- sam3's geometry encoder also has three projections for point prompts
  (``points_direct_project``, ``points_pool_project``,
  ``points_pos_enc_project``); transformers' encoder takes boxes only, so
  they have no source. The engine sends text prompts only, which never
  reach them: they are filled with NaN, so any use would show as
  non-finite scores (``pipeline.NonFiniteScores``) instead of silently
  wrong labels.

A video checkpoint (``Sam3VideoModel``: ``detector_model.`` plus the
tracker) loads too: the tracker's parts are skipped by name. A name that
matches no rule is refused, naming it.

Reading is as safe as ``torch.load(weights_only=True)``: a safetensors file
is a header and raw tensor bytes, with no code to run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Tuple

import torch

from .model import CheckpointWeights, ModelLoadError, skipped_name

DETECTOR_PREFIX = "detector_model."
"""Where a transformers video checkpoint keeps ``Sam3Model``'s weights."""

UNUSED_WEIGHTS = {
    "tracker_model.": "the video tracker",
    "tracker_neck.": "the interactive (point and box) predictor's neck",
}
"""What transformers' video model holds beyond ``Sam3Model`` (its
``_keys_to_ignore_on_load_unexpected``): skipped and counted."""

NO_SOURCE = ("geometry_encoder.points_direct_project", "geometry_encoder.points_pool_project",
             "geometry_encoder.points_pos_enc_project")
"""sam3 modules transformers' layout has no weights for (point prompts; see the module doc)."""

_ATTENTION = r"(?P<part>q|k|v)_proj\.(?P<kind>weight|bias)"

Rule = Tuple["re.Pattern[str]", Callable[["re.Match[str]"], str]]


def _rule(pattern: str, template: str) -> Rule:
    """``template`` formatted with the match's groups (``{1}``, ``{kind}``,
    and ``{n-1}``: the group named ``n`` minus one)."""
    compiled = re.compile(pattern + r"$")

    def target(m: "re.Match[str]") -> str:
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
        if "n" in groups:
            groups["n-1"] = str(int(groups["n"]) - 1)
        return template.format(*m.groups(), **groups)

    return compiled, target


def _attention(hf: str, sam3: str, out: str = "out_proj") -> List[Rule]:
    """An attention module: q/k/v fused into ``in_proj_*``, the output projection renamed."""
    return [_rule(hf + r"\." + _ATTENTION, sam3 + ".in_proj_{kind}"),
            _rule(hf + r"\.o_proj\.(weight|bias)", sam3 + f".{out}.{{{hf.count('(')}}}")]


def _encoder_layer(hf: str, sam3: str, cross: str) -> List[Rule]:
    """A pre-norm encoder layer (self-attention, cross-attention, MLP)."""
    n = hf.count("(")
    return (_attention(hf + r"\.self_attn", sam3 + ".self_attn")
            + _attention(hf + r"\.cross_attn", sam3 + f".{cross}")
            + [_rule(hf + r"\.layer_norm(\d)\.(weight|bias)", sam3 + f".norm{{{n}}}.{{{n + 1}}}"),
               _rule(hf + r"\.mlp\.fc(\d)\.(weight|bias)", sam3 + f".linear{{{n}}}.{{{n + 1}}}")])


VIT, TEXT = "backbone.vision_backbone", "backbone.language_backbone"

RULES: List[Rule] = [
    # Vision: ViT and neck.
    _rule(r"vision_encoder\.backbone\.embeddings\.patch_embeddings\.projection\.weight", VIT + ".trunk.patch_embed.proj.weight"),
    _rule(r"vision_encoder\.backbone\.embeddings\.position_embeddings", VIT + ".trunk.pos_embed"),
    _rule(r"vision_encoder\.backbone\.layer_norm\.(weight|bias)", VIT + ".trunk.ln_pre.{0}"),
    _rule(r"vision_encoder\.backbone\.layers\.(\d+)\.attention\." + _ATTENTION, VIT + ".trunk.blocks.{0}.attn.qkv.{kind}"),
    _rule(r"vision_encoder\.backbone\.layers\.(\d+)\.attention\.o_proj\.(weight|bias)", VIT + ".trunk.blocks.{0}.attn.proj.{1}"),
    _rule(r"vision_encoder\.backbone\.layers\.(\d+)\.layer_norm(\d)\.(weight|bias)", VIT + ".trunk.blocks.{0}.norm{1}.{2}"),
    _rule(r"vision_encoder\.backbone\.layers\.(\d+)\.mlp\.(fc\d)\.(weight|bias)", VIT + ".trunk.blocks.{0}.mlp.{1}.{2}"),
    _rule(r"vision_encoder\.neck\.fpn_layers\.(\d+)\.proj1\.(weight|bias)", VIT + ".convs.{0}.conv_1x1.{1}"),
    _rule(r"vision_encoder\.neck\.fpn_layers\.(\d+)\.proj2\.(weight|bias)", VIT + ".convs.{0}.conv_3x3.{1}"),
    # scale_layers: (0) of a 2x level is dconv_2x2; (0, GELU, 2) of a 4x level are dconv_2x2_0 and _1 (see _neck).
    _rule(r"vision_encoder\.neck\.fpn_layers\.(\d+)\.scale_layers\.(\d+)\.(weight|bias)", VIT + ".convs.{0}.scale{1}.{2}"),
    # Text encoder (CLIP's names) and the resizer to the detector's width.
    _rule(r"text_encoder\.text_model\.embeddings\.token_embedding\.weight", TEXT + ".encoder.token_embedding.weight"),
    _rule(r"text_encoder\.text_model\.embeddings\.position_embedding\.weight", TEXT + ".encoder.positional_embedding"),
    _rule(r"text_encoder\.text_model\.encoder\.layers\.(\d+)\.self_attn\." + _ATTENTION,
          TEXT + ".encoder.transformer.resblocks.{0}.attn.in_proj_{kind}"),
    _rule(r"text_encoder\.text_model\.encoder\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)",
          TEXT + ".encoder.transformer.resblocks.{0}.attn.out_proj.{1}"),
    _rule(r"text_encoder\.text_model\.encoder\.layers\.(\d+)\.layer_norm(\d)\.(weight|bias)",
          TEXT + ".encoder.transformer.resblocks.{0}.ln_{1}.{2}"),
    _rule(r"text_encoder\.text_model\.encoder\.layers\.(\d+)\.mlp\.fc1\.(weight|bias)", TEXT + ".encoder.transformer.resblocks.{0}.mlp.c_fc.{1}"),
    _rule(r"text_encoder\.text_model\.encoder\.layers\.(\d+)\.mlp\.fc2\.(weight|bias)", TEXT + ".encoder.transformer.resblocks.{0}.mlp.c_proj.{1}"),
    _rule(r"text_encoder\.text_model\.final_layer_norm\.(weight|bias)", TEXT + ".encoder.ln_final.{0}"),
    _rule(r"text_encoder\.text_projection\.weight", TEXT + ".encoder.text_projection"),
    _rule(r"text_projection\.(weight|bias)", TEXT + ".resizer.{0}"),
    # Geometry (prompt) encoder.
    _rule(r"geometry_encoder\.(boxes_direct_project|boxes_pool_project|boxes_pos_enc_project|final_proj)\.(weight|bias)",
          "geometry_encoder.{0}.{1}"),
    _rule(r"geometry_encoder\.(cls_embed|label_embed)\.weight", "geometry_encoder.{0}.weight"),
    _rule(r"geometry_encoder\.vision_layer_norm\.(weight|bias)", "geometry_encoder.img_pre_norm.{0}"),
    _rule(r"geometry_encoder\.prompt_layer_norm\.(weight|bias)", "geometry_encoder.norm.{0}"),
    _rule(r"geometry_encoder\.output_layer_norm\.(weight|bias)", "geometry_encoder.encode_norm.{0}"),
    *_encoder_layer(r"geometry_encoder\.layers\.(\d+)", "geometry_encoder.encode.{0}", "cross_attn_image"),
    # Fusion encoder and decoder.
    *_encoder_layer(r"detr_encoder\.layers\.(\d+)", "transformer.encoder.layers.{0}", "cross_attn_image"),
    *_attention(r"detr_decoder\.layers\.(\d+)\.self_attn", "transformer.decoder.layers.{0}.self_attn"),
    *_attention(r"detr_decoder\.layers\.(\d+)\.text_cross_attn", "transformer.decoder.layers.{0}.ca_text"),
    *_attention(r"detr_decoder\.layers\.(\d+)\.vision_cross_attn", "transformer.decoder.layers.{0}.cross_attn"),
    _rule(r"detr_decoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", "transformer.decoder.layers.{0}.norm2.{1}"),
    _rule(r"detr_decoder\.layers\.(\d+)\.text_cross_attn_layer_norm\.(weight|bias)", "transformer.decoder.layers.{0}.catext_norm.{1}"),
    _rule(r"detr_decoder\.layers\.(\d+)\.vision_cross_attn_layer_norm\.(weight|bias)", "transformer.decoder.layers.{0}.norm1.{1}"),
    _rule(r"detr_decoder\.layers\.(\d+)\.mlp_layer_norm\.(weight|bias)", "transformer.decoder.layers.{0}.norm3.{1}"),
    _rule(r"detr_decoder\.layers\.(\d+)\.mlp\.fc(\d)\.(weight|bias)", "transformer.decoder.layers.{0}.linear{1}.{2}"),
    _rule(r"detr_decoder\.box_head\.layer(?P<n>\d)\.(weight|bias)", "transformer.decoder.bbox_embed.layers.{n-1}.{1}"),
    _rule(r"detr_decoder\.box_rpb_embed_(x|y)\.layer(?P<n>\d)\.(weight|bias)", "transformer.decoder.boxRPB_embed_{0}.layers.{n-1}.{2}"),
    _rule(r"detr_decoder\.presence_head\.layer(?P<n>\d)\.(weight|bias)", "transformer.decoder.presence_token_head.layers.{n-1}.{1}"),
    _rule(r"detr_decoder\.ref_point_head\.layer(?P<n>\d)\.(weight|bias)", "transformer.decoder.ref_point_head.layers.{n-1}.{1}"),
    _rule(r"detr_decoder\.output_layer_norm\.(weight|bias)", "transformer.decoder.norm.{0}"),
    _rule(r"detr_decoder\.presence_layer_norm\.(weight|bias)", "transformer.decoder.presence_token_out_norm.{0}"),
    _rule(r"detr_decoder\.(presence_token|query_embed|reference_points)\.weight", "transformer.decoder.{0}.weight"),
    # Scoring and the segmentation head.
    _rule(r"dot_product_scoring\.query_proj\.(weight|bias)", "dot_prod_scoring.hs_proj.{0}"),
    _rule(r"dot_product_scoring\.text_proj\.(weight|bias)", "dot_prod_scoring.prompt_proj.{0}"),
    _rule(r"dot_product_scoring\.text_mlp\.layer(?P<n>\d)\.(weight|bias)", "dot_prod_scoring.prompt_mlp.layers.{n-1}.{1}"),
    _rule(r"dot_product_scoring\.text_mlp_out_norm\.(weight|bias)", "dot_prod_scoring.prompt_mlp.out_norm.{0}"),
    *_attention(r"mask_decoder\.prompt_cross_attn", "segmentation_head.cross_attend_prompt"),
    _rule(r"mask_decoder\.prompt_cross_attn_norm\.(weight|bias)", "segmentation_head.cross_attn_norm.{0}"),
    _rule(r"mask_decoder\.instance_projection\.(weight|bias)", "segmentation_head.instance_seg_head.{0}"),
    _rule(r"mask_decoder\.semantic_projection\.(weight|bias)", "segmentation_head.semantic_seg_head.{0}"),
    _rule(r"mask_decoder\.mask_embedder\.layers\.(\d+)\.(weight|bias)", "segmentation_head.mask_predictor.mask_embed.layers.{0}.{1}"),
    _rule(r"mask_decoder\.pixel_decoder\.(conv_layers|norms)\.(\d+)\.(weight|bias)", "segmentation_head.pixel_decoder.{0}.{1}.{2}"),
]
"""transformers' name -> sam3's, one rule per kind of tensor."""


def _target(name: str) -> Tuple[str, str]:
    """(sam3 name, q/k/v part or "") of a transformers name; "" if no rule matches."""
    for pattern, target in RULES:
        m = pattern.match(name)
        if m is not None:
            return target(m), m.groupdict().get("part") or ""
    return "", ""


def _neck(name: str, four_x_levels: set) -> str:
    """scale_layers' index -> sam3's name for that level's transposed convolution."""
    m = re.match(r"(.*\.convs\.(\d+))\.scale(\d+)\.(weight|bias)$", name)
    if m is None:
        return name
    level, index = int(m.group(2)), int(m.group(3))
    conv = {0: "dconv_2x2_0", 2: "dconv_2x2_1"}.get(index) if level in four_x_levels else \
        {0: "dconv_2x2"}.get(index)
    return f"{m.group(1)}.{conv}.{m.group(4)}" if conv else ""


def to_sam3(state: Mapping[str, torch.Tensor], source: str) -> CheckpointWeights:
    """transformers' ``Sam3Model`` (or video model) state -> sam3's image model's weights."""
    if any(k.startswith(DETECTOR_PREFIX) for k in state):
        state = {k[len(DETECTOR_PREFIX):] if k.startswith(DETECTOR_PREFIX) else k: v for k, v in state.items()}
    skipped = dict.fromkeys(UNUSED_WEIGHTS, 0)
    four_x = {int(m.group(1)) for k in state for m in [re.match(r"vision_encoder\.neck\.fpn_layers\.(\d+)\.scale_layers\.2\.", k)] if m}
    weights: Dict[str, torch.Tensor] = {}
    parts: Dict[str, Dict[str, torch.Tensor]] = {}
    unknown: List[str] = []
    for key, value in state.items():
        prefix = next((p for p in UNUSED_WEIGHTS if key.startswith(p)), None)
        if prefix is not None:
            skipped[prefix] += 1
            continue
        name, part = _target(key)
        name = _neck(name, four_x) if name else name
        if not name:
            unknown.append(key)
        elif part:
            parts.setdefault(name, {})[part] = value
        else:
            weights[name] = value
    if unknown:
        raise ModelLoadError(f"{source} is not SAM 3 in the transformers layout: no sam3 weight for "
                             f"{len(unknown)} of its tensors ({', '.join(sorted(unknown)[:5])})")
    for name, qkv in parts.items():
        if sorted(qkv) != ["k", "q", "v"]:
            raise ModelLoadError(f"{source}: {name} needs q, k and v projections, found {', '.join(sorted(qkv))}")
        weights[name] = torch.cat([qkv["q"], qkv["k"], qkv["v"]], dim=0)
    _reshape(weights, source)
    return CheckpointWeights(weights, {skipped_name(p, what): skipped[p] for p, what in UNUSED_WEIGHTS.items()},
                             layout="transformers")


def _reshape(weights: Dict[str, torch.Tensor], source: str) -> None:
    """The tensors whose shapes differ between the layouts (module doc)."""
    projection = TEXT + ".encoder.text_projection"
    if projection in weights:
        weights[projection] = weights[projection].t()
    position = VIT + ".trunk.pos_embed"
    if position in weights:
        pos = weights[position]
        weights[position] = torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)  # the class token's row
    anchor = weights.get("geometry_encoder.final_proj.weight")
    if anchor is None:
        raise ModelLoadError(f"{source} has no geometry encoder (geometry_encoder.final_proj.weight)")
    width = anchor.shape[0]
    for module, inputs in zip(NO_SOURCE, (2, width, width)):
        weights[f"{module}.weight"] = torch.full((width, inputs), float("nan"), dtype=anchor.dtype, device=anchor.device)
        weights[f"{module}.bias"] = torch.full((width,), float("nan"), dtype=anchor.dtype, device=anchor.device)


def read(path: Path) -> CheckpointWeights:
    """A ``.safetensors`` file in the transformers layout (tensors only)."""
    source = repr(str(path))
    try:
        from safetensors.torch import load_file
    except ImportError as exc:  # pragma: no cover - safetensors is a dependency
        raise ModelLoadError("reading .safetensors files needs the safetensors package") from exc
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise ModelLoadError(f"{source} is not a safetensors file: {exc}") from exc
    return to_sam3(state, source)
