"""``activesam bench``: speed per stage, overhead over the model's forwards,
agreement of the fast modes with exact decoding, and scaling with the
vocabulary size, in one run; writes a JSON report and optionally a plot."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..benchmark import STREAM_PREVIEW_INTERVAL
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
    add_temporal_args(parser, default_preview_interval=STREAM_PREVIEW_INTERVAL)
    parser.set_defaults(run=run)


def _writable(path: str, flag: str) -> Path:
    out = Path(path)
    if not out.resolve().parent.is_dir():
        raise UserError(f"cannot write {flag} {path}: its folder does not exist")
    return out


def run(args: argparse.Namespace) -> int:
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
