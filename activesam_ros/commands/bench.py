"""``activesam bench``: speed per stage, overhead over the model's forwards,
agreement of the fast modes with exact decoding, and scaling with the
vocabulary size, in one run; writes a JSON report and optionally a plot."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from ..engine.limits import InputError
from ..engine.paths import check_regular, read_regular
from ..files.outputs import Inputs, OutputError, check_outputs, write_files
from ..stream.parameters import default
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
                        help="fewer and smaller frames, |V| in {20, 50, 1000} (minutes on a CPU with --model tiny); "
                        "with --gpu: one vocabulary, buckets 1 and 8, three small frames")
    parser.add_argument("--json", required=True, metavar="OUT", help="write the report here")
    parser.add_argument("--plot", metavar="OUT.png", help="write a PNG of time per frame against |V| here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --json and --plot files of an earlier run (a link, a non-regular file or an "
                        "input is never replaced)")
    work = parser.add_argument_group(
        "counted work at SAM 3's real size (instead of the sections above)",
        "--work counts the floating-point work per frame of every mode on the released architecture "
        "(random weights, nothing downloaded), with the stream's refresh/reuse mix measured by running the "
        "given model on --video (or read from --work-stream), and estimates frame rates on named GPUs.")
    work.add_argument("--work", action="store_true", help="count the work per frame at the released size")
    work.add_argument("--work-stream", metavar="FILE",
                      help="the stream mix as JSON instead of measuring it: refresh_fraction, "
                      "reuse_decoded_queries, model_fraction[, refresh_screened_fraction], one object or one "
                      "per vocabulary (voc21, indoor, ade20k, generated); at most 1 MiB")
    work.add_argument("--work-real-check", action="store_true",
                      help="also run the full-size image encode and one grounding forward for real with random "
                      "weights and compare the counts (about 3.4 GB and minutes on a CPU)")
    memory = parser.add_argument_group(
        "peak memory (instead of the sections above)",
        "--memory measures the peak memory of the image encode and of grounding forwards of K prompts at "
        "several input sizes, in worker processes (Linux), fits the memory model and prints the peak per "
        "frame of every mode and bucket size (docs/memory.md). Needs a random-weight model: --model released "
        "(the real size; about 15 minutes of 2 CPU cores per dtype) or --model tiny.")
    memory.add_argument("--memory", action="store_true", help="measure peak memory per stage and per frame")
    memory.add_argument("--memory-dtypes", default="float32,bfloat16", metavar="LIST",
                        help="compute dtypes measured, comma-separated (default float32,bfloat16; "
                        "bfloat16 runs under CPU autocast)")
    memory.add_argument("--memory-threads", type=int, default=2, metavar="N",
                        help="CPU threads of each worker (default 2)")
    gpu = parser.add_argument_group(
        "the first run on a GPU (instead of the sections above)",
        "--gpu measures, at the model's full size in its compute dtype (bfloat16 on CUDA): the image encode, one "
        "bucket of 1, 8 and 32 prompts through exact and fast mode, a camera frame of per-frame exact and fast, "
        "stream reuse and propagation with ADE20K-150 and VOC-21, peak device memory, host syncs and kernel "
        "launches per frame, and bfloat16 against float32 labels; JSON on stdout, the markdown tables on stderr "
        "(docs/gpu.md). --model released: SAM 3's released architecture with random weights (nothing downloaded).")
    gpu.add_argument("--gpu", action="store_true", help="run the GPU measurements (a few minutes on one GPU)")
    video = parser.add_argument_group("real video (instead of the sections above)")
    video.add_argument("--video", metavar="FILE", help="measure the temporal policies (per-frame exact and fast, "
                       "reuse, reuse + propagation) on this video file (.gz too), against per-frame exact")
    video.add_argument("--video-frames", type=int, metavar="N",
                       help="frames read (default 40; with --device-rate 400)")
    video.add_argument("--video-side", type=int, default=384, metavar="PX",
                       help="longer side the frames are scaled to (default 384)")
    video.add_argument("--video-vocab", action="append", metavar="NAME",
                       help="a vocabulary (shipped name or file) to measure with; repeatable "
                       "(default: ade20k and indoor)")
    video.add_argument("--precision", action="store_true",
                       help="instead of the temporal policies: label agreement with float32 on every frame of "
                       "bfloat16 (autocast, on the CPU too) in the engine's reduced stages and in every stage, "
                       "and of each stage alone in bfloat16 where every stage together agrees on less than 99 %%")
    video.add_argument("--precision-modes", default="exact,fast", metavar="LIST",
                       help="with --precision: the modes measured, comma-separated (default exact,fast)")
    video.add_argument("--precision-each-stage", action=argparse.BooleanOptionalAction, default=None,
                       help="with --precision: measure each stage alone in bfloat16 always (--precision-each-stage) "
                       "or never (--no-precision-each-stage); default: where every stage together agrees on "
                       "less than 99 %%")
    video.add_argument("--objects", action="store_true",
                       help="instead of the temporal policies: id switches of the persistent object ids against "
                       "per-frame greedy matching (model on every frame, and on every --model-every-th), and the "
                       "CPU time the instances, ids and their messages add to a frame's labels; vocabulary: the "
                       "first --video-vocab (default driving)")
    video.add_argument("--model-every", type=int, default=4, metavar="N",
                       help="the propagation policy runs the model on every N-th frame (default 4)")
    video.add_argument("--device-rate", type=float, action="append", metavar="HZ",
                       help="instead of the policies above: the stream (fast mode, the temporal flags) replayed as a "
                       "device that runs the model at HZ model frames per second, its cost simulated on the frames' "
                       "stamps (deterministic on any machine); reports reuse share, labelled share, label age and "
                       "agreement with per-frame exact; repeatable")
    video.add_argument("--video-bounce", action="store_true",
                       help="with --device-rate: play a video shorter than --video-frames forward and backward "
                       "until it is that long")
    video.add_argument("--reference-every", type=int, default=8, metavar="N",
                       help="with --device-rate: per-frame exact runs on every N-th frame and the one after it "
                       "(agreement, and exact's own consecutive agreement; default 8)")
    depth = parser.add_argument_group("3D outputs (instead of the sections above)")
    depth.add_argument("--depth-outputs", action="store_true",
                       help="measure the CPU time per frame that ~/points and ~/detections_3d add to a model frame, "
                       "on Middlebury's Motorcycle with its ground-truth depth, through the stream as the node runs "
                       "it (JSON on stdout; docs/world-model.md)")
    depth.add_argument("--depth-frames", type=int, default=12, metavar="N", help="frames measured (default 12)")
    depth.add_argument("--depth-side", type=int, default=384, metavar="PX",
                       help="the scene's longer side in pixels (default 384)")
    add_temporal_args(parser)
    parser.set_defaults(run=run)


def _check_report(args: argparse.Namespace) -> None:
    """--json and --plot, checked as every output is (``files.outputs``)
    before any work: never an input, a link or a non-regular file, never an
    existing file without --overwrite, into a folder that exists and takes it."""
    try:
        check_outputs([Path(p) for p in (args.json, args.plot) if p], args.overwrite, _inputs(args), create=False)
    except OutputError as exc:
        raise UserError(str(exc)) from exc


def _inputs(args: argparse.Namespace) -> Inputs:
    return Inputs([Path(p) for p in (args.video, getattr(args, "work_stream", None)) if p])


def run(args: argparse.Namespace) -> int:
    if args.gpu:
        return run_gpu(args)
    if args.memory:
        return run_memory(args)
    if args.work:
        return run_work(args)
    if args.video:
        return run_video(args)
    if args.depth_outputs:
        return run_depth_outputs(args)
    _check_report(args)
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
    report = run_benchmark(model, model_description(args), random_weights=bool(args.model),
                           config=config, temporal=temporal, plan=QUICK if args.quick else FULL, progress=True)
    env = report["environment"]
    title = f"{report['model']['description']} - {env['device_name']} ({env['device']})"
    rows = report["scaling"]["rows"]
    return _write_report(args, report, table(report), lambda: plot_scaling(rows, title))


def _write_report(args: argparse.Namespace, report: dict, table_text: str,
                  plot: Optional[Callable[[], bytes]] = None) -> int:
    """The report as JSON to --json and stdout, its plot to --plot if asked
    for (both written together), and its table to stderr."""
    text = json.dumps(report, indent=2)
    outputs = [(Path(args.json), (text + "\n").encode())]
    if args.plot and plot is not None:
        outputs.append((Path(args.plot), plot()))
    try:
        write_files(outputs, args.overwrite, _inputs(args))
    except OutputError as exc:
        raise UserError(f"cannot write the report: {exc}") from exc
    print(text)
    print(table_text, file=sys.stderr)
    return 0


def _check_video_args(args: argparse.Namespace) -> None:
    """--video and the flags that shape how it is read."""
    if args.video:
        try:
            check_regular(args.video, f"--video {args.video}")
        except InputError as exc:
            raise UserError(str(exc)) from exc
    if args.video_frames is None:
        args.video_frames = 400 if args.device_rate else 40
    fewest = 1 if args.precision else 2  # agreement per frame needs one; the temporal policies need two
    if args.video_frames < fewest or args.model_every < 1 or args.video_side < 28 or args.reference_every < 1:
        raise UserError(f"--video-frames must be at least {fewest}, --model-every and --reference-every at least 1, "
                        "--video-side at least 28")
    if sum(map(bool, (args.precision, args.device_rate, args.objects))) > 1:
        raise UserError("--precision, --device-rate and --objects measure different things: give one of them")
    rates = args.device_rate or []
    if not all(math.isfinite(rate) and rate > 0 for rate in rates):
        raise UserError(f"--device-rate must be a number of model frames per second > 0, got {rates}")


def _video_vocabularies(args: argparse.Namespace) -> dict:
    from ..engine.vocabulary import VocabularyError, load_vocabulary_file

    try:
        return {name: load_vocabulary_file(name) for name in (args.video_vocab or ["ade20k", "indoor"])}
    except VocabularyError as exc:
        raise UserError(str(exc)) from exc


def run_precision(args: argparse.Namespace) -> int:
    """``--video --precision``: bfloat16 against float32 (benchmark/precision.py)."""
    _check_report(args)
    _check_video_args(args)
    import torch

    from ..benchmark.precision import PRECISION_THRESHOLD, measure_precision, precision_table
    from ..benchmark.video import VideoError, read_video
    from ..engine.config import MODES
    from ..engine.grounding import native_resolution

    modes = [m.strip() for m in args.precision_modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        raise UserError(f"--precision-modes must list modes among {', '.join(MODES)}, got {args.precision_modes!r}")
    vocabularies = _video_vocabularies(args)
    config = config_from_args(args)
    try:  # a video is at least two frames; one is enough here
        frames = read_video(Path(args.video), max(2, args.video_frames), args.video_side)[0][: args.video_frames]
    except VideoError as exc:
        raise UserError(str(exc)) from exc
    model = load_model_from_args(args)
    threshold = {None: PRECISION_THRESHOLD, True: math.inf, False: -math.inf}[args.precision_each_stage]
    rows = measure_precision(model, frames, vocabularies, config, modes=modes, threshold=threshold,
                             progress=lambda line: print(f"activesam bench --precision: {line}", file=sys.stderr))
    report = {"schema": "activesam-bench-precision/1", "model": model_description(args),
              "random_weights": bool(args.model), "video": Path(args.video).name,
              "frame_size": list(frames[0].shape[:2]) if frames else None,
              "resolution": config.resolution or native_resolution(model), "threads": torch.get_num_threads(),
              "rows": rows}
    return _write_report(args, report, precision_table(rows))


def run_objects(args: argparse.Namespace) -> int:
    """``--video --objects``: object ids and the cost of instances (benchmark/objects.py)."""
    _check_report(args)
    _check_video_args(args)
    from ..benchmark.objects import measure_objects, objects_table
    from ..benchmark.video import VideoError
    from ..engine.vocabulary import VocabularyError, load_vocabulary_file
    from ..stream.parameters import STREAM_DEFAULTS

    try:
        vocabulary = load_vocabulary_file((args.video_vocab or ["driving"])[0])
    except VocabularyError as exc:
        raise UserError(str(exc)) from exc
    config = config_from_args(args, **STREAM_DEFAULTS)
    temporal = temporal_from_args(args)
    model = load_model_from_args(args)
    try:
        report = measure_objects(model, Path(args.video), vocabulary, config, temporal, args.model_every,
                                 args.video_frames, args.video_side,
                                 progress=lambda done: print(f"activesam bench --objects: {done}", file=sys.stderr))
    except VideoError as exc:
        raise UserError(str(exc)) from exc
    report = {"schema": "activesam-bench-objects/1", "model": model_description(args),
              "random_weights": bool(args.model), **report}
    return _write_report(args, report, objects_table(report))


def run_video(args: argparse.Namespace) -> int:
    """``--video``: the temporal policies on a real video (benchmark/video.py),
    or the stream at simulated device rates (benchmark/device_rates.py)."""
    if args.precision:
        return run_precision(args)
    if args.objects:
        return run_objects(args)
    _check_report(args)
    _check_video_args(args)
    from ..benchmark.device_rates import measure_rates, rates_table
    from ..benchmark.video import VideoError, measure_video, video_table

    vocabularies = _video_vocabularies(args)
    config = config_from_args(args)
    temporal = temporal_from_args(args)
    model = load_model_from_args(args)

    def progress(done: str) -> None:
        print(f"activesam bench: {done}", file=sys.stderr)

    try:
        if args.device_rate:
            report = measure_rates(model, Path(args.video), vocabularies, config, temporal, args.device_rate,
                                   args.video_frames, args.video_side, args.video_bounce, args.reference_every,
                                   progress=progress)
        else:
            report = measure_video(model, Path(args.video), vocabularies, config, temporal, args.model_every,
                                   args.video_frames, args.video_side, progress=progress)
    except VideoError as exc:
        raise UserError(str(exc)) from exc
    schema = "activesam-bench-device-rates/1" if args.device_rate else "activesam-bench-video/1"
    report = {"schema": schema, "model": model_description(args), "random_weights": args.model == "tiny", **report}
    return _write_report(args, report, (rates_table if args.device_rate else video_table)(report))


def run_gpu(args: argparse.Namespace) -> int:
    """``--gpu``: the first GPU run's measurements (benchmark/gpu.py)."""
    _check_report(args)
    config = config_from_args(args)
    temporal = temporal_from_args(args)

    from ..benchmark.gpu import GPU, GPU_QUICK, gpu_tables, run_gpu_bench
    from ..benchmark.inputs import InputError, photo_path

    try:
        photo_path("chelsea.png")  # the video's backgrounds: fail before loading a model
    except InputError as exc:
        raise UserError(str(exc)) from exc
    model = load_model_from_args(args)
    report = run_gpu_bench(model, model_description(args), random_weights=not (args.checkpoint or args.hub_id),
                           config=config, temporal=temporal, plan=GPU_QUICK if args.quick else GPU)
    return _write_report(args, report, gpu_tables(report))


