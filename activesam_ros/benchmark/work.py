"""The work per frame at SAM 3's released size, counted, and what it implies.

``count_stages`` counts each stage of the engine once per resolution, on
the released architecture (``counting``): the image encode at the full,
preview and fast-screen sizes, the text encode of one string, and one
grounding forward of K prompts of each kind the engine runs (``FORWARDS``:
the preview's and screen's presence-only decode, exact mode's decode with
the heads, fast mode's decode with its fused heads) and of sam3's own
forwards, the reference the paper measured. Every grounding forward is exactly linear in K (a fixed
part for the shared work plus K times a per-prompt part), so it is counted
at K = 1 and 2 and checked against a direct count at the bucket size.

``frame_work`` adds the stages up the way each mode runs them for a
vocabulary of N queries:

- ``decode_all``: every query decoded at full resolution (SegEarth-OV3's way);
- ``exact``: the preview of every query (when N > max_active) and the
  decode of the active set;
- ``fast``: the screen of every query, the preview of the top 40 %, the
  decode of the active set with fast mode's heads;
- ``stream_reuse``: a stream with the fast engine, refreshing on a fraction
  of its frames and decoding fewer queries on the others (``StreamMix``);
- ``stream_propagation``: the same stream run on a fraction of the camera
  frames, the others labelled by optical flow (not counted: milliseconds of
  CPU).

Fusion and calibration are element-wise work at the image size that torch's
counter does not see; they are counted analytically (``ELEMENTWISE``).
From counted work to frame rates: ``estimates`` divides each GPU's
published dense bfloat16 peak, times an efficiency calibrated on the
paper's one measurement, by the work per frame. Estimates, not measurements.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..engine.bucket import planned
from ..engine.config import ActiveSAMConfig, number_error
from ..engine.grounding import EncodedImage, Grounder, TextBatch
from ..engine.pipeline import InputSizes, input_sizes
from ..engine.scoring import select_active, top_instances
from .counting import Count, ShapeOnly, count, count_by_module, released_sam3

KEPT_INSTANCES = 5
"""Object queries above the confidence threshold per decoded prompt
(assumed: a real image shows a few instances of a class). Only fast mode's
kept-instance product and the image-size fusion depend on it."""

IMAGE_SIZE = (640, 480)
"""The camera frame's width and height for the work done at the image size."""

ELEMENTWISE = {"resize": 7, "sigmoid": 4, "multiply": 1, "max": 1}
"""Operations per output element: a bilinear sample (4 multiplies, 3 adds),
a sigmoid (exp, add, divide and the negation), a multiply, a max."""

MODES = ("decode_all", "exact", "fast", "stream_reuse", "stream_propagation")


@dataclass(frozen=True)
class Linear:
    """Work of one grounding forward over K prompts: ``fixed + K * per_prompt``."""

    fixed: Count
    per_prompt: Count

    @classmethod
    def from_counts(cls, one: Count, two: Count) -> "Linear":
        """From counts at K = 1 and 2. FLOPs are exactly linear (checked at
        the bucket size); bytes nearly (a broadcast at K = 1 is a copy at
        K = 2), so their fixed part is kept at zero or above."""
        fixed = one * 2 - two
        return cls(fixed=Count(fixed.flops, max(0.0, fixed.bytes), fixed.attention), per_prompt=two - one)

    def at(self, k: float) -> Count:
        return self.fixed + self.per_prompt * k

    def prompts(self, n: float, bucket: int) -> Count:
        """All forwards for ``n`` prompts (a mean may be fractional) in buckets."""
        return self.fixed * math.ceil(n / bucket) + self.per_prompt * n if n > 0 else Count()


@dataclass
class Stages:
    """Counted work of every stage at one full resolution."""

    sizes: InputSizes
    encode: Dict[int, Count]                 # image encode per input size
    text_per_string: Count                   # one-time per vocabulary
    forward: Dict[str, Linear]               # grounding forwards, see FORWARDS
    text_tokens: int = 0                     # prompt length: text tokens (+ context tokens at full size)
    width: int = 256                         # prompt token width (d_model)
    breakdown: Dict[str, Dict[str, float]] = field(default_factory=dict)  # GFLOP by module
    check: Dict[str, Any] = field(default_factory=dict)


MODULE_NAMES = {"ViT": "ViT trunk", "Sequential": "neck (FPN convolutions)",
                "TransformerEncoderFusion": "fusion encoder", "TransformerDecoder": "decoder",
                "SequenceGeometryEncoder": "geometry prompt encoder", "DotProductScoring": "scoring"}


