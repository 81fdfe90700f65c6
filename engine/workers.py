"""The worker side of a batch: a file's task, a pool's worker initializer, the stage pipe.

The task one file runs as is :func:`compress_file`; the pipe carries the workers' stages back to
the parent.

Only paths and the job's :class:`~kmpress.options.Options` travel to a worker, never pixel
arrays, and every result comes back as a plain picklable :class:`~kmpress.results.FileResult`.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from multiprocessing.connection import Connection
from typing import Any

from . import backends
from .api import CompressReport, compress
from .options import Options
from .process import kmpress_process, writing
from .results import FileResult, run_one

#: ``on_start(src)``: a file was handed to a worker.
StartListener = Callable[[str], None]
#: ``on_stage(src, stage)``: a file being compressed begins a stage (see :func:`kmpress.compress`).
StageListener = Callable[[str, str], None]


#: What a batch runs for each file (:func:`compress_file`, or a replacement): called as
#: ``task(src, dst, options, threads, **task_kwargs)`` (two paths, the job's options, numba's
#: thread count or None, and the run's extra keywords, e.g. a Dask task's ``cwd``); in this
#: process also with ``on_stage=`` when the batch listens to stages. Returns a
#: :class:`~kmpress.results.FileResult`.
Task = Callable[..., FileResult]


#: In a worker of our own pool: the writing end of the parent's stage pipe (see :class:`StagePipe`).
_STAGES: Connection | None = None
#: In a worker of our own pool: its set-up (:func:`kmpress.process.kmpress_process`), held for
#: the life of the process.
_WORKER = ExitStack()


def init_worker(
    threads: int | None, stages: Connection | None = None, started: Any = None
) -> None:  # pragma: no cover - runs in worker processes
    """Set a local pool's worker process up for kmpress (as a worker).

    It gets ``threads`` numba threads and sends stages to ``stages``; ``started.value`` is set to
    1 last.
    """
    global _STAGES
    _WORKER.enter_context(kmpress_process("worker"))
    backends.set_threads(threads)
    _STAGES = stages
    if started is not None:  # last: a worker that dies before this line never started
        started.value = 1


class StagePipe:
    """Stages of the files running in a local pool's workers, back to the parent.

    Each worker writes ``src NUL stage`` messages on one pipe, a thread of the parent reads them and calls
    ``on_stage(src, stage)``.

    Cheap and safe with many writers: a message is one ``write`` of under ``PIPE_BUF`` bytes,
    which the kernel never interleaves or cuts, so there is no lock a dying worker could leave
    held (a longer message, for a path of hundreds of bytes, is not sent). A message may arrive
    after its file's result: the caller ignores files it does not know as running.
    """

    #: Largest message sent (POSIX makes pipe writes of up to 512 bytes atomic; Linux 4096).
    MAX_MESSAGE = 500

    def __init__(self, on_stage: StageListener) -> None:
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
    """Return numba threads for a task on a Dask worker (None when not on one).

    That is the task's share of the worker's threads (see :mod:`kmpress.dask_batch`).
    """
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

    The task a batch sends to its executor (a :class:`Task`): arguments are two paths and the
    job's :class:`~kmpress.options.Options` (plain, picklable data), and the result is a
    :class:`~kmpress.results.FileResult`. A :class:`KmpressError` becomes an ``error`` result
    with its message; any other exception (a bug) too, with the traceback in ``detail``.
    ``threads`` sets numba's thread count first; None leaves it, except on a Dask worker, where
    the task takes its share of the worker's threads (:func:`dask_worker_threads`), so that a
    plain ``client.get_executor()`` works. ``on_stage(stage)``: see :func:`kmpress.compress`;
    in a worker of our own pool the stages go to the parent's :class:`StagePipe` instead.
    """

    def work() -> CompressReport:
        backends.set_threads(dask_worker_threads() if threads is None else threads)
        stages = on_stage if on_stage is not None or _STAGES is None else functools.partial(_send_stage, src)
        return compress(src, dst, options=options, on_stage=stages)

    with writing(dst):
        return run_one(src, dst, work)
