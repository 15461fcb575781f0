"""The one writer of the files the package writes for a user.

``segment``'s labels, overlay and summary, ``eval``'s predictions and
report and ``bench``'s report and plot all go through :func:`write_files`:

- every output is written first to a temporary in its own folder, created
  exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``) under a fresh random
  name: a link or a file planted under any name is never written through
  or over, and an input that looks like a temporary is never touched;
- the temporaries are flushed to disk, then renamed into place, so a stop
  at any moment leaves the old file or the new one, never half of one,
  and the outputs of one call appear together or not at all (a full disk
  fails while writing temporaries, before any rename);
- without ``overwrite`` an output is linked into place, which fails when
  its name was taken meanwhile (another run writing into the same
  folder), so nothing is replaced that was not checked;
- an output that is a link, not a regular file, or one of the inputs (the
  same file under any name) is refused, whatever ``overwrite`` says.

:func:`check_outputs` runs the same checks before any work starts, and
tries the folders (created if missing) for writing, so a read-only folder
or a name too long for the file system is refused before a model loads.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_NAME_MAX = 255
_SHOWN = 3


class OutputError(Exception):
    """An output that may not or cannot be written; one line saying why."""


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


class Inputs:
    """The files a run reads: no output may be one of them, under any name."""

    def __init__(self, paths: Iterable[Path] = ()):
        self.files: Dict[Tuple[int, int], Path] = {}
        for path in paths:
            try:
                info = os.stat(path)
            except OSError:
                continue  # a missing input is its reader's problem
            self.files[(info.st_dev, info.st_ino)] = Path(path)

    def which(self, target: Path) -> Optional[Path]:
        """The input ``target`` is (links followed), or None."""
        try:
            info = os.stat(target)
        except OSError:
            return None
        return self.files.get((info.st_dev, info.st_ino))


def target_problem(target: Path, overwrite: bool, inputs: Inputs, flag: str = "--overwrite") -> Optional[str]:
    """Why ``target`` may not be written (None if it may)."""
    victim = inputs.which(target)
    if victim is not None:
        return f"{target} is the input {victim}, which is never replaced: write the outputs elsewhere"
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{target}: {_strerror(exc)}"
    if stat.S_ISLNK(info.st_mode):
        return f"{target} is a link"
    if not stat.S_ISREG(info.st_mode):
        return f"{target} exists and is not a regular file"
    if not overwrite:
        return f"{target} exists already (pass {flag} to replace it)"
    return None


def _listed(problems: Sequence[str]) -> str:
    more = len(problems) - _SHOWN
    return "; ".join(problems[:_SHOWN]) + (f"; and {more} more" if more > 0 else "")


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return _NAME_MAX


def _try_folder(folder: Path, create: bool) -> Optional[str]:
    """Create ``folder`` if missing (and ``create``) and write a temporary into it; why not, or None."""
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            return f"{folder} is not a folder"
        except OSError as exc:
            return f"cannot create the folder {folder}: {_strerror(exc)}"
    if not folder.is_dir():
        return f"{folder} is not a folder" if folder.exists() else f"the folder {folder} does not exist"
    try:
        path, fd = _temporary(folder / "probe")
    except OSError as exc:
        return f"cannot write into {folder}: {_strerror(exc)}"
    os.close(fd)
    os.unlink(path)
    return None


def check_outputs(targets: Sequence[Path], overwrite: bool, inputs: Inputs = Inputs(),
                  flag: str = "--overwrite", create: bool = True) -> None:
    """Everything :func:`write_files` will check, before any work: each
    folder exists (created if missing and ``create``) and takes a new file, each name
    fits the file system, and no target is an input, a link, a non-regular
    file, or (without ``overwrite``) an existing file. OutputError lists
    what is wrong."""
    problems: List[str] = []
    folders: Dict[Path, List[Path]] = {}
    for target in targets:
        folders.setdefault(target.parent, []).append(target)
    fitting = []
    for folder, inside in folders.items():
        trouble = _try_folder(folder, create)
        if trouble:
            raise OutputError(trouble)
        longest = _name_max(folder)
        for target in inside:
            length = len(os.fsencode(target.name))
            if length > longest:
                problems.append(f"the output name {target.name[:40]}... is {length} bytes long, the file system "
                                f"in {folder} takes at most {longest}")
            else:
                fitting.append(target)
    problems += [p for p in (target_problem(t, overwrite, inputs, flag) for t in fitting) if p]
    if problems:
        raise OutputError(_listed(problems))


def _temporary(target: Path) -> Tuple[Path, int]:
    """A new file beside ``target``, created exclusively under a random name: (path, fd)."""
    prefix = os.fsencode(target.name)[:80].decode(errors="ignore")
    for _ in range(100):
        path = target.with_name(f".{prefix}.{secrets.token_hex(6)}.partial")
        try:
            return path, os.open(path, _CREATE, 0o666)
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary name", str(target.parent))


def _remove(path: Path, identity: Tuple[int, int]) -> None:
    """Unlink a temporary this process created, if it is still that file."""
    try:
        info = os.lstat(path)
        if (info.st_dev, info.st_ino) == identity:
            os.unlink(path)
    except OSError:
        pass


def _place(temporary: Path, target: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, target)  # replaces a name, never writes through it
        return
    try:
        os.link(temporary, target, follow_symlinks=False)  # fails when the name is taken
    except FileExistsError:
        raise OutputError(f"{target} appeared while this run wrote it (another run writing into the same "
                          "folder?); it was left as it is") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(target):  # a file system without hard links: checked, then renamed
            raise OutputError(f"{target} appeared while this run wrote it; it was left as it is") from None
        os.rename(temporary, target)
        return
    os.unlink(temporary)


def write_files(outputs: Sequence[Tuple[Path, bytes]], overwrite: bool, inputs: Inputs = Inputs(),
                flag: str = "--overwrite") -> None:
    """Write ``(target, bytes)`` outputs as the module doc says, all or
    nothing; OutputError (one line) when one may not or cannot be written,
    every temporary removed."""
    problems = [p for p in (target_problem(t, overwrite, inputs, flag) for t, _ in outputs) if p]
    if problems:
        raise OutputError(_listed(problems))
    written: List[Tuple[Path, Path, Tuple[int, int]]] = []
    try:
        for target, data in outputs:
            try:
                path, fd = _temporary(target)
            except OSError as exc:
                raise OutputError(f"cannot write {target}: {_strerror(exc)}") from None
            info = os.fstat(fd)
            written.append((target, path, (info.st_dev, info.st_ino)))
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
            except OSError as exc:  # a full disk, a file size limit, an I/O error
                raise OutputError(f"cannot write {target}: {_strerror(exc)}") from None
        for target, path, _ in written:
            try:
                _place(path, target, overwrite)
            except OSError as exc:
                raise OutputError(f"cannot write {target}: {_strerror(exc)}") from None
    finally:
        for _, path, identity in written:
            _remove(path, identity)


def write_file(target: Path, data: bytes, overwrite: bool, inputs: Inputs = Inputs(),
               flag: str = "--overwrite") -> None:
    """One output, as :func:`write_files` writes it."""
    write_files([(target, data)], overwrite, inputs, flag)
