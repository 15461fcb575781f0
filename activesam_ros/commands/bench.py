"""``activesam bench``: speed per stage, overhead over the model's forwards,
agreement of the fast modes with exact decoding, and scaling with the
vocabulary size, in one run; writes a JSON report and optionally a plot."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import (
    UserError,
    add_model_args,
    add_temporal_args,
    config_from_args,
    load_model_from_args,
    model_description,
    temporal_from_args,
)


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "bench",
        help="benchmark speed, overhead, agreement and vocabulary scaling",
        description="Measure full-vocabulary decoding, ActiveSAM exact and fast, and temporal reuse on "
        "real photographs and a synthetic video, and time per frame and peak memory against the "
        "vocabulary size. Prints the JSON report on stdout and a table on stderr.",
    )
    add_model_args(parser)
    parser.add_argument("--quick", action="store_true",
                        help="fewer and smaller frames, |V| in {20, 50, 1000} (minutes on a CPU with --model tiny)")
    parser.add_argument("--json", required=True, metavar="OUT", help="write the report here")
    parser.add_argument("--plot", metavar="OUT.png", help="write a PNG of time per frame against |V| here")
    video = parser.add_argument_group("real video (instead of the sections above)")
    video.add_argument("--video", metavar="FILE", help="measure the temporal policies (per-frame exact and fast, "
                       "reuse, reuse + propagation) on this video file (.gz too), against per-frame exact")
    video.add_argument("--video-frames", type=int, default=40, metavar="N", help="frames read (default 40)")
    video.add_argument("--video-side", type=int, default=384, metavar="PX",
                       help="longer side the frames are scaled to (default 384)")
    video.add_argument("--video-vocab", action="append", metavar="NAME",
                       help="a vocabulary (shipped name or file) to measure with; repeatable "
                       "(default: ade20k and indoor)")
    video.add_argument("--model-every", type=int, default=4, metavar="N",
                       help="the propagation policy runs the model on every N-th frame (default 4)")
    add_temporal_args(parser)
    parser.set_defaults(run=run)


def _writable(path: str, flag: str) -> Path:
    out = Path(path)
    if not out.resolve().parent.is_dir():
        raise UserError(f"cannot write {flag} {path}: its folder does not exist")
    return out


def run(args: argparse.Namespace) -> int:
    if args.video:
        return run_video(args)
    json_path = _writable(args.json, "--json")
    plot_path = _writable(args.plot, "--plot") if args.plot else None
    config = config_from_args(args)

    from ..benchmark.inputs import InputError, photo_path
    from ..benchmark.plot import plot_scaling
    from ..benchmark.run import FULL, QUICK, run_benchmark
    from ..benchmark.summary import table

    temporal = temporal_from_args(args)
    try:
        photo_path("astronaut.png")  # fail before loading the model
    except InputError as exc:
        raise UserError(str(exc)) from exc
    model = load_model_from_args(args)
    report = run_benchmark(model, model_description(args), random_weights=args.model == "tiny",
                           config=config, temporal=temporal, plan=QUICK if args.quick else FULL, progress=True)
    text = json.dumps(report, indent=2)
    try:
        json_path.write_text(text + "\n")
        if plot_path is not None:
            env = report["environment"]
            title = f"{report['model']['description']} - {env['device_name']} ({env['device']})"
            plot_scaling(report["scaling"]["rows"], title, plot_path)
    except OSError as exc:
        raise UserError(f"cannot write the report: {exc}") from exc
    print(text)
    print(table(report), file=sys.stderr)
    return 0


def run_video(args: argparse.Namespace) -> int:
    """``--video``: the temporal policies on a real video (benchmark/video.py)."""
    json_path = _writable(args.json, "--json")
    if not Path(args.video).is_file():
        raise UserError(f"--video {args.video}: no such file")
    if args.video_frames < 2 or args.model_every < 1 or args.video_side < 28:
        raise UserError("--video-frames must be at least 2, --model-every at least 1, --video-side at least 28")
    from ..benchmark.video import VideoError, measure_video, video_table
    from ..engine.vocabulary import VocabularyError, load_vocabulary_file

    try:
        vocabularies = {name: load_vocabulary_file(name) for name in (args.video_vocab or ["ade20k", "indoor"])}
    except VocabularyError as exc:
        raise UserError(str(exc)) from exc
    config = config_from_args(args)
    temporal = temporal_from_args(args)
    model = load_model_from_args(args)
    try:
        report = measure_video(model, Path(args.video), vocabularies, config, temporal, args.model_every,
                               args.video_frames, args.video_side,
                               progress=lambda done: print(f"activesam bench: {done}", file=sys.stderr))
    except VideoError as exc:
        raise UserError(str(exc)) from exc
    report = {"schema": "activesam-bench-video/1", "model": model_description(args),
              "random_weights": args.model == "tiny", **report}
    text = json.dumps(report, indent=2)
    try:
        json_path.write_text(text + "\n")
    except OSError as exc:
        raise UserError(f"cannot write the report: {exc}") from exc
    print(text)
    print(video_table(report), file=sys.stderr)
    return 0
