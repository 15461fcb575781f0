"""ActiveSAM: training-free open-vocabulary semantic segmentation on SAM 3.

``ActiveSAM(model, vocabulary, config).segment(rgb)`` runs the method of
the method doc: Contextual Prompt Expansion, the low-resolution presence
preview that picks the active queries, one full-resolution image encode
shared by buckets of prompts, instance/semantic fusion with presence gating,
and margin-aware background calibration.

``mode="exact"`` follows the method step by step at the image's size; like
fast mode, it computes the prompt-independent parts once per image
(``shared_encoding``: the first encoder layer's self-attention over the image
tokens, 34 GFLOP a prompt at 1008 px) and the heads' logits the cheaper way,
for the instances that can pass the confidence threshold (``fused_heads``),
both equal to sam3's forward to float rounding.
``mode="fast"`` takes the same decisions with less work. Its preview first
screens every query at ``fast_preview_resolution`` (a third of the full
resolution, a quarter of the preview's tokens) and runs the real preview only
on the top ``fast_screen_keep`` (40 %, twice the 20 % kept): the quantile
threshold and the active set are then those of the full preview whenever the
screen ranks the truly present queries within its top 40 %. It shares the
image's prompt-independent parts the same way (``shared_encoding``); queries
whose full-resolution presence is below ``fast_presence_floor`` skip the
segmentation heads (their score cannot exceed their presence); the others'
heads compute only the kept instances' masks and fuse them at mask
resolution (``fused_heads``), and only the class scores the labels need are
resized. Its agreement with exact mode is measured, not assumed.

A frame stays on the model's device from its upload to its label image:
the decoder of every bucket runs first, then one fetch of the presences and
instance counts decides which heads run; class maxima, argmax and
calibration run on the device, and the host waits at most three times per
frame, whatever the vocabulary (docs/gpu.md).

A frame that runs out of device memory is tried again with half the bucket
of prompts, down to one (``bucket``; docs/memory.md).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import fused_heads
from .bucket import Buckets, FrameOutOfMemory, auto_bucket, free_bytes
from .config import ActiveSAMConfig, ConfigError, require_background_class
from .grounding import Decoded, EncodedImage, Grounder, TextBatch
from .limits import ImageError, check_image  # noqa: F401 - ImageError is part of this module's API
from .model import resolve_device
from .prompt_context import ContextTokens, TextCache, build_context
from .result import Instance, SegmentationResult
from .scoring import (
    INSTANCE_LIMIT,
    active_mask,
    add_class_maxima,
    class_rows,
    fuse_at_image,
    label_dtype,
    labels_from_scores,
    mask_instance_keys,
    pack_instances,
    resize_logits,
    top_instances,
)
from .stopping import StopFlag
from .vocabulary import Vocabulary, canonicalize


class NonFiniteScores(RuntimeError):
    """The model gave NaN or infinite scores (damaged weights, a numeric
    fault on the device): no labels are made from them."""


@dataclass
class PreparedVocabulary:
    """A vocabulary with everything that does not depend on the image: the
    text and context tokens of every query, stacked on the device, so that a
    bucket's prompts are gathered there by index."""

    vocabulary: Vocabulary
    canonical: List[str]               # the string encoded for each query
    context: Optional[ContextTokens]   # memory tokens, None if disabled
    prompts: Optional[TextBatch] = None  # [S + M, N, d]: each query's text tokens, then its memory tokens
    text_tokens: int = 0                 # S

    @property
    def num_queries(self) -> int:
        return len(self.canonical)

    def text(self, index: torch.Tensor, memory: bool) -> TextBatch:
        """The prompts of the queries at ``index`` (a device tensor), with
        their memory tokens or (the preview's) without."""
        features, mask = self.prompts.features, self.prompts.mask
        if not memory:
            features, mask = features[: self.text_tokens], mask[:, : self.text_tokens]
        return TextBatch(features.index_select(1, index), mask.index_select(0, index))


@dataclass(frozen=True)
class InputSizes:
    """The input sizes a config gives on one model."""

    full: int
    preview: int
    screen: int   # fast mode's screening preview


