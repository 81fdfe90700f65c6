"""Running a batch's files: the task one worker runs, local process pools with crash recovery
and clean interruption, and any caller's :class:`concurrent.futures.Executor`.

Only paths and the job's :class:`~kmpress.options.Options` travel to a worker, never pixel
arrays, and every result comes back as a plain picklable :class:`FileResult`. Nothing here
prints; planning (which files, which outputs) is :mod:`kmpress.batch`'s.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any, Iterator, Literal

from . import backends, interrupts, limits
from .api import CompressReport, compress
from .errors import KmpressError
from .io import image_size, remove_stale_temp_files
from .limits import usable_cores
from .notes import capture_native_messages
from .options import Options
from .spawn import not_started_warning

Status = Literal["ok", "skipped", "error"]

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



@dataclass
class FileResult:
    """What happened to one input of a batch. Plain data: crosses process boundaries.

    Attributes
    ----------
    src : str; dst : str or None
    status : "ok", "skipped" or "error"
    message : str or None; the reason of a skip or error (one line, without the path)
    report : CompressReport or None; set when ``status == "ok"``, and for a file skipped because
        its output would have been larger than the input (``skip_if_larger``; the report has
        ``written=False`` and both sizes)
    seconds : float; wall time spent on this file in its worker (0 for skips)
    detail : str or None; the traceback of an unexpected error (a bug), for ``--debug``
    error_type : str or None; the class name of the KmpressError behind an ``error`` (e.g.
        ``"TargetNotReachedError"``, which the CLI gives its own exit code)
    """

    src: str
    dst: str | None
    status: Status
    message: str | None = None
    report: Any = None
    seconds: float = 0.0
    detail: str | None = field(default=None, repr=False)
    error_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: src, dst, status, message, seconds and, when ok, every report field."""
        d: dict[str, Any] = {"src": self.src, "dst": self.dst, "status": self.status, "message": self.message}
        if self.status == "skipped":
            d["skip_reason"] = "larger" if self.skipped_larger else "exists"
        if self.error_type is not None:
            d["error_type"] = self.error_type
        if self.report is not None:
            rep = self.report.as_dict()
            rep.pop("src", None)
            rep.pop("dst", None)
            d.update(rep)
        d["seconds"] = self.seconds
        return d

    @property
    def skipped_larger(self) -> bool:
        """Skipped because the output would have been larger than its input (``skip_if_larger``)."""
        return self.status == "skipped" and self.report is not None and not self.report.written


def report_result(src: str, dst: str, rep: Any, seconds: float) -> FileResult:
    """The :class:`FileResult` of a finished :func:`kmpress.compress`: ``ok``, or ``skipped``
    with both sizes when ``skip_if_larger`` left the output unwritten."""
    if rep.written:
        return FileResult(src, dst, "ok", None, rep, seconds)
    why = (
        f"not written: the {rep.format.upper()} would be {rep.output_bytes:,} bytes, larger than the "
        f"input's {rep.input_bytes:,} (--skip-if-larger)"
    )
    return FileResult(src, dst, "skipped", why, rep, seconds)


# Worker-side state. A worker process started by our own pool ignores SIGINT (the parent decides
# what an interrupt means) and turns SIGTERM into a clean stop: the temporary file of the output
# being written is removed and the process exits at once. Nothing is raised from the handler: it
# may run inside a C callback (numba's compiler and cache loader call back into Python), where an
# exception could only be printed as "ignored", with a traceback.
_CURRENT_DST: str | None = None
#: In a worker of our own pool: the writing end of the parent's stage pipe (see :class:`StagePipe`).
_STAGES: Any = None


def _on_sigterm(signum, frame):  # pragma: no cover - runs in worker processes
    if _CURRENT_DST is not None:
        remove_stale_temp_files(_CURRENT_DST, pids=[os.getpid()])
    os._exit(128 + signum)


def _init_worker(threads: int | None, stages: Any = None, started: Any = None) -> None:  # pragma: no cover - runs in worker processes
    global _STAGES
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    backends.own_process()
    backends.set_threads(threads)
    capture_native_messages()
    _STAGES = stages
    if started is not None:  # last: a worker that dies before this line never started
        started.value = 1


