"""SAM 3's touch points: image encoding at any resolution, text grounding
with or without the segmentation heads.

Nothing here patches sam3. A resolution other than the model's own is served
by a *view* of the model: a shallow copy of every module that shares all
parameters but owns the few resolution-dependent tables (the RoPE frequencies
of the global-attention blocks, the decoder's box-bias coordinate cache), so
the preview never mutates state a full-resolution call reads, and calls at
either resolution can run from different threads.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import cpu_shims, fused_heads, shared_encoding

cpu_shims.prepare_sam3_import()

from sam3.model.data_misc import FindStage  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402


def _trunk(model: torch.nn.Module) -> torch.nn.Module:
    return model.backbone.vision_backbone.trunk


def patch_size(model: torch.nn.Module) -> int:
    return int(_trunk(model).patch_embed.proj.kernel_size[0])


def native_resolution(model: torch.nn.Module) -> int:
    """The input size the model's global-attention RoPE tables were built for."""
    grid = max(int(block.attn.input_size[0]) for block in _trunk(model).blocks)
    return grid * patch_size(model)


def _module_view(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` sharing every parameter and buffer tensor, whose
    attribute, buffer and submodule tables are its own."""
    view = copy.copy(module)
    view._parameters = dict(module._parameters)
    view._buffers = dict(module._buffers)
    view._modules = {name: (_module_view(m) if m is not None else None) for name, m in module._modules.items()}
    return view


def _rope_table(attn: torch.nn.Module, side: int) -> torch.Tensor:
    """The RoPE table ``attn`` would have been built with for a side x side grid."""
    scale = attn.rope_pt_size[0] / side if attn.rope_interp else 1.0
    table = attn.compute_cis(end_x=side, end_y=side, scale_pos=scale)
    if attn.cls_token:
        zero = torch.zeros(attn.head_dim // 2, dtype=torch.float32, device=table.device)
        table = torch.cat([torch.polar(torch.ones_like(zero), zero)[None, :], table], dim=0)
    return table.to(attn.freqs_cis.device)


def resolution_view(model: torch.nn.Module, resolution: int) -> torch.nn.Module:
    """``model`` as it would run at ``resolution`` (shares all weights)."""
    native = native_resolution(model)
    step = patch_size(model)
    if resolution == native:
        return model
    if resolution % step:
        raise ValueError(f"resolution {resolution} is not a multiple of the patch size {step}")
    side = resolution // step
    native_side = native // step
    view = _module_view(model)
    for block in _trunk(view).blocks:
        attn = block.attn
        if attn.use_rope and int(attn.input_size[0]) == native_side:
            attn.freqs_cis = _rope_table(attn, side)
    decoder = view.transformer.decoder
    if getattr(decoder, "boxRPB", "none") != "none":
        # Pre-fill the compile-friendly cache for this grid: the dict cache
        # behind it is keyed by tensors and would grow on every call.
        grid = side  # the decoder attends to the patch-grid level
        coords = decoder._get_coords(grid, grid, device=next(model.parameters()).device)
        decoder.compilable_cord_cache = coords
        decoder.compilable_stored_size = (grid, grid)
        decoder.coord_cache = {}
    return view


@dataclass
class EncodedImage:
    """One image encoded at one resolution."""

    backbone_out: Dict[str, object]
    height: int   # original image size
    width: int
    resolution: int


@dataclass
class TextBatch:
    """Text conditioning for K prompts: sequence-first features and mask."""

    features: torch.Tensor  # [seq, K, d]
    mask: torch.Tensor      # [K, seq], True = ignore

    def __len__(self) -> int:
        return int(self.mask.shape[0])


@dataclass
class Grounding:
    """Outputs of one grounding forward for K prompts (sam3's heads).

    Presence and object logits exist for every prompt; mask and semantic
    logits only when the segmentation heads ran.
    """

    presence_logits: torch.Tensor          # [K]
    pred_logits: torch.Tensor              # [K, Q]
    pred_masks: Optional[torch.Tensor]     # [K, Q, h, w] mask logits
    semantic_seg: Optional[torch.Tensor]   # [K, 1, h, w] logits


@dataclass
class QueryScores:
    """Fast mode's outputs for K prompts: every presence, and the fused
    score maps (mask resolution) of the prompts listed in ``scored``."""

    presence: torch.Tensor   # [K] probabilities
    scored: List[int]        # prompts whose presence reached the floor
    maps: torch.Tensor       # [len(scored), h, w]


class _Decoded(NamedTuple):
    """What the heads of one forward read (sam3's names)."""

    view: torch.nn.Module
    backbone_out: Dict[str, Any]
    find: Any                       # sam3's FindStage
    prompt: torch.Tensor            # [S, K, C]
    prompt_mask: torch.Tensor       # [K, S]
    encoder_out: Dict[str, Any]
    out: Dict[str, torch.Tensor]    # decoder outputs (presence, object logits)
    hs: torch.Tensor                # [layers, K, Q, C] object queries


class Grounder:
    """Runs SAM 3 on a device/dtype, at the full or the preview resolution.

    ``ground`` computes sam3's head outputs with ``fused_heads.FusedHeads.masks``
    where the model has the released head structure (the same logits, less
    than half the work); ``reference_heads=True`` runs sam3's own heads.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype,
                 reference_heads: bool = False):
        self.model = model
        self.device = torch.device(device)
        self.dtype = dtype
        self.native = native_resolution(model)
        self.patch = patch_size(model)
        self.reference_heads = reference_heads or not fused_heads.applies(model)
        self._views: Dict[int, torch.nn.Module] = {self.native: model}
        self._fused: Optional[fused_heads.FusedHeads] = None
        self._lock = threading.Lock()

    def _view(self, resolution: int) -> torch.nn.Module:
        """The model at ``resolution``."""
        with self._lock:
            if resolution not in self._views:
                self._views[resolution] = resolution_view(self.model, resolution)
            return self._views[resolution]

    @property
    def fused_heads(self) -> fused_heads.FusedHeads:
        """Fast mode's heads (built on first use; ValueError for a model
        without the released head structure)."""
        with self._lock:
            if self._fused is None:
                self._fused = fused_heads.FusedHeads(self.model)
            return self._fused

    def _autocast(self):
        enabled = self.device.type == "cuda" and self.dtype != torch.float32
        return torch.autocast(device_type=self.device.type, dtype=self.dtype, enabled=enabled)

    def preprocess(self, rgb: np.ndarray, resolution: int) -> torch.Tensor:
        """A plain resize of the whole uint8 image (antialiased, as sam3's own
        processor does), then scaling to [-1, 1]."""
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).to(self.device)
        image = TF.resize(image, [resolution, resolution], antialias=True)
        image = image.to(torch.float32).mul_(1.0 / 255.0)  # as torchvision scales uint8
        return ((image - 0.5) / 0.5).unsqueeze(0)

    @torch.inference_mode()
    def encode_image(self, rgb: np.ndarray, resolution: Optional[int] = None) -> EncodedImage:
        resolution = resolution or self.native
        view = self._view(resolution)
        pixels = self.preprocess(rgb, resolution)
        with cpu_shims.cpu_inference(self.device), self._autocast():
            out = view.backbone.forward_image(pixels)
        return EncodedImage(out, int(rgb.shape[0]), int(rgb.shape[1]), resolution)

    @torch.inference_mode()
    def encode_text(self, strings: Sequence[str]) -> Dict[str, torch.Tensor]:
        with cpu_shims.cpu_inference(self.device), self._autocast():
            return self.model.backbone.forward_text(list(strings), device=self.device)

    def _decode(self, image: EncodedImage, text: TextBatch, share: bool) -> _Decoded:
        """Prompt encoding, fusion encoder and decoder for K prompts (call
        inside the device context). ``share`` computes the prompt-independent
        parts once (``shared_encoding``) where the model's structure allows."""
        view = self._view(image.resolution)
        k = len(text)
        backbone_out = dict(image.backbone_out)
        backbone_out["language_features"] = text.features
        backbone_out["language_mask"] = text.mask
        find = FindStage(
            img_ids=torch.zeros(k, dtype=torch.long, device=self.device),
            text_ids=torch.arange(k, dtype=torch.long, device=self.device),
            input_boxes=None, input_boxes_mask=None, input_boxes_label=None,
            input_points=None, input_points_mask=None,
        )
        if share and shared_encoding.supported(view):
            prompt, prompt_mask = shared_encoding.encode_prompt(view, backbone_out, find, k)
            encoder_out = shared_encoding.run_encoder(view, backbone_out, find, prompt, prompt_mask)
        else:
            geometric = view._get_dummy_prompt(num_prompts=k)
            prompt, prompt_mask, backbone_out = view._encode_prompt(backbone_out, find, geometric)
            backbone_out, encoder_out, _ = view._run_encoder(backbone_out, find, prompt, prompt_mask)
        out: Dict[str, torch.Tensor] = {}
        out, hs = view._run_decoder(
            memory=encoder_out["encoder_hidden_states"], pos_embed=encoder_out["pos_embed"],
            src_mask=encoder_out["padding_mask"], out=out, prompt=prompt,
            prompt_mask=prompt_mask, encoder_out=encoder_out,
        )
        return _Decoded(view, backbone_out, find, prompt, prompt_mask, encoder_out, out, hs)

    @torch.inference_mode()
    def ground(self, image: EncodedImage, text: TextBatch, heads: bool = True, share: bool = False) -> Grounding:
        """One grounding forward for K prompts on one encoded image, as sam3
        runs it (its heads' outputs computed as the class doc says). With
        ``heads=False`` only the decoder runs: presence and object scores
        come before the segmentation heads."""
        k = len(text)
        with cpu_shims.cpu_inference(self.device), self._autocast():
            d = self._decode(image, text, share)
            masks = semantic = None
            if heads and not self.reference_heads:
                masks, semantic = self.fused_heads.masks(
                    d.backbone_out["backbone_fpn"], d.encoder_out["encoder_hidden_states"],
                    d.prompt, d.prompt_mask, d.hs[-1],
                )
            elif heads:
                heads_out: Dict[str, torch.Tensor] = {}
                d.view._run_segmentation_heads(
                    out=heads_out, backbone_out=d.backbone_out, img_ids=d.find.img_ids,
                    vis_feat_sizes=d.encoder_out["vis_feat_sizes"],
                    encoder_hidden_states=d.encoder_out["encoder_hidden_states"],
                    prompt=d.prompt, prompt_mask=d.prompt_mask, hs=d.hs,
                )
                masks, semantic = heads_out["pred_masks"], heads_out["semantic_seg"]
        return Grounding(
            presence_logits=d.out["presence_logit_dec"].float().reshape(k),
            pred_logits=d.out["pred_logits"].float().reshape(k, -1),
            pred_masks=masks,
            semantic_seg=semantic,
        )

    @torch.inference_mode()
    def score(self, image: EncodedImage, text: TextBatch, confidence: float, presence_floor: float) -> QueryScores:
        """Fast mode: one forward for K prompts with the prompt-independent
        work shared, then fused score maps (``fused_heads``) for the prompts
        whose presence reaches ``presence_floor`` (a score never exceeds its
        presence, so the others' maps are below the floor everywhere)."""
        heads = self.fused_heads
        k = len(text)
        with cpu_shims.cpu_inference(self.device), self._autocast():
            d = self._decode(image, text, share=True)
            presence = d.out["presence_logit_dec"].float().reshape(k).sigmoid()
            scored = [int(i) for i in torch.nonzero(presence >= presence_floor).flatten()]
            maps = torch.zeros(0, 0, 0)
            if scored:
                idx = torch.as_tensor(scored, device=presence.device)
                objects = d.out["pred_logits"].float().reshape(k, -1).sigmoid() * presence[:, None]
                maps = heads(
                    d.backbone_out["backbone_fpn"], d.encoder_out["encoder_hidden_states"][:, idx],
                    d.prompt[:, idx], d.prompt_mask[idx], d.hs[-1][idx], objects[idx], presence[idx], confidence,
                )
        return QueryScores(presence=presence.cpu(), scored=scored, maps=maps)


def split_buckets(indices: Sequence[int], size: int) -> List[List[int]]:
    """Contiguous buckets of at most ``size`` items, in order."""
    items = list(indices)
    return [items[i : i + size] for i in range(0, len(items), size)]


def resize_logits(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of [N, C, h, w] logits to the image size (float32)."""
    if x.shape[-2:] == (height, width):
        return x.float()
    return F.interpolate(x.float(), size=(height, width), mode="bilinear", align_corners=False)
