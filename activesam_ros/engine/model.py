"""Loading SAM 3: the released checkpoint, a hub download the user opts into,
and a tiny randomly initialised model for tests, demos and benchmarks.

Every model returned here is a ``sam3.model.sam3_image.Sam3Image`` in eval
mode; the engine accepts any such model.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch
from torch.overrides import TorchFunctionMode

from . import cpu_shims
from .paths import PathError, user_path

log = logging.getLogger(__name__)

SAM3_HUB_FILENAME = "sam3.pt"
BPE_FILENAME = "bpe_simple_vocab_16e6.txt.gz"


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what to do about it."""


@dataclass(frozen=True)
class DeviceSpec:
    device: torch.device
    dtype: torch.dtype


def resolve_device(device: str = "auto", dtype: str = "auto") -> DeviceSpec:
    """Turn user strings into a device and a compute dtype.

    ``auto`` means CUDA when present, else CPU; the dtype defaults to
    bfloat16 on CUDA (the reference's autocast, in the stages
    ``precision.REDUCED`` names) and float32 on the CPU.
    """
    name = (device or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from exc
    if dev.type not in ("cpu", "cuda"):
        raise ModelLoadError(f"unsupported device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"device {device!r} was requested but this torch has no CUDA "
                f"(torch {torch.__version__}); install a CUDA build of torch "
                "(docs/install.md, 'GPU') or pass --device cpu"
            )
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise ModelLoadError(
                f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible"
            )
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    dname = (dtype or "auto").strip().lower()
    if dname == "auto":
        dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    elif dname in dtypes:
        dt = dtypes[dname]
    else:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    return DeviceSpec(dev, dt)


def bpe_vocabulary_path() -> str:
    """The CLIP BPE file sam3's tokenizer needs (its wheel lacks it).

    Looked up, in order: ``ACTIVESAM_BPE_PATH``, sam3's own assets folder, and
    the identical file that ``open_clip_torch`` ships.
    """
    candidates = []
    env = os.environ.get("ACTIVESAM_BPE_PATH")
    if env:
        candidates.append(Path(env))
    for package, rel in (("sam3", Path("..") / "assets" / BPE_FILENAME), ("open_clip", Path(BPE_FILENAME))):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            candidates.append(Path(list(spec.submodule_search_locations)[0]) / rel)
    for path in candidates:
        if path.is_file():
            return str(path.resolve())
    raise ModelLoadError(
        f"SAM 3's tokenizer file {BPE_FILENAME} was not found: "
        "pip install open_clip_torch (it ships the identical file) or set ACTIVESAM_BPE_PATH"
    )


def _import_sam3():
    cpu_shims.prepare_sam3_import()
    try:
        import sam3.model_builder as builder
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelLoadError(
            f"the sam3 package could not be imported ({exc}); install it with "
            "the pinned torch/torchvision (docs/install.md)"
        ) from exc
    return builder


SHOWN_KEYS = 5
"""How many offending keys a checkpoint error lists."""


IMAGE_MODEL_PREFIX = "detector."
"""Where the released checkpoint keeps the image model's weights: sam3
strict-loads the file into its video model, whose ``detector`` is the image
model."""

UNUSED_WEIGHTS = {
    "tracker.": "the video tracker",
    "detector.backbone.vision_backbone.sam2_convs.": "the interactive (point and box) predictor's neck",
}
"""What sam3's video model holds and its image model lacks, by name prefix:
skipped when loading, and counted. The test suite derives the same set from
sam3's builders, so a sam3 that adds a part shows up there."""


class _EmptyOnMeta(TorchFunctionMode):
    """During construction: ``torch.empty`` without a device (how modules
    allocate their parameters) of at least ``min_elements`` elements
    allocates shapes only."""

    def __init__(self, min_elements: int):
        super().__init__()
        self.min_elements = min_elements

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.empty and kwargs.get("device") is None and self._elements(args) >= self.min_elements:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)

    @staticmethod
    def _elements(args) -> int:
        shape = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)) else args
        return math.prod(int(n) for n in shape)