def input_sizes(config: ActiveSAMConfig, grounder: Grounder) -> InputSizes:
    """Full, preview and fast-screen input sizes of a config on a grounder's
    model (None = derived from the model's own); ConfigError if one is invalid."""
    patch = grounder.patch
    full = config.resolution or grounder.native

    def fraction(value: Optional[int], part: float) -> int:
        return value or max(patch, int(round(full * part / patch)) * patch)

    sizes = {
        "resolution": full,
        "preview_resolution": fraction(config.preview_resolution, 2 / 3),
        "fast_preview_resolution": fraction(config.fast_preview_resolution, 1 / 3),
    }
    for name, size in sizes.items():
        if size % patch:
            raise ConfigError(f"{name} must be a multiple of the patch size {patch}, got {size}")
    return InputSizes(sizes["resolution"], sizes["preview_resolution"], sizes["fast_preview_resolution"])


@dataclass(frozen=True)
class _Frame:
    """Everything one frame reads from the engine, taken together under the
    lock: a live reconfiguration can never mix two configs in one frame."""

    prepared: PreparedVocabulary
    config: ActiveSAMConfig
    sizes: InputSizes
    bucket: int = 0   # prompts per grounding forward, decided when the frame runs (``bucket``)

    def screens(self, screen: bool) -> bool:
        """Whether this frame's preview runs fast mode's screen first."""
        return screen and self.config.mode == "fast" and self.config.fast_screen_keep < 1

    def previews(self, active_queries: Optional[Sequence[int]]) -> bool:
        """Whether this frame runs the preview."""
        return active_queries is None and self.prepared.num_queries > self.config.max_active


def _require_finite(*values: Optional[np.ndarray]) -> None:
    """Raise NonFiniteScores if any presence or score is NaN or infinite."""
    for value in values:
        if value is not None and not np.isfinite(value).all():
            raise NonFiniteScores("the model gave non-finite presences or scores (damaged weights or a numeric "
                                  "fault on the device); no labels were made from them")


class _Stopwatch:
    def __init__(self) -> None:
        self.timings: Dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def _release_cached(device: torch.device) -> None:
    """Give the memory torch's CUDA allocator holds cached back to the
    device, after an out-of-memory error (a no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


class _FrameImages:
    """One frame's encodings: uploaded to the device once, encoded once per
    input size (kept while the frame is tried again with a smaller bucket)."""

    def __init__(self, grounder: Grounder, rgb: np.ndarray):
        self.grounder, self.rgb = grounder, rgb
        self._pixels: Optional[torch.Tensor] = None
        self._encoded: Dict[int, EncodedImage] = {}

    def at(self, size: int) -> EncodedImage:
        """The image encoded at ``size``. An encode that runs out of memory
        is tried once more after the cached memory is released (the bucket
        does not decide it); FrameOutOfMemory if it fails again."""
        for _ in range(2):
            if size in self._encoded:
                return self._encoded[size]
            try:
                if self._pixels is None:
                    self._pixels = self.grounder.upload(self.rgb)
                self._encoded[size] = self.grounder.encode_image(self._pixels, size)
                return self._encoded[size]
            except torch.OutOfMemoryError:
                pass  # released outside the handler: its traceback holds the failed encode's tensors
            _release_cached(self.grounder.device)
        raise FrameOutOfMemory(f"out of device memory in the image encode at {size} px: the frame is dropped")


@dataclass
class Prefetched:
    """A frame uploaded and encoded ahead of its decode (``ActiveSAM.prefetch``)."""

    rgb: np.ndarray
    frame: _Frame
    active_queries: Optional[Sequence[int]]
    screen: bool
    images: _FrameImages
    ready: Any = None   # the second stream's event after its encodes (None off CUDA)


@dataclass
class _Bucket:
    """One bucket of the active queries through the decoder (phase one of
    a frame); its heads run once the frame knows which of its prompts and
    instances count (phase two)."""

    slots: slice        # its positions in the active list
    decoded: Decoded


@dataclass
class _Instances:
    """A frame's candidate instances while it decodes: each kept object query
    of a scored prompt gets an id (1 ... count, in active-query order), its
    class known on the host, its score and pixels on the device."""

    classes: List[int]                # class of each id, id - 1 indexed
    scores: torch.Tensor              # [count + 1] object score per id (slot 0 unused)
    keys: Optional[torch.Tensor] = None  # [R, h, w] per scored class: ``scoring.instance_keys``

    @property
    def count(self) -> int:
        return len(self.classes)


@dataclass
class _Scores:
    """What a frame's decode leaves on the device, and what came back."""

    class_scores: torch.Tensor        # [R, H, W] per scored class
    classes: List[int]                # the R classes, in index order
    presence: np.ndarray              # [A] full-resolution presence of the active queries
    instances: Optional[_Instances] = None  # None when the config's ``instances`` is off


