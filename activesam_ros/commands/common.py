"""Options and loading steps that several subcommands share.

Flags are named like the config fields and node parameters they set
(``--bucket-size`` -> ``bucket_size``).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from typing import Any, Callable, Dict, Optional

from ..engine.config import ActiveSAMConfig, ConfigError, require_background_class
from ..engine.vocabulary import Vocabulary, VocabularyError, load_vocabulary_file


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


class Stopped(BaseException):
    """A termination signal (SIGINT, SIGTERM, SIGHUP) that stopped a command;
    the command's cleanup has run."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopRequests:
    """Termination signals as requests to stop at the next safe point.

    A signal handler raising inside a library call (a bag writer halfway
    through a record) can leave a file no reader opens. While this is
    entered, SIGINT, SIGTERM and SIGHUP are only noted, and :meth:`check`
    raises :class:`Stopped` where the caller can stop cleanly; a second
    signal stops at once. Main thread only.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, on_request: Optional[Callable[[], None]] = None) -> None:
        """``on_request`` runs at the first signal: the engine's stop flag,
        so that the frame in progress is abandoned between two buckets."""
        self.signum: Optional[int] = None
        self.on_request = on_request
        self._previous: Dict[int, Any] = {}

    def _note(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise Stopped(signum)
        self.signum = signum
        if self.on_request is not None:
            self.on_request()

    def check(self) -> None:
        if self.signum is not None:
            raise Stopped(self.signum)

    def __enter__(self) -> "StopRequests":
        self._previous = {signum: signal.signal(signum, self._note) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


MAX_SEED = 2**63 - 1
"""The largest seed torch's generators take as a signed 64-bit integer."""


def seed(text: str) -> int:
    """An argparse type: a seed torch accepts."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be in [0, {MAX_SEED}], got {value}")
    return value


def add_model_args(parser: argparse.ArgumentParser, default_tiny: bool = False) -> None:
    from ..stream.parameters import SHARED_BY_NAME

    group = parser.add_argument_group("model")
    which = group.add_mutually_exclusive_group(required=not default_tiny)
    which.add_argument("--checkpoint", metavar="PATH", help="the released SAM 3 checkpoint (sam3.pt)")
    which.add_argument("--hub-id", metavar="ID", help="download the checkpoint from this hub repository (e.g. facebook/sam3)")
    which.add_argument("--model", choices=["tiny", "released"],
                       help="a random-weight SAM 3, outputs mean nothing: tiny (tests and demos) or released "
                       "(the released architecture, 3.4 GB: memory and work at the real size)")
    group.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    group.add_argument("--dtype", default="auto", help="auto (default: bfloat16 on CUDA, float32 on CPU), float32, bfloat16 or float16")
    compile_spec = SHARED_BY_NAME["compile"]
    group.add_argument(compile_spec.flag, choices=compile_spec.choices, default=compile_spec.default,
                       help=f"{compile_spec.description} (default {compile_spec.default})")
    group.add_argument("--seed", type=seed, default=0, help=f"seed of the tiny model, in [0, {MAX_SEED}] (default 0)")


def add_vocab_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    which = parser.add_mutually_exclusive_group(required=required)
    which.add_argument("--vocab", metavar="TEXT", help='classes separated by ";", aliases by ",": "person; car, automobile; dog"')
    which.add_argument("--vocab-file", metavar="FILE",
                       help="one class per line, aliases separated by commas; or a shipped list by name (ade20k, indoor, driving, ...)")


def add_engine_args(parser: argparse.ArgumentParser, stream: bool = False) -> None:
    """One flag per engine hyper-parameter, described as the parameter of the
    same name (``--bucket-size`` is ``bucket_size``). A ``stream`` command
    (the bag processor) starts from the node's defaults, the others from
    the library's (``mode`` is the one that differs: fast vs exact)."""
    from ..stream.parameters import BOOL, ENGINE_PARAMS, INT

    library = ActiveSAMConfig()
    group = parser.add_argument_group("ActiveSAM (the node's parameters of the same names)")
    for spec in ENGINE_PARAMS:
        if spec.read_only:  # device, dtype and compile are model options (add_model_args)
            continue
        if spec.name == "mode":
            mode = spec.default if stream else library.mode
            group.add_argument(spec.flag, choices=spec.choices, default=mode,
                               help=f"{spec.description} (default {mode})")
        elif spec.kind == BOOL:
            group.add_argument(spec.flag, action=argparse.BooleanOptionalAction, default=None,
                               help=f"{spec.description} (default {'on' if spec.default else 'off'})")
        else:
            group.add_argument(spec.flag, type=int if spec.kind == INT else float, default=None,
                               help=f"{spec.description} (default {spec.default:g})")


