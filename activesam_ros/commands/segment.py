"""``activesam segment``: label image files, writing PNG labels, a colour
overlay and a JSON summary per image."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable, List

import numpy as np

from ..stream.parameters import default
from .common import (
    UserError,
    add_engine_args,
    add_model_args,
    add_vocab_args,
    config_from_args,
    load_model_from_args,
    model_description,
    vocabulary_from_args,
)

PROG = "activesam segment"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "segment",
        help="segment image files",
        description="Segment image files with a vocabulary; writes <stem>_labels.png "
        "(class index per pixel, unlabeled 255; uint16 and 65535 above 254 classes), "
        "<stem>_overlay.png and <stem>.json per image.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format OpenCV reads)")
    add_vocab_args(parser)
    add_model_args(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace outputs of an earlier run in --out (an input is never overwritten)")
    parser.add_argument("--overlay-alpha", type=float, default=default("overlay_alpha"),
                        help=f"weight of the class colours in the overlay, in [0, 1] (default {default('overlay_alpha'):g})")
    parser.add_argument("--overlay-legend", action=argparse.BooleanOptionalAction, default=default("overlay_legend"),
                        help="draw the class names in their colours into the overlay "
                        f"(default {'on' if default('overlay_legend') else 'off'})")
    add_engine_args(parser)
    parser.set_defaults(run=run)


def output_names(stem: str) -> List[str]:
    """The files ``segment`` writes for an image of this stem."""
    return [f"{stem}_labels.png", f"{stem}_overlay.png", f"{stem}.json"]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_outputs(paths: List[Path], out: Path, overwrite: bool) -> None:
    """Refuse, before anything is written, an output that is one of the
    inputs (never overwritten, whatever the flags), that is not a regular
    file, or that exists without ``--overwrite``; the message names it."""
    clashes, existing = [], []
    for path in paths:
        for name in output_names(path.stem):
            target = out / name
            victim = next((p for p in paths if _same_file(target, p)), None)
            if victim is not None:
                clashes.append(f"{target} is the input {victim}")
            elif target.is_symlink() or (target.exists() and not target.is_file()):
                clashes.append(f"{target} exists and is not a regular file")
            elif target.exists():
                existing.append(str(target))
    if clashes:
        raise UserError(f"an output would replace what must not be replaced: {'; '.join(clashes[:3])}"
                        f"{' ...' if len(clashes) > 3 else ''}; choose another --out or rename the input")
    if existing and not overwrite:
        shown = ", ".join(existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise UserError(f"{shown} exist(s) already; pass --overwrite to replace them, or choose another --out")


def _write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename: a run
    stopped halfway never leaves a half-written output behind."""
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def write_outputs(out: Path, stem: str, rgb: np.ndarray, result, alpha: float, summary: dict,
                  legend: bool = False) -> None:
    import cv2

    from ..render.labels import label_array, unlabeled_value
    from ..render.overlay import overlay

    labels_name, overlay_name, json_name = output_names(stem)
    encoded = label_array(result)
    tinted = np.ascontiguousarray(overlay(rgb, result, alpha, legend)[:, :, ::-1])

    def imwrite(pixels: np.ndarray) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            if not cv2.imwrite(str(path), pixels):
                raise OSError(f"OpenCV could not write {path}")
        return write

    _write_atomically(out / labels_name, imwrite(encoded))
    _write_atomically(out / overlay_name, imwrite(tinted))
    presence, pixels = result.class_presence, result.class_pixels
    summary = dict(summary)
    summary.update(
        image_size=[int(rgb.shape[1]), int(rgb.shape[0])],
        preview_ran=result.preview_ran,
        unlabeled_value=unlabeled_value(len(result.vocabulary)),
        active_classes=[
            {"index": c, "name": result.vocabulary.names[c], "presence": round(float(presence[c]), 6),
             "pixels": int(pixels[c])}
            for c in result.active_classes
        ],
        timings_s={k: round(v, 6) for k, v in result.timings.items()},
    )
    text = json.dumps(summary, indent=2) + "\n"
    _write_atomically(out / json_name, lambda path: path.write_text(text, encoding="utf-8"))


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.overlay_alpha <= 1.0:
        raise UserError(f"--overlay-alpha must be in [0, 1], got {args.overlay_alpha}")
    import cv2

    paths = [Path(p) for p in args.images]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"no such file: {', '.join(missing)}")
    unreadable = [str(p) for p in paths if not cv2.haveImageReader(str(p))]
    if unreadable:
        raise UserError(f"not a readable image: {', '.join(unreadable)}")
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise UserError("two images share a file stem; their outputs would overwrite each other")
    vocabulary = vocabulary_from_args(args)
    config = config_from_args(args)
    out = Path(args.out)
    check_outputs(paths, out, args.overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out}: {exc.strerror}") from exc

    from tqdm import tqdm

    from ..engine.limits import ImageError
    from ..engine.pipeline import ActiveSAM, NonFiniteScores
    from ..render.files import read_rgb

    model = load_model_from_args(args)
    engine = ActiveSAM(model, vocabulary, config)
    summary = {
        "model": model_description(args),
        "vocabulary": list(vocabulary.lines),
        "config": config.as_dict(),
    }
    failures: List[str] = []
    for path in tqdm(paths, desc="segment", unit="image", disable=len(paths) < 2, file=sys.stderr):
        try:
            rgb = read_rgb(path)
            result = engine.segment(rgb)
        except (ImageError, NonFiniteScores) as exc:  # this image only: report it and go on
            failures.append(str(path))
            print(f"{PROG}: error: {path}: {exc}; skipped", file=sys.stderr)
            continue
        write_outputs(out, path.stem, rgb, result, args.overlay_alpha, summary, args.overlay_legend)
    if failures:
        print(f"{PROG}: {len(failures)} of {len(paths)} image(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0
