"""Batches on a Dask cluster (``dask.distributed``): the optional extra ``kmpress[dask]``.

A batch scales past one machine on an existing distributed engine rather than a home-made one.
:func:`kmpress.batch.compress_many` already takes any :class:`concurrent.futures.Executor`; this
module adds what a Dask cluster needs on top of that:

- :func:`worker_threads`: numba's thread count for a task, from the Dask worker's ``nthreads``
  (numba ignores ``OMP_NUM_THREADS``). :func:`kmpress.pool.compress_file` uses it on a Dask
  worker, so even a plain ``compress_many(executor=client.get_executor())`` gets it right.
- :func:`run_task`, the task the workers run: :func:`kmpress.pool.compress_file` with relative
  paths resolved against the client's working folder (workers have their own), and the
  temporary files of an earlier attempt on a dead worker removed.
- :func:`dask_executor`, a context manager that connects to a scheduler (or takes a ``Client``),
  checks that it has workers, and yields an executor that sends :func:`run_task`.
- :func:`compress_many_dask`, :func:`kmpress.batch.compress_many` on a cluster.

Faults: when a worker dies mid-task (killed, out of memory, segfault), the scheduler gives its
tasks to other workers (Dask's ``distributed.scheduler.allowed-failures``, 3 by default); a file
whose every attempt killed its worker comes back as an ``error`` result with a reason. Writes are
atomic (temporary file + rename), so no partial output is ever visible, and the temporary file
a killed attempt leaves behind is removed by the next attempt or, failing that, by the client.

Only paths and the job's Options travel to the workers, and :class:`~kmpress.pool.FileResult` s come
back: the workers must have kmpress installed and see the files at the same paths (a shared
folder). ``distributed`` is imported only when a cluster is used, never by ``import kmpress``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import Any

from .batch import BatchPlan, as_plan, compress_many
from .errors import DaskNotInstalledError, InvalidParameterError, SchedulerError
from .io import remove_stale_temp_files
from .options import Options
from .pool import FileResult, compress_file
from .pool import dask_worker_threads as worker_threads

#: What a user without the extra is told to run.
DASK_INSTALL_HINT = 'pip install "kmpress[dask]"'

#: Seconds to wait for the scheduler to answer, and then for its first worker.
CONNECT_TIMEOUT = 10.0


def import_distributed():
    """``dask.distributed``, imported on first use.

    Raises
    ------
    DaskNotInstalledError
        With a one-line message that says how to install it.
    """
    try:
        import distributed
    except ImportError:
        raise DaskNotInstalledError(f"running on a Dask cluster needs Dask: {DASK_INSTALL_HINT}") from None
    return distributed


# --------------------------------------------------------------------------------------------
# worker side (worker_threads, numba's thread share of a task, is kmpress.pool's)
# --------------------------------------------------------------------------------------------


def _remove_temp_files(dst: str) -> None:
    """Remove the temporary files of writes of ``dst``; call only when this batch's attempt at
    ``dst`` is over.

    Within one batch nobody else writes ``dst`` (the plan gives every output one input), so such
    a file is what a killed attempt left (its process could not remove it).
    """
    remove_stale_temp_files(dst)


def run_task(src: str, dst: str, options: Options, threads: int | None = None, cwd: str | None = None) -> FileResult:
    """The task a Dask worker runs for one file: :func:`kmpress.pool.compress_file`, cluster-aware.

    Parameters
    ----------
    src, dst : str; paths as the user gave them (relative ones are taken from ``cwd``)
    options : Options; the job
    threads : int, optional; numba threads; default :func:`worker_threads`
    cwd : str, optional; the client's working folder

    Returns
    -------
    FileResult
        With ``src`` and ``dst`` as given, so that the client's table reads as for a local batch.
    """
    s = os.path.join(cwd, src) if cwd else src
    d = os.path.join(cwd, dst) if cwd else dst
    result = compress_file(s, d, options, threads)  # threads None: worker_threads()
    # an earlier attempt of this file may have died mid-write on another worker; ours is over
    _remove_temp_files(d)
    result.src, result.dst = src, dst
    if result.report is not None and cwd:
        result.report.src, result.report.dst = src, dst
    return result


# --------------------------------------------------------------------------------------------
# client side
# --------------------------------------------------------------------------------------------


class _DaskTasks(Executor):
    """An executor that runs :func:`run_task` where :func:`kmpress.batch.compress_many` submits
    :func:`kmpress.pool.compress_file`, and passes the client's working folder along."""

    def __init__(self, inner: Executor, cwd: str, task: Callable = None):
        self._inner = inner
        self._cwd = cwd
        self._task = task or run_task

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if fn is compress_file:
            fn, kwargs = self._task, {**kwargs, "cwd": self._cwd}
        return self._inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait=wait)


