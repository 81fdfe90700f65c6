"""Local process pools: a batch's files on spawned workers of this machine, with crash recovery
and clean interruption (:func:`run_local_pool`).

A pool round keeps at most ``jobs`` files in flight, admitted by memory
(:class:`~kmpress.budget.MemoryBudget`); the workers are set up by
:func:`kmpress.workers.init_worker` and send their stages back through a
:class:`~kmpress.workers.StagePipe`. Nothing here prints; planning (which files, which outputs)
is :mod:`kmpress.batch`'s.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import interrupts
from .budget import MemoryBudget
from .limits import usable_cores
from .options import Options
from .results import FileResult
from .runs import BatchRun, Planned, Window, failed, run_here
from .spawn import not_started_warning
from .workers import StageListener, StagePipe, StartListener, Task, compress_file, init_worker
from .writing import remove_stale_temp_files

#: Default number of worker processes for a local batch on this kind of machine, chosen by
#: measurement (see docs/speed.md, "Batches"): one worker per core, each running numba
#: with one thread, beats one worker using every core, because decoding and PNG encoding are
#: single-threaded in Pillow and two workers overlap them with the other's clustering.
CORES_PER_JOB = 1


def default_jobs(n_files: int | None = None) -> int:
    """Worker processes for a local batch: one per :data:`CORES_PER_JOB` cores, never more than files."""
    jobs = max(1, usable_cores() // CORES_PER_JOB)
    if n_files is not None:
        jobs = max(1, min(jobs, n_files))
    return jobs


def _crashed(item: Planned) -> FileResult:
    return FileResult(
        str(item.src), str(item.dst), "error", "the worker process died while compressing this file (out of memory?)"
    )


def run_local_pool(
    files: Iterable[Planned],
    options: Options,
    jobs: int,
    threads: int,
    on_start: StartListener | None = None,
    task: Task = compress_file,
    on_stage: StageListener | None = None,
) -> Iterator[FileResult]:
    """Our own spawn pool of ``jobs`` workers with ``threads`` numba threads each, with crash
    recovery and clean interruption.

    A dead worker breaks the whole pool and fails every file in flight, innocent or not. Those
    files get a second round in a fresh pool of the same width; files failed again then run one
    at a time in a pool of one, so a crash there names its file. ``task`` is replaceable for tests.
    ``on_stage(src, stage)`` hears the workers' stages through a :class:`StagePipe` (called
    from its thread).

    When a pool breaks before any of its workers has finished starting, no file is to blame:
    the usual cause is a caller's script that starts the batch outside
    ``if __name__ == "__main__":``, which each spawned worker re-imports (where
    :func:`kmpress.compress_many` raises :class:`~kmpress.errors.UnguardedMainError`). Then no
    more pools are tried: the files not done run in this process, one at a time on every core,
    after a :class:`RuntimeWarning` that says so and names the fix.

    The same as :func:`run_pool`, the settings given one by one.
    """
    yield from run_pool(
        files, options, BatchRun(jobs=jobs, threads=threads, task=task, on_start=on_start, on_stage=on_stage)
    )


def run_pool(files: Iterable[Planned], options: Options, run: BatchRun) -> Iterator[FileResult]:
    """:func:`run_local_pool`, its settings in ``run`` (``jobs`` and ``threads`` given: the
    pool's width and each worker's numba threads)."""
    assert run.jobs is not None and run.threads is not None
    pipe = StagePipe(run.on_stage) if run.on_stage is not None else None
    stages = pipe.writer if pipe is not None else None
    try:
        crashed: list[Planned] = []
        here: list[Planned] = []  # files of pools whose workers could not start
        yield from _pool_round(files, options, run, crashed, stages, here)
        if crashed:
            again: list[Planned] = []
            yield from _pool_round(crashed, options, run, again, stages, here)
            alone_run = replace(run, jobs=1, threads=usable_cores())
            for it in again:
                if here:  # workers no longer start: no pool of one either
                    here.append(it)
                    continue
                alone: list[Planned] = []
                yield from _pool_round([it], options, alone_run, alone, stages, here)
                for bad in alone:
                    yield _crashed(bad)
        if here:
            warnings.warn(not_started_warning(), RuntimeWarning, stacklevel=4)  # the caller of compress_many
            yield from run_here(here, options, replace(run, threads=usable_cores()))
    finally:
        if pipe is not None:
            pipe.close()


def _new_pool(n_jobs: int, threads: int, stages: Connection | None = None) -> tuple[ProcessPoolExecutor, Any]:
    """A spawn pool, and the shared flag (``.value``) that its first worker to finish starting
    sets to 1."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    started = ctx.RawValue("b", 0)
    pool = ProcessPoolExecutor(
        max_workers=n_jobs,
        mp_context=ctx,
        initializer=init_worker,
        initargs=(threads, stages, started),
    )
    return pool, started