WEIGHTS_WITHOUT_MEMORY = 1 << 16
"""Elements from which ``parameters_on_meta`` leaves a tensor without memory
when loading: the weight matrices (all but 0.1 % of the released model's
values); biases, norms and masks below it are made for real."""


def parameters_on_meta(min_elements: int = 0) -> TorchFunctionMode:
    """Around a model's construction: the tensors modules allocate with
    ``torch.empty`` (their parameters, and a few buffers such as the text
    encoder's attention mask) from ``min_elements`` elements up get shapes
    but no memory and no initialisation; tables computed from sizes (RoPE)
    stay real. A checkpoint then gives the parameters their tensors, and
    ``load_weights`` refuses a model left with a tensor without memory."""
    return _EmptyOnMeta(min_elements)


def skipped_name(prefix: str, what: str) -> str:
    """How a skipped group of weights is named in the load report."""
    return f"{prefix}* ({what})"


@dataclass(frozen=True)
class CheckpointWeights:
    """The image model's weights read from a checkpoint, and what was left out."""

    weights: Dict[str, torch.Tensor]       # keyed as the image model names them
    skipped: Dict[str, int]                # skipped_name(...) -> weights skipped
    layout: str = "sam3"                   # "sam3" (sam3.pt) or "transformers" (model.safetensors)

    def skipped_line(self) -> str:
        """One line saying what was skipped and how much; "" for nothing."""
        if not any(self.skipped.values()):
            return ""
        return (f"skipped {sum(self.skipped.values())} weights the image model does not use: "
                + ", ".join(f"{n} {name}" for name, n in self.skipped.items() if n))


def split_published(state: Dict[str, torch.Tensor], source: str) -> CheckpointWeights:
    """sam3's published layout -> the image model's weights. Keys under
    ``detector.`` lose that prefix; ``UNUSED_WEIGHTS`` are skipped and
    counted; any other key is kept as it is, so the strict check refuses it."""
    weights: Dict[str, torch.Tensor] = {}
    skipped = dict.fromkeys(UNUSED_WEIGHTS, 0)
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ModelLoadError(f"{source} is not a SAM 3 checkpoint: it holds {key!r} of type "
                                 f"{type(value).__name__}, not a named tensor")
        prefix = next((p for p in UNUSED_WEIGHTS if key.startswith(p)), None)
        if prefix is not None:
            skipped[prefix] += 1
        elif key.startswith(IMAGE_MODEL_PREFIX):
            weights[key[len(IMAGE_MODEL_PREFIX):]] = value
        else:
            weights[key] = value
    if not any(k.startswith(IMAGE_MODEL_PREFIX) for k in state):
        raise ModelLoadError(
            f"{source} is not a SAM 3 checkpoint: it has no 'detector.*' weights "
            "(expected the released sam3.pt)"
        )
    return CheckpointWeights(weights, {skipped_name(p, what): skipped[p] for p, what in UNUSED_WEIGHTS.items()})


