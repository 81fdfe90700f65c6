"""How a batch's files run: a run's settings, and running the files here or on an executor.

:class:`BatchRun` holds the settings; the files run in this process (:func:`run_here`) or on a
caller's :class:`concurrent.futures.Executor` (:func:`run_on`). A local process pool is
:mod:`kmpress.pool`'s; which of the three a batch uses is :func:`kmpress.batch.run_plan`'s choice.

Nothing here prints.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import interrupts
from .budget import MemoryBudget
from .options import Options, check_int
from .results import FileResult
from .workers import StageListener, StartListener, Task, compress_file


class Planned(Protocol):
    """A file to compress (a :class:`kmpress.batch.PlannedFile`): its input and its output."""

    @property
    def src(self) -> Path:
        """The input file."""
        ...

    @property
    def dst(self) -> Path | None:
        """The output file (None: standard output)."""
        ...


@dataclass(frozen=True)
class BatchRun:
    """How a batch's files run (what they are and the job are the plan's).

    Attributes
    ----------
    executor : concurrent.futures.Executor or None; where the files run (None: this process, or
        a local process pool)
    jobs : int >= 1 or None; files in flight at once (None: the runner's default)
    threads : int >= 1 or None; numba threads per file (None: the runner's default)
    task : Task; what runs for each file (:func:`kmpress.workers.compress_file`; a Dask
        cluster's task, or a test's)
    task_kwargs : mapping; keyword arguments every call of ``task`` gets beside the file's
        (a Dask task's ``cwd``)
    on_start : callable(src) or None; a file was handed to a worker
    on_stage : callable(src, stage) or None; a file being compressed begins a stage (in this
        process, or from a local pool's workers)
    memory : int or None; bytes a local pool's :class:`~kmpress.budget.MemoryBudget` starts
        from (None: the memory available when each pool starts)
    rerun_alone : callable(exception) -> bool, or None; on an executor, a file whose future
        failed with an exception this accepts (a Dask ``KilledWorker``: its workers died, maybe
        because of a file beside it) runs once more, alone, after the others; that attempt's
        outcome is the file's result

    Raises
    ------
    InvalidParameterError
        ``jobs`` or ``threads`` is not an integer >= 1.
    """

    executor: Executor | None = None
    jobs: int | None = None
    threads: int | None = None
    task: Task = compress_file
    task_kwargs: Mapping[str, Any] = field(default_factory=dict)
    on_start: StartListener | None = None
    on_stage: StageListener | None = None
    memory: int | None = None
    rerun_alone: Callable[[BaseException], bool] | None = None

    def __post_init__(self) -> None:
        if self.jobs is not None:
            object.__setattr__(self, "jobs", check_int("jobs", self.jobs, 1))
        if self.threads is not None:
            object.__setattr__(self, "threads", check_int("threads", self.threads, 1))

    def started(self, src: str) -> None:
        """Tell ``on_start`` that ``src`` was handed to a worker."""
        if self.on_start is not None:
            self.on_start(src)


class Window:
    """Files of a batch handed to an executor, at most ``limit`` in flight (None: all).

    Each file is admitted by ``budget`` when one is given.

    ``queue`` holds the files not yet submitted, ``inflight`` each submitted file's future.
    """

    def __init__(
        self,
        executor: Executor,
        files: Iterable[Planned],
        options: Options,
        run: BatchRun,
        limit: int | None,
        threads: int | None,
        budget: MemoryBudget | None = None,
    ) -> None:
        self.executor = executor
        self.queue: list[Planned] = list(files)
        self.inflight: dict[Future[FileResult], Planned] = {}
        self.options = options
        self.run = run
        self.limit = limit
        self.threads = threads
        self.budget = budget

    def fill(self) -> None:
        """Submit queued files until ``limit`` are in flight.

        A file the executor refuses (its ``submit`` raises: a broken or shut-down pool) stays in ``queue`` and the error
        propagates, so that the caller still owes that file its result.
        """
        queue, budget = self.queue, self.budget
        while queue and (self.limit is None or len(self.inflight) < self.limit):
            i = 0 if budget is None else budget.pick(queue, len(self.inflight))
            if i is None:
                break
            it = queue[i]
            fut = self.executor.submit(
                self.run.task, str(it.src), str(it.dst), self.options, self.threads, **self.run.task_kwargs
            )
            del queue[i]
            if budget is not None:
                budget.start(str(it.src))
            self.inflight[fut] = it
            self.run.started(str(it.src))

    def wait(self) -> set[Future[FileResult]]:
        """Wait until at least one file in flight is done; return the done futures.

        They stay in flight until :meth:`finish`.
        """
        done, _ = wait(list(self.inflight), return_when=FIRST_COMPLETED)
        return done

    def finish(self, fut: Future[FileResult]) -> Planned:
        """Return the file of a done future, no longer in flight (its memory back in the budget)."""
        it = self.inflight.pop(fut)
        if self.budget is not None:
            self.budget.end(str(it.src))
        return it


def failed(it: Planned, e: Exception) -> FileResult:
    """Return the result of a file whose future raised ``e`` (e.g. a result that could not be sent back)."""
    return FileResult(str(it.src), str(it.dst), "error", f"worker failed: {type(e).__name__}: {e}")


def run_here(files: Iterable[Planned], options: Options, run: BatchRun) -> Iterator[FileResult]:
    """Compress ``files`` one after the other in this process, ``run.threads`` numba threads each."""
    for it in files:
        src, dst = str(it.src), str(it.dst)
        run.started(src)
        if run.on_stage is None:
            yield run.task(src, dst, options, run.threads, **run.task_kwargs)
        else:
            yield run.task(
                src, dst, options, run.threads, on_stage=functools.partial(run.on_stage, src), **run.task_kwargs
            )


def run_on(executor: Executor, files: Iterable[Planned], options: Options, run: BatchRun) -> Iterator[FileResult]:
    """Run on a caller's executor, ``run.jobs`` files in flight (None: all).

    ``run.threads`` is passed to each task; a failed future (e.g. a killed worker) is that file's
    error, except one that ``run.rerun_alone`` accepts: once every other file is done, each such
    file runs again with nothing else of the batch in flight, one after the other, and that
    attempt's outcome (whatever it is) is its result. So a file is failed for worker deaths only
    when they happen with it alone, and each file still yields exactly one result.
    """
    window = Window(executor, files, options, run, run.jobs, run.threads)
    suspects: list[Planned] = []

    def refill() -> Iterator[FileResult]:
        try:
            window.fill()
        except Exception as e:  # the executor takes no more work: each file left fails
            why = f"the executor refused it: {type(e).__name__}: {e}"
            yield from (FileResult(str(it.src), str(it.dst), "error", why) for it in window.queue)
            window.queue.clear()

    def drain(rerun: bool) -> Iterator[FileResult]:
        yield from refill()
        while window.inflight:
            done = window.wait()
            interrupts.check()
            for fut in done:
                it = window.finish(fut)
                try:
                    yield fut.result()
                except Exception as e:
                    if rerun and run.rerun_alone is not None and run.rerun_alone(e):
                        suspects.append(it)
                    else:
                        yield failed(it, e)
            yield from refill()

    try:
        yield from drain(rerun=True)
        if suspects:
            window.queue, window.limit = suspects, 1
            yield from drain(rerun=False)
    finally:
        for fut in window.inflight:
            fut.cancel()
