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
  the kept queries' masks are computed, with the semantic logit, as one
  matrix product with P;
- each pixel-decoder stage ``conv3x3(fpn + upsample2x(prev))`` is
  ``conv3x3(fpn)`` once per image plus, per prompt, one stride-2 transposed
  convolution of ``prev`` with a 4x4 kernel (nearest upsampling repeats each
  pixel, so the 3x3 taps merge per output phase): 16 instead of 36
  multiply-adds per output pixel, and no upsampled copy;
- prompts run in chunks whose pixel maps stay small: on CPU a freshly
  mapped 50 MB tensor costs more to fault in than the element-wise op on it.

Equal to sam3's heads followed by the fusion formula up to float rounding
(tested). Only the released head structure qualifies (``applies``).

Exact mode keeps sam3's outputs (every object query's mask logits and the
semantic logits, fused at the image size afterwards) but computes them the
same cheaper way (``masks``): at 1008 px the heads of one prompt cost 143
GFLOP in sam3 (the pixel decoder's 3x3 convolution at 288 x 288 alone 98)
and 65 here, plus 122 per forward for the image's own convolutions.
"""

from __future__ import annotations

from typing import Iterator, List, Sequence, Tuple

import torch
import torch.nn.functional as F

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

    def __call__(
        self,
        backbone_fpn: Sequence[torch.Tensor],
        memory: torch.Tensor,        # [L, K, C] encoder memory (image tokens first)
        prompt: torch.Tensor,        # [S, K, C]
        prompt_mask: torch.Tensor,   # [K, S], True = padding
        queries: torch.Tensor,       # [K, Q, C] last decoder layer's object queries
        objects: torch.Tensor,       # [K, Q] o = sigmoid(logit) * presence
        presence: torch.Tensor,      # [K]
        confidence: float,
    ) -> torch.Tensor:
        """Fused score maps [K, h, w] at mask resolution:
        max(max over kept instances of sigmoid(mask) * o, sigmoid(semantic)) * presence."""
        grid, images, inst_rows, inst_bias = self._prepare(backbone_fpn, memory, prompt, prompt_mask, queries)
        height, width = backbone_fpn[0].shape[-2:]
        out = torch.empty(len(grid), height, width, dtype=torch.float32, device=memory.device)
        for i, pixels in self._pixels(grid, images, height, width):
            out[i] = self._fuse(pixels, inst_rows[i], inst_bias[i], objects[i], presence[i], confidence)
        return out

    def masks(
        self,
        backbone_fpn: Sequence[torch.Tensor],
        memory: torch.Tensor,        # [L, K, C] encoder memory (image tokens first)
        prompt: torch.Tensor,        # [S, K, C]
        prompt_mask: torch.Tensor,   # [K, S], True = padding
        queries: torch.Tensor,       # [K, Q, C] last decoder layer's object queries
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """sam3's head outputs for K prompts, computed the cheaper way:
        mask logits [K, Q, h, w] of every object query and semantic logits
        [K, 1, h, w] (what ``pred_masks`` and ``semantic_seg`` hold)."""
        grid, images, inst_rows, inst_bias = self._prepare(backbone_fpn, memory, prompt, prompt_mask, queries)
        k, channels = grid.shape[:2]
        height, width = backbone_fpn[0].shape[-2:]
        masks = torch.empty(k, inst_rows.shape[1], height, width, dtype=inst_rows.dtype, device=memory.device)
        semantic = torch.empty(k, 1, height, width, dtype=inst_rows.dtype, device=memory.device)
        sem_weight = self.sem_weight.to(inst_rows.dtype)[:, None]
        for i, pixels in self._pixels(grid, images, height, width):
            flat = pixels.permute(1, 2, 0).reshape(height * width, channels)
            masks[i] = torch.addmm(inst_bias[i][:, None], inst_rows[i], flat.t()).reshape(-1, height, width)
            semantic[i, 0] = (flat @ sem_weight).reshape(height, width) + self.sem_bias.to(flat.dtype)
        return masks, semantic

    def _pixels(self, grid: torch.Tensor, images: List[torch.Tensor], height: int,
                width: int) -> Iterator[Tuple[int, torch.Tensor]]:
        """Each prompt's index and pixel embedding [C, height, width],
        computed a chunk of prompts at a time (``chunk_size``)."""
        k, channels = grid.shape[:2]
        step = self.chunk_size(k, channels, height, width, grid.device)
        for start in range(0, k, step):
            part = slice(start, min(k, start + step))
            pixels = self._pixel_embedding(grid[part], images)
            for i in range(part.start, part.stop):
                yield i, pixels[i - part.start]

    def _prepare(self, backbone_fpn, memory, prompt, prompt_mask, queries):
        """What every prompt's head reads: the encoder memory's image grid
        after the cross-attention to the prompt [K, C, h0, w0], the image's
        own convolutions of the finer levels (once per call), and the
        instance convolution folded into the queries (rows [K, Q, C], biases [K, Q])."""
        head = self.head
        if head.cross_attend_prompt is not None:
            attended = head.cross_attend_prompt(
                query=head.cross_attn_norm(memory), key=prompt, value=prompt, key_padding_mask=prompt_mask,
            )[0]
            memory = attended + memory
        fpn = list(backbone_fpn)
        top = fpn[-1]
        k, channels = memory.shape[1], memory.shape[2]
        grid = memory.permute(1, 2, 0)[..., : top.shape[-2] * top.shape[-1]].reshape(k, channels, *top.shape[-2:])
        images = [conv(level[:1]) for (conv, _), level in zip(self.stages, fpn[:-1][::-1])]
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

    def _fuse(self, pixels, rows, row_bias, objects, presence, confidence) -> torch.Tensor:
        """One prompt: kept instance masks and the semantic map, fused."""
        c, h, w = pixels.shape
        flat = pixels.permute(1, 2, 0).reshape(h * w, c)        # a view when channels-last
        keep = torch.nonzero(objects > confidence).flatten()
        weights = torch.cat([rows[keep], self.sem_weight.to(rows.dtype)[None]])
        biases = torch.cat([row_bias[keep], self.sem_bias.to(rows.dtype)[None]])
        logits = torch.addmm(biases, flat, weights.t()).float().sigmoid_()      # [hw, kept + 1]
        fused = logits[:, -1]
        if len(keep):
            instance = (logits[:, :-1] * objects[keep].float()).amax(1)
            fused = torch.maximum(instance, fused)
        return (fused * presence.float()).reshape(h, w)