def _torch_load(path: Path) -> object:
    """Tensors only (``weights_only``: a pickle's code never runs),
    memory-mapped where the file's format allows (torch's zip format)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)  # the legacy format


def _read_checkpoint(path: Path) -> CheckpointWeights:
    """The image model's weights in a SAM 3 checkpoint: sam3's ``sam3.pt``
    (maybe under ``model``) or transformers' ``model.safetensors``;
    ModelLoadError, saying why, for anything else."""
    if not os.path.exists(path):  # a name too long for the file system is "not there" too, not a traceback
        raise ModelLoadError(
            f"checkpoint {str(path)!r} does not exist; download sam3.pt (docs/weights.md) "
            "or pass --hub-id facebook/sam3 to download it"
        )
    if not os.path.isfile(path):
        raise ModelLoadError(f"checkpoint {str(path)!r} is not a file")
    source = repr(str(path))
    if path.suffix == ".safetensors":
        from . import transformers_layout

        return transformers_layout.read(path)
    try:
        state = _torch_load(path)
    except Exception as exc:
        raise ModelLoadError(f"{source} is not a SAM 3 checkpoint: torch.load failed ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ModelLoadError(f"{source} is not a SAM 3 checkpoint: it holds a {type(state).__name__}, "
                             "not a dict of weights (expected the released sam3.pt)")
    return split_published(state, source)


def _listed(keys: List[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > SHOWN_KEYS else ''})"


def load_weights(model: torch.nn.Module, weights: Dict[str, torch.Tensor], source: str) -> None:
    """Load ``weights`` into ``model`` only if they are exactly its
    parameters: none missing, none unexpected, every shape equal. Buffers
    the model computes at construction (RoPE tables) may be absent.

    The tensors are taken as they are (``assign``: a memory-mapped file
    stays mapped, nothing is copied), converted only where their dtype
    differs from the model's; the model may be built with its parameters
    on the meta device (``parameters_on_meta``)."""
    expected = model.state_dict()
    parameters = {name for name, _ in model.named_parameters()}
    missing = sorted(parameters - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(f"{k} {tuple(weights[k].shape)} vs {tuple(expected[k].shape)}"
                    for k in set(weights) & set(expected) if weights[k].shape != expected[k].shape)
    kinds = sorted(f"{k} {weights[k].dtype} vs {expected[k].dtype}" for k in set(weights) & set(expected)
                   if weights[k].is_complex() != expected[k].is_complex()
                   or weights[k].is_floating_point() != expected[k].is_floating_point())
    problems = ([f"missing weights: {_listed(missing)}"] if missing else []) \
        + ([f"unexpected weights: {_listed(unexpected)}"] if unexpected else []) \
        + ([f"wrong shapes: {_listed(shapes)}"] if shapes else []) \
        + ([f"wrong kinds of number: {_listed(kinds)}"] if kinds else [])
    if problems:
        raise ModelLoadError(f"{source} does not match the SAM 3 image model: " + "; ".join(problems)
                             + " (expected the released sam3.pt for sam3 0.1.4)")
    model.load_state_dict({k: v if v.dtype == expected[k].dtype else v.to(expected[k].dtype)
                           for k, v in weights.items()}, strict=False, assign=True)
    left = [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise ModelLoadError(f"{source}: the model still lacks {_listed(left)} after loading")


def _download_from_hub(hub_id: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with sam3
        raise ModelLoadError("huggingface_hub is required for --hub-id") from exc
    try:
        return Path(hf_hub_download(repo_id=hub_id, filename=SAM3_HUB_FILENAME))
    except GatedRepoError as exc:
        raise ModelLoadError(
            f"access to {hub_id!r} is gated: accept the licence on its hub page, then "
            "log in with `hf auth login` (or set HF_TOKEN) and retry"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelLoadError(f"hub repository {hub_id!r} was not found (or is private without a token)") from exc
    except Exception as exc:
        raise ModelLoadError(
            f"could not download {SAM3_HUB_FILENAME} from {hub_id!r}: {exc}; "
            "download it elsewhere and pass --checkpoint PATH"
        ) from exc


@dataclass(frozen=True)
class LoadReport:
    """How a model was made ready: where from, what was skipped, and the time
    it took before the first frame can run (on this process's clock)."""

    source: str
    build_seconds: float           # the architecture, parameters without memory
    weights_seconds: float         # reading (memory-mapped), checking and assigning the weights
    device_seconds: float          # moving to the device
    skipped: str = ""              # CheckpointWeights.skipped_line()
    layout: str = ""               # the checkpoint's layout; "" for a random-weight model

    @property
    def total_seconds(self) -> float:
        return self.build_seconds + self.weights_seconds + self.device_seconds

    def line(self) -> str:
        return (f"{self.source} ready in {self.total_seconds:.1f} s (build {self.build_seconds:.1f} s, "
                f"weights {self.weights_seconds:.1f} s, to device {self.device_seconds:.1f} s)")


def load_sam3_with_report(
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    hub_id: Optional[str] = None,
    device: str = "auto",
) -> "tuple[torch.nn.Module, LoadReport]":
    """Build the released SAM 3 image model and load its weights; the model
    and how long that took.

    Exactly one of ``checkpoint`` (a local ``sam3.pt``, or transformers'
    ``model.safetensors``) and ``hub_id`` (e.g. ``facebook/sam3``,
    downloaded only because the caller asked) is given. Weights of sam3's
    video model that the image model does not use are skipped by name
    (``UNUSED_WEIGHTS``); everything else must match the image model
    exactly (``load_weights``). The weights stay float32 and memory-mapped
    on the CPU; the engine runs bfloat16 autocast on CUDA (``precision``).
    """
    if (checkpoint is None) == (hub_id is None):
        raise ModelLoadError("give exactly one of a checkpoint path or a hub id")
    spec = resolve_device(device)
    if hub_id is not None:
        path = _download_from_hub(hub_id)
    else:
        try:
            path = user_path(os.fspath(checkpoint), "checkpoint")
        except PathError as exc:
            raise ModelLoadError(str(exc)) from None
    source = f"SAM 3 checkpoint {str(path)!r}"
    start = time.perf_counter()
    read = _read_checkpoint(path)  # first: a wrong file fails at once
    if read.skipped_line():
        log.info("%s: %s", source, read.skipped_line())
    mapped = time.perf_counter()
    # Built without the checkpoint (sam3 would load it leniently:
    # strict=False, mismatches only printed) and without parameter memory.
    with parameters_on_meta(WEIGHTS_WITHOUT_MEMORY):
        model = build_released_sam3()
    built = time.perf_counter()
    load_weights(model, read.weights, repr(str(path)))
    loaded = time.perf_counter()
    model = model.to(spec.device).eval()
    report = LoadReport(source, built - mapped, (mapped - start) + (loaded - built), time.perf_counter() - loaded,
                        read.skipped_line(), read.layout)
    log.info("%s", report.line())
    return model, report


def load_sam3(
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    hub_id: Optional[str] = None,
    device: str = "auto",
) -> torch.nn.Module:
    """``load_sam3_with_report`` without the report."""
    return load_sam3_with_report(checkpoint, hub_id, device)[0]


def build_released_sam3() -> torch.nn.Module:
    """SAM 3's released image architecture as sam3's builder makes it, on
    the CPU, with no weights loaded (sam3's initialisation)."""
    builder = _import_sam3()
    with cpu_shims.cpu_construction():
        return builder.build_sam3_image_model(
            bpe_path=bpe_vocabulary_path(),
            device="cpu",
            checkpoint_path=None,
            load_from_HF=False,
        )


def fill_text_weights(encoder: torch.nn.Module) -> None:
    """Random values for the two text-encoder tensors sam3 leaves as
    ``torch.empty`` (only a checkpoint fills them): a model without one."""
    torch.nn.init.normal_(encoder.positional_embedding, std=0.01)
    if getattr(encoder, "text_projection", None) is not None:
        torch.nn.init.normal_(encoder.text_projection, std=encoder.width ** -0.5)


RANDOM_MODELS = ("tiny", "released")
"""Models with random weights: the tiny test model and the released
architecture (840 M parameters; memory and work benchmarks)."""


def build_model_with_random_weights(name: str, seed: int = 0) -> torch.nn.Module:
    """A seeded random-weight SAM 3 (``RANDOM_MODELS``); its outputs mean nothing."""
    if name == "tiny":
        return build_tiny_sam3(seed=seed)
    if name != "released":
        raise ModelLoadError(f"unknown random-weight model {name!r}: use one of {', '.join(RANDOM_MODELS)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_released_sam3()
        fill_text_weights(model.backbone.language_backbone.encoder)
    return model.eval()


def load_model_with_report(
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    hub_id: Optional[str] = None,
    tiny: bool = False,
    device: str = "auto",
    seed: int = 0,
    random: str = "",
) -> "tuple[torch.nn.Module, LoadReport]":
    """The SAM 3 a front end names (the released checkpoint, a hub download
    the user asked for, or a random-weight model: ``tiny``, or ``random``
    naming one of ``RANDOM_MODELS``) and how long it took to make it ready."""
    random = random or ("tiny" if tiny else "")
    if not random:
        return load_sam3_with_report(checkpoint=checkpoint or None, hub_id=hub_id or None, device=device)
    if checkpoint or hub_id:
        raise ModelLoadError("give one model: a checkpoint, a hub id or a random-weight model")
    start = time.perf_counter()
    model = build_model_with_random_weights(random, seed=seed)
    built = time.perf_counter()
    model = model.to(resolve_device(device).device)
    return model, LoadReport(f"{random} SAM 3 (random weights, seed {seed})", built - start, 0.0,
                             time.perf_counter() - built)


def load_model(
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    hub_id: Optional[str] = None,
    tiny: bool = False,
    device: str = "auto",
    seed: int = 0,
) -> torch.nn.Module:
    """``load_model_with_report`` without the report."""
    return load_model_with_report(checkpoint, hub_id, tiny, device, seed)[0]


def build_tiny_sam3(seed: int = 0, image_size: int = 336, d_model: int = 64) -> torch.nn.Module:
    """A tiny, seeded, fully initialised SAM 3 image model (random weights).

    Assembled from sam3's own classes with the released model's structure
    and smaller sizes, so every code path of the real model runs. Its outputs
    mean nothing; never present them as results. Same seed, same weights.
    ``image_size`` must be a multiple of 112 (window 8 x patch 14).
    """
    if image_size % 112 != 0:
        raise ValueError(f"image_size must be a multiple of 112, got {image_size}")
    if d_model % 8 != 0:
        raise ValueError(f"d_model must be a multiple of 8, got {d_model}")
    _import_sam3()
    from sam3.model.decoder import TransformerDecoder, TransformerDecoderLayer
    from sam3.model.encoder import TransformerEncoderFusion, TransformerEncoderLayer
    from sam3.model.geometry_encoders import SequenceGeometryEncoder
    from sam3.model.maskformer_segmentation import PixelDecoder, UniversalSegmentationHead
    from sam3.model.model_misc import MLP, DotProductScoring, TransformerWrapper
    from sam3.model.model_misc import MultiheadAttentionWrapper as MHA
    from sam3.model.necks import Sam3DualViTDetNeck
    from sam3.model.position_encoding import PositionEmbeddingSine
    from sam3.model.sam3_image import Sam3Image
    from sam3.model.text_encoder_ve import VETextEncoder
    from sam3.model.tokenizer_ve import SimpleTokenizer
    from sam3.model.vitdet import ViT
    from sam3.model.vl_combiner import SAM3VLBackbone

    heads = 8 if d_model >= 64 else 4
    ffn = 4 * d_model
    fork = torch.random.fork_rng(devices=[])
    with fork, cpu_shims.cpu_construction():
        torch.manual_seed(seed)

        def pos_enc() -> PositionEmbeddingSine:
            return PositionEmbeddingSine(num_pos_feats=d_model, normalize=True, temperature=10000)

        vit = ViT(
            img_size=image_size, pretrain_img_size=112, patch_size=14, embed_dim=96, depth=4,
            num_heads=4, mlp_ratio=4.0, norm_layer="LayerNorm", drop_path_rate=0.0,
            qkv_bias=True, use_abs_pos=True, tile_abs_pos=True, global_att_blocks=(1, 3),
            rel_pos_blocks=(), use_rope=True, use_interp_rope=True, window_size=8,
            pretrain_use_cls_token=True, retain_cls_token=False, ln_pre=True, ln_post=False,
            return_interm_layers=False, bias_patch_embed=False,
        )
        neck = Sam3DualViTDetNeck(
            position_encoding=pos_enc(), d_model=d_model,
            scale_factors=[4.0, 2.0, 1.0, 0.5], trunk=vit, add_sam2_neck=False,
        )
        text = VETextEncoder(
            d_model=d_model, tokenizer=SimpleTokenizer(bpe_path=bpe_vocabulary_path()),
            width=64, heads=4, layers=2, context_length=32,
        )
        fill_text_weights(text.encoder)
        backbone = SAM3VLBackbone(visual=neck, text=text, scalp=1)

        def attention(batch_first: bool, dropout: float = 0.0) -> MHA:
            return MHA(num_heads=heads, dropout=dropout, embed_dim=d_model, batch_first=batch_first)

        encoder = TransformerEncoderFusion(
            layer=TransformerEncoderLayer(
                activation="relu", d_model=d_model, dim_feedforward=ffn, dropout=0.0,
                pos_enc_at_attn=True, pos_enc_at_cross_attn_keys=False,
                pos_enc_at_cross_attn_queries=False, pre_norm=True,
                self_attention=attention(True), cross_attention=attention(True),
            ),
            num_layers=2, d_model=d_model, num_feature_levels=1, frozen=False,
            use_act_checkpoint=False, add_pooled_text_to_img_feat=False, pool_text_with_mask=True,
        )
        decoder = TransformerDecoder(
            layer=TransformerDecoderLayer(
                activation="relu", d_model=d_model, dim_feedforward=ffn, dropout=0.0,
                cross_attention=attention(False), n_heads=heads, use_text_cross_attention=True,
            ),
            num_layers=3, num_queries=20, return_intermediate=True, box_refine=True,
            num_o2m_queries=0, dac=True, boxRPB="log", d_model=d_model, frozen=False,
            interaction_layer=None, dac_use_selfatt_ln=True, resolution=None, stride=None,
            use_act_checkpoint=False, presence_token=True,
        )
        scoring = DotProductScoring(
            d_model=d_model, d_proj=d_model,
            prompt_mlp=MLP(input_dim=d_model, hidden_dim=ffn, output_dim=d_model, num_layers=2,
                           dropout=0.0, residual=True, out_norm=torch.nn.LayerNorm(d_model)),
        )
        seg_head = UniversalSegmentationHead(
            hidden_dim=d_model, upsampling_stages=3, aux_masks=False, presence_head=False,
            dot_product_scorer=None, act_ckpt=False, cross_attend_prompt=attention(False),
            pixel_decoder=PixelDecoder(num_upsampling_stages=3, interpolation_mode="nearest",
                                       hidden_dim=d_model),
        )
        geometry = SequenceGeometryEncoder(
            pos_enc=pos_enc(), encode_boxes_as_points=False, points_direct_project=True,
            points_pool=True, points_pos_enc=True, boxes_direct_project=True, boxes_pool=True,
            boxes_pos_enc=True, d_model=d_model, num_layers=1,
            layer=TransformerEncoderLayer(
                activation="relu", d_model=d_model, dim_feedforward=ffn, dropout=0.0,
                pos_enc_at_attn=False, pre_norm=True, self_attention=attention(False),
                pos_enc_at_cross_attn_queries=False, pos_enc_at_cross_attn_keys=True,
                cross_attention=attention(False),
            ),
            use_act_ckpt=False, add_cls=True, add_post_encode_proj=True,
        )
        model = Sam3Image(
            backbone=backbone,
            transformer=TransformerWrapper(encoder=encoder, decoder=decoder, d_model=d_model),
            input_geometry_encoder=geometry, segmentation_head=seg_head, num_feature_levels=1,
            o2m_mask_predict=True, dot_prod_scoring=scoring, use_instance_query=False,
            multimask_output=True, inst_interactive_predictor=None, matcher=None,
        )
    return model.eval()
