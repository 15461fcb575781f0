"""Faults of the environment, injected for real: a full disk (a small tmpfs
in a private mount namespace, or the file size limit), a read-only folder,
a FIFO that never gets a writer, a kill -9 of a child process."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def file_size_limit(nbytes: int) -> Iterator[None]:
    """RLIMIT_FSIZE's soft limit for this process, put back afterwards:
    a write past ``nbytes`` in any file fails with EFBIG (Python ignores
    SIGXFSZ), as it does in a shell after ``ulimit -f``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@contextlib.contextmanager
def no_hang(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (a FIFO opened for reading blocks for ever)."""
    def stop(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _can_mount() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k none /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


MOUNTS = _can_mount()
needs_mount = pytest.mark.skipif(not MOUNTS, reason="no user namespaces here to mount a tmpfs in (unshare -Urm)")


def cli(argv: Sequence[str]) -> List[str]:
    return [sys.executable, "-m", "activesam_ros.cli", *argv]


def run_on_tmpfs(command: Sequence[str], mount: Path, size: str, copy_to: Optional[Path] = None,
                 read_only: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    """``command`` in a private mount namespace where ``mount`` is a fresh
    tmpfs of ``size`` (read-only if asked: a read-only file system, for
    root too); what it leaves there is copied to ``copy_to`` afterwards
    (the tmpfs is gone when the namespace ends)."""
    mount.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    script = f'mount -t tmpfs -o {options} none "$1" && shift && "$@"; rc=$?'
    if copy_to is not None:
        script += f'; mkdir -p "{copy_to}" && cp -a "{mount}/." "{copy_to}/"'
    script += "; exit $rc"
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    return subprocess.run(["unshare", "-Urm", "sh", "-c", script, "sh", str(mount), *command], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