def add_temporal_args(parser: argparse.ArgumentParser) -> None:
    """One flag per temporal parameter of the node, with the node's default."""
    from ..stream.parameters import BOOL, INT, TEMPORAL_PARAMS

    group = parser.add_argument_group("temporal reuse and propagation (the node's parameters of the same names)")
    for spec in TEMPORAL_PARAMS:
        if spec.kind == BOOL:
            group.add_argument(spec.flag, action=argparse.BooleanOptionalAction, default=spec.default,
                               help=f"{spec.description} (default {'on' if spec.default else 'off'})")
        else:
            group.add_argument(spec.flag, type=int if spec.kind == INT else float,
                               default=spec.default, help=f"{spec.description} (default {spec.default:g})")


def temporal_from_args(args: argparse.Namespace):
    """The TemporalConfig the flags of ``add_temporal_args`` give."""
    from ..stream.parameters import TEMPORAL_PARAMS, temporal_config

    try:
        return temporal_config({spec.name: getattr(args, spec.name) for spec in TEMPORAL_PARAMS}).validate()
    except ConfigError as exc:
        raise UserError(str(exc)) from exc


def config_from_args(args: argparse.Namespace, **overrides: Any) -> ActiveSAMConfig:
    """The engine config the flags give, checked as the node checks its
    parameters (the sizes in multiples of the patch, too)."""
    from ..stream.parameters import ENGINE_PARAMS, value_error

    values: Dict[str, Any] = {}
    for f in dataclasses.fields(ActiveSAMConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            # 0 means "derived from the model" for the sizes, as in the node.
            values[f.name] = None if f.default is None and value == 0 else value
    values.update(overrides)
    problems = [value_error(spec, getattr(args, spec.name)) for spec in ENGINE_PARAMS
                if spec.step and getattr(args, spec.name, None) is not None]
    problems = [problem for problem in problems if problem]
    if problems:
        raise UserError("; ".join(problems))
    try:
        return ActiveSAMConfig().replace(**values)
    except ConfigError as exc:
        raise UserError(str(exc)) from exc


def check_combination(config: ActiveSAMConfig, vocabulary: Vocabulary) -> None:
    """A config and a vocabulary that go together (background calibration needs its class)."""
    try:
        require_background_class(config, vocabulary)
    except ConfigError as exc:
        raise UserError(f"{exc} (--background-threshold {config.background_threshold:g})") from exc


def build_engine(args: argparse.Namespace, vocabulary: Vocabulary, config: ActiveSAMConfig):
    """The model the flags name, and ActiveSAM on it; what the engine refuses is a UserError."""
    from ..engine.pipeline import ActiveSAM

    model = load_model_from_args(args)
    try:
        return ActiveSAM(model, vocabulary, config)
    except (ConfigError, VocabularyError) as exc:
        raise UserError(str(exc)) from exc


def vocabulary_from_args(args: argparse.Namespace) -> Vocabulary:
    try:
        if getattr(args, "vocab_file", None):
            return load_vocabulary_file(args.vocab_file)
        return Vocabulary.from_string(args.vocab or "")
    except VocabularyError as exc:
        raise UserError(str(exc)) from exc


def load_model_from_args(args: argparse.Namespace):
    """The SAM 3 model the flags name, on the requested device; says on
    stderr what it skipped of the checkpoint and how long it took."""
    from ..engine.model import ModelLoadError, load_model_with_report, resolve_device

    try:
        resolve_device(args.device, args.dtype)
        random = "" if (getattr(args, "checkpoint", None) or getattr(args, "hub_id", None)) \
            else getattr(args, "model", None) or "tiny"
        if random:
            print(f"activesam: warning: using the {random} random-weight SAM 3; its labels mean nothing",
                  file=sys.stderr)
        model, report = load_model_with_report(args.checkpoint, args.hub_id, random=random, device=args.device,
                                               seed=args.seed)
    except ModelLoadError as exc:
        raise UserError(str(exc)) from exc
    if report.skipped:
        print(f"activesam: {report.skipped}", file=sys.stderr)
    print(f"activesam: {report.line()}", file=sys.stderr)
    return model


def model_description(args: argparse.Namespace) -> str:
    """What produced a result, said plainly (random weights are flagged)."""
    if getattr(args, "checkpoint", None):
        return f"SAM 3 checkpoint {args.checkpoint}"
    if getattr(args, "hub_id", None):
        return f"SAM 3 from hub {args.hub_id}"
    if getattr(args, "model", None) == "released":
        return f"SAM 3 released architecture (random weights, seed {args.seed}): outputs are meaningless"
    return f"tiny SAM 3 (random weights, seed {args.seed}): outputs are meaningless"
