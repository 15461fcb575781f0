"""Paths a user typed and the files they name, taken safely (torch-free).

``Path.expanduser`` raises on ``~nouser/x`` and the operating system on a
name beyond PATH_MAX or holding NUL: every front end turns a typed path
into a ``Path`` with :func:`user_path`, so none of those reaches a user as
a traceback, or a remote ``ros2 param set`` as a crash.

Opening a FIFO for reading blocks until a writer comes, and a device or a
multi-gigabyte file read whole exhausts memory: :func:`read_regular` opens
without blocking, checks the open file (not the name, which can change
between a check and the open) and reads at most its limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Type, Union

from .limits import MAX_PATH_BYTES, InputError


class PathError(InputError):
    """A typed path that names no usable file; the message says why."""


def user_path(text: str, what: str) -> Path:
    """``text`` as a Path, ``~`` expanded; PathError naming ``what`` if it cannot be one."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    if "\0" in text:
        raise PathError(f"{what} {shown!r} holds a NUL character")
    try:
        length = len(os.fsencode(text))
    except UnicodeError:
        raise PathError(f"{what} {shown!r} is not a valid file name") from None
    if length > MAX_PATH_BYTES:
        raise PathError(f"{what} is {length} bytes long; the limit is {MAX_PATH_BYTES}")
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~user of no such user, or no home folder
        raise PathError(f"{what} {shown!r}: cannot expand {text.split('/')[0]!r}: no such user or home folder") \
            from None


_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def describe_mode(mode: int) -> str:
    """What a non-regular file is, in a user's words."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def check_regular(path: Union[str, Path], what: str, error: Type[InputError] = InputError) -> os.stat_result:
    """The stat of ``path`` (links followed) if it is a regular file; ``error`` saying what it is otherwise."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}") from None
    except ValueError:
        raise error(f"cannot read {what}: the name holds a NUL character") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} is {describe_mode(info.st_mode)}, not a regular file")
    return info


def read_regular(path: Union[str, Path], limit: int, what: str, error: Type[InputError] = InputError) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them;
    ``error`` (one line, naming ``what``) for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}") from None
    except ValueError:  # a NUL in the name
        raise error(f"cannot read {what}: the name holds a NUL character") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} is {describe_mode(info.st_mode)}, not a regular file")
        if info.st_size > limit:
            raise error(f"{what} has {info.st_size} bytes; the limit is {limit}")
        try:
            data = file.read(limit + 1)
        except OSError as exc:
            raise error(f"cannot read {what}: {exc.strerror}") from None
    if len(data) > limit:  # it grew since fstat
        raise error(f"{what} has more than {limit} bytes; the limit is {limit}")
    return data
