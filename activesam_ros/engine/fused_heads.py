"""Fast mode's segmentation heads: each prompt's score map straight from the
decoder's outputs, without the large intermediate tensors of sam3's heads.

sam3's heads build, per prompt, a pixel embedding P (the pixel decoder over
the backbone's feature maps and the prompt's encoder memory), then the mask
logits of every object query, ``mask_embed(query) . conv1x1(P)``, and a
semantic logit ``conv1x1(P)``. ActiveSAM reads only the masks of the object
queries whose score passes the confidence threshold and fuses them by max
(``scoring.exact_query_scores`` at the image size; here at mask size).

Same sums, less work and memory:
- the 1x1 instance convolution is folded into the query embeddings, so only
  the wanted queries' masks are computed, with the semantic logit, as one
  batched matrix product with P;
- each pixel-decoder stage ``conv3x3(fpn + upsample2x(prev))`` is
  ``conv3x3(fpn)`` once per image (``image_convs``, kept with the encoded
  image for every bucket of prompts) plus, per prompt, one stride-2
  transposed convolution of ``prev`` with a 4x4 kernel (nearest upsampling
  repeats each pixel, so the 3x3 taps merge per output phase): 16 instead of
  36 multiply-adds per output pixel, and no upsampled copy;
- prompts run in chunks whose pixel maps stay small: on CPU a freshly
  mapped 50 MB tensor costs more to fault in than the element-wise op on it
  (on a GPU one chunk holds the whole bucket); every step is batched over
  the prompts of a chunk, with the same number of operations for any number
  of prompts and instances.

Equal to sam3's heads followed by the fusion formula up to float rounding
(tested). Only the released head structure qualifies (``applies``).

Exact mode reads sam3's outputs (mask logits and the semantic logits, fused
at the image size afterwards) computed the same cheaper way (``masks``), for
the object queries that can pass the confidence threshold: at 1008 px the
heads of one prompt cost 143 GFLOP in sam3 (the pixel decoder's 3x3
convolution at 288 x 288 alone 98) and 65 here, plus 122 per image for the
image's own convolutions.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .scoring import MASK_THRESHOLD, instance_keys

# Pixel maps of one chunk stay below this on CPU (see the module docstring):
# 4 prompts of the tiny model at 336 px, 1 of the released model.
CPU_CHUNK_BYTES = 10 * 2**20


def applies(model: torch.nn.Module) -> bool:
    """Whether ``model``'s segmentation head has the structure fused here."""
    head = getattr(model, "segmentation_head", None)
    decoder = getattr(head, "pixel_decoder", None)
    if head is None or decoder is None or getattr(head, "no_dec", True) or getattr(head, "aux_masks", True):
        return False
    convs_ok = all(
        conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1)
        and conv.dilation == (1, 1) and conv.groups == 1
        for conv in decoder.conv_layers
    )
    return (
        convs_ok
        and decoder.interpolation_mode == "nearest"
        and getattr(head, "use_encoder_inputs", False)
        and head.instance_seg_head.kernel_size == (1, 1)
        and head.semantic_seg_head.kernel_size == (1, 1)
    )


def upsampling_kernel(weight: torch.Tensor) -> torch.Tensor:
    """The transposed-convolution kernel (stride 2, padding 1, 4x4) equal to
    a 3x3 convolution (padding 1) of the 2x nearest-upsampled input.

    Per axis, output 2i reads input i-1 through tap 0 and input i through
    taps 1 and 2; output 2i+1 reads input i through taps 0 and 1 and input
    i+1 through tap 2. A transposed convolution's index k = y + 1 - 2i maps
    these to k = 3, 1 (even outputs) and 2, 0 (odd outputs).
    """
    def merge(w: torch.Tensor, dim: int) -> torch.Tensor:
        t = [w.select(dim, i) for i in range(3)]
        return torch.stack([t[2], t[1] + t[2], t[0] + t[1], t[0]], dim=dim)

    return merge(merge(weight, 2), 3).transpose(0, 1).contiguous()