FORWARDS = {
    "preview": "presence-only decode at the preview size, prompt-independent work once per forward (both modes)",
    "preview_sam3": "presence-only decode at the preview size as sam3 runs it (the reference implementation's)",
    "screen_fast": "presence-only decode at the screen size, shared (fast mode)",
    "decoder_full": "fusion encoder + decoder at full size, no heads, as sam3 runs it",
    "decoder_shared": "the same with the prompt-independent work once per forward (the engine's)",
    "exact_full": "exact mode's decode at full size: shared encoder work, decoder, the engine's heads of the kept instances",
    "sam3_full": "sam3's own forward at full size with its heads (the reference implementation, the paper's)",
    "fast_full": "fast mode's decode at full size: shared encoder work, decoder, fused heads",
}


def _grounding_input(encoded: EncodedImage) -> EncodedImage:
    """``encoded`` with the coarsest level real (zeros): the geometry
    encoder samples it with roi_align, which needs values."""
    out = dict(encoded.backbone_out)
    for key in ("backbone_fpn", "vision_pos_enc"):
        levels = list(out[key])
        levels[-1] = torch.zeros(levels[-1].shape)
        out[key] = levels
    return EncodedImage(out, encoded.height, encoded.width, encoded.resolution)


class StageCounter:
    """Counts the engine's calls on a model (shape-only or with values)."""

    def __init__(self, model: torch.nn.Module, config: ActiveSAMConfig, kept: int = KEPT_INSTANCES,
                 shape_only: bool = True):
        cpu = torch.device("cpu")
        self.grounder = Grounder(model, cpu, torch.float32)
        self.reference = Grounder(model, cpu, torch.float32, reference_heads=True)
        self.config = config
        self.kept = kept
        self.shape_only = shape_only
        self.num_queries = int(model.transformer.decoder.num_queries)
        if not self.grounder.reference_heads:
            self.grounder.fused_heads  # built once here, not inside the first count  # noqa: B018

    def _count(self, fn) -> Tuple[Count, Any]:
        probe = ShapeOnly(self.num_queries, self.kept) if self.shape_only else None
        return count(fn, probe)

    def encode(self, size: int) -> Tuple[Count, EncodedImage]:
        rgb = torch.zeros(size, size, 3, dtype=torch.uint8).numpy()
        if self.shape_only:  # the grounder's view of the model at this size, built outside the count
            count(lambda: self.grounder.encode_image(rgb, size), ShapeOnly(self.num_queries, self.kept))
        work, encoded = self._count(lambda: self.grounder.encode_image(rgb, size))
        return work, (_grounding_input(encoded) if self.shape_only else encoded)

    def text(self, strings: Sequence[str]) -> Tuple[Count, Dict[str, torch.Tensor]]:
        return self._count(lambda: self.grounder.encode_text(list(strings)))

    def batch(self, k: int, tokens: int, width: int) -> TextBatch:
        return TextBatch(torch.zeros(tokens, k, width), torch.zeros(k, tokens, dtype=torch.bool))

    def forward(self, kind: str, image: EncodedImage, text: TextBatch) -> Count:
        return self._count(self.call(kind, image, text))[0]

    def modules(self, fn) -> Dict[str, float]:
        """GFLOP of each outermost sam3 module ``fn`` calls (named for people)."""
        probe = ShapeOnly(self.num_queries, self.kept) if self.shape_only else None
        _, modules, _ = count_by_module(fn, probe)
        return {MODULE_NAMES.get(name, name): flops / 1e9 for name, flops in modules.items()}

    def call(self, kind: str, image: EncodedImage, text: TextBatch):
        """The engine call a forward kind makes (FORWARDS), ready to run. Each
        call starts from the encoded image alone: it counts the image's
        prompt-independent work too, which a frame does once per image."""
        cfg = self.config

        def fresh() -> EncodedImage:
            return replace(image, shared={})

        def exact():
            decoded = self.grounder.decode(fresh(), text)
            # The object queries any prompt keeps (a shape-only count assumes ``kept``), as ``Grounder.score``.
            kept = len(torch.nonzero((decoded.objects > cfg.confidence_threshold).any(0)))
            index, _ = top_instances(decoded.objects, cfg.confidence_threshold, kept)
            return self.grounder.instance_logits(decoded, index)

        calls = {
            "preview": lambda: self.grounder.ground(fresh(), text, heads=False, share=True),
            "preview_sam3": lambda: self.reference.ground(fresh(), text, heads=False, share=False),
            "screen_fast": lambda: self.grounder.ground(fresh(), text, heads=False, share=True),
            "decoder_full": lambda: self.reference.ground(fresh(), text, heads=False, share=False),
            "decoder_shared": lambda: self.grounder.ground(fresh(), text, heads=False, share=True),
            "exact_full": exact,
            "sam3_full": lambda: self.reference.ground(fresh(), text, heads=True, share=False),
            "fast_full": lambda: self.grounder.score(fresh(), text, cfg.confidence_threshold, cfg.fast_presence_floor),
        }
        return calls[kind]