def run_depth_outputs(args: argparse.Namespace) -> int:
    """``--depth-outputs``: what the 3D outputs add to a model frame (benchmark/outputs_3d.py)."""
    _check_report(args)
    if args.depth_frames < 1 or args.depth_side < 28:
        raise UserError("--depth-frames must be at least 1 and --depth-side at least 28")
    config = config_from_args(args, mode=default("mode"))  # the node's: a stream runs fast mode
    temporal = temporal_from_args(args)
    from ..benchmark.inputs import InputError
    from ..benchmark.outputs_3d import measure_outputs_3d, outputs_3d_table
    from ..benchmark.stereo import motorcycle

    try:
        motorcycle()  # fail before loading the model
    except InputError as exc:
        raise UserError(str(exc)) from exc
    model = load_model_from_args(args)
    report = measure_outputs_3d(model, config, temporal, args.depth_frames, args.depth_side,
                                progress=lambda line: print(f"activesam bench --depth-outputs: {line}",
                                                            file=sys.stderr))
    report = {"schema": "activesam-bench-depth-outputs/1", "model": model_description(args),
              "random_weights": not (args.checkpoint or args.hub_id), "mode": config.mode, **report}
    return _write_report(args, report, outputs_3d_table(report))


STREAM_FILE_LIMIT = 1 << 20
"""Largest --work-stream file read, bytes."""


