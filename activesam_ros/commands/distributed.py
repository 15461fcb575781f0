"""``activesam eval`` and ``activesam bag`` over many processes, with torch.distributed.

``torchrun --nproc-per-node N --no-python activesam eval ...`` (several
machines: ``--nnodes M --rdzv-backend c10d --rdzv-endpoint HOST:PORT``)
starts N copies of a command, and torchrun's variables (RANK, WORLD_SIZE,
LOCAL_RANK) tell each copy which one it is. Each copy then

- loads the model once, on its own device: ``cuda:LOCAL_RANK`` for
  ``--device auto`` or ``cuda`` where CUDA is present, the CPU otherwise;
- takes a deterministic shard of the work (:meth:`DistributedJob.shard`),
  after every rank has checked its inputs;
- counts its progress in torchrun's key-value store, so that rank 0 draws
  one progress bar for all ranks, and looks there before each item for a
  failed rank, so that a failure stops every rank, on every machine, at
  its next item;
- meets the others where results merge: :meth:`DistributedJob.sum` is an
  all_reduce (NCCL on CUDA devices, gloo on CPUs).

Nothing waits forever: joining, and every wait for the other ranks, fails
after ``--dist-timeout`` seconds in which no rank made progress. A failing
rank prints its error, writes it where torchrun's failure summary shows it,
and exits non-zero; torchrun then stops the ranks of its machine. A rank
stopped by another's failure says so, and gives torchrun a moment
(:data:`PEER_GRACE_SECONDS`) to end it, so the summary's root cause is the
rank that failed.

Without torchrun's variables (or with one process) :func:`join` gives the
single-process :class:`Job`, whose methods change nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, TypeVar

from .common import UserError

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
"""What torchrun (and other launchers of torch.distributed) set for every process."""
DEFAULT_TIMEOUT = 1800.0
"""Seconds without progress of any rank before a wait for the others fails (gloo's own default)."""
POLL_SECONDS = 0.2
"""How often a waiting rank looks at the store for the others."""
PEER_GRACE_SECONDS = 5.0
"""How long a rank stopped by another's failure waits for torchrun to end it
before it exits itself: torchrun (checking every 0.1 s by default) then sees
the failing rank first and names it as the root cause of the job's failure."""


MAX_TIMEOUT = 7 * 24 * 3600.0
"""The longest --dist-timeout (a week): longer means never, and overflows the process group's timer."""


def timeout_seconds(text: str) -> float:
    """An argparse type: seconds in (0, MAX_TIMEOUT]; NaN and infinity refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= MAX_TIMEOUT:  # False for NaN too
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_TIMEOUT:g}] seconds, got {text}")
    return value


def add_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("under torchrun (docs/scaling.md)")
    group.add_argument("--dist-timeout", type=timeout_seconds, default=DEFAULT_TIMEOUT, metavar="S",
                       help="under torchrun, fail when the processes wait this many seconds for each other "
                       f"with no progress of any (joining, merging, the end; default {DEFAULT_TIMEOUT:g})")


class PeerFailed(UserError):
    """Another rank failed (or cannot be reached): this one stops too."""


@dataclass(frozen=True)
class Placement:
    """Where this process stands in a torchrun job."""

    rank: int              # 0 .. world_size - 1, over every machine
    world_size: int
    local_rank: int        # 0 .. local_world_size - 1, on this machine
    local_world_size: int


def placement(environ: Mapping[str, str] = os.environ) -> Optional[Placement]:
    """This process's place from torchrun's variables; None without them
    or with a single process (nothing to share then)."""
    present = [name for name in TORCHRUN_VARIABLES if name in environ]
    if not present:
        return None
    missing = [name for name in TORCHRUN_VARIABLES if name not in environ]
    if missing:
        raise UserError(f"torchrun's environment is incomplete: {', '.join(present)} set but "
                        f"{', '.join(missing)} not; start the command with torchrun")
    values = {}
    for name in TORCHRUN_VARIABLES + ("LOCAL_WORLD_SIZE",):
        text = environ.get(name, environ["WORLD_SIZE"])
        try:
            values[name] = int(text)
        except ValueError:
            raise UserError(f"{name}={text!r} is not a whole number") from None
    where = Placement(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"], values["LOCAL_WORLD_SIZE"])
    if not (0 <= where.rank < where.world_size and 0 <= where.local_rank < where.local_world_size):
        raise UserError(f"torchrun's variables do not fit: RANK={where.rank}, WORLD_SIZE={where.world_size}, "
                        f"LOCAL_RANK={where.local_rank}, LOCAL_WORLD_SIZE={where.local_world_size}")
    return where if where.world_size > 1 else None


def rank_device(requested: str, where: Placement, cuda_devices: int) -> str:
    """The device of one rank: each rank of a machine takes its own GPU
    (``cuda:LOCAL_RANK``) for ``auto`` and ``cuda``; ``cpu`` stays; an
    explicit ``cuda:N`` is kept only with one process per machine."""
    name = (requested or "auto").strip().lower()
    if name == "auto" and not cuda_devices:
        return "cpu"
    if name in ("auto", "cuda"):
        if where.local_rank >= cuda_devices:
            raise UserError(f"torchrun started {where.local_world_size} processes on this machine but it has "
                            f"{cuda_devices} CUDA device(s): pass --nproc-per-node {cuda_devices} or fewer")
        return f"cuda:{where.local_rank}"
    if name.startswith("cuda:") and where.local_world_size > 1:
        raise UserError(f"--device {requested} under torchrun would put all {where.local_world_size} processes of "
                        "this machine on one GPU; pass --device cuda (each process takes cuda:LOCAL_RANK) "
                        "or set CUDA_VISIBLE_DEVICES")
    return requested


def strided(items: Sequence[T], rank: int, world_size: int) -> List[T]:
    """Every ``world_size``-th item from the ``rank``-th: equal shards in the items' order."""
    return list(items[rank::world_size])


def balanced(weights: Sequence[float], world_size: int) -> List[List[int]]:
    """Indices of the items per rank, the heaviest first to the least loaded
    rank (ties: the earlier item, the lower rank); each list in item order."""
    loads = [0.0] * world_size
    shards: List[List[int]] = [[] for _ in range(world_size)]
    for index in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        loads[rank] += weights[index]
        shards[rank].append(index)
    return [sorted(shard) for shard in shards]


class Job:
    """The single-process job: everything is this process's, nothing merges."""

    rank = 0
    world_size = 1
    is_main = True

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def shard(self, items: Sequence[T], weights: Optional[Sequence[float]] = None) -> List[T]:
        """This process's items (here: all of them)."""
        return list(items)

    def progress(self, iterable: Optional[Iterable[T]] = None, **kwargs: Any) -> Any:
        """A tqdm progress bar, with tqdm's arguments."""
        from tqdm import tqdm

        return tqdm(iterable, **kwargs)

    def sum(self, array: "np.ndarray") -> "np.ndarray":
        """``array`` summed over every rank (here: itself)."""
        return array

    def gather(self, value: Any) -> List[Any]:
        """Every rank's ``value`` (JSON), by rank."""
        return [value]

    def describe(self) -> Dict[str, Any]:
        """What a report says about the processes ({} for one)."""
        return {}


class DistributedJob(Job):
    """One rank of a torchrun job (see the module's docstring)."""

    def __init__(self, where: Placement, device: str, timeout: float):
        self.rank, self.world_size = where.rank, where.world_size
        self.is_main = where.rank == 0
        self.device = device
        self.backend = "nccl" if device.startswith("cuda") else "gloo"
        self.timeout = timeout
        self.total: float = 0  # the work of every rank, in the units progress counts
        self._store: Any = None
        self._bar: Any = None  # rank 0's progress bar
        self._waits = 0  # every rank waits at the same points in the same order: they are numbered

    # -- joining and leaving -------------------------------------------------------------------

    def __enter__(self) -> "DistributedJob":
        import torch
        import torch.distributed as dist

        if not dist.is_available():
            raise UserError(f"this torch ({torch.__version__}) has no torch.distributed: run without torchrun")
        if self.backend == "nccl":
            torch.cuda.set_device(self.device)
        limit = datetime.timedelta(seconds=self.timeout)
        try:
            store, rank, world_size = next(dist.rendezvous("env://", timeout=limit))
            dist.init_process_group(self.backend, store=store, rank=rank, world_size=world_size, timeout=limit)
        except Exception as exc:  # a rendezvous timeout, an unreachable MASTER_ADDR, a bad backend
            raise UserError(f"rank {self.rank} could not join the other {self.world_size - 1} process(es) "
                            f"within {self.timeout:g} s: {exc}") from exc
        # Keys of this attempt only: torchrun keeps its store over restarts (--max-restarts).
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        self._store = dist.PrefixStore(f"activesam/{attempt}/", store)
        return self

    def __exit__(self, kind: Any, error: Optional[BaseException], traceback: Any) -> None:
        import torch.distributed as dist

        try:
            if error is None:
                self._wait_for_all("end")  # the store must outlive every rank's last look at it
            elif not isinstance(error, PeerFailed):
                self._report_failure(error)
        finally:
            self._close_bar()
            if dist.is_initialized():
                dist.destroy_process_group()
        if isinstance(error, PeerFailed):
            print(f"activesam: rank {self.rank} {error}", file=sys.stderr, flush=True)
            time.sleep(PEER_GRACE_SECONDS)  # torchrun ends this rank meanwhile, or it exits non-zero after

    def _report_failure(self, error: BaseException) -> None:
        """Tell the other ranks (the first failure is kept) and torchrun's
        failure summary (a rank stopped by another's failure writes none: it
        is not a cause)."""
        from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

        try:
            self._store.compare_set("failed", "", f"rank {self.rank} failed: {error}")
        except Exception:  # the store is gone: torchrun is tearing the job down already
            pass
        ErrorHandler().record_exception(error)

    def _call(self, method: str, *args: Any) -> Any:
        """A store operation; losing the store means losing the job."""
        try:
            return getattr(self._store, method)(*args)
        except Exception as exc:
            raise PeerFailed(f"rank {self.rank} lost torchrun's store (the job is ending): {exc}") from exc

    def check(self) -> None:
        """Raise PeerFailed if another rank has failed."""
        if self._call("check", ["failed"]):
            raise PeerFailed(f"stopped: {self._call('get', 'failed').decode()}")

    def _show(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done - self._bar.n)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def _wait_for_all(self, name: str) -> None:
        """Wait until every rank reached this point, while no rank failed and
        some rank made progress in the last ``timeout`` seconds."""
        self._waits += 1
        point = f"{self._waits}:{name}"
        self._call("set", f"at/{point}/{self.rank}", "1")
        arrived = self._call("add", f"at/{point}", 1)
        done = self._call("add", "done", 0)
        self._show(done)  # the others' last items, also when they all arrived before this rank
        deadline = time.monotonic() + self.timeout
        while arrived < self.world_size:
            self.check()
            now_done = self._call("add", "done", 0)
            if now_done != done:
                done, deadline = now_done, time.monotonic() + self.timeout
                self._show(done)
            if time.monotonic() > deadline:
                missing = [r for r in range(self.world_size) if not self._call("check", [f"at/{point}/{r}"])]
                raise UserError(f"rank(s) {', '.join(map(str, missing))} made no progress for {self.timeout:g} s "
                                f"(--dist-timeout) while rank {self.rank} waited for them ({name})")
            time.sleep(POLL_SECONDS)
            arrived = self._call("add", f"at/{point}", 0)

    # -- work --------------------------------------------------------------------------------

    def shard(self, items: Sequence[T], weights: Optional[Sequence[float]] = None) -> List[T]:
        """This rank's items, once every rank has checked its inputs and got
        here (a rank whose checks failed stops the others): every
        ``world_size``-th item without ``weights``; with them, the items
        balanced by weight (:func:`balanced`)."""
        self._wait_for_all("shard")
        if weights is None:
            self.total = len(items)
            return strided(items, self.rank, self.world_size)
        self.total = sum(weights)
        return [items[i] for i in balanced(weights, self.world_size)[self.rank]]

    def progress(self, iterable: Optional[Iterable[T]] = None, **kwargs: Any) -> "SharedProgress":
        """Progress counted for all ranks; only rank 0 draws it, over the work of all."""
        return SharedProgress(self, iterable, kwargs)

    def sum(self, array: "np.ndarray") -> "np.ndarray":
        """``array`` summed over every rank with all_reduce, in its dtype
        (int64 counts stay exact: the sum is the single process's)."""
        import torch
        import torch.distributed as dist

        self._wait_for_all("sum")
        tensor = torch.from_numpy(array.copy()).to(self.device if self.backend == "nccl" else "cpu")
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.cpu().numpy()

    def gather(self, value: Any) -> List[Any]:
        """Every rank's ``value`` (JSON), by rank, through the store."""
        self._call("set", f"gather/{self.rank}", json.dumps(value))
        self._wait_for_all("gather")
        return [json.loads(self._call("get", f"gather/{r}")) for r in range(self.world_size)]

    def describe(self) -> Dict[str, Any]:
        return {"processes": self.world_size, "backend": self.backend}


class SharedProgress:
    """tqdm's interface (iteration, update, write, set_postfix, close) over
    a count every rank adds to; each step first looks for a failed rank.
    Rank 0 draws one bar for the whole job, kept open until its end."""

    def __init__(self, job: DistributedJob, iterable: Optional[Iterable[Any]], kwargs: Dict[str, Any]):
        from tqdm import tqdm

        self._job, self._iterable = job, iterable
        if job.is_main and job._bar is None:
            job._bar = tqdm(**{**kwargs, "total": job.total or None, "initial": job._call("add", "done", 0)})

    def __iter__(self) -> Iterator[Any]:
        for item in self._iterable or ():
            self._job.check()
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        self._job.check()
        self._job._show(self._job._call("add", "done", n))

    def set_postfix(self, **kwargs: Any) -> None:
        """Ignored: one rank's partial figures would mislead."""

    def write(self, text: str, file: Any = None) -> None:
        from tqdm import tqdm

        tqdm.write(text, file=file or sys.stderr)

    def close(self) -> None:
        """The bar stays while the job runs (it counts the other ranks), unless an error ends the job."""
        if sys.exc_info()[1] is not None:
            self._job._close_bar()


def join(args: argparse.Namespace) -> Job:
    """The job this process is part of, to be entered (``with``): under
    torchrun a :class:`DistributedJob`, which points ``args.device`` at this
    rank's device; otherwise the single-process :class:`Job`."""
    where = placement()
    if where is None:
        return Job()
    import torch

    args.device = rank_device(args.device, where, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    return DistributedJob(where, args.device, args.dist_timeout)
