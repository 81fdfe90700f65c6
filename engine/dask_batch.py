"""Batches on a Dask cluster (``dask.distributed``): the optional extra ``kmpress[dask]``.

A batch scales past one machine on an existing distributed engine rather than a home-made one.
:func:`kmpress.batch.compress_many` already takes any :class:`concurrent.futures.Executor`; this
module adds what a Dask cluster needs on top of that:

- :func:`worker_threads`: numba's thread count for a task, from the Dask worker's ``nthreads``
  (numba ignores ``OMP_NUM_THREADS``). :func:`kmpress.workers.compress_file` uses it on a Dask
  worker, so even a plain ``compress_many(executor=client.get_executor())`` gets it right.
- :func:`run_task`, the task the workers run: :func:`kmpress.workers.compress_file` with relative
  paths resolved against the client's working folder (workers have their own), and the
  temporary files of an earlier attempt on a dead worker removed.
- :func:`dask_executor`, a context manager that connects to a scheduler (or takes a ``Client``),
  checks that it has workers, and yields an executor that notices the loss of the scheduler,
  with how a batch runs on it (its ``batch_run``: :func:`run_task` with the client's working folder).
- :func:`compress_many_dask`, :func:`kmpress.batch.compress_many` on a cluster: the plan run
  (:func:`kmpress.batch.run_plan`) on that executor with that task.
- :func:`check_address` (a scheduler address, checked without connecting) and
  :func:`quiet_logs` (no Dask log lines, for a command line tool).

Faults: when a worker dies mid-task (killed, out of memory, segfault), the scheduler gives its
tasks to other workers (Dask's ``distributed.scheduler.allowed-failures``, 3 by default). Dask
blames every file the dying worker held, so files queued or running beside a file that kills
workers can end in ``KilledWorker`` with it: each file that does runs once more, alone on the
cluster as far as this batch goes, once the others are done (:func:`_workers_died`), and only a
file whose workers die then too comes back as an ``error`` result with a reason. Writes are
atomic (temporary file + rename), so no partial output is ever visible, and the temporary file
a killed attempt leaves behind is removed by the next attempt or, failing that, by the client.

When the scheduler itself goes away mid-batch (its process dies, or it stops answering for
``Options.scheduler_timeout`` seconds), the batch stops at once and still yields one result per
input: a file whose output this batch wrote is ``ok`` (without figures when its result was
lost with the scheduler), any other is an ``error`` whose ``error_type`` is
``"SchedulerLostError"`` ("not done"). Workers close when they lose their scheduler, a task
whose worker is closing does not begin writing its output, and the client gives the writes
already begun :data:`LOSS_SETTLE` seconds before it looks at the outputs; so a file reported not
done is not written afterwards (except by workers cut off with a frozen scheduler: they do not
know, and finish the files they hold).
A malformed address is refused before any connection is made.

Only paths and the job's Options travel to the workers, and :class:`~kmpress.results.FileResult` s come
back: the workers must have kmpress installed and see the files at the same paths (a shared
folder). ``distributed`` is imported only when a cluster is used, never by ``import kmpress``.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, InvalidStateError
from contextlib import contextmanager
from typing import Any, Protocol, Unpack

from .batch import BatchPlan, PlannedFile, as_plan, run_plan
from .errors import DaskNotInstalledError, InvalidParameterError, SchedulerError, SchedulerLostError
from .options import JobFields, Options
from .results import FileResult
from .runs import BatchRun
from .spawn import refuse_in_starting_worker
from .workers import StartListener, compress_file, dask_worker_threads
from .writing import remove_stale_temp_files, stale_temp_files

#: numba's thread share of a task on a Dask worker (see the module); the workers' function
worker_threads = dask_worker_threads

#: What a user without the extra is told to run.
DASK_INSTALL_HINT = 'pip install "kmpress[dask]"'

#: Seconds to wait for the scheduler to answer, and then for its first worker.
CONNECT_TIMEOUT = 10.0

#: Once the scheduler is lost: seconds given to the writes the workers had begun (their outputs
#: are then reported as written), and the longest wait for a temporary file of one to go.
LOSS_SETTLE = 1.0
LOSS_SETTLE_MAX = 10.0

#: Seconds between two checks that the scheduler answers, with ``scheduler_timeout`` (at most).
PING_INTERVAL = 1.0

#: Address schemes whose location is HOST:PORT.
_HOST_PORT_SCHEMES = ("tcp", "tls", "ws", "wss")


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
# worker side (worker_threads, numba's thread share of a task, is kmpress.workers')
# --------------------------------------------------------------------------------------------


def _remove_temp_files(dst: str) -> None:
    """Remove the temporary files of writes of ``dst``; call only when this batch's attempt at
    ``dst`` is over.

    Within one batch nobody else writes ``dst`` (the plan gives every output one input), so such
    a file is what a killed attempt left (its process could not remove it).
    """
    remove_stale_temp_files(dst)


def _worker_closing() -> bool:
    """Whether this task's Dask worker is closing: it does when it loses its scheduler."""
    dist = sys.modules.get("distributed")
    if dist is None:
        return False
    try:
        worker = dist.get_worker()
    except ValueError:  # not inside a task on a worker
        return False
    return getattr(getattr(worker, "status", None), "name", "") in ("closing", "closed", "failed")