class FusedHeads:
    """Score maps of K prompts on one image, for one model's head (the
    merged upsampling kernels are derived from its weights when built)."""

    def __init__(self, model: torch.nn.Module):
        if not applies(model):
            raise ValueError("this model's segmentation head does not have the released SAM 3 structure")
        head = model.segmentation_head
        self.head = head
        decoder = head.pixel_decoder
        self.stages = [
            (decoder.conv_layers[0 if decoder.shared_conv else i], decoder.norms[0 if decoder.shared_conv else i])
            for i in range(len(decoder.conv_layers))
        ]
        with torch.no_grad():
            self.up_kernels = [upsampling_kernel(conv.weight) for conv, _ in self.stages]
            inst = head.instance_seg_head
            self.inst_weight = inst.weight[:, :, 0, 0]                 # [C_out, C_in]
            self.inst_bias = inst.bias
            self.sem_weight = head.semantic_seg_head.weight[0, :, 0, 0]  # [C_in]
            self.sem_bias = head.semantic_seg_head.bias[0]

    @staticmethod
    def chunk_size(k: int, channels: int, height: int, width: int, device: torch.device) -> int:
        """Prompts per chunk: the whole bucket off CPU (see CPU_CHUNK_BYTES)."""
        if device.type != "cpu":
            return k
        per_prompt = channels * height * width * 4
        return max(1, min(k, CPU_CHUNK_BYTES // per_prompt))

    def image_convs(self, backbone_fpn: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """The image's own convolutions of the finer levels (with their bias):
        the same for every prompt, so computed once per image."""
        return [conv(level[:1]) for (conv, _), level in zip(self.stages, list(backbone_fpn)[:-1][::-1])]

    def __call__(
        self,
        backbone_fpn: Sequence[torch.Tensor],
        memory: torch.Tensor,        # [L, K, C] encoder memory (image tokens first)
        prompt: torch.Tensor,        # [S, K, C]
        prompt_mask: torch.Tensor,   # [K, S], True = padding
        queries: torch.Tensor,       # [K, Q, C] last decoder layer's object queries
        index: torch.Tensor,         # [K, T] object queries that may be kept (``scoring.top_instances``)
        weight: torch.Tensor,        # [K, T] their object scores, 0 where not kept
        presence: torch.Tensor,      # [K]
        images: Optional[List[torch.Tensor]] = None,  # ``image_convs``, if already computed
        ids: Optional[torch.Tensor] = None,           # [K, T] instance ids (0: not kept), for ``instance_keys``
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Fused score maps [K, h, w] at mask resolution:
        max(max over kept instances of sigmoid(mask) * o, sigmoid(semantic)) * presence;
        and, given ``ids``, the instances' ``scoring.instance_keys`` [K, h, w]."""
        grid, images, rows, bias = self._prepare(backbone_fpn, memory, prompt, prompt_mask, queries, images)
        k, t = index.shape
        channels = rows.shape[-1]
        rows = torch.cat([rows.gather(1, index[..., None].expand(-1, -1, channels)),
                          self.sem_weight.to(rows.dtype).expand(k, 1, channels)], dim=1)   # [K, T + 1, C]
        bias = torch.cat([bias.gather(1, index), self.sem_bias.to(bias.dtype).expand(k, 1)], dim=1)
        height, width = backbone_fpn[0].shape[-2:]
        out = torch.empty(k, height, width, dtype=torch.float32, device=memory.device)
        keys = None
        if ids is not None:
            keys = torch.zeros(k, height, width, dtype=torch.int64, device=memory.device)
        for part, pixels in self._chunks(grid, images, height, width):
            flat = self._flat(pixels)                                                      # [n, hw, C]
            logits = torch.baddbmm(bias[part, None, :], flat, rows[part].transpose(1, 2)).float().sigmoid_()
            fused = logits[..., t]
            if t:
                weighted = logits[..., :t] * weight[part, None, :].float()
                fused = torch.maximum(weighted.amax(-1), fused)
                if keys is not None:
                    covered = logits[..., :t] > MASK_THRESHOLD
                    found = instance_keys(weighted.transpose(1, 2), covered.transpose(1, 2), ids[part])
                    keys[part] = found.view(-1, height, width)
            out[part] = (fused * presence[part, None].float()).view(-1, height, width)
        return out, keys

    def masks(
        self,
        backbone_fpn: Sequence[torch.Tensor],
        memory: torch.Tensor,        # [L, K, C] encoder memory (image tokens first)
        prompt: torch.Tensor,        # [S, K, C]
        prompt_mask: torch.Tensor,   # [K, S], True = padding
        queries: torch.Tensor,       # [K, Q, C] last decoder layer's object queries
        images: Optional[List[torch.Tensor]] = None,  # ``image_convs``, if already computed
        index: Optional[torch.Tensor] = None,         # [K, T] the object queries wanted (None: all Q)
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """sam3's head outputs for K prompts, computed the cheaper way:
        mask logits [K, T, h, w] of the object queries at ``index`` (every
        one: what ``pred_masks`` holds) and semantic logits [K, 1, h, w]
        (``semantic_seg``)."""
        grid, images, rows, bias = self._prepare(backbone_fpn, memory, prompt, prompt_mask, queries, images)
        if index is not None:
            rows = rows.gather(1, index[..., None].expand(-1, -1, rows.shape[-1]))
            bias = bias.gather(1, index)
        k, t = rows.shape[:2]
        height, width = backbone_fpn[0].shape[-2:]
        masks = torch.empty(k, t, height, width, dtype=rows.dtype, device=memory.device)
        semantic = torch.empty(k, 1, height, width, dtype=rows.dtype, device=memory.device)
        sem_weight = self.sem_weight.to(rows.dtype)[:, None]  # a matrix: flop counters skip matrix-vector products
        for part, pixels in self._chunks(grid, images, height, width):
            flat = self._flat(pixels)
            logits = torch.baddbmm(bias[part, :, None], rows[part], flat.transpose(1, 2))
            masks[part] = logits.view(len(flat), t, height, width)
            semantic[part, 0] = (flat @ sem_weight + self.sem_bias.to(flat.dtype)).view(-1, height, width)
        return masks, semantic

    @staticmethod
    def _flat(pixels: torch.Tensor) -> torch.Tensor:
        """[n, C, h, w] channels-last pixel embeddings as [n, h * w, C] (a view)."""
        n, channels, height, width = pixels.shape
        return pixels.permute(0, 2, 3, 1).reshape(n, height * width, channels)

    def _chunks(self, grid: torch.Tensor, images: List[torch.Tensor], height: int,
                width: int) -> Iterator[Tuple[slice, torch.Tensor]]:
        """The pixel embeddings [n, C, height, width] of consecutive chunks
        of prompts (``chunk_size``), with the prompts' slice."""
        k, channels = grid.shape[:2]
        step = self.chunk_size(k, channels, height, width, grid.device)
        for start in range(0, k, step):
            part = slice(start, min(k, start + step))
            yield part, self._pixel_embedding(grid[part], images)

    def _prepare(self, backbone_fpn, memory, prompt, prompt_mask, queries, images=None):
        """What every prompt's head reads: the encoder memory's image grid
        after the cross-attention to the prompt [K, C, h0, w0], the image's
        own convolutions of the finer levels (``image_convs``), and the
        instance convolution folded into the queries (rows [K, Q, C], biases [K, Q])."""
        head = self.head
        if head.cross_attend_prompt is not None:
            attended = head.cross_attend_prompt(
                query=head.cross_attn_norm(memory), key=prompt, value=prompt, key_padding_mask=prompt_mask,
            )[0]
            memory = attended + memory
        top = backbone_fpn[-1]
        k, channels = memory.shape[1], memory.shape[2]
        grid = memory.permute(1, 2, 0)[..., : top.shape[-2] * top.shape[-1]].reshape(k, channels, *top.shape[-2:])
        if images is None:
            images = self.image_convs(backbone_fpn)
        embed = head.mask_predictor.mask_embed(queries)                            # [K, Q, C]
        inst_rows = embed @ self.inst_weight.to(embed.dtype)                      # [K, Q, C_in]
        inst_bias = embed @ self.inst_bias.to(embed.dtype)                        # [K, Q]
        return grid, images, inst_rows, inst_bias

    def _pixel_embedding(self, prev: torch.Tensor, images: List[torch.Tensor]) -> torch.Tensor:
        """sam3's pixel decoder for a chunk of prompts, channels-last."""
        prev = prev.contiguous(memory_format=torch.channels_last)
        for (conv, norm), kernel, image in zip(self.stages, self.up_kernels, images):
            # ``image`` is conv(fpn) with the bias; the prompt's part adds none.
            if tuple(image.shape[-2:]) == (2 * prev.shape[-2], 2 * prev.shape[-1]):
                x = F.conv_transpose2d(prev, kernel.to(prev.dtype), stride=2, padding=1)
            else:  # not an exact doubling: upsample, then convolve
                upsampled = F.interpolate(prev, size=image.shape[-2:], mode="nearest")
                x = F.conv2d(upsampled, conv.weight.to(prev.dtype), padding=1)
            x += image
            x = F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
            prev = x.relu_()
        return prev
