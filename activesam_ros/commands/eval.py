"""``activesam eval``: ActiveSAM's mIoU on one of the paper's benchmarks.

Images are segmented one at a time at their own size, as in the paper; the
confusion matrix spans the whole split (mmsegmentation's IoUMetric).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ..files.outputs import Inputs, OutputError, check_outputs, write_file
from . import distributed
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

if TYPE_CHECKING:
    from ..engine.config import ActiveSAMConfig
    from ..engine.pipeline import ActiveSAM
    from ..engine.vocabulary import Vocabulary
    from ..evaluation.datasets import Benchmark, Sample
    from ..evaluation.metrics import ConfusionMatrix

DEFAULT_SEVERITY = 5  # the paper's robustness table


def add_parser(subparsers: Any) -> None:
    from ..evaluation.corruptions import CORRUPTIONS
    from ..evaluation.datasets import BENCHMARKS

    parser = subparsers.add_parser(
        "eval",
        help="mIoU on a benchmark (VOC, Context, COCO, Cityscapes, ADE20K)",
        description="Segment a benchmark's validation split and report mIoU, aAcc, per-class IoU and speed.",
    )
    parser.add_argument("--dataset", required=True, choices=list(BENCHMARKS), help="the benchmark")
    parser.add_argument("--data-root", required=True, metavar="DIR",
                        help="the dataset in mmsegmentation's layout (e.g. VOCdevkit, ADEChallengeData2016)")
    add_model_args(parser)
    add_vocab_args(parser, required=False)
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N images of the split")
    parser.add_argument("--corruption", choices=list(CORRUPTIONS), help="corrupt every image first (ImageNet-C)")
    parser.add_argument("--severity", type=int, choices=range(1, 6), metavar="1-5",
                        help=f"corruption severity (default {DEFAULT_SEVERITY}, as in the paper)")
    parser.add_argument("--corruption-seed", type=int, default=0, metavar="N",
                        help="seed of the corruption's random draws, mixed with each image's name (default 0)")
    parser.add_argument("--json", metavar="OUT", help="write the results as JSON to this file")
    parser.add_argument("--save-predictions", metavar="DIR",
                        help="write each prediction as <image stem>.png in the dataset's own label ids "
                        "(the folder is created if missing; never one of the dataset's files)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the --json and --save-predictions files of an earlier run (an input, a link "
                        "or a non-regular file is never replaced)")
    add_engine_args(parser)
    distributed.add_args(parser)
    parser.set_defaults(run=run)


def _percent(value: float) -> Optional[float]:
    return None if math.isnan(value) else round(100.0 * value, 4)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.datasets import get_benchmark

    bench = get_benchmark(args.dataset)
    with distributed.join(args) as job:  # under torchrun: this rank's device, shard and share of the merge
        samples, vocabulary = _check_inputs(args, bench)
        config = _config(args, bench, vocabulary)
        mine = job.shard(samples)  # every rank's inputs checked: one failure stops all before the model loads
        engine = build_engine(args, vocabulary, config)  # warns on stderr when the weights are random
        matrix, stage_seconds, wall = _evaluate(args, bench, mine, engine, job)
        matrix.matrix = job.sum(matrix.matrix)
        stage_seconds, wall = _merge_times(job.gather([stage_seconds, wall]))
    if not job.is_main:
        return 0
    report = _report(args, bench, engine, matrix, stage_seconds, len(samples))
    report["wall_seconds"] = wall
    report.update(job.describe())
    print(format_report(report))
    if args.json:
        try:
            write_file(Path(args.json), (json.dumps(report, indent=2) + "\n").encode(), args.overwrite,
                       Inputs(_input_files(samples)))
        except OutputError as exc:
            raise UserError(str(exc)) from exc
    return 0


def _input_files(samples: List["Sample"]) -> List[Path]:
    return [path for sample in samples for path in (sample.image, sample.label)]


def _prediction_path(folder: Path, sample: "Sample") -> Path:
    return folder / f"{sample.image.stem}.png"


def _check_outputs(args: argparse.Namespace, samples: List["Sample"]) -> None:
    """--json and --save-predictions, checked as ``segment`` checks its
    outputs, before the model loads: never a dataset file, a link or a
    non-regular file, never an existing file without --overwrite."""
    inputs = Inputs(_input_files(samples))
    try:
        if args.json:
            check_outputs([Path(args.json)], args.overwrite, inputs, create=False)
        if args.save_predictions:
            folder = Path(args.save_predictions)
            check_outputs([_prediction_path(folder, s) for s in samples], args.overwrite, inputs)
    except OutputError as exc:
        raise UserError(str(exc)) from exc


def _check_inputs(args: argparse.Namespace, bench: "Benchmark") -> Tuple[List["Sample"], "Vocabulary"]:
    """Every flag and path that can be wrong, checked before the model loads;
    returns the samples to evaluate and the vocabulary."""
    from ..evaluation.datasets import DatasetError

    if args.severity is not None and args.corruption is None:
        raise UserError("--severity needs --corruption")
    if args.corruption and args.severity is None:
        args.severity = DEFAULT_SEVERITY
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    try:
        samples = bench.samples(args.data_root)[: args.limit]
    except DatasetError as exc:
        raise UserError(str(exc)) from exc
    _check_outputs(args, samples)
    vocabulary = vocabulary_from_args(args) if (args.vocab or args.vocab_file) else bench.vocabulary()
    if len(vocabulary) != bench.num_classes:
        raise UserError(
            f"the vocabulary has {len(vocabulary)} classes but {bench.title} has {bench.num_classes}: "
            "line i must name the class of label index i"
        )
    return samples, vocabulary


def _config(args: argparse.Namespace, bench: "Benchmark", vocabulary: "Vocabulary") -> "ActiveSAMConfig":
    """The engine config: the dataset's background threshold unless a flag sets it."""
    overrides = {} if args.background_threshold is not None else {"background_threshold": bench.background_threshold}
    config = config_from_args(args, **overrides)
    check_combination(config, vocabulary)
    return config


