"""Compressed data inflated within a bound known before inflating starts.

A few kilobytes of zstd or gzip can inflate to gigabytes. Every inflation
the package does goes through here: a bag message compressed on its own
(rosbag2's ``message`` compression) is held to ``MAX_IMAGE_BYTES``, its
frame header's declared size checked before any output is made; a file
inflated to disk (a file-compressed rosbag2, ``bench --video x.gz``) is
streamed to its bound and refused the moment it passes it.
"""

from __future__ import annotations

import gzip
import shutil
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Dict

from ..engine.limits import INFLATE_DISK_RESERVE, InputError

try:  # Python 3.14's module; the backport is what rosbags itself uses before it
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the Python version
    from backports import zstd  # type: ignore[import-not-found,no-redef]

CHUNK = 1 << 20


class InflateError(InputError):
    """Compressed data that is damaged or inflates beyond its bound."""


def inflate_zstd(data: bytes, limit: int, what: str) -> bytes:
    """The zstd frames of ``data`` inflated, at most ``limit`` bytes; a frame
    whose header declares more is refused before it is inflated."""
    out = bytearray()
    rest = bytes(data)
    try:
        while rest:
            declared = zstd.get_frame_info(rest).decompressed_size
            if declared is not None and len(out) + declared > limit:
                raise InflateError(f"{what} would inflate to {len(out) + declared} bytes; the limit is {limit}")
            decompressor = zstd.ZstdDecompressor()
            out += decompressor.decompress(rest, max_length=limit - len(out) + 1)
            if len(out) > limit or (not decompressor.eof and not decompressor.needs_input):
                raise InflateError(f"{what} inflates to more than {limit} bytes; the limit is {limit}")
            if not decompressor.eof:
                raise InflateError(f"{what}: truncated zstd data")
            rest = decompressor.unused_data
    except zstd.ZstdError as exc:
        raise InflateError(f"{what}: damaged zstd data ({str(exc).split('.')[0]})") from None
    return bytes(out)


def _open_gzip(path: Path) -> BinaryIO:
    return gzip.open(path, "rb")


def _open_zstd(path: Path) -> BinaryIO:
    return zstd.open(path, "rb")


OPENERS: Dict[str, Callable[[Path], BinaryIO]] = {"gzip": _open_gzip, "zstd": _open_zstd}
DAMAGE = (OSError, EOFError, zlib.error, zstd.ZstdError)
"""What a damaged gzip or zstd stream raises while it is read."""


def disk_room(folder: Path) -> int:
    """Bytes that may be written into ``folder``'s file system, keeping INFLATE_DISK_RESERVE free."""
    return max(0, shutil.disk_usage(folder).free - INFLATE_DISK_RESERVE)


def inflate_file(source: Path, target: Path, kind: str, limit: int, what: str) -> int:
    """Inflate the ``kind`` ("gzip", "zstd") file ``source`` into the new
    file ``target``, at most ``limit`` bytes; returns how many. InflateError
    when it is damaged or passes the limit (``target`` is then removed)."""
    written = 0
    try:
        with OPENERS[kind](source) as src, open(target, "xb") as dst:
            while True:
                block = src.read(min(CHUNK, limit - written + 1))
                if not block:
                    return written
                written += len(block)
                if written > limit:
                    raise InflateError(f"{what} inflates to more than {limit} bytes; the limit is {limit}")
                dst.write(block)
    except InflateError:
        target.unlink(missing_ok=True)
        raise
    except DAMAGE as exc:
        target.unlink(missing_ok=True)
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise InflateError(f"{what}: cannot inflate it as {kind} ({detail})") from None