def _pool_round(
    files: Iterable[Planned],
    options: Options,
    run: BatchRun,
    crashed: list[Planned],
    stages: Connection | None = None,
    not_started: list[Planned] | None = None,
) -> Iterator[FileResult]:
    """One pool, at most ``run.jobs`` files in flight (so an interrupt has little to cancel and
    ``on_start`` means started). Every file of ``files`` is either yielded as a result or
    appended to ``crashed`` (a dead worker took it down, or the broken pool refused it) or, when
    the pool broke before any worker finished starting, to ``not_started`` (given: else to
    ``crashed``)."""
    from concurrent.futures.process import BrokenProcessPool  # with the pool only: 10 ms of start-up

    assert run.jobs is not None and run.threads is not None
    pool, started = _new_pool(run.jobs, run.threads, stages)
    # the workers' threads are set by their initializer: the task is given None
    window = Window(pool, files, options, run, run.jobs, None, MemoryBudget(run.memory))
    lost: list[Planned] = []
    finished = False

    def refill() -> None:
        try:
            window.fill()
        except (BrokenProcessPool, RuntimeError):  # broken, or shut down by its manager thread
            lost.extend(window.queue)
            window.queue.clear()

    try:
        refill()
        while window.inflight:
            done = window.wait()
            interrupts.check()  # a signal whose KeyboardInterrupt something swallowed meanwhile
            ready: list[FileResult] = []
            for fut in done:
                it = window.finish(fut)
                try:
                    ready.append(fut.result())
                except BrokenProcessPool:
                    lost.append(it)
                except Exception as e:  # e.g. a result that could not be sent back
                    ready.append(failed(it, e))
            # refill before handing results out: the consumer may take its time printing
            refill()
            yield from ready
        lost.extend(window.queue)  # nothing is left in it unless the pool broke
        window.queue.clear()
        if not_started is not None and lost and not started.value:
            not_started.extend(lost)
        else:
            crashed.extend(lost)
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            # interrupted (KeyboardInterrupt) or abandoned by the consumer: stop the workers
            # now and remove whatever temporary file a killed one may have left
            _stop_pool(pool, [it.dst for it in window.inflight.values() if it.dst is not None])


def _stop_pool(pool: ProcessPoolExecutor, dsts: list[Path], grace: float = 5.0) -> None:
    procs = dict(getattr(pool, "_processes", None) or {})
    # the files not yet handed to a worker are cancelled by the pool's own thread (a future
    # cancelled from here could be failed by that thread as it finds the workers gone: Python
    # 3.11 then prints an InvalidStateError traceback); no more work is handed out after this
    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except Exception:  # pragma: no cover - a broken pool may complain; nothing is left to do
        pass
    for p in procs.values():
        try:
            p.terminate()  # SIGTERM: the worker removes its temporary file and exits
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + grace
    for p in procs.values():
        try:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(1.0)
        except (OSError, ValueError, AssertionError):
            pass
    for dst in dsts:
        remove_stale_temp_files(dst, pids=list(procs))
