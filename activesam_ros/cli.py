"""``activesam``: the command-line front end (segment, bag, eval, bench, labelspace).

Each subcommand lives in ``activesam_ros.commands.<name>`` and exposes
``add_parser(subparsers)``; heavy imports (torch, sam3) happen only when a
command runs, so ``activesam --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from typing import List, Optional

from . import __version__
from .commands.common import Stopped, UserError
from .engine.bucket import FrameOutOfMemory
from .engine.environment import set_process_defaults

COMMANDS = ("segment", "bag", "eval", "bench", "labelspace")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="activesam",
        description="ActiveSAM open-vocabulary semantic segmentation on SAM 3.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"activesam_ros.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"activesam_ros.commands.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    set_process_defaults()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"activesam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"activesam {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Stopped as stop:
        print(f"activesam {args.command}: stopped by {stop}", file=sys.stderr)
        return 128 + stop.signum
    except OSError as exc:  # the machine refused: a disk, a device, a file system (the command's cleanup has run)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"activesam {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except FrameOutOfMemory as exc:  # a command that needs every frame (bench): one line, not a traceback
        print(f"activesam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"activesam {args.command}: error: out of memory (a smaller input, vocabulary or --bucket-size "
              "needs less)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