def count_stages(model: torch.nn.Module, config: ActiveSAMConfig, kept: int = KEPT_INSTANCES,
                 check_bucket: bool = True) -> Stages:
    """Every stage at ``config``'s resolution (see the module doc)."""
    counter = StageCounter(model, config, kept)
    sizes = input_sizes(config, counter.grounder)
    encode, images = {}, {}
    for size in dict.fromkeys((sizes.full, sizes.preview, sizes.screen)):
        encode[size], images[size] = counter.encode(size)
    one, out = counter.text(["object"])
    two, _ = counter.text(["object", "a much longer name of a thing"])
    tokens, width = int(out["language_features"].shape[0]), int(out["language_features"].shape[-1])
    context = config.neighbour_tokens + config.hypernym_tokens
    where = {"preview": (sizes.preview, tokens), "preview_sam3": (sizes.preview, tokens),
             "screen_fast": (sizes.screen, tokens), "decoder_full": (sizes.full, tokens + context),
             "decoder_shared": (sizes.full, tokens + context), "exact_full": (sizes.full, tokens + context),
             "sam3_full": (sizes.full, tokens + context), "fast_full": (sizes.full, tokens + context)}
    forward = {}
    for kind, (size, length) in where.items():
        at = [counter.forward(kind, images[size], counter.batch(k, length, width)) for k in (1, 2)]
        forward[kind] = Linear.from_counts(*at)
    stages = Stages(sizes, encode, text_per_string=two - one, forward=forward, text_tokens=tokens + context,
                    width=width)
    rgb = torch.zeros(sizes.full, sizes.full, 3, dtype=torch.uint8).numpy()
    stages.breakdown["image_encode"] = counter.modules(lambda: counter.grounder.encode_image(rgb, sizes.full))
    one_prompt = counter.batch(1, tokens + context, width)
    prompt = counter.modules(counter.call("decoder_full", images[sizes.full], one_prompt))
    shared = (forward["decoder_full"].per_prompt - forward["decoder_shared"].per_prompt).gflop
    prompt["fusion encoder (the engine's)"] = prompt[MODULE_NAMES["TransformerEncoderFusion"]] - shared
    prompt["segmentation heads (the engine's)"] = (forward["exact_full"].per_prompt
                                                   - forward["decoder_shared"].per_prompt).gflop
    prompt["segmentation heads (sam3's)"] = (forward["sam3_full"].per_prompt
                                             - forward["decoder_full"].per_prompt).gflop
    stages.breakdown["prompt_full"] = prompt
    stages.check["text_linear"] = {"one_string_gflop": one.gflop, "two_strings_gflop": two.gflop}
    if check_bucket:
        k = planned(config.bucket_size)
        direct = counter.forward("exact_full", images[sizes.full], counter.batch(k, tokens + context, width))
        predicted = forward["exact_full"].at(k)
        stages.check["bucket"] = {
            "forward": "exact_full", "prompts": k, "counted_gflop": direct.gflop,
            "extrapolated_from_1_and_2_gflop": predicted.gflop,
            "relative_difference": abs(direct.flops - predicted.flops) / direct.flops,
        }
    return stages


def active_count(n: int, config: ActiveSAMConfig) -> int:
    """Queries the method decodes at full resolution for N queries (the
    quantile rule of ``scoring.select_active`` on N distinct presences)."""
    if n <= config.max_active:
        return n
    return len(select_active(torch.linspace(0.0, 1.0, n), config.quantile_alpha, config.max_active))


