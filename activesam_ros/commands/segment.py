"""``activesam segment``: label image files, writing PNG labels, a colour
overlay and a JSON summary per image."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List

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


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "segment",
        help="segment image files",
        description="Segment image files with a vocabulary; writes <stem>_labels.png "
        "(uint8, uint16 above 254 classes), <stem>_overlay.png and <stem>.json per image.",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any format OpenCV reads)")
    add_vocab_args(parser)
    add_model_args(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--overlay-alpha", type=float, default=default("overlay_alpha"),
                        help=f"weight of the class colours in the overlay, in [0, 1] (default {default('overlay_alpha'):g})")
    add_engine_args(parser)
    parser.set_defaults(run=run)


def read_rgb(path: Path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB, or a UserError saying why not."""
    import cv2

    if not path.is_file():
        raise UserError(f"{path}: no such file")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise UserError(f"{path}: not a readable image")
    return np.ascontiguousarray(image[:, :, ::-1])


def write_outputs(out: Path, stem: str, rgb: np.ndarray, result, alpha: float, summary: dict) -> None:
    import cv2

    from ..render.labels import label_dtype
    from ..render.overlay import overlay

    labels = result.labels
    cv2.imwrite(str(out / f"{stem}_labels.png"), labels.astype(label_dtype(len(result.vocabulary))))
    tinted = overlay(rgb, result, alpha)
    cv2.imwrite(str(out / f"{stem}_overlay.png"), np.ascontiguousarray(tinted[:, :, ::-1]))
    presence = result.class_presence
    summary = dict(summary)
    summary.update(
        image_size=[int(rgb.shape[1]), int(rgb.shape[0])],
        preview_ran=result.preview_ran,
        active_classes=[
            {"index": c, "name": result.vocabulary.names[c], "presence": round(float(presence[c]), 6),
             "pixels": int((labels == c).sum())}
            for c in result.active_classes
        ],
        timings_s={k: round(v, 6) for k, v in result.timings.items()},
    )
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n")


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
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out}: {exc.strerror}") from exc

    from tqdm import tqdm

    from ..engine.pipeline import ActiveSAM

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
        except UserError as exc:
            failures.append(str(exc))
            print(f"activesam segment: error: {exc}", file=sys.stderr)
            continue
        result = engine.segment(rgb)
        write_outputs(out, path.stem, rgb, result, args.overlay_alpha, summary)
    if failures:
        if len(paths) > 1:
            print(f"activesam segment: {len(failures)} of {len(paths)} image(s) failed", file=sys.stderr)
        return 1
    return 0