class ActiveSAM:
    """The ActiveSAM pipeline on an already built SAM 3 image model."""

    def __init__(
        self,
        model: torch.nn.Module,
        vocabulary: Union[Vocabulary, Sequence[str], str],
        config: Optional[ActiveSAMConfig] = None,
        wrap_grounder: Optional[Callable[[Grounder], Grounder]] = None,
    ):
        """``wrap_grounder`` receives the engine's :class:`Grounder` and returns
        what the engine calls instead (the benchmark times the forwards so)."""
        config = (config or ActiveSAMConfig()).validate()
        spec = resolve_device(config.device, config.dtype)
        self.dtype = spec.dtype
        model_device = next(model.parameters()).device
        any_cuda = model_device.type == spec.device.type == "cuda" and spec.device.index is None
        if model_device != spec.device and not any_cuda:
            model = model.to(spec.device)
        # The model's own device: "cuda" names one device, and every tensor of a frame is made there.
        self.device = next(model.parameters()).device
        grounder = Grounder(model.eval(), self.device, self.dtype, compile=config.compile)
        self.grounder = wrap_grounder(grounder) if wrap_grounder is not None else grounder
        self._check_mode(config)
        self.text = TextCache(self.grounder)
        self.stop = StopFlag()  # checked before each image encode and bucket: stopping never waits on a frame
        self.buckets = Buckets()
        self._lock = threading.Lock()
        self._config, self._sizes = config, input_sizes(config, self.grounder)
        self._prepared = self.prepare(vocabulary, config)

    def check_config(self, config: ActiveSAMConfig) -> ActiveSAMConfig:
        """Raise ConfigError if ``config`` cannot replace the current one;
        changes nothing (callers validate off the worker thread)."""
        config = config.validate()
        fixed = ("device", "dtype", "compile")
        if [getattr(config, name) for name in fixed] != [getattr(self.config, name) for name in fixed]:
            raise ConfigError("device, dtype and compile are fixed when the engine is created")
        self._check_mode(config)
        input_sizes(config, self.grounder)
        return config

    def _check_mode(self, config: ActiveSAMConfig) -> None:
        if config.mode == "fast" and not fused_heads.applies(self.grounder.model):
            raise ConfigError("mode 'fast' needs the released SAM 3 segmentation head; use mode 'exact' with this model")

    @property
    def config(self) -> ActiveSAMConfig:
        """The configuration the next frame runs with."""
        return self._config

    @property
    def resolution(self) -> int:
        return self._sizes.full

    @property
    def preview_resolution(self) -> int:
        return self._sizes.preview

    @property
    def fast_preview_resolution(self) -> int:
        return self._sizes.screen

    def _snapshot(self) -> _Frame:
        with self._lock:
            return _Frame(self._prepared, self._config, self._sizes)

    def needs_prepare(self, config: ActiveSAMConfig) -> bool:
        """Whether the prepared vocabulary depends on what ``config`` changes."""
        old = self.config
        return (config.neighbour_tokens, config.hypernym_tokens, config.background_threshold > 0) != (
            old.neighbour_tokens, old.hypernym_tokens, old.background_threshold > 0
        )

    def reconfigure(self, config: ActiveSAMConfig, prepared: Optional[PreparedVocabulary] = None) -> None:
        """Swap in new hyper-parameters between two frames (same model and
        device), all or nothing. When the context tokens depend on the
        change, pass the vocabulary prepared under ``config`` (see
        ``prepare``) or it is prepared here."""
        config = self.check_config(config)
        if prepared is None and self.needs_prepare(config):
            prepared = self.prepare(self.vocabulary, config)
        sizes = input_sizes(config, self.grounder)
        with self._lock:
            self._config, self._sizes = config, sizes
            if prepared is not None:
                self._prepared = prepared

    # -- vocabulary ---------------------------------------------------------

    @property
    def vocabulary(self) -> Vocabulary:
        return self._prepared.vocabulary

    @torch.inference_mode()
    def prepare(self, vocabulary: Union[Vocabulary, Sequence[str], str],
                config: Optional[ActiveSAMConfig] = None) -> PreparedVocabulary:
        """Validate a vocabulary and compute its text encodings and context
        tokens (under ``config``, default the current one), stacked on the
        device; safe to call from another thread while ``segment`` runs."""
        vocab = Vocabulary.coerce(vocabulary)
        config = config or self.config
        require_background_class(config, vocab)
        canonical = [canonicalize(q) for q in vocab.queries]
        text = self.text.batch(canonical)
        context = build_context(self.text, canonical, config.neighbour_tokens, config.hypernym_tokens)
        prompts = context.extend(text, range(len(canonical))) if context is not None else text
        return PreparedVocabulary(vocab, canonical, context, prompts, int(text.features.shape[0]))

    def set_vocabulary(self, vocabulary: Union[Vocabulary, Sequence[str], str, PreparedVocabulary]) -> None:
        """Replace the vocabulary (the model is kept; cached text is reused)."""
        prepared = vocabulary if isinstance(vocabulary, PreparedVocabulary) else self.prepare(vocabulary)
        with self._lock:
            self._prepared = prepared

    # -- the preview --------------------------------------------------------

    def _presence(self, image: EncodedImage, frame: _Frame, queries: torch.Tensor) -> torch.Tensor:
        """Presence [len(queries)] (on the device) of the queries at
        ``queries``, decoded in buckets without the heads."""
        size = frame.bucket
        out = []
        for start in range(0, len(queries), size):
            self.stop.check()
            text = frame.prepared.text(queries[start : start + size], memory=False)
            out.append(self.grounder.ground(image, text, heads=False, share=True).presence_logits.sigmoid())
        return torch.cat(out)

    def _preview(self, images: _FrameImages, frame: _Frame, watch: _Stopwatch, screen: bool) -> torch.Tensor:
        """Presence [N] of every query from the low-resolution preview, on the device.

        In fast mode (and ``screen``) the queries the screen drops get
        presence 0: they are below every kept one, so the quantile rule sees
        the same top values.
        """
        n = frame.prepared.num_queries
        queries = torch.arange(n, device=self.device)
        if frame.screens(screen):
            with watch("screen"):
                screened = self._presence(images.at(frame.sizes.screen), frame, queries)
                keep = max(1, math.ceil(frame.config.fast_screen_keep * n))
                queries = torch.sort(torch.topk(screened, keep).indices).values
        with watch("preview_encode"):
            image = images.at(frame.sizes.preview)
        with watch("preview_decode"):
            presence = torch.zeros(n, dtype=torch.float32, device=self.device)
            return presence.index_copy_(0, queries, self._presence(image, frame, queries))

    @torch.inference_mode()
    def preview(self, rgb: np.ndarray, screen: bool = True) -> torch.Tensor:
        """Presence [N] of every query from the low-resolution preview (on the host)."""
        images = _FrameImages(self.grounder, check_image(rgb))
        presence, _, _ = self._fitting(self._snapshot(), rgb,
                                       lambda frame: self._preview(images, frame, _Stopwatch(), screen))
        return torch.from_numpy(self.grounder.fetch(presence)[0])

    # -- the frame ----------------------------------------------------------

    def _decode(self, encoded: EncodedImage, frame: _Frame, active: List[int], watch: _Stopwatch) -> _Scores:
        """Class score maps of the active queries, on the device.

        Phase one runs the decoder of every bucket; one fetch then brings
        back every presence and the instance counts; phase two runs the
        heads of the prompts that count, with as many instances as their
        bucket keeps at most, and keeps the running max per class. Nothing
        in either phase waits for the device.
        """
        cfg, prepared, g = frame.config, frame.prepared, self.grounder
        index = g.indices(active)
        buckets = []
        with watch("decode"):
            for start in range(0, len(active), frame.bucket):
                self.stop.check()
                slots = slice(start, min(len(active), start + frame.bucket))
                buckets.append(self._decode_bucket(encoded, prepared, index[slots], slots))
            decisions = torch.stack([torch.cat([b.decoded.presence for b in buckets]),
                                     torch.cat([b.decoded.kept(cfg.confidence_threshold) for b in buckets]).float()])
        presence, kept = g.fetch(decisions)[0]
        scored = presence >= (cfg.fast_presence_floor if cfg.mode == "fast" else -math.inf)
        query_class = prepared.vocabulary.query_class
        slots = np.flatnonzero(scored)
        if not len(slots):
            none = _Instances([], torch.zeros(1, device=self.device)) if cfg.instances else None
            return _Scores(torch.zeros(1, encoded.height, encoded.width, device=self.device), [0], presence, none)
        classes, rows = class_rows([query_class[active[i]] for i in slots])
        rows = g.indices(rows)
        ids = first_ids = None
        if cfg.instances:
            # Ids of the kept instances, prompt by prompt (at most INSTANCE_LIMIT in all).
            counts = np.zeros(len(active), dtype=np.int64)
            counts[slots] = kept[slots]
            first_ids = np.cumsum(counts) - counts + 1
            counts = np.clip(INSTANCE_LIMIT + 1 - first_ids, 0, counts)
            ids = _Instances([query_class[active[i]] for i in np.repeat(np.arange(len(active)), counts)],
                             torch.zeros(int(counts.sum()) + 1, dtype=torch.float32, device=self.device))
        class_scores = None
        done = 0
        for bucket in buckets:
            self.stop.check()
            local = np.flatnonzero(scored[bucket.slots])
            if not len(local):
                continue
            decoded = bucket.decoded if len(local) == len(bucket.decoded) else bucket.decoded.select(g.indices(local))
            most = int(kept[bucket.slots][local].max())
            bucket_ids = None
            if ids is not None:
                where = np.arange(bucket.slots.start, bucket.slots.stop)[local]
                rank = np.arange(most)
                bucket_ids = np.where(rank < counts[where, None], first_ids[where, None] + rank, 0)
                bucket_ids = g.indices(bucket_ids).view(len(local), most)
            maps, keys = self._heads(decoded, most, cfg, encoded, watch, bucket_ids)
            if class_scores is None:
                class_scores = torch.zeros(len(classes), *maps.shape[1:], dtype=torch.float32, device=self.device)
            with watch("fusion"):
                part = rows[done : done + len(local)]
                add_class_maxima(class_scores, part, maps)
                if keys is not None:
                    if ids.keys is None:
                        ids.keys = torch.zeros((len(classes),) + keys.shape[1:], dtype=torch.int64, device=self.device)
                    add_class_maxima(ids.keys, part, keys)
                    _, weight = top_instances(decoded.objects, cfg.confidence_threshold, most)
                    ids.scores.scatter_(0, bucket_ids.flatten(), weight.flatten())
            done += len(local)
        if class_scores.shape[-2:] != (encoded.height, encoded.width):
            with watch("fusion"):
                class_scores = resize_logits(class_scores[None], encoded.height, encoded.width)[0]
        return _Scores(class_scores, classes, presence, ids)

    def _decode_bucket(self, encoded: EncodedImage, prepared: PreparedVocabulary, index: torch.Tensor,
                       slots: slice) -> _Bucket:
        """Phase one for one bucket: the decoder of the queries at ``index``
        (their ``slots`` in the active list), nothing read back."""
        return _Bucket(slots, self.grounder.decode(encoded, prepared.text(index, memory=True)))

    def _heads(self, decoded: Decoded, kept: int, cfg: ActiveSAMConfig, encoded: EncodedImage,
               watch: _Stopwatch, ids: Optional[torch.Tensor] = None) -> Any:
        """Score maps of one bucket's prompts that count, keeping at most
        ``kept`` instances each: exact mode's at the image size, fast
        mode's at mask resolution; with the instances' keys at mask
        resolution as fast mode's when their ``ids`` [K, kept] are given (else None)."""
        if cfg.mode == "fast":
            with watch("decode"):
                return self.grounder.fused_scores(decoded, kept, cfg.confidence_threshold, ids)
        with watch("decode"):
            index, weights = top_instances(decoded.objects, cfg.confidence_threshold, kept)
            masks, semantic = self.grounder.instance_logits(decoded, index)
        with watch("fusion"):
            maps = fuse_at_image(masks, weights, semantic, decoded.presence, encoded.height, encoded.width)
            return maps, None if ids is None else mask_instance_keys(masks, weights, ids)

    @torch.inference_mode()
    def prefetch(self, image: np.ndarray, active_queries: Optional[Sequence[int]] = None,
                 screen: bool = True) -> Prefetched:
        """Upload a frame and encode it at every input size its ``segment``
        will need, on the grounder's second CUDA stream: issued before the
        current frame's decode, the encode overlaps it. Pass the result to
        ``segment`` with the same image and arguments (``segment_many``
        does). On a CPU the encodes simply run now."""
        rgb = check_image(image)
        frame = self._snapshot()
        images = _FrameImages(self.grounder, rgb)
        with self.grounder.side_stream():
            if frame.previews(active_queries):
                if frame.screens(screen):
                    images.at(frame.sizes.screen)
                images.at(frame.sizes.preview)
            images.at(frame.sizes.full)
        return Prefetched(rgb, frame, active_queries, screen, images, self.grounder.side_done())

    def segment_many(self, images: Iterable[np.ndarray], active_queries: Optional[Sequence[int]] = None,
                     screen: bool = True) -> Iterator[SegmentationResult]:
        """``segment`` each image in turn, the next image's encode issued on
        the second CUDA stream before the current one decodes."""
        pending: Optional[Prefetched] = None
        for rgb in images:
            ahead = self.prefetch(rgb, active_queries, screen)
            if pending is not None:
                yield self.segment(pending.rgb, active_queries, screen, prefetched=pending)
            pending = ahead
        if pending is not None:
            yield self.segment(pending.rgb, active_queries, screen, prefetched=pending)

    @torch.inference_mode()
    def segment(
        self,
        image: np.ndarray,
        active_queries: Optional[Sequence[int]] = None,
        screen: bool = True,
        prefetched: Optional[Prefetched] = None,
    ) -> SegmentationResult:
        """Segment one H x W x 3 uint8 RGB image.

        ``active_queries`` skips the preview and decodes exactly these queries
        (temporal reuse). ``screen=False`` runs fast mode's preview without
        its screen, so it chooses as exact mode's does (a stream's rare
        refreshes afford it). ``prefetched``: this image from ``prefetch``.

        Everything between the frame's upload and its label image stays on
        the device; the host waits for it at most three times per frame
        (the active set after the preview, the presences and instance counts
        after the decoder, the labels), whatever the vocabulary.

        A frame that runs out of device memory runs again with half the
        bucket (the result says which bucket made it and how often it was
        halved); FrameOutOfMemory when even one prompt per forward does not fit.
        """
        rgb = check_image(image)
        if prefetched is not None:
            asked = (prefetched.active_queries, prefetched.screen)
            if prefetched.rgb is not image or asked != (active_queries, screen):
                raise ValueError("prefetched holds another image or other arguments than this call's")
            frame, images = prefetched.frame, prefetched.images
            self.grounder.wait(prefetched.ready)
        else:
            frame = self._snapshot()  # one consistent vocabulary, config and sizes per frame
            images = _FrameImages(self.grounder, rgb)
        watch = _Stopwatch()
        start = time.perf_counter()
        result, bucket, halvings = self._fitting(
            frame, rgb, lambda sized: self._run(rgb, sized, images, active_queries, screen, watch))
        watch.timings["total"] = time.perf_counter() - start
        result.bucket_size, result.bucket_halvings = bucket, halvings
        return result

    def _fitting(self, frame: _Frame, rgb: np.ndarray, attempt: Callable[[_Frame], Any]) -> Tuple[Any, int, int]:
        """``attempt(frame)`` with the frame's bucket decided (``bucket``),
        tried again with half the bucket while it runs out of device
        memory. Returns its result, the bucket that made it and how often
        it was halved; FrameOutOfMemory below one prompt."""
        bucket = self.buckets.size(frame.config.bucket_size, lambda: self._auto_bucket(frame, rgb))
        halvings = 0
        while True:
            try:
                out = attempt(dataclasses.replace(frame, bucket=bucket))
                self.buckets.made(bucket)
                return out, bucket, halvings
            except torch.OutOfMemoryError:
                pass  # handled outside the handler: its traceback holds the failed attempt's tensors
            except FrameOutOfMemory as exc:  # an image encode that does not fit
                raise FrameOutOfMemory(str(exc), halvings) from None
            _release_cached(self.device)
            bucket = self.buckets.halve(bucket, frame.prepared.num_queries, halvings)
            halvings += 1

    def _auto_bucket(self, frame: _Frame, rgb: np.ndarray) -> int:
        """``bucket_size`` auto for this frame on this device (``bucket``)."""
        return auto_bucket(free_bytes(self.device), frame.config.mode, frame.sizes.full, frame.sizes.preview,
                           rgb.shape[0] * rgb.shape[1], str(self.dtype).removeprefix("torch."))

    def _run(self, rgb: np.ndarray, frame: _Frame, images: _FrameImages, active_queries: Optional[Sequence[int]],
             screen: bool, watch: _Stopwatch) -> SegmentationResult:
        """One try of a frame with ``frame.bucket`` prompts per forward."""
        prepared, cfg = frame.prepared, frame.config
        n = prepared.num_queries
        preview_presence = preview_threshold = None
        if active_queries is not None:
            active = sorted({int(q) for q in active_queries if 0 <= int(q) < n}) or [0]
        elif frame.previews(active_queries):
            presence = self._preview(images, frame, watch, screen)
            mask, tau = active_mask(presence, cfg.quantile_alpha, cfg.max_active)
            packed = self.grounder.fetch(torch.cat([presence, mask.float(), tau.reshape(1)]))[0]
            preview_presence, preview_threshold = packed[:n].copy(), float(packed[-1])
            active = np.flatnonzero(packed[n : 2 * n]).tolist()
        else:
            active = list(range(n))
        self.stop.check()
        with watch("encode"):
            encoded = images.at(frame.sizes.full)
        scores = self._decode(encoded, frame, active, watch)
        vocabulary = prepared.vocabulary
        with watch("calibration"):
            labels, top = labels_from_scores(
                scores.class_scores, self.grounder.indices(scores.classes), len(vocabulary),
                vocabulary.background_index, cfg.background_threshold, cfg.mabc_exponent,
            )
            if scores.instances is None:
                labels, top = self.grounder.fetch(labels.to(label_dtype(len(vocabulary))), top)
                instances, instance_map = (), None
        if scores.instances is not None:
            with watch("instances"):
                labels, top, instances, instance_map = self._instances(labels, top, scores, vocabulary)
        query_presence = np.zeros(n, dtype=np.float32)
        query_presence[active] = scores.presence
        _require_finite(query_presence, top, preview_presence)
        return SegmentationResult(
            labels=labels.astype(np.int32, copy=False),
            scores=top.astype(np.float32, copy=False),
            vocabulary=vocabulary,
            active_queries=active,
            query_presence=query_presence,
            preview_presence=preview_presence,
            preview_ran=preview_presence is not None,
            preview_threshold=preview_threshold,
            background_index=vocabulary.background_index if cfg.background_threshold > 0 else None,
            timings=watch.timings,
            instances=instances,
            instance_map=instance_map,
        )

    def _instances(self, labels: torch.Tensor, top: torch.Tensor, scores: _Scores, vocabulary: Vocabulary):
        """The labels, their scores, the instances and the instance map on
        the host, in the one fetch the labels alone would take (two arrays:
        ``scoring.pack_instances``)."""
        found = scores.instances
        height, width = labels.shape
        if found.keys is None:
            packed, floats = labels.to(torch.int32), top.flatten()
        else:
            row = np.full(len(vocabulary), -1, dtype=np.int64)
            row[scores.classes] = np.arange(len(scores.classes))
            if vocabulary.background_index is not None:
                row[vocabulary.background_index] = -1  # the background is no object
            packed, floats = pack_instances(labels, found.keys, self.grounder.indices(row), found.count, top)
            floats = torch.cat([floats, found.scores[1:]])
        packed, floats = self.grounder.fetch(packed, floats)
        labels, instance_map = packed & 0xFFFF, packed >> 16
        count = found.count if found.keys is not None else 0
        pixels = height * width
        boxes = floats[pixels : pixels + 4 * count].reshape(count, 4)
        kept_scores = floats[pixels + 4 * count :]
        instances = tuple(
            Instance(found.classes[i], float(kept_scores[i]), tuple(int(v) for v in boxes[i]))
            for i in np.flatnonzero(np.isfinite(boxes[:, 0]))
        )
        return labels, floats[:pixels].reshape(height, width), instances, instance_map