def _stream_file(path: str, names) -> dict:
    from ..benchmark.work_report import stream_mixes_from_json

    try:
        data = read_regular(path, STREAM_FILE_LIMIT, f"--work-stream {path}")
        return stream_mixes_from_json(json.loads(data.decode("utf-8")), names)
    except (InputError, ValueError, TypeError) as exc:  # UnicodeDecodeError and JSON errors are ValueErrors
        raise UserError(str(exc) if isinstance(exc, InputError) else f"--work-stream {path}: {exc}") from exc


def run_work(args: argparse.Namespace) -> int:
    """``--work``: counted work per frame at the released size (benchmark/work.py)."""
    _check_report(args)
    if not args.work_stream and not args.video:
        raise UserError("--work needs --video FILE (the stream mix is measured on it with the given model) "
                        "or --work-stream FILE")
    _check_video_args(args)
    config = config_from_args(args)
    temporal = temporal_from_args(args)

    from ..benchmark.counting import released_sam3
    from ..benchmark.plot import plot_work
    from ..benchmark.work import MODES, check_real, count_stages
    from ..benchmark.work_report import RESOLUTIONS, table_vocabularies, work_report, work_tables

    def say(message: str) -> None:
        print(f"activesam bench --work: {message}", file=sys.stderr)

    vocabularies = table_vocabularies()
    if args.work_stream:
        mixes = _stream_file(args.work_stream, list(vocabularies))
    else:
        mixes = _measure_mixes(args, config, temporal, vocabularies, say)
    model = released_sam3()
    stages = {}
    for resolution in RESOLUTIONS:
        say(f"counting the stages at {resolution} px")
        stages[resolution] = count_stages(model, config.replace(resolution=resolution))
    real = None
    if args.work_real_check:
        say("running the full-size encode and one grounding forward for real (minutes)")
        real = check_real(config.replace(resolution=max(RESOLUTIONS)), stages[max(RESOLUTIONS)], seed=args.seed)
    report = work_report(stages, vocabularies, mixes, config, sum(p.numel() for p in model.parameters()),
                         real_check=real)
    full = [f for f in report["frames"] if f["resolution"] == max(RESOLUTIONS)]
    title = f"SAM 3 released architecture at {max(RESOLUTIONS)} px: counted work per frame (not timed)"
    return _write_report(args, report, work_tables(report), lambda: plot_work(full, MODES, title))