@contextmanager
def dask_executor(scheduler, *, timeout: float | None = None, task: Callable | None = None) -> Iterator[Executor]:
    """An executor for :func:`kmpress.batch.compress_many` on a Dask cluster.

    Parameters
    ----------
    scheduler : str or distributed.Client
        The scheduler's address (``tcp://HOST:PORT``), or a connected client (left open).
    timeout : float, optional
        Seconds to wait for the scheduler, and then for at least one worker; default
        :data:`CONNECT_TIMEOUT`.
    task : callable, optional
        Replaces :func:`run_task` (same arguments), for tests.

    Yields
    ------
    concurrent.futures.Executor
        Runs :func:`run_task` on the cluster (one task per file, ``pure=False``: a file given
        twice in a session is compressed twice, not looked up).

    Raises
    ------
    DaskNotInstalledError
        ``dask.distributed`` is missing.
    SchedulerError
        No scheduler answers at that address, or it has no worker.
    """
    distributed = import_distributed()
    if timeout is None:
        timeout = CONNECT_TIMEOUT
    own = not isinstance(scheduler, distributed.Client)
    if own:
        address = str(scheduler)
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as e:
            msg = " ".join(str(e).split()) or type(e).__name__
            raise SchedulerError(f"cannot connect to the Dask scheduler {address}: {msg}") from None
    else:
        client = scheduler
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError):
            raise SchedulerError(
                f"the Dask scheduler {client.scheduler.address} has no workers (start some: dask worker ADDRESS)"
            ) from None
        yield _DaskTasks(client.get_executor(pure=False), os.getcwd(), task)
    finally:
        if own:
            client.close()


def _clean_result(r):
    """Give a file whose every attempt killed its worker a short reason, and remove what the
    killed attempts left (the workers could not, when they all died)."""
    if r.status == "error" and r.message and r.message.startswith("worker failed:"):
        if "KilledWorker" in r.message:
            r.message = "every Dask worker that tried this file died while compressing it (out of memory?)"
        if r.dst:
            _remove_temp_files(r.dst)
    return r


def compress_many_dask(
    paths: Iterable[str | os.PathLike] | BatchPlan,
    out_dir: str | os.PathLike | None = None,
    k: int | None = None,
    *,
    scheduler,
    options: Options | None = None,
    suffix: str | None = None,
    recursive: bool = False,
    force: bool = False,
    jobs: int | None = None,
    threads: int | None = None,
    on_start: Callable[[str], None] | None = None,
    timeout: float | None = None,
    task: Callable | None = None,
    **kwargs: Any,
) -> Iterator[FileResult]:
    """:func:`kmpress.batch.compress_many` on a Dask cluster; yields one FileResult per input.

    Parameters
    ----------
    paths, out_dir, k, options, suffix, recursive, force, threads, on_start, kwargs : as for
        :func:`kmpress.batch.compress_many`; ``jobs`` limits the files in flight (default all)
    scheduler : str or distributed.Client; timeout, task : see :func:`dask_executor`

    Raises
    ------
    DaskNotInstalledError, SchedulerError
        Before any work.
    InvalidParameterError
        Before any work, as for a local batch (colliding outputs are failed files, as there).
    """
    if "executor" in kwargs:
        raise InvalidParameterError("compress_many_dask takes scheduler=, not executor=")
    plan = as_plan(paths, k, options, kwargs, out_dir=out_dir, suffix=suffix, recursive=recursive, force=force)
    with dask_executor(scheduler, timeout=timeout, task=task) as executor:
        for r in compress_many(plan, executor=executor, jobs=jobs, threads=threads, on_start=on_start):
            yield _clean_result(r)
