"""``activesam segment``: label image files, writing PNG labels, a colour
overlay and a JSON summary per image."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List

import numpy as np

from ..engine.limits import MAX_IMAGE_BYTES, InputError
from ..files.outputs import Inputs, OutputError, check_outputs, write_files
from ..stream.parameters import default
from .common import (
    UserError,
    add_engine_args,
    add_model_args,
    add_vocab_args,
    build_engine,
    check_combination,
    config_from_args,
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
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files: PNG, JPEG, WebP, BMP or PNM (formats whose size is read before decoding)")
    add_vocab_args(parser)
    add_model_args(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace outputs of an earlier run in --out (an input, a link or a non-regular file "
                        "is never replaced)")
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


def _png(pixels: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", pixels)
    if not ok:
        raise OutputError("OpenCV could not encode a PNG")
    return data.tobytes()


def write_outputs(out: Path, stem: str, rgb: np.ndarray, result, alpha: float, summary: dict,
                  legend: bool = False, overwrite: bool = False, inputs: Inputs = Inputs()) -> None:
    """One image's labels, overlay and summary, written together (all three or none; ``files.outputs``)."""
    from ..render.labels import label_array, unlabeled_value
    from ..render.overlay import overlay

    labels_name, overlay_name, json_name = output_names(stem)
    encoded = label_array(result)
    tinted = np.ascontiguousarray(overlay(rgb, result, alpha, legend)[:, :, ::-1])
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
    write_files([(out / labels_name, _png(encoded)), (out / overlay_name, _png(tinted)),
                 (out / json_name, text.encode("utf-8"))], overwrite, inputs)


def _check_images(paths: List[Path]) -> None:
    """Every input a regular file within the size limit, of an accepted
    format by its signature; the pixels are checked when it is decoded."""
    from ..engine.paths import check_regular
    from ..files.images import ACCEPTED, sniff

    problems = []
    for path in paths:
        try:
            info = check_regular(path, str(path))
        except InputError as exc:
            problems.append("no such file: " + str(path) if not os.path.lexists(path) else str(exc))
            continue
        if info.st_size > MAX_IMAGE_BYTES:
            problems.append(f"{path} has {info.st_size} bytes; the limit is {MAX_IMAGE_BYTES}")
            continue
        try:
            with open(path, "rb") as file:
                head = file.read(16)
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror}")
            continue
        if sniff(head) is None:
            problems.append(f"{path} is not a readable image of an accepted format ({ACCEPTED})")
    if problems:
        raise UserError("; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else ""))


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.overlay_alpha <= 1.0:
        raise UserError(f"--overlay-alpha must be in [0, 1], got {args.overlay_alpha}")
    paths = [Path(p) for p in args.images]
    _check_images(paths)
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise UserError("two images share a file stem; their outputs would overwrite each other")
    vocabulary = vocabulary_from_args(args)
    config = config_from_args(args)
    check_combination(config, vocabulary)
    out = Path(args.out)
    inputs = Inputs(paths)
    try:
        check_outputs([out / name for p in paths for name in output_names(p.stem)], args.overwrite, inputs)
    except OutputError as exc:
        raise UserError(str(exc)) from exc

    from tqdm import tqdm

    from ..engine.bucket import FrameOutOfMemory
    from ..engine.pipeline import NonFiniteScores
    from ..files.images import read_image

    engine = build_engine(args, vocabulary, config)
    summary = {
        "model": model_description(args),
        "vocabulary": list(vocabulary.lines),
        "config": config.as_dict(),
    }
    failures: List[str] = []
    written = 0
    for path in tqdm(paths, desc="segment", unit="image", disable=len(paths) < 2, file=sys.stderr):
        try:
            image = read_image(path)
            result = engine.segment(image.rgb)
        except (InputError, NonFiniteScores, FrameOutOfMemory) as exc:  # this image only: report it and go on
            failures.append(str(path))
            print(f"{PROG}: error: {exc}; skipped", file=sys.stderr)
            continue
        if image.header.orientation != 1:
            print(f"{PROG}: note: {path} has EXIF orientation {image.header.orientation}; its labels follow the "
                  "pixels as stored, not the rotated view", file=sys.stderr)
        try:
            write_outputs(out, path.stem, image.rgb, result, args.overlay_alpha, summary, args.overlay_legend,
                          args.overwrite, inputs)
        except OutputError as exc:  # a full disk, a file size limit, another run: the rest would fail alike
            raise UserError(f"{exc}; stopped with the outputs of {written} of {len(paths)} image(s) written "
                            "whole, nothing of the others") from exc
        written += 1
    if failures:
        print(f"{PROG}: {len(failures)} of {len(paths)} image(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0