def _measure_mixes(args: argparse.Namespace, config, temporal, vocabularies, say) -> dict:
    """The stream mix of each vocabulary, measured with the given model on --video."""
    from ..benchmark.stream_mix import measure_stream_mix
    from ..benchmark.video import VideoError, read_video
    from ..engine.pipeline import ActiveSAM

    try:
        frames, fps = read_video(Path(args.video), args.video_frames, args.video_side)
    except VideoError as exc:
        raise UserError(str(exc)) from exc
    model = load_model_from_args(args)
    engine = ActiveSAM(model, ["object"], config.replace(mode="fast"))
    mixes = {}
    for name, vocabulary in vocabularies.items():
        say(f"measuring the stream mix of {name} on {len(frames)} frames of {args.video}")
        engine.set_vocabulary(vocabulary)
        engine.segment(frames[0])  # warm-up
        mixes[name] = measure_stream_mix(engine, frames, fps, temporal, args.model_every,
                                         source=f"{model_description(args)} on {Path(args.video).name}, "
                                                f"{len(frames)} frames at {args.video_side} px")
    return mixes


def run_memory(args: argparse.Namespace) -> int:
    """``--memory``: peak memory per stage, the fit, and per frame (benchmark/memory_report.py)."""
    _check_report(args)
    if args.model not in ("tiny", "released"):
        raise UserError("--memory measures a random-weight model: give --model released (or tiny)")
    dtypes = [d.strip() for d in args.memory_dtypes.split(",") if d.strip()]
    if not dtypes or set(dtypes) - {"float32", "bfloat16"}:
        raise UserError(f"--memory-dtypes must list float32 and/or bfloat16, got {args.memory_dtypes!r}")
    if args.memory_threads < 1:
        raise UserError("--memory-threads must be at least 1")
    from ..benchmark.memory import measure, released_plan, tiny_plan
    from ..benchmark.memory_report import memory_report, memory_tables

    plan = released_plan() if args.model == "released" else tiny_plan()
    try:
        rows = measure(args.model, dtypes, plan, threads=args.memory_threads,
                       progress=lambda line: print(f"activesam bench --memory: {line}", file=sys.stderr))
    except RuntimeError as exc:
        raise UserError(str(exc)) from exc
    report = memory_report(rows, model_description(args), config_from_args(args))
    return _write_report(args, report, memory_tables(report))