def _merge_times(per_rank: List[list]) -> Tuple[Dict[str, float], float]:
    """(seconds per stage, wall time) of every rank: the seconds summed in
    rank order, the longest wall time (one rank: its own)."""
    total: Dict[str, float] = {}
    for seconds, _ in per_rank:
        for stage, value in seconds.items():
            total[stage] = total.get(stage, 0.0) + value
    return total, max(wall for _, wall in per_rank)


def _evaluate(
    args: argparse.Namespace, bench: "Benchmark", samples: List["Sample"], engine: "ActiveSAM",
    job: "distributed.Job",
) -> Tuple["ConfusionMatrix", Dict[str, float], float]:
    """Segment every sample; return the confusion matrix, the summed seconds
    per stage and the wall time."""
    import numpy as np
    from PIL import Image

    from ..engine.limits import ImageError
    from ..engine.pipeline import NonFiniteScores
    from ..evaluation.corruptions import corrupt
    from ..evaluation.datasets import DatasetError, load_image
    from ..evaluation.metrics import ConfusionMatrix

    save_dir = Path(args.save_predictions) if args.save_predictions else None
    inputs = Inputs(_input_files(samples))
    matrix = ConfusionMatrix(bench.num_classes)
    stage_seconds: Dict[str, float] = {}
    started = time.perf_counter()
    progress = job.progress(samples, desc=f"eval {bench.name}", unit="img", file=sys.stderr, dynamic_ncols=True)
    for sample in progress:
        try:
            rgb = load_image(sample.image)
            label = bench.load_label(sample.label)
            if label.shape != rgb.shape[:2]:
                raise DatasetError(f"{sample.label} is {label.shape[1]}x{label.shape[0]}, "
                                   f"its image {rgb.shape[1]}x{rgb.shape[0]}")
            if args.corruption:
                seed = [args.corruption_seed, zlib.crc32(sample.name.encode())]
                rgb = corrupt(rgb, args.corruption, args.severity, seed=seed)
            result = engine.segment(rgb)
        except DatasetError as exc:
            raise UserError(str(exc)) from exc
        except (ImageError, NonFiniteScores) as exc:
            raise UserError(f"{sample.image}: {exc}") from exc
        try:
            matrix.update(result.labels, label)
        except ValueError as exc:  # a ground-truth id outside the dataset's classes
            raise UserError(f"{sample.label}: {exc}") from exc
        for stage, seconds in result.timings.items():
            stage_seconds[stage] = stage_seconds.get(stage, 0.0) + seconds
        if save_dir is not None:
            ids = result.labels + 1 if bench.reduce_zero_label else result.labels
            png = io.BytesIO()
            Image.fromarray(ids.astype(np.uint8)).save(png, format="PNG")
            try:
                write_file(_prediction_path(save_dir, sample), png.getvalue(), args.overwrite, inputs)
            except OutputError as exc:
                raise UserError(str(exc)) from exc
        progress.set_postfix(mIoU=f"{100 * matrix.miou():.1f}")
    return matrix, stage_seconds, time.perf_counter() - started


