"""SAM 3's touch points: image encoding at any resolution, text grounding
with or without the segmentation heads, and the frame's way on and off the
device.

Nothing here patches sam3. Every resolution is served by a *view* of the
model: a shallow copy of every module that shares all parameters but owns
the few resolution- and device-dependent tables (the RoPE frequencies of the
global-attention blocks, the decoder's box-bias coordinate cache and the
position encodings' cache, all on the engine's device: sam3 builds the
first cache on ``cuda``, fills the second on whatever device ran first, and
``.to()`` moves neither), so the preview never mutates state a
full-resolution call reads, calls at either resolution can run from
different threads, and ``cuda:N`` works.

A frame meets the host twice: ``upload`` (once per frame, from pinned
memory, non-blocking) and ``fetch`` (every result the host needs, copied
together behind one wait). Everything between stays on the device.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import cpu_shims, fused_heads, shared_encoding
from .config import COMPILE_MODES, ConfigError
from .environment import DYNAMO_VARIABLE
from .precision import REDUCED, Precision, StageModule
from .scoring import object_probabilities, top_instances

cpu_shims.prepare_sam3_import()

from sam3.model.data_misc import FindStage  # noqa: E402
from sam3.model.position_encoding import PositionEmbeddingSine  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

RECOMPILE_LIMIT = 64
"""Compiled shapes kept per function: powers of two of the bucket for each
input size (see ``Grounder.decode``)."""


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


def resolution_view(model: torch.nn.Module, resolution: int, device: Optional[torch.device] = None) -> torch.nn.Module:
    """``model`` as it would run at ``resolution`` on ``device`` (default:
    where its parameters are); shares all weights."""
    native = native_resolution(model)
    step = patch_size(model)
    if resolution % step:
        raise ValueError(f"resolution {resolution} is not a multiple of the patch size {step}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    side = resolution // step
    native_side = native // step
    view = _module_view(model)
    if resolution != native:
        for block in _trunk(view).blocks:
            attn = block.attn
            if attn.use_rope and int(attn.input_size[0]) == native_side:
                attn.freqs_cis = _rope_table(attn, side)
    for module in view.modules():
        if isinstance(module, PositionEmbeddingSine):  # its encodings per feature-map size, made on first use
            module.cache = {size: table.to(device) for size, table in module.cache.items()}
    decoder = view.transformer.decoder
    if getattr(decoder, "boxRPB", "none") != "none":
        # Fill the compile-friendly cache for this grid on this device: the
        # dict cache behind it is keyed by tensors and would grow on every call.
        grid = side  # the decoder attends to the patch-grid level
        decoder.compilable_cord_cache = decoder._get_coords(grid, grid, device=device)
        decoder.compilable_stored_size = (grid, grid)
        decoder.coord_cache = {}
    return view


@dataclass
class EncodedImage:
    """One image encoded at one resolution, and the prompt-independent work
    done on it so far (``shared``: every bucket of prompts reuses it)."""

    backbone_out: Dict[str, object]
    height: int   # original image size
    width: int
    resolution: int
    shared: Dict[str, Any] = field(default_factory=dict, repr=False)


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


@dataclass
class Decoded:
    """One grounding forward for K prompts up to the segmentation heads:
    the scores, and everything the heads read. All on the device."""

    view: torch.nn.Module
    image: EncodedImage
    backbone_out: Dict[str, Any]
    prompt: torch.Tensor            # [S, K, C]
    prompt_mask: torch.Tensor       # [K, S]
    memory: torch.Tensor            # [L, K, C] encoder output
    sizes: List[Tuple[int, int]]    # sam3's vis_feat_sizes
    hs: torch.Tensor                # [layers, K, Q, C] object queries
    presence_logits: torch.Tensor   # [K]
    pred_logits: torch.Tensor       # [K, Q]
    presence: torch.Tensor          # [K] probabilities
    objects: torch.Tensor           # [K, Q] sigmoid(logit) * presence

    def __len__(self) -> int:
        return int(self.presence.shape[0])

    def kept(self, confidence: float) -> torch.Tensor:
        """[K] object queries above the confidence threshold, per prompt."""
        return (self.objects > confidence).sum(1)

    def select(self, index: torch.Tensor) -> "Decoded":
        """The prompts at ``index`` (a device tensor), in its order."""
        return Decoded(
            self.view, self.image, self.backbone_out, self.prompt.index_select(1, index),
            self.prompt_mask.index_select(0, index), self.memory.index_select(1, index), self.sizes,
            self.hs.index_select(1, index), self.presence_logits.index_select(0, index),
            self.pred_logits.index_select(0, index), self.presence.index_select(0, index),
            self.objects.index_select(0, index),
        )


def _ladder(k: int) -> int:
    """The padded prompt count of a compiled forward: the next power of two."""
    return 1 << max(0, k - 1).bit_length()


def _pad_prompts(text: TextBatch, k: int) -> TextBatch:
    """``text`` with its last prompt repeated up to ``k`` prompts."""
    extra = k - len(text)
    if extra <= 0:
        return text
    return TextBatch(torch.cat([text.features, text.features[:, -1:].expand(-1, extra, -1)], dim=1),
                     torch.cat([text.mask, text.mask[-1:].expand(extra, -1)], dim=0))


class Grounder:
    """Runs SAM 3 on a device/dtype, at the full or the preview resolution.

    With a reduced ``dtype`` the stages named in ``reduced`` (default
    ``precision.REDUCED``) run under its autocast and the others in float32
    (``engine/precision.py``); in a view of the model the image encoder's
    trunk is a ``StageModule``, so the neck around it keeps its own stage.

    ``ground`` computes sam3's head outputs with ``fused_heads.FusedHeads.masks``
    where the model has the released head structure (the same logits, less
    than half the work); ``reference_heads=True`` runs sam3's own heads.
    ``compile`` (one of COMPILE_MODES) compiles the shared grounding forward
    with torch.compile; ``compile_backend`` is torch.compile's backend.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype,
                 reference_heads: bool = False, compile: str = "none", compile_backend: str = "inductor",
                 reduced: Sequence[str] = REDUCED):
        if compile not in COMPILE_MODES:
            raise ConfigError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {compile!r}")
        self.model = model
        self.device = torch.device(device)
        self.dtype = dtype
        self.precision = Precision(dtype, frozenset(reduced))
        self.native = native_resolution(model)
        self.patch = patch_size(model)
        self.reference_heads = reference_heads or not fused_heads.applies(model)
        # The native size's entry becomes a view (its own coordinate cache) on first use.
        self._views: Dict[int, torch.nn.Module] = {self.native: model}
        self._fused: Optional[fused_heads.FusedHeads] = None
        self._lock = threading.Lock()
        self._side: Optional[Any] = None  # the second CUDA stream, made on first use
        self.compile = compile
        self._forward: Callable[..., Tuple[torch.Tensor, ...]] = self._shared_forward
        if compile != "none":
            from torch import _dynamo

            if os.environ.get(DYNAMO_VARIABLE) == "1" or _dynamo.config.disable:
                raise ConfigError(f"compile={compile!r} needs TorchDynamo, which {DYNAMO_VARIABLE}=1 turns off "
                                  "(the command line and the node set it on machines without a GPU)")
            _dynamo.config.recompile_limit = max(_dynamo.config.recompile_limit, RECOMPILE_LIMIT)
            self._forward = torch.compile(self._shared_forward, mode=compile, dynamic=False,
                                          backend=compile_backend)

    def _view(self, resolution: int) -> torch.nn.Module:
        """The model at ``resolution``."""
        with self._lock:
            view = self._views.get(resolution)
            if view is None or view is self.model:
                view = resolution_view(self.model, resolution, self.device)
                if self.dtype != torch.float32:
                    neck = view.backbone.vision_backbone
                    neck.trunk = StageModule(neck.trunk, self.precision, self.device, "trunk")
                self._views[resolution] = view
            return view

    @property
    def fused_heads(self) -> fused_heads.FusedHeads:
        """Fast mode's heads (built on first use; ValueError for a model
        without the released head structure)."""
        with self._lock:
            if self._fused is None:
                self._fused = fused_heads.FusedHeads(self.model)
            return self._fused

    @contextlib.contextmanager
    def running(self, stage: str) -> Iterator[None]:
        """Around the model calls of ``stage``: the chosen CUDA device is the
        current one, the stage's autocast, and the CPU shims where there is no CUDA."""
        device = torch.cuda.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext()
        with cpu_shims.cpu_inference(self.device), device, self.precision.autocast(self.device, stage):
            yield

    # -- host and device ----------------------------------------------------

    def to_device(self, host: torch.Tensor) -> torch.Tensor:
        """A host tensor on the device without making the host wait (pinned
        and non-blocking on CUDA; the CPU keeps it as it is)."""
        if self.device.type == "cuda":
            return host.pin_memory().to(self.device, non_blocking=True)
        return host.to(self.device)

    def upload(self, rgb: np.ndarray) -> torch.Tensor:
        """An H x W x 3 uint8 frame on the device as [3, H, W], copied once."""
        return self.to_device(torch.from_numpy(np.ascontiguousarray(rgb))).permute(2, 0, 1)

    def indices(self, values: Sequence[int]) -> torch.Tensor:
        """Host indices as a device tensor (int64), uploaded without a wait."""
        return self.to_device(torch.from_numpy(np.asarray(values, dtype=np.int64).reshape(-1)))

    def fetch(self, *tensors: torch.Tensor) -> List[np.ndarray]:
        """Device tensors on the host, as numpy arrays: the only place a
        frame waits for the device (all copies issued, then one wait)."""
        if self.device.type == "cuda":
            host = [torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=True) for t in tensors]
            for out, tensor in zip(host, tensors):
                out.copy_(tensor, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            return [out.numpy() for out in host]
        return [tensor.numpy() for tensor in tensors]

    @contextlib.contextmanager
    def side_stream(self) -> Iterator[None]:
        """Work issued inside runs on the grounder's second CUDA stream, so
        it can overlap what the current stream is doing (on a CPU: inline)."""
        if self.device.type != "cuda":
            yield
            return
        with torch.cuda.device(self.device):
            if self._side is None:
                self._side = torch.cuda.Stream(self.device)
            self._side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self._side):
                yield

    def side_done(self) -> Optional[Any]:
        """An event after everything issued on the second stream so far (None off CUDA)."""
        if self.device.type != "cuda" or self._side is None:
            return None
        event = torch.cuda.Event()
        event.record(self._side)
        return event

    def wait(self, event: Optional[Any]) -> None:
        """Make the current stream wait for ``event`` (a device-side wait: the host goes on)."""
        if event is not None:
            torch.cuda.current_stream(self.device).wait_event(event)

    # -- encoding -------------------------------------------------------------

    def preprocess(self, pixels: torch.Tensor, resolution: int) -> torch.Tensor:
        """A plain resize of the whole uint8 image ([3, H, W] on the device;
        antialiased, as sam3's own processor does), then scaling to [-1, 1]."""
        image = TF.resize(pixels, [resolution, resolution], antialias=True)
        image = image.to(torch.float32).mul_(1.0 / 255.0)  # as torchvision scales uint8
        return ((image - 0.5) / 0.5).unsqueeze(0)

    @torch.inference_mode()
    def encode_image(self, image: Union[np.ndarray, torch.Tensor], resolution: Optional[int] = None) -> EncodedImage:
        """``image``: an H x W x 3 uint8 array, or a frame already on the
        device (``upload``), which every resolution of a frame then shares."""
        resolution = resolution or self.native
        view = self._view(resolution)
        pixels = image if isinstance(image, torch.Tensor) else self.upload(image)
        with self.running("neck"):  # the trunk runs as its own stage inside (see the class doc)
            out = self.precision.hand_on("neck", view.backbone.forward_image(self.preprocess(pixels, resolution)))
        return EncodedImage(out, int(pixels.shape[-2]), int(pixels.shape[-1]), resolution)

    @torch.inference_mode()
    def encode_text(self, strings: Sequence[str]) -> Dict[str, torch.Tensor]:
        with self.running("text"):
            return self.precision.hand_on("text", self.model.backbone.forward_text(list(strings), device=self.device))

    # -- grounding --------------------------------------------------------------

    def _image_part(self, view: torch.nn.Module, image: EncodedImage) -> shared_encoding.ImagePart:
        part = image.shared.get("encoder")
        if part is None:
            part = image.shared["encoder"] = shared_encoding.image_part(view, image.backbone_out)
        return part

    def head_images(self, image: EncodedImage) -> List[torch.Tensor]:
        """The fused heads' image-only convolutions of ``image`` (once per image)."""
        images = image.shared.get("heads")
        if images is None:
            images = image.shared["heads"] = self.fused_heads.image_convs(image.backbone_out["backbone_fpn"])
        return images

    def _shared_forward(self, view, part, features, mask):
        """Prompt encoding, fusion encoder and decoder for K prompts with the
        image's shared part (the function ``compile`` compiles)."""
        prompt, prompt_mask = shared_encoding.encode_prompt(part, features, mask)
        encoder_out = shared_encoding.run_encoder(view, part, prompt, prompt_mask)
        out, hs = view._run_decoder(
            memory=encoder_out["encoder_hidden_states"], pos_embed=encoder_out["pos_embed"], src_mask=None,
            out={}, prompt=prompt, prompt_mask=prompt_mask, encoder_out=encoder_out,
        )
        return (prompt, prompt_mask, encoder_out["encoder_hidden_states"], hs,
                out["presence_logit_dec"], out["pred_logits"])

    def _sam3_forward(self, view, image: EncodedImage, text: TextBatch):
        """The same as sam3 runs it, per prompt (models ``shared_encoding`` does not support)."""
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
        geometric = view._get_dummy_prompt(num_prompts=k)
        prompt, prompt_mask, backbone_out = view._encode_prompt(backbone_out, find, geometric)
        backbone_out, encoder_out, _ = view._run_encoder(backbone_out, find, prompt, prompt_mask)
        encoder_out["spatial_shapes"] = shared_encoding.host_shapes(encoder_out["vis_feat_sizes"])
        out, hs = view._run_decoder(
            memory=encoder_out["encoder_hidden_states"], pos_embed=encoder_out["pos_embed"],
            src_mask=encoder_out["padding_mask"], out={}, prompt=prompt,
            prompt_mask=prompt_mask, encoder_out=encoder_out,
        )
        sizes = [(int(h), int(w)) for h, w in encoder_out["vis_feat_sizes"]]
        return (prompt, prompt_mask, encoder_out["encoder_hidden_states"], hs,
                out["presence_logit_dec"], out["pred_logits"]), backbone_out, sizes

    @torch.inference_mode()
    def decode(self, image: EncodedImage, text: TextBatch, share: bool = True) -> Decoded:
        """Prompt encoding, fusion encoder and decoder for K prompts: scores
        and what the heads read. ``share`` computes the prompt-independent
        parts once per image (``shared_encoding``) where the model's
        structure allows. Compiled, K is padded to a power of two (a few
        static shapes, which CUDA graphs need) and the padding dropped."""
        view = self._view(image.resolution)
        k = len(text)
        with self.running("decode"):
            if share and shared_encoding.supported(view):
                part = self._image_part(view, image)
                padded = _pad_prompts(text, _ladder(k)) if self.compile != "none" else text
                if self.compile == "reduce-overhead":
                    torch.compiler.cudagraph_mark_step_begin()
                outputs = self._forward(view, part, padded.features.contiguous(), padded.mask.contiguous())
                if self.compile == "reduce-overhead":  # a replay overwrites its outputs
                    outputs = tuple(t.clone() for t in outputs)
                prompt, prompt_mask, memory, hs, presence_logits, pred_logits = outputs
                if len(padded) != k:
                    prompt, prompt_mask, memory = prompt[:, :k], prompt_mask[:k], memory[:, :k]
                    hs, presence_logits, pred_logits = hs[:, :k], presence_logits[:k], pred_logits[:k]
                backbone_out, sizes = image.backbone_out, part.sizes
            else:
                outputs, backbone_out, sizes = self._sam3_forward(view, image, text)
                prompt, prompt_mask, memory, hs, presence_logits, pred_logits = outputs
            presence_logits = presence_logits.float().reshape(k)
            pred_logits = pred_logits.float().reshape(k, -1)
            presence, objects = object_probabilities(presence_logits, pred_logits)
            prompt, memory, hs = self.precision.hand_on("decode", (prompt, memory, hs))
        return Decoded(view, image, backbone_out, prompt, prompt_mask, memory, sizes, hs,
                       presence_logits, pred_logits, presence, objects)

    @torch.inference_mode()
    def instance_logits(self, decoded: Decoded, index: Optional[torch.Tensor] = None
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Mask logits [K, T, h, w] of the object queries at ``index`` [K, T]
        (every query when None) and the semantic logits [K, 1, h, w]: sam3's
        head outputs, computed as the class doc says."""
        d = decoded
        with self.running("heads"):
            if not self.reference_heads:
                return self.precision.hand_on("heads", self.fused_heads.masks(
                    d.backbone_out["backbone_fpn"], d.memory, d.prompt, d.prompt_mask, d.hs[-1],
                    images=self.head_images(d.image), index=index))
            out: Dict[str, torch.Tensor] = {}
            d.view._run_segmentation_heads(
                out=out, backbone_out=d.backbone_out,
                img_ids=torch.zeros(len(d), dtype=torch.long, device=self.device),
                vis_feat_sizes=d.sizes, encoder_hidden_states=d.memory, prompt=d.prompt,
                prompt_mask=d.prompt_mask, hs=d.hs,
            )
            masks = out["pred_masks"]
            if index is not None:
                masks = masks.gather(1, index[:, :, None, None].expand(-1, -1, *masks.shape[-2:]))
            return self.precision.hand_on("heads", (masks, out["semantic_seg"]))

    @torch.inference_mode()
    def fused_scores(self, decoded: Decoded, kept: int, confidence: float, ids: Optional[torch.Tensor] = None
                     ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Fast mode's fused score maps [K, h, w] at mask resolution, with
        at most ``kept`` instances above ``confidence`` per prompt, and,
        given their ``ids`` [K, kept], their instance keys (``FusedHeads``)."""
        d = decoded
        index, weight = top_instances(d.objects, confidence, kept)
        with self.running("heads"):
            return self.precision.hand_on("heads", self.fused_heads(
                d.backbone_out["backbone_fpn"], d.memory, d.prompt, d.prompt_mask, d.hs[-1],
                index, weight, d.presence, images=self.head_images(d.image), ids=ids))

    @torch.inference_mode()
    def ground(self, image: EncodedImage, text: TextBatch, heads: bool = True, share: bool = False) -> Grounding:
        """One grounding forward for K prompts on one encoded image, as sam3
        runs it (its heads' outputs computed as the class doc says). With
        ``heads=False`` only the decoder runs: presence and object scores
        come before the segmentation heads."""
        d = self.decode(image, text, share)
        masks, semantic = self.instance_logits(d) if heads else (None, None)
        return Grounding(d.presence_logits, d.pred_logits, masks, semantic)

    @torch.inference_mode()
    def score(self, image: EncodedImage, text: TextBatch, confidence: float, presence_floor: float) -> QueryScores:
        """Fast mode for one bucket: one forward for K prompts with the
        prompt-independent work shared, then fused score maps
        (``fused_heads``) for the prompts whose presence reaches
        ``presence_floor`` (a score never exceeds its presence, so the
        others' maps are below the floor everywhere). Decides on the host
        (``ActiveSAM.segment`` decides for a whole frame at once)."""
        d = self.decode(image, text, share=True)
        scored = torch.nonzero(d.presence >= presence_floor).flatten()
        # Queries any prompt keeps: at least as many as each prompt keeps.
        kept = len(torch.nonzero((d.objects > confidence).any(0)))
        maps = torch.zeros(0, 0, 0, device=self.device)
        if len(scored):
            maps = self.fused_scores(d.select(scored), kept, confidence)[0]
        return QueryScores(presence=d.presence.cpu(), scored=scored.tolist(), maps=maps)


def split_buckets(indices: Sequence[int], size: int) -> List[List[int]]:
    """Contiguous buckets of at most ``size`` items, in order."""
    items = list(indices)
    return [items[i : i + size] for i in range(0, len(items), size)]