def _refuse_write_when_orphaned(stage: str) -> None:
    """A task's ``on_stage``: do not begin writing once the worker is closing (its scheduler is
    gone, the client has stopped waiting and reports the file not done)."""
    if stage == "write" and _worker_closing():
        raise SchedulerLostError("not done: the Dask worker lost its scheduler before writing")


class DaskTask(Protocol):
    """What a Dask worker runs for one file (:func:`run_task`, or a test's replacement): a
    :class:`~kmpress.workers.Task` that also takes the client's working folder."""

    def __call__(
        self, src: str, dst: str, options: Options, threads: int | None = None, cwd: str | None = None
    ) -> FileResult:
        """Compress ``src`` to ``dst`` (paths relative to ``cwd``) and return the file's result."""
        ...


def run_task(src: str, dst: str, options: Options, threads: int | None = None, cwd: str | None = None) -> FileResult:
    """The task a Dask worker runs for one file: :func:`kmpress.workers.compress_file`, cluster-aware.

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
    # threads None: worker_threads()
    result = compress_file(s, d, options, threads, on_stage=_refuse_write_when_orphaned)
    # an earlier attempt of this file may have died mid-write on another worker; ours is over
    _remove_temp_files(d)
    result.src, result.dst = src, dst
    if result.report is not None and cwd:
        result.report.src, result.report.dst = src, dst
    return result


# --------------------------------------------------------------------------------------------
# client side
# --------------------------------------------------------------------------------------------


def check_address(address: str) -> str:
    """``address`` if it is a scheduler address Dask can dial (``tcp://HOST:PORT``; a bare
    ``HOST:PORT`` is tcp), checked before any connection: a Client made with a malformed one
    fails, and then holds the process 20 s at exit trying to close.

    Raises
    ------
    SchedulerError
        With what is wrong, in one line.
    """
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port
    from distributed.comm.registry import get_backend

    def refuse(why: str) -> SchedulerError:
        return SchedulerError(f"not a Dask scheduler address: {address!r}: {why} (expected tcp://HOST:PORT)")

    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
        if scheme in _HOST_PORT_SCHEMES:
            _, port = parse_host_port(location)
            if not 0 < int(port) < 65536:
                raise ValueError(f"port {port} out of range 1-65535")
    except (ValueError, TypeError, ImportError) as e:
        raise refuse(" ".join(str(e).split()) or type(e).__name__) from None
    return address


def _workers_died(e: BaseException) -> bool:
    """Whether a file's future failed because every worker that held it died (``KilledWorker``).

    Dask counts every file a dying worker holds as a suspect, not only the one that killed it:
    files queued or running beside a killing file reach ``allowed-failures`` with it. Such a
    file is run again alone (:attr:`kmpress.runs.BatchRun.rerun_alone`), so that it fails only
    when workers die with nothing else beside it.
    """
    return isinstance(e, import_distributed().KilledWorker)


class _DaskTasks(Executor):
    """An executor on a Dask client that notices the loss of the scheduler, and how a batch runs
    on it (:meth:`batch_run`: :func:`run_task`, or a replacement, with the client's working folder).

    Each submission returns a future of its own that mirrors the Dask one, so that a lost
    scheduler can end them all at once (:meth:`give_up`) without touching Dask's: those may
    never finish (a frozen scheduler), and cancelling one asks the scheduler, which would hang.
    """

    def __init__(
        self, client: Any, cwd: str, task: DaskTask | None = None, scheduler_timeout: float | None = None
    ) -> None:
        self._client = client
        self._inner = client.get_executor(pure=False)
        self._cwd = cwd
        self._task: DaskTask = task or run_task
        self._lock = threading.Lock()
        self._pending: set[Future[Any]] = set()
        self._lost: str | None = None
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        if scheduler_timeout is not None:
            self._watchdog = threading.Thread(
                target=self._watch, args=(scheduler_timeout,), name="kmpress-scheduler-watch", daemon=True
            )
            self._watchdog.start()

    @property
    def address(self) -> str:
        return str(self._client.scheduler.address)

    def batch_run(
        self, jobs: int | None = None, threads: int | None = None, on_start: StartListener | None = None
    ) -> BatchRun:
        """How a batch runs here: the Dask task (:func:`run_task`, or the replacement given),
        with the client's working folder (relative paths are the client's); a file whose
        workers all died runs once more alone (:func:`_workers_died`)."""
        return BatchRun(
            executor=self,
            jobs=jobs,
            threads=threads,
            task=self._task,
            task_kwargs={"cwd": self._cwd},
            on_start=on_start,
            rerun_alone=_workers_died,
        )

    def lost(self) -> str | None:
        """Why the scheduler is taken as lost (e.g. ``its connection closed``), or None."""
        return self._lost

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        outer: Future[Any] = Future()
        if self._lost is not None:
            outer.set_exception(SchedulerLostError(self._lost))
            return outer
        with self._lock:
            self._pending.add(outer)
        inner = self._inner.submit(fn, *args, **kwargs)
        inner.add_done_callback(functools.partial(self._copy, outer))
        outer.add_done_callback(functools.partial(self._cancel_inner, inner))
        return outer

    def _copy(self, outer: Future[Any], inner: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(outer)
        if outer.done():
            return
        try:
            if inner.cancelled():
                # not by us (ours are cancelled through the outer future): the client dropped
                # every future because it lost the connection to the scheduler
                self.give_up("its connection closed")
            elif inner.exception() is not None:
                outer.set_exception(inner.exception())
            else:
                outer.set_result(inner.result())
        except InvalidStateError:  # given up meanwhile
            pass

    def _cancel_inner(self, inner: Future[Any], outer: Future[Any]) -> None:
        if outer.cancelled() and self._lost is None:
            inner.cancel()

    def give_up(self, why: str) -> None:
        """Take the scheduler as lost: every file in flight fails now with SchedulerLostError."""
        with self._lock:
            if self._lost is None:
                self._lost = why
            pending, self._pending = list(self._pending), set()
        for fut in pending:
            try:
                fut.set_exception(SchedulerLostError(self._lost))
            except InvalidStateError:
                pass

    def _watch(self, timeout: float) -> None:
        """Ask the scheduler who it is every :data:`PING_INTERVAL` s; give up on it when an
        answer takes longer than ``timeout`` (a frozen process, a network partition)."""
        while not self._stop.wait(min(PING_INTERVAL, timeout)):
            try:
                self._client.sync(self._client.scheduler.identity, callback_timeout=timeout)
            except Exception:
                if not self._stop.is_set():
                    self.give_up(f"it did not answer for {timeout:g} s")
                return

    def stop_watching(self) -> None:
        self._stop.set()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.stop_watching()
        self._inner.shutdown(wait=wait and self._lost is None)


@contextmanager
def dask_executor(
    scheduler: Any,
    *,
    timeout: float | None = None,
    task: DaskTask | None = None,
    scheduler_timeout: float | None = None,
) -> Iterator[_DaskTasks]:
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
    scheduler_timeout : float, optional
        Give up on a scheduler that takes longer than this to answer (checked every second
        while the executor is open): the files in flight fail with SchedulerLostError and the
        executor's ``lost()`` says why. Default: wait for it as long as it takes.

    Yields
    ------
    concurrent.futures.Executor
        Runs what it is given on the cluster (one task per submission, ``pure=False``: a file
        given twice in a session is compressed twice, not looked up); a batch runs there as
        ``kmpress.batch.run_plan(plan, ex.batch_run(jobs, threads, on_start))``
        (:func:`run_task` with the client's working folder; a plain
        ``compress_many(executor=ex)`` sends :func:`kmpress.workers.compress_file`, which takes
        relative paths as the worker's). Its ``lost()`` is None, or why the scheduler was lost
        (then every file in flight has failed with SchedulerLostError).

    Raises
    ------
    DaskNotInstalledError
        ``dask.distributed`` is missing.
    SchedulerError
        A malformed address (before any connection), no scheduler answers at that address, or
        it has no worker.
    """
    distributed = import_distributed()
    if timeout is None:
        timeout = CONNECT_TIMEOUT
    own = not isinstance(scheduler, distributed.Client)
    if own:
        address = check_address(str(scheduler))
        try:
            client = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as e:
            msg = " ".join(str(e).split()) or type(e).__name__
            raise SchedulerError(f"cannot connect to the Dask scheduler {address}: {msg}") from None
    else:
        client = scheduler
    executor = None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError):
            raise SchedulerError(
                f"the Dask scheduler {client.scheduler.address} has no workers (start some: dask worker ADDRESS)"
            ) from None
        executor = _DaskTasks(client, os.getcwd(), task, scheduler_timeout)
        yield executor
    finally:
        if executor is not None:
            executor.stop_watching()
        if own:
            try:
                # a lost scheduler cannot take part in the goodbye: do not wait for it
                client.close(timeout=2 if executor is not None and executor.lost() else None)
            except (TimeoutError, OSError):
                pass


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Within: no log records at all (Dask logs a lost scheduler as tracebacks on stderr; a
    command line tool says it in one line instead). The previous setting comes back on exit."""
    saved = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(saved)


def _clean_result(r: FileResult) -> FileResult:
    """Give a file whose every attempt killed its worker a short reason, and remove what the
    killed attempts left (the workers could not, when they all died)."""
    if r.status == "error" and r.message and r.message.startswith("worker failed:"):
        if "KilledWorker" in r.message:
            r.message = "every Dask worker that tried this file died while compressing it (out of memory?)"
        if r.dst:
            _remove_temp_files(r.dst)
    return r


def _signature(path: Any) -> tuple[int, int, int, int] | None:
    """What identifies a file's current version (an atomic write makes a new inode), or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def _after_loss(
    files: list[PlannedFile], before: dict[str, tuple[int, int, int, int] | None], why: str
) -> Iterator[FileResult]:
    """The results of the files whose results never came back, once the scheduler is lost:
    ``ok`` (without figures) when this batch wrote the output, else not done.

    First the writes the workers had begun get :data:`LOSS_SETTLE` seconds (longer, up to
    :data:`LOSS_SETTLE_MAX`, while a temporary file of one of these outputs is still there).
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < LOSS_SETTLE_MAX:
        if time.monotonic() - t0 >= LOSS_SETTLE and not any(
            it.dst is not None and stale_temp_files(it.dst) for it in files
        ):
            break
        time.sleep(0.05)
    for it in files:
        src, dst = str(it.src), str(it.dst)
        now = _signature(it.dst)
        if now is not None and now != before[src]:
            yield FileResult(src, dst, "ok", "written, but its figures were lost with the Dask scheduler")
        else:
            _remove_temp_files(dst)
            yield FileResult(src, dst, "error", f"not done: {why}", error_type=SchedulerLostError.__name__)


def compress_many_dask(
    paths: Iterable[str | os.PathLike] | BatchPlan,
    out_dir: str | os.PathLike | None = None,
    k: int | None = None,
    *,
    scheduler: Any,
    options: Options | None = None,
    suffix: str | None = None,
    recursive: bool = False,
    force: bool = False,
    jobs: int | None = None,
    threads: int | None = None,
    on_start: StartListener | None = None,
    timeout: float | None = None,
    task: DaskTask | None = None,
    **kwargs: Unpack[JobFields],
) -> Iterator[FileResult]:
    """:func:`kmpress.batch.compress_many` on a Dask cluster; yields one FileResult per input.

    Parameters
    ----------
    paths, out_dir, k, options, suffix, recursive, force, threads, on_start, kwargs : as for
        :func:`kmpress.batch.compress_many`; ``jobs`` limits the files in flight (default all);
        the options' ``scheduler_timeout`` gives up on a scheduler that stops answering
    scheduler : str or distributed.Client; timeout, task : see :func:`dask_executor`

    Yields
    ------
    FileResult
        As :func:`kmpress.batch.compress_many`. When the scheduler is lost mid-batch the batch
        stops; each file whose result had not come back is then ``ok`` with ``report`` None
        when this batch wrote its output (its figures went with the scheduler), else an
        ``error`` with ``error_type`` ``"SchedulerLostError"`` whose message says
        ``not done: the Dask scheduler ADDRESS was lost (...)``.

    Raises
    ------
    DaskNotInstalledError, SchedulerError
        Before any work.
    InvalidParameterError
        Before any work, as for a local batch (colliding outputs are failed files, as there).
    """
    refuse_in_starting_worker("compress_many_dask")
    if "executor" in kwargs:
        raise InvalidParameterError("compress_many_dask takes scheduler=, not executor=")
    plan = as_plan(paths, k, options, kwargs, out_dir=out_dir, suffix=suffix, recursive=recursive, force=force)
    # an output that changes during the batch was written by it (when its result is lost)
    before = {str(it.src): _signature(it.dst) for it in plan.to_compress}
    unreported = {str(it.src): it for it in plan.to_compress}
    held: list[FileResult] = []
    why = None
    with dask_executor(
        scheduler, timeout=timeout, task=task, scheduler_timeout=plan.options.scheduler_timeout
    ) as executor:
        run = executor.batch_run(jobs, threads, on_start)
        results = run_plan(plan, run)
        try:
            for r in results:
                if r.status == "error" and r.error_type == SchedulerLostError.__name__:
                    held.append(r)  # a worker that saw the loss first; the client will too
                    continue
                if r.status == "error" and (r.message or "").startswith("worker failed:") and executor.lost():
                    break
                unreported.pop(r.src, None)
                yield _clean_result(r)
        finally:
            results.close()  # cancels what is still queued (nothing to cancel once lost)
        if executor.lost():
            why = f"the Dask scheduler {executor.address} was lost ({executor.lost()})"
    if why is None:
        yield from held  # a worker closed for another reason; its result still came back
        return
    yield from _after_loss(list(unreported.values()), before, why)