def _report(args: argparse.Namespace, bench: "Benchmark", engine: "ActiveSAM", matrix: "ConfusionMatrix",
            stage_seconds: Dict[str, float], count: int) -> Dict[str, Any]:
    import torch

    offset = 1 if bench.reduce_zero_label else 0
    corruption = {"type": args.corruption, "severity": args.severity, "seed": args.corruption_seed}
    return {
        "dataset": bench.name,
        "title": bench.title,
        "data_root": str(args.data_root),
        "images": count,
        "model": model_description(args),
        "random_weights": not (args.checkpoint or args.hub_id),
        "vocabulary": args.vocab_file or ("--vocab" if args.vocab else f"shipped {bench.vocabulary_file}"),
        "reduce_zero_label": bench.reduce_zero_label,
        "corruption": corruption if args.corruption else None,
        "config": {**engine.config.as_dict(), "resolution": engine.resolution,
                   "preview_resolution": engine.preview_resolution},
        "device": str(engine.device),
        # On a CPU the thread count changes the order of float sums, so the last bits of scores:
        # matrices match bit for bit between runs with the same threads per process.
        "threads_per_process": torch.get_num_threads(),
        "mIoU": _percent(matrix.miou()),
        # int64, row-major, little-endian: equal hashes, equal matrices (one process or many)
        "confusion_matrix_sha256": hashlib.sha256(matrix.matrix.astype("<i8").tobytes()).hexdigest(),
        "aAcc": _percent(matrix.aacc()),
        "per_class_iou": [
            {"index": i, "label_id": i + offset, "name": name, "iou": _percent(float(value))}
            for i, (name, value) in enumerate(zip(engine.vocabulary.names, matrix.iou()))
        ],
        "images_per_second": count / stage_seconds["total"] if stage_seconds.get("total") else None,
        "seconds_per_image": {stage: seconds / count for stage, seconds in stage_seconds.items()},
    }


def _cell(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_report(report: Dict[str, Any]) -> str:
    """The report as a readable table (IoU in %, '-' for classes that never occur)."""
    config = report["config"]
    lines: List[str] = [
        f"{report['title']}: {report['images']} images",
        f"model: {report['model']}",
        f"vocabulary {report['vocabulary']}, mode {config['mode']}, "
        f"background threshold {config['background_threshold']}, resolution {config['resolution']}",
    ]
    corruption = report["corruption"]
    if corruption:
        lines.append(f"corruption {corruption['type']} at severity {corruption['severity']} (seed {corruption['seed']})")
    width = max(len(c["name"]) for c in report["per_class_iou"])
    lines.append(f"{'class':<{width}}  {'IoU':>6}")
    lines += [f"{c['name']:<{width}}  {_cell(c['iou']):>6}" for c in report["per_class_iou"]]
    speed = report["images_per_second"]
    lines.append(
        f"mIoU {_cell(report['mIoU'])}  aAcc {_cell(report['aAcc'])}  "
        f"images/s {'-' if speed is None else f'{speed:.3f}'}"
    )
    stages = ", ".join(f"{stage} {seconds:.3f}" for stage, seconds in report["seconds_per_image"].items())
    lines.append(f"seconds per image: {stages}")
    return "\n".join(lines)