class StagePipe:
    """Stages of the files running in a local pool's workers, back to the parent: each worker
    writes ``src NUL stage`` messages on one pipe, a thread of the parent reads them and calls
    ``on_stage(src, stage)``.

    Cheap and safe with many writers: a message is one ``write`` of under ``PIPE_BUF`` bytes,
    which the kernel never interleaves or cuts, so there is no lock a dying worker could leave
    held (a longer message, for a path of hundreds of bytes, is not sent). A message may arrive
    after its file's result: the caller ignores files it does not know as running.
    """

    #: Largest message sent (POSIX makes pipe writes of up to 512 bytes atomic; Linux 4096).
    MAX_MESSAGE = 500

    def __init__(self, on_stage: Callable[[str, str], None]) -> None:
        import multiprocessing

        self.on_stage = on_stage
        self.reader, self.writer = multiprocessing.get_context("spawn").Pipe(duplex=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="kmpress-stages", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.reader.poll(0.05):
                    continue
                msg = self.reader.recv_bytes()
            except (EOFError, OSError):
                return
            src, _, stage = msg.partition(b"\0")
            try:
                self.on_stage(src.decode("utf-8", "surrogateescape"), stage.decode("ascii"))
            except Exception:  # a display's problem must not stop the batch
                pass

    def close(self) -> None:
        """Stop reading (once what is in the pipe has been read, or after a second) and close."""
        deadline = time.monotonic() + 1.0
        try:
            while self.reader.poll(0) and time.monotonic() < deadline:
                time.sleep(0.01)
        except OSError:
            pass
        self._stop.set()
        self._thread.join(1.0)
        self.reader.close()
        self.writer.close()


def _send_stage(src: str, stage: str) -> None:
    """In a pool worker: tell the parent's :class:`StagePipe` that ``src`` begins ``stage``."""
    msg = src.encode("utf-8", "surrogateescape") + b"\0" + stage.encode("ascii")
    if _STAGES is None or len(msg) > StagePipe.MAX_MESSAGE:
        return
    try:
        _STAGES.send_bytes(msg)
    except (OSError, ValueError):  # the parent stopped listening
        pass


def dask_worker_threads() -> int | None:
    """numba threads for a task on a Dask worker (None when not on one): the task's share of
    the worker's threads (see :mod:`kmpress.dask_batch`)."""
    dist = sys.modules.get("distributed")  # a Dask worker has imported it; nobody else needs to
    if dist is None:
        return None
    try:
        worker = dist.get_worker()
    except ValueError:  # not inside a task on a worker
        return None
    state = getattr(worker, "state", worker)
    nthreads = int(getattr(state, "nthreads", 0) or 0)
    if nthreads < 1:
        return None
    busy = max(1, len(getattr(state, "executing", ())))
    return max(1, nthreads // busy)


def compress_file(
    src: str, dst: str, options: Options, threads: int | None = None, on_stage: Callable[[str], None] | None = None
) -> FileResult:
    """Compress one file and describe the outcome; never raises for a bad file.

    The task a batch sends to its executor: arguments are two paths and the job's
    :class:`~kmpress.options.Options` (plain, picklable data), and the result is a
    :class:`FileResult`. A :class:`KmpressError` becomes an
    ``error`` result with its message; any other exception (a bug) too, with the traceback in
    ``detail``. ``threads`` sets numba's thread count first; None leaves it, except on a Dask
    worker, where the task takes its share of the worker's threads
    (``worker_threads`` of :mod:`kmpress.dask_batch`), so that a plain ``client.get_executor()``
    works. ``on_stage(stage)``: see :func:`kmpress.compress`; in a worker of our own pool the
    stages go to the parent's :class:`StagePipe` instead.
    """
    global _CURRENT_DST

    def work() -> CompressReport:
        backends.set_threads(dask_worker_threads() if threads is None else threads)
        stages = on_stage if on_stage is not None or _STAGES is None else functools.partial(_send_stage, src)
        return compress(src, dst, options=options, on_stage=stages)

    _CURRENT_DST = dst
    try:
        return run_one(src, dst, work)
    finally:
        _CURRENT_DST = None


def run_one(src: str, dst: str, work: Callable[[], CompressReport]) -> FileResult:
    """``work()``, the compression of one input, as its :class:`FileResult` (timed): its report,
    or what it raised as that file's one-line error. Never raises for a file's failure; Ctrl-C
    propagates."""
    t0 = time.perf_counter()
    try:
        return report_result(src, dst, work(), time.perf_counter() - t0)
    except KmpressError as e:
        return FileResult(src, dst, "error", e.message, None, time.perf_counter() - t0, error_type=type(e).__name__)
    except MemoryError:
        return FileResult(src, dst, "error", "out of memory", None, time.perf_counter() - t0)
    except Exception as e:
        # a KeyboardInterrupt raised in Python code that a compiled numba function calls back
        # comes out as a SystemError ("returned a result with an exception set") caused by it:
        # the interrupt, not a failure of this file (kmpress.interrupts keeps its own handler's
        # exception out of there; another handler may not)
        if _interrupt_behind(e):
            raise KeyboardInterrupt() from None
        msg = f"internal error: {type(e).__name__}: {e}"
        return FileResult(src, dst, "error", msg, None, time.perf_counter() - t0, traceback.format_exc())


def _interrupt_behind(e: BaseException) -> bool:
    """Whether an exception was raised from a KeyboardInterrupt."""
    seen = 0
    cur: BaseException | None = e
    while cur is not None and seen < 10:
        if isinstance(cur, KeyboardInterrupt):
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return False


def _crashed(item) -> FileResult:
    return FileResult(
        str(item.src), str(item.dst), "error", "the worker process died while compressing this file (out of memory?)"
    )


class MemoryBudget:
    """Admission by memory for a local pool: a file starts only when the memory it is estimated
    to need (:func:`kmpress.limits.job_bytes` of its header) fits beside the files in flight,
    within :data:`BUDGET_SHARE` of the memory available when the batch started. A file that does
    not fit waits while smaller ones go ahead; alone, any file may start (its own size was judged
    by the reading guard). So two huge photos on a machine short of memory run one after the
    other, and the rest of the batch in parallel."""

    def __init__(self, total: int | None = None) -> None:
        avail = limits.available_memory() if total is None else total
        self.total = None if avail is None else int(avail * BUDGET_SHARE)
        self.used = 0
        self._need: dict[str, int] = {}

    def need(self, src: str) -> int:
        if src not in self._need:
            try:
                w, h = image_size(src, max_pixels=None)
                self._need[src] = limits.job_bytes(w * h, 4)
            except KmpressError:  # unreadable: it fails fast in its worker
                self._need[src] = limits.RUNTIME_BYTES
        return self._need[src]

    def pick(self, queue: list, running: int):
        """Index in ``queue`` of the first file that may start now, or None."""
        for i, it in enumerate(queue):
            if running == 0 or self.total is None or self.used + self.need(str(it.src)) <= self.total:
                return i
        return None


#: Share of the available memory a local batch plans to fill (the rest: the parent, the system).
BUDGET_SHARE = 0.8


def _submit_window(executor, queue, inflight, limit, opts, threads, on_start, task=compress_file, budget=None):
    """Submit files of ``queue`` until ``limit`` are in flight. A file the executor refuses
    (its ``submit`` raises: a broken or shut-down pool) stays in ``queue`` and the error
    propagates, so that the caller still owes that file its result."""
    while queue and (limit is None or len(inflight) < limit):
        i = 0 if budget is None else budget.pick(queue, len(inflight))
        if i is None:
            break
        it = queue[i]
        fut = executor.submit(task, str(it.src), str(it.dst), opts, threads)
        del queue[i]
        if budget is not None:
            budget.used += budget.need(str(it.src))
        inflight[fut] = it
        if on_start:
            on_start(str(it.src))


def run_on(executor, todo, opts, jobs, threads, on_start) -> Iterator[FileResult]:
    """Run on a caller's executor; a failed future (e.g. a killed worker) is that file's error."""
    queue = list(todo)
    inflight: dict[Future, PlannedFile] = {}

    def refill() -> Iterator[FileResult]:
        try:
            _submit_window(executor, queue, inflight, jobs, opts, threads, on_start)
        except Exception as e:  # the executor takes no more work: each file left fails
            why = f"the executor refused it: {type(e).__name__}: {e}"
            yield from (FileResult(str(it.src), str(it.dst), "error", why) for it in queue)
            queue.clear()

    try:
        yield from refill()
        while inflight:
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            interrupts.check()
            for fut in done:
                it = inflight.pop(fut)
                try:
                    yield fut.result()
                except Exception as e:
                    yield FileResult(str(it.src), str(it.dst), "error", f"worker failed: {type(e).__name__}: {e}")
            yield from refill()
    finally:
        for fut in inflight:
            fut.cancel()


def _new_pool(n_jobs: int, threads: int, stages: Any = None):
    """A spawn pool, and the shared flag (``.value``) that its first worker to finish starting
    sets to 1."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    started = ctx.RawValue("b", 0)
    pool = ProcessPoolExecutor(
        max_workers=n_jobs,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(threads, stages, started),
    )
    return pool, started


def run_here(files, opts, threads, on_start, on_stage=None, task=compress_file) -> Iterator[FileResult]:
    """Compress ``files`` one after the other in this process, ``threads`` numba threads each."""
    for it in files:
        if on_start:
            on_start(str(it.src))
        if on_stage is None:
            yield task(str(it.src), str(it.dst), opts, threads)
        else:
            yield task(str(it.src), str(it.dst), opts, threads, on_stage=functools.partial(on_stage, str(it.src)))


def run_local_pool(todo, opts, n_jobs, threads, on_start, task=compress_file, on_stage=None) -> Iterator[FileResult]:
    """Our own spawn pool with crash recovery and clean interruption.

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
    """
    pipe = StagePipe(on_stage) if on_stage is not None else None
    stages = pipe.writer if pipe is not None else None
    try:
        crashed: list[PlannedFile] = []
        here: list[PlannedFile] = []  # files of pools whose workers could not start
        yield from _pool_round(todo, opts, n_jobs, threads, on_start, crashed, task, stages, here)
        if crashed:
            again: list[PlannedFile] = []
            yield from _pool_round(crashed, opts, n_jobs, threads, on_start, again, task, stages, here)
            for it in again:
                if here:  # workers no longer start: no pool of one either
                    here.append(it)
                    continue
                alone: list[PlannedFile] = []
                yield from _pool_round([it], opts, 1, usable_cores(), on_start, alone, task, stages, here)
                for bad in alone:
                    yield _crashed(bad)
        if here:
            warnings.warn(not_started_warning(), RuntimeWarning, stacklevel=3)  # the caller of compress_many
            yield from run_here(here, opts, usable_cores(), on_start, on_stage, task)
    finally:
        if pipe is not None:
            pipe.close()


def _pool_round(
    files, opts, n_jobs, threads, on_start, crashed: list, task=compress_file, stages=None, not_started: list | None = None
) -> Iterator[FileResult]:
    """One pool, at most ``n_jobs`` files in flight (so an interrupt has little to cancel and
    ``on_start`` means started). Every file of ``files`` is either yielded as a result or
    appended to ``crashed`` (a dead worker took it down, or the broken pool refused it) or, when
    the pool broke before any worker finished starting, to ``not_started`` (given: else to
    ``crashed``)."""
    from concurrent.futures.process import BrokenProcessPool  # with the pool only: 10 ms of start-up

    pool, started = _new_pool(n_jobs, threads, stages)
    queue = list(files)
    inflight: dict[Future, PlannedFile] = {}
    lost: list[PlannedFile] = []
    budget = MemoryBudget()
    finished = False

    def refill() -> None:
        try:
            _submit_window(pool, queue, inflight, n_jobs, opts, None, on_start, task, budget)
        except (BrokenProcessPool, RuntimeError):  # broken, or shut down by its manager thread
            lost.extend(queue)
            queue.clear()

    try:
        refill()
        while inflight:
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            interrupts.check()  # a signal whose KeyboardInterrupt something swallowed meanwhile
            ready: list[FileResult] = []
            for fut in done:
                it = inflight.pop(fut)
                budget.used -= budget.need(str(it.src))
                try:
                    ready.append(fut.result())
                except BrokenProcessPool:
                    lost.append(it)
                except Exception as e:  # e.g. a result that could not be sent back
                    ready.append(FileResult(str(it.src), str(it.dst), "error", f"worker failed: {type(e).__name__}: {e}"))
            # refill before handing results out: the consumer may take its time printing
            refill()
            yield from ready
        lost.extend(queue)  # nothing is left in it unless the pool broke
        queue.clear()
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
            _stop_pool(pool, [it.dst for it in inflight.values()])


def _stop_pool(pool, dsts: list[Path], grace: float = 5.0) -> None:
    procs = dict(getattr(pool, "_processes", None) or {})
    for fut in list(getattr(pool, "_pending_work_items", {}).values()):
        fut.future.cancel()
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
    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except Exception:  # pragma: no cover - a broken pool may complain; nothing is left to do
        pass
