"""Loading SAM 3: the released checkpoint, a hub download the user opts into,
and a tiny randomly initialised model for tests, demos and benchmarks.

Every model returned here is a ``sam3.model.sam3_image.Sam3Image`` in eval
mode; the engine accepts any such model.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch

from . import cpu_shims
from .paths import PathError, user_path

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
    bfloat16 on CUDA (the reference's autocast) and float32 on the CPU.
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


def _read_checkpoint(path: Path) -> Dict[str, torch.Tensor]:
    """The image model's weights in a SAM 3 checkpoint, keyed as the model
    names them (sam3's layout: ``detector.`` prefixed, maybe under
    ``model``); ModelLoadError, saying why, for anything else. Tensors only
    (``weights_only``): a pickle's code never runs."""
    if not os.path.exists(path):
        raise ModelLoadError(
            f"checkpoint {str(path)!r} does not exist; download sam3.pt (docs/install.md, "
            "'SAM 3 weights') or pass --hub-id facebook/sam3 to download it"
        )
    if not os.path.isfile(path):
        raise ModelLoadError(f"checkpoint {str(path)!r} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise ModelLoadError(f"{str(path)!r} is not a SAM 3 checkpoint: torch.load failed ({exc})") from exc
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ModelLoadError(f"{str(path)!r} is not a SAM 3 checkpoint: it holds a {type(state).__name__}, "
                             "not a dict of weights (expected the released sam3.pt)")
    weights = {k.replace("detector.", ""): v for k, v in state.items()
               if isinstance(k, str) and "detector" in k and isinstance(v, torch.Tensor)}
    if not weights:
        raise ModelLoadError(
            f"{str(path)!r} is not a SAM 3 checkpoint: it has no 'detector.*' weights "
            "(expected the released sam3.pt)"
        )
    return weights


def _listed(keys: List[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > SHOWN_KEYS else ''})"


def load_weights(model: torch.nn.Module, weights: Dict[str, torch.Tensor], source: str) -> None:
    """Load ``weights`` into ``model`` only if they are exactly its
    parameters: none missing, none unexpected, every shape equal. Buffers
    the model computes at construction (RoPE tables) may be absent."""
    expected = model.state_dict()
    parameters = {name for name, _ in model.named_parameters()}
    missing = sorted(parameters - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(f"{k} {tuple(weights[k].shape)} vs {tuple(expected[k].shape)}"
                    for k in set(weights) & set(expected) if weights[k].shape != expected[k].shape)
    problems = ([f"missing weights: {_listed(missing)}"] if missing else []) \
        + ([f"unexpected weights: {_listed(unexpected)}"] if unexpected else []) \
        + ([f"wrong shapes: {_listed(shapes)}"] if shapes else [])
    if problems:
        raise ModelLoadError(f"{source} does not match the SAM 3 image model: " + "; ".join(problems)
                             + " (expected the released sam3.pt for sam3 0.1.4)")
    model.load_state_dict(weights, strict=False)


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


def load_sam3(
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    hub_id: Optional[str] = None,
    device: str = "auto",
) -> torch.nn.Module:
    """Build the released SAM 3 image model and load its weights.

    Exactly one of ``checkpoint`` (a local ``sam3.pt``) and ``hub_id`` (e.g.
    ``facebook/sam3``, downloaded only because the caller asked) is given.
    The checkpoint must hold exactly the image model's weights (see
    ``load_weights``). The weights stay float32; the engine runs bfloat16
    autocast on CUDA.
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
    weights = _read_checkpoint(path)
    # Built without the checkpoint: sam3 would load it leniently
    # (strict=False, mismatches only printed); it is loaded strictly here.
    model = build_released_sam3()
    load_weights(model, weights, repr(str(path)))
    return model.to(spec.device).eval()


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


def load_model(
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    hub_id: Optional[str] = None,
    tiny: bool = False,
    device: str = "auto",
    seed: int = 0,
) -> torch.nn.Module:
    """The SAM 3 a front end names: the released checkpoint, a hub download
    the user asked for, or (``tiny``) the random-weight test model."""
    if tiny:
        if checkpoint or hub_id:
            raise ModelLoadError("give one model: a checkpoint, a hub id or the tiny model")
        return build_tiny_sam3(seed=seed).to(resolve_device(device).device)
    return load_sam3(checkpoint=checkpoint or None, hub_id=hub_id or None, device=device)


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
