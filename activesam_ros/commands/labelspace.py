"""``activesam labelspace``: a vocabulary as the label space a mapping stack
reads: a Hydra label-space YAML and a colour table CSV (Kimera-Semantics,
Hydra's colour decoding). No model runs."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, List

from ..engine.limits import MAX_ROLES_FILE_BYTES
from ..files.outputs import OutputError, check_outputs, write_files
from ..render.labelspace import LabelSpace, LabelSpaceError, merge_roles, names_in, read_roles, resolve_roles
from ..stream.parameters import SHARED_BY_NAME, default
from .common import UserError, add_vocab_args, vocabulary_from_args

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
DEFAULT_NAME = "activesam"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "labelspace",
        help="write a vocabulary as a Hydra label space and a Kimera colour table",
        description="Write the vocabulary's label space for mapping stacks: <name>_label_space.yaml (Hydra: "
        "total_semantic_labels, label_names, invalid_labels, object_labels, surface_places_labels, "
        "dynamic_labels) and <name>.csv (name,red,green,blue,alpha,id: the overlay's class colours, id = the "
        "class index in the labels image; Kimera-Semantics, Hydra's colour decoding). Invalid are the "
        "unlabeled value and the class named background; objects, surfaces and dynamic classes are named by "
        "--roles and the flags (any alias, any case). No model runs.",
    )
    add_vocab_args(parser)
    parser.add_argument("--roles", metavar="FILE",
                        help="YAML with the keys objects, surfaces and dynamic (any of them), each a list of class "
                        f"names; at most {MAX_ROLES_FILE_BYTES >> 20} MiB")
    parser.add_argument("--objects", action="append", default=[], metavar="NAMES",
                        help='object classes, ";"-separated ("chair; table"); added to --roles\' (Hydra\'s '
                        "object_labels: the classes it turns into objects)")
    parser.add_argument("--surfaces", action="append", default=[], metavar="NAMES",
                        help="surface classes (Hydra's surface_places_labels: the classes its 2D places grow on)")
    parser.add_argument("--dynamic", action="append", default=[], metavar="NAMES",
                        help="dynamic classes (Hydra's dynamic_labels: kept out of the map)")
    parser.add_argument("--label-encoding", choices=SHARED_BY_NAME["label_encoding"].choices,
                        default=default("label_encoding"),
                        help="the labels image encoding the label space describes, as the node's label_encoding "
                        f"parameter (default {default('label_encoding')}): the unlabeled value is 255/65535 "
                        "(mono) or -1 (32SC1)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--name", default=DEFAULT_NAME,
                        help=f"file names: <name>_label_space.yaml and <name>.csv (default {DEFAULT_NAME}; "
                        "letters, digits, '_', '-', '.')")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files of an earlier run (a link or a non-regular file is never replaced)")
    parser.set_defaults(run=run)


def output_names(name: str) -> List[str]:
    """The files ``labelspace`` writes: Hydra's ``<name>_label_space.yaml``
    (the name its launch files build from a label space's name) and ``<name>.csv``."""
    return [f"{name}_label_space.yaml", f"{name}.csv"]


def run(args: argparse.Namespace) -> int:
    if not _NAME.match(args.name) or args.name in (".", ".."):
        raise UserError(f"--name {args.name!r} may hold only letters, digits, '_', '-' and '.'")
    vocabulary = vocabulary_from_args(args)
    try:
        named = read_roles(args.roles) if args.roles else {}
        flags = {role: names_in(getattr(args, role)) for role in ("objects", "surfaces", "dynamic")}
        roles = resolve_roles(vocabulary, merge_roles(named, {k: v for k, v in flags.items() if v}))
        space = LabelSpace.of(vocabulary, roles, args.label_encoding)
        source = f"--vocab-file {args.vocab_file!r}" if args.vocab_file else "--vocab"
        title = (f"Hydra label space of an activesam_ros vocabulary ({source}, {len(vocabulary)} classes), "
                 f"labels image encoding {args.label_encoding}; written by activesam labelspace")
        outputs = [space.hydra_yaml(title).encode("utf-8"), space.kimera_csv().encode("utf-8")]
    except LabelSpaceError as exc:
        raise UserError(str(exc)) from exc
    out = Path(args.out)
    targets = [out / name for name in output_names(args.name)]
    try:
        check_outputs(targets, args.overwrite)
        write_files(list(zip(targets, outputs)), args.overwrite)
    except OutputError as exc:
        raise UserError(str(exc)) from exc
    for target in targets:
        print(target)
    return 0
