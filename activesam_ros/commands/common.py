"""Options and loading steps that several subcommands share.

Flags are named like the config fields and node parameters they set
(``--bucket-size`` -> ``bucket_size``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Dict

from ..config import ActiveSAMConfig, ConfigError
from ..vocabulary import Vocabulary, VocabularyError


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def add_model_args(parser: argparse.ArgumentParser, default_tiny: bool = False) -> None:
    group = parser.add_argument_group("model")
    which = group.add_mutually_exclusive_group(required=not default_tiny)
    which.add_argument("--checkpoint", metavar="PATH", help="the released SAM 3 checkpoint (sam3.pt)")
    which.add_argument("--hub-id", metavar="ID", help="download the checkpoint from this hub repository (e.g. facebook/sam3)")
    which.add_argument("--model", choices=["tiny"], help="a tiny random-weight SAM 3 (tests and demos; outputs mean nothing)")
    group.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    group.add_argument("--dtype", default="auto", help="auto (default: bfloat16 on CUDA, float32 on CPU), float32, bfloat16")
    group.add_argument("--seed", type=int, default=0, help="seed of the tiny model (default 0)")


def add_vocab_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    which = parser.add_mutually_exclusive_group(required=required)
    which.add_argument("--vocab", metavar="TEXT", help='classes separated by ";", aliases by ",": "person; car, automobile; dog"')
    which.add_argument("--vocab-file", metavar="FILE", help="one class per line, aliases separated by commas")


_CONFIG_HELP = {
    "resolution": "full-resolution input size (default: the model's, 1008 for SAM 3)",
    "preview_resolution": "preview input size (default: 2/3 of the resolution)",
    "bucket_size": "prompts per grounding forward (default 32)",
    "max_active": "at most this many queries decoded at full resolution (default 40)",
    "quantile_alpha": "fraction of queries the preview keeps (default 0.20)",
    "confidence_threshold": "instance score threshold (default 0.3)",
    "background_threshold": "margin-aware background threshold, 0 = off (default 0)",
    "mabc_exponent": "exponent of the background threshold (default 1.25)",
    "neighbour_tokens": "semantic-neighbour context tokens per query (default 2)",
    "hypernym_tokens": "WordNet hypernym context tokens per query (default 2)",
    "mode": "exact (the method step by step) or fast (same decisions, fused)",
    "fast_presence_floor": "fast mode: skip heads below this presence (default 0.02)",
    "fast_preview_resolution": "fast mode: screening preview size (default: 1/3 of the resolution)",
    "fast_screen_keep": "fast mode: fraction of queries the screen passes to the preview (default 0.4)",
}


def add_engine_args(parser: argparse.ArgumentParser, default_mode: str = "exact") -> None:
    group = parser.add_argument_group("ActiveSAM")
    for f in dataclasses.fields(ActiveSAMConfig):
        if f.name not in _CONFIG_HELP:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "mode":
            group.add_argument(flag, choices=["exact", "fast"], default=default_mode,
                               help=f"{_CONFIG_HELP[f.name]} (default {default_mode})")
            continue
        kind = float if isinstance(f.default, float) else int
        group.add_argument(flag, type=kind, default=None, help=_CONFIG_HELP[f.name])


def config_from_args(args: argparse.Namespace, **overrides: Any) -> ActiveSAMConfig:
    values: Dict[str, Any] = {}
    for f in dataclasses.fields(ActiveSAMConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    values.update(overrides)
    try:
        return ActiveSAMConfig().replace(**values)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc


def vocabulary_from_args(args: argparse.Namespace) -> Vocabulary:
    try:
        if getattr(args, "vocab_file", None):
            return Vocabulary.from_file(args.vocab_file)
        return Vocabulary.from_string(args.vocab or "")
    except VocabularyError as exc:
        raise UserError(str(exc)) from exc


def load_model_from_args(args: argparse.Namespace):
    """The SAM 3 model the flags name, on the requested device."""
    from ..model import ModelLoadError, build_tiny_sam3, load_sam3, resolve_device

    try:
        spec = resolve_device(args.device, args.dtype)
        if getattr(args, "checkpoint", None) or getattr(args, "hub_id", None):
            return load_sam3(checkpoint=args.checkpoint, hub_id=args.hub_id, device=args.device)
        print("activesam: warning: using the tiny random-weight SAM 3; its labels mean nothing",
              file=sys.stderr)
        return build_tiny_sam3(seed=args.seed).to(spec.device)
    except ModelLoadError as exc:
        raise UserError(str(exc)) from exc


def model_description(args: argparse.Namespace) -> str:
    """What produced a result, said plainly (random weights are flagged)."""
    if getattr(args, "checkpoint", None):
        return f"SAM 3 checkpoint {args.checkpoint}"
    if getattr(args, "hub_id", None):
        return f"SAM 3 from hub {args.hub_id}"
    return f"tiny SAM 3 (random weights, seed {args.seed}): outputs are meaningless"