def _fusion(decoded: float, classes: int, mode: str, stages: Stages, config: ActiveSAMConfig,
            kept: int, image_size: Tuple[int, int]) -> Count:
    """Element-wise work after the heads (analytic; see ELEMENTWISE)."""
    e = ELEMENTWISE
    pixels = image_size[0] * image_size[1]
    mask = (stages.sizes.full // 14 * 4) ** 2       # the heads' output grid: 4x the ViT's
    scored = min(classes, decoded)
    if mode == "exact":
        # Per prompt at the image size: each kept mask and the semantic map
        # resized and squashed; masks weighted and maxed; fused with the
        # semantic map, gated by presence. Then the class maxima.
        per_prompt = (kept + 1) * (e["resize"] + e["sigmoid"]) + kept * (e["multiply"] + e["max"]) \
            + e["max"] + e["multiply"]
        flops = decoded * per_prompt * pixels + decoded * e["max"] * pixels
        written = decoded * (kept + 2) * pixels * 4
    else:
        # Fused at mask size (the kept-instance products are counted with
        # the heads), then the class maxima, then one resize per scored class.
        per_prompt = (kept + 1) * e["sigmoid"] + kept * (e["multiply"] + e["max"]) + e["max"] + e["multiply"]
        flops = decoded * (per_prompt + e["max"]) * mask + scored * e["resize"] * pixels
        written = decoded * 2 * mask * 4 + scored * pixels * 4
    # Calibration: argmax over the scored classes; with a background class,
    # the runner-up and the margin energy (a square root, a compare).
    calibration = scored * e["max"] * pixels
    if config.background_threshold > 0:
        calibration += (scored * e["max"] + 4) * pixels
    return Count(flops + calibration, written + pixels * 8)


@dataclass(frozen=True)
class StreamMix:
    """What a stream policy does, as plain numbers (``stream_mix`` measures them)."""

    refresh_fraction: float             # model frames that run the method's full work
    reuse_decoded_queries: float        # mean queries decoded on a reuse frame
    model_fraction: float = 1.0         # camera frames the model runs on under propagation
    refresh_screened_fraction: float = 0.0  # refreshes whose preview ran fast mode's screen
    source: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StreamMix":
        names = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown stream mix field(s): {', '.join(unknown)}")
        mix = cls(**dict(data))
        problems = [number_error(name, getattr(mix, name), 0, 1)
                    for name in ("refresh_fraction", "model_fraction", "refresh_screened_fraction")]
        problems.append(number_error("reuse_decoded_queries", mix.reuse_decoded_queries, 0, None))
        problems = [problem for problem in problems if problem]
        if problems:
            raise ValueError("; ".join(problems))
        return mix


def _method(stages: Stages, n: int, config: ActiveSAMConfig, fast: bool, screened: float) -> Count:
    """One frame of the method's full work (the preview when N > max_active,
    the decode of the active set) with the exact or the fast engine; a fast
    preview is screened on a fraction ``screened`` of such frames."""
    s, f, bucket = stages.sizes, stages.forward, planned(config.bucket_size)
    active = active_count(n, config)
    work = stages.encode[s.full] + f["fast_full" if fast else "exact_full"].prompts(active, bucket)
    if n > config.max_active:
        unscreened = stages.encode[s.preview] + f["preview"].prompts(n, bucket)
        if not fast:
            return work + unscreened
        keep = max(1, math.ceil(config.fast_screen_keep * n))
        screen = stages.encode[s.screen] + f["screen_fast"].prompts(n, bucket) \
            + stages.encode[s.preview] + f["preview"].prompts(keep, bucket)
        work = work + unscreened * (1 - screened) + screen * screened
    return work


def frame_work(stages: Stages, n: int, classes: int, config: ActiveSAMConfig, mix: Optional[StreamMix] = None,
               kept: int = KEPT_INSTANCES, image_size: Tuple[int, int] = IMAGE_SIZE) -> Dict[str, Any]:
    """Counted work per frame of every mode for N queries of ``classes`` classes."""
    s, f, bucket = stages.sizes, stages.forward, planned(config.bucket_size)
    active = active_count(n, config)
    screened = 1.0 if config.fast_screen_keep < 1 else 0.0
    fusion_exact = _fusion(active, classes, "exact", stages, config, kept, image_size)
    fusion_fast = _fusion(active, classes, "fast", stages, config, kept, image_size)
    fusion_all = _fusion(n, classes, "exact", stages, config, kept, image_size)
    modes: Dict[str, Dict[str, Any]] = {
        "decode_all": _mode(stages.encode[s.full] + f["exact_full"].prompts(n, bucket), fusion_all, n),
        "exact": _mode(_method(stages, n, config, fast=False, screened=0.0), fusion_exact, active),
        "fast": _mode(_method(stages, n, config, fast=True, screened=screened), fusion_fast, active),
    }
    if mix is not None:
        refresh = _method(stages, n, config, fast=True, screened=mix.refresh_screened_fraction)
        decoded = min(mix.reuse_decoded_queries, active)
        reuse = stages.encode[s.full] + f["fast_full"].prompts(decoded, bucket)
        per_model_frame = refresh * mix.refresh_fraction + reuse * (1 - mix.refresh_fraction)
        fusion_reuse = _fusion(decoded, classes, "fast", stages, config, kept, image_size)
        fusion = fusion_fast * mix.refresh_fraction + fusion_reuse * (1 - mix.refresh_fraction)
        modes["stream_reuse"] = _mode(per_model_frame, fusion, decoded)
        modes["stream_propagation"] = _mode(per_model_frame * mix.model_fraction, fusion * mix.model_fraction,
                                            decoded)
    reference = stages.encode[s.full] + f["sam3_full"].prompts(active, bucket)
    if n > config.max_active:
        reference = reference + stages.encode[s.preview] + f["preview_sam3"].prompts(n, bucket)
    modes["exact_sam3_forward"] = _mode(reference, fusion_exact, active)
    all_sam3 = stages.encode[s.full] + f["sam3_full"].prompts(n, bucket)
    modes["decode_all_sam3_forward"] = _mode(all_sam3, fusion_all, n)
    return {"queries": n, "classes": classes, "active": active, "modes": modes}


def _mode(model: Count, elementwise: Count, decoded: float) -> Dict[str, Any]:
    total = model + elementwise
    return {"gflop": total.gflop, "model_gflop": model.gflop, "elementwise_gflop": elementwise.gflop,
            "activation_gbytes": total.bytes / 1e9, "decoded_queries": decoded}


def stage_table(stages: Stages) -> Dict[str, Any]:
    """Per-stage GFLOP and activation MB (bfloat16), per prompt where it applies."""
    s = stages.sizes
    f = stages.forward

    def row(c: Count) -> Dict[str, float]:
        return {"gflop": c.gflop, "attention_gflop": c.attention / 1e9, "activation_mb": c.bytes / 1e6,
                "flop_per_byte": c.flops / c.bytes if c.bytes else None}

    heads_engine = f["exact_full"].per_prompt - f["decoder_shared"].per_prompt
    heads_sam3 = f["sam3_full"].per_prompt - f["decoder_full"].per_prompt
    return {
        "sizes": asdict(s),
        "image_encode": {str(size): row(c) for size, c in stages.encode.items()},
        "text_encode_per_string": row(stages.text_per_string),
        "per_prompt": {
            "preview": row(f["preview"].per_prompt),
            "preview_sam3": row(f["preview_sam3"].per_prompt),
            "screen_fast": row(f["screen_fast"].per_prompt),
            "encoder_decoder_full": row(f["decoder_full"].per_prompt),
            "encoder_decoder_shared": row(f["decoder_shared"].per_prompt),
            "heads_engine_full": row(heads_engine),
            "heads_sam3_full": row(heads_sam3),
            "exact_full": row(f["exact_full"].per_prompt),
            "sam3_full": row(f["sam3_full"].per_prompt),
            "fast_full": row(f["fast_full"].per_prompt),
        },
        "per_forward": {kind: row(line.fixed) for kind, line in f.items()},
        "forwards": FORWARDS,
        "checks": stages.check,
    }


@dataclass(frozen=True)
class Gpu:
    name: str
    bf16_dense_tflops: float
    memory_gbytes_per_s: float


# Published peaks (dense, no structured sparsity), bfloat16/FP16 tensor math:
# - H100 SXM: NVIDIA H100 Tensor Core GPU datasheet, BF16 Tensor Core 1,979
#   TFLOPS "with sparsity", half without: 989.4; HBM3 3.35 TB/s.
# - RTX 5090: NVIDIA RTX Blackwell GPU architecture whitepaper, peak FP16/BF16
#   Tensor TFLOPS with FP32 accumulate 209.5 (419 with sparsity); GDDR7
#   1,792 GB/s (also listed as "FP16 dense 209.5 TFLOPS" at codesota.com/hardware/rtx-5090).
# - Jetson AGX Orin 64GB: NVIDIA Jetson AGX Orin Series Technical Brief: the
#   GPU's 64 third-generation Tensor Cores give 170 sparse INT8 TOPS, i.e.
#   85 dense INT8; Ampere's FP16/BF16 tensor rate is half its INT8 rate:
#   42.5 dense TFLOPS; LPDDR5 204.8 GB/s.
GPUS = (
    Gpu("NVIDIA H100 SXM", 989.4, 3350.0),
    Gpu("NVIDIA GeForce RTX 5090", 209.5, 1792.0),
    Gpu("NVIDIA Jetson AGX Orin 64GB", 42.5, 204.8),
)

PAPER = {"dataset": "ade20k", "queries": 150, "mode": "exact_sam3_forward", "fps": 1.92,
         "gpu": "NVIDIA GeForce RTX 5090", "resolution": 1008}
"""The paper's measurement the efficiency is calibrated on: ActiveSAM on
ADE20K's 150 classes at 1.92 frames/s on one RTX 5090 (method doc, section 6),
with the reference implementation's forwards (sam3's own)."""

PAPER_OTHERS = ({"dataset": "context59", "mode": "exact_sam3_forward", "fps": 4.10},
                {"dataset": "coco_object", "mode": "exact_sam3_forward", "fps": 3.19},
                {"dataset": "coco_stuff", "mode": "exact_sam3_forward", "fps": 1.66},
                {"dataset": "ade20k", "mode": "decode_all_sam3_forward", "fps": 0.35, "method": "SegEarth-OV3"})
"""The paper's other speeds on the same GPU: the efficiency each implies is
printed beside the calibrated one (how well counted work explains them)."""


def gpu_named(name: str) -> Gpu:
    return next(g for g in GPUS if g.name == name)


def implied_efficiency(gflop_per_frame: float, fps: float, gpu: Gpu) -> float:
    """The fraction of ``gpu``'s peak a run at ``fps`` used."""
    return gflop_per_frame * 1e9 * fps / (gpu.bf16_dense_tflops * 1e12)


def estimates(frames: Sequence[Dict[str, Any]], efficiency: float,
              modes: Sequence[str] = MODES) -> List[Dict[str, Any]]:
    """Frames/s on every GPU at ``efficiency`` of its peak: ESTIMATES."""
    rows = []
    for frame in frames:
        for gpu in GPUS:
            fps = {m: gpu.bf16_dense_tflops * 1e12 * efficiency / (frame["modes"][m]["gflop"] * 1e9)
                   for m in modes if m in frame["modes"]}
            rows.append({"gpu": gpu.name, "resolution": frame["resolution"], "vocabulary": frame["vocabulary"],
                         "queries": frame["queries"], "fps": fps})
    return rows


def bandwidth_bound(stage_rows: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Stages whose activation bytes per FLOP put them below a GPU's ridge
    point (peak / bandwidth): there bytes, not FLOPs, bound the time."""
    out = []
    items = list(stage_rows["per_prompt"].items()) + [(f"image_encode_{k}", v)
                                                      for k, v in stage_rows["image_encode"].items()]
    for name, row in items:
        for gpu in GPUS:
            ridge = gpu.bf16_dense_tflops * 1e12 / (gpu.memory_gbytes_per_s * 1e9)
            if row["flop_per_byte"] is not None and row["flop_per_byte"] < ridge:
                out.append({"stage": name, "gpu": gpu.name, "flop_per_byte": row["flop_per_byte"],
                            "ridge_flop_per_byte": ridge,
                            "bytes_time_ms": row["activation_mb"] * 1e6 / (gpu.memory_gbytes_per_s * 1e9) * 1e3,
                            "flop_time_ms_at_peak": row["gflop"] * 1e9 / (gpu.bf16_dense_tflops * 1e12) * 1e3})
    return out


@dataclass(frozen=True)
class StageCheck:
    """One stage counted shape-only and by really running it."""

    shape_only_gflop: float
    real_gflop: float
    relative_difference: float


def check_real(config: ActiveSAMConfig, stages: Stages, seed: int = 0) -> Dict[str, StageCheck]:
    """Run the full-size image encode and one exact-mode grounding forward
    for real, on the released architecture with random weights (about
    3.4 GB and a few minutes on a CPU), and compare their counts with the
    shape-only ones."""
    counter = StageCounter(released_sam3(values=True, seed=seed), config, shape_only=False)
    full = stages.sizes.full
    encode, image = counter.encode(full)
    text = counter.batch(1, stages.text_tokens, stages.width)
    forward = counter.forward("exact_full", image, text)
    out = {}
    for name, shaped, real in ((f"image encode {full} px", stages.encode[full], encode),
                               (f"exact grounding forward, 1 prompt, {full} px", stages.forward["exact_full"].at(1),
                                forward)):
        out[name] = StageCheck(shaped.gflop, real.gflop, abs(shaped.flops - real.flops) / real.flops)
    return out
