"""Many files at once: planning output names, and running :func:`kmpress.compress` across processes.

Two steps, so that every naming problem is known before any work starts:

1. :func:`plan_batch` expands folders, names each output, and decides what to do with each input
   (compress it, skip it because its output exists, or report it as an error). Two inputs that
   would write the same output raise :class:`OutputCollisionError` before anything is written.
2. :func:`compress_many` runs the plan and yields one :class:`FileResult` per input as each
   finishes. Work goes to any :class:`concurrent.futures.Executor` (a local process pool by
   default, a ``dask.distributed`` client's executor unchanged); only paths and options travel to
   the workers, never pixel arrays, and every result comes back as plain picklable data.

Also here, for the CLI's ``demo`` and ``info`` commands: :func:`describe_image` and
:func:`comparison_sheet`. Nothing in this module prints.
"""

from __future__ import annotations

import math
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ImageReadError, ImageWriteError, InvalidParameterError, KmpressError

Status = Literal["ok", "skipped", "error"]

#: Default output suffix; ``{k}`` is replaced by the number of colours.
DEFAULT_SUFFIX = "-k{k}"
#: Default output suffix with a quality target; ``{q}`` is replaced by the target in dB.
DEFAULT_QUALITY_SUFFIX = "-q{q}"

#: Default number of worker processes for a local batch on this kind of machine, chosen by
#: measurement (see the README, "Batch throughput"): one worker per core, each running numba
#: with one thread, beats one worker using every core, because decoding and PNG encoding are
#: single-threaded in Pillow and two workers overlap them with the other's clustering.
CORES_PER_JOB = 1


# --------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------


class OutputCollisionError(InvalidParameterError):
    """Two inputs of one batch would write the same output file."""


_EXTENSIONS: frozenset[str] | None = None


def image_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) of every format Pillow can open here."""
    global _EXTENSIONS
    if _EXTENSIONS is None:
        from PIL import Image

        Image.init()  # registers every plugin, not only the common ones
        _EXTENSIONS = frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)
    return _EXTENSIONS


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_jobs(n_files: int | None = None) -> int:
    """Worker processes for a local batch: one per :data:`CORES_PER_JOB` cores, never more than files."""
    jobs = max(1, usable_cores() // CORES_PER_JOB)
    if n_files is not None:
        jobs = max(1, min(jobs, n_files))
    return jobs


def quality_label(target_psnr: float) -> str:
    """The target as it appears in file names: ``40``, ``37.5``."""
    return f"{float(target_psnr):g}"


def output_name(src: str | os.PathLike, k: int | None, suffix: str | None = None, target_psnr: float | None = None) -> str:
    """File name of the PNG written for ``src``: ``<stem><suffix>.png``, suffix ``-k<K>`` by default,
    ``-q<target>`` with a quality target (``k`` None: K is chosen per file).

    ``{k}`` in ``suffix`` is replaced by ``k``, ``{q}`` by the quality target.
    """
    if suffix is None:
        sfx = DEFAULT_SUFFIX if target_psnr is None else DEFAULT_QUALITY_SUFFIX
    else:
        sfx = suffix
    if not isinstance(sfx, str):
        raise InvalidParameterError(f"suffix must be text, not {type(suffix).__name__}")
    if "/" in sfx or os.sep in sfx or "\0" in sfx:
        raise InvalidParameterError(f"suffix must not contain a path separator: {suffix!r}")
    if "{k}" in sfx and k is None:
        raise InvalidParameterError("suffix cannot use {k} with a quality target (K is chosen per file); use {q}")
    if "{q}" in sfx and target_psnr is None:
        raise InvalidParameterError("suffix uses {q} but no quality target is given")
    if k is not None:
        sfx = sfx.replace("{k}", str(k))
    if target_psnr is not None:
        sfx = sfx.replace("{q}", quality_label(target_psnr))
    return f"{Path(src).stem}{sfx}.png"


@dataclass(frozen=True)
class PlannedFile:
    """One input of a batch and what will happen to it.

    Attributes
    ----------
    src : Path; the input as given or found (not resolved)
    dst : Path or None; the output it maps to (None when the input itself is unusable)
    action : "compress", "skip" (output exists) or "error" (e.g. missing input)
    reason : str or None; why it is skipped or an error
    """

    src: Path
    dst: Path | None
    action: Literal["compress", "skip", "error"]
    reason: str | None = None


@dataclass
class BatchPlan:
    """The outcome of :func:`plan_batch`.

    Attributes
    ----------
    items : list of PlannedFile, in input order (folders expanded in sorted order)
    k : int or None; colours asked for (None with a quality target)
    target_psnr : float or None; the quality target (dB) instead of K
    """

    items: list[PlannedFile]
    k: int | None
    target_psnr: float | None = None

    @property
    def to_compress(self) -> list[PlannedFile]:
        return [it for it in self.items if it.action == "compress"]

    @property
    def n_found(self) -> int:
        """Inputs that exist (everything but missing paths)."""
        return sum(1 for it in self.items if it.dst is not None)


def _key(p: Path) -> str:
    """Identity of a path for duplicate and collision checks (resolved, case kept)."""
    return os.path.normcase(str(p.resolve()))


def _expand_folder(folder: Path, recursive: bool, skip_dirs: set[str], exts: frozenset[str]) -> list[Path]:
    found: list[Path] = []
    walker = os.walk(folder) if recursive else [(str(folder), [], None)]
    for root, dirs, _files in walker:
        if recursive:
            # never descend into the output folder: its PNGs are outputs, not inputs
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and _key(Path(root, d)) not in skip_dirs)
        try:
            names = sorted(os.listdir(root))
        except OSError:
            continue
        for name in names:
            p = Path(root, name)
            if name.startswith(".") or p.suffix.lower() not in exts:
                continue
            if p.is_file():
                found.append(p)
    return found


def plan_batch(
    paths: Iterable[str | os.PathLike],
    k: int,
    *,
    out_dir: str | os.PathLike | None = None,
    suffix: str | None = None,
    recursive: bool = False,
    force: bool = False,
    target_psnr: float | None = None,
) -> BatchPlan:
    """Decide the output of every input; nothing is written.

    Parameters
    ----------
    paths : files and/or folders. A file is taken whatever its extension (Pillow decides whether it
        is an image); a folder contributes the files with an extension Pillow reads (sub-folders too
        with ``recursive``), skipping hidden files, the output folder, and the outputs of the
        folder's own images (``a-k16.png`` beside ``a.jpg``). An input named twice counts once.
    k : int, 1 <= k <= 256; goes into the default output name. None with ``target_psnr``.
    out_dir : folder for the outputs (created by :func:`compress_many` if missing); default
        beside each input
    suffix : text added to the stem, ``{k}`` replaced by K; default ``-k{k}``
    force : overwrite existing outputs instead of skipping them
    target_psnr : float, optional; a quality target (dB) instead of K (names ``<stem>-q<target>.png``)

    Returns
    -------
    BatchPlan
        A missing path is an ``error`` item; an output that exists is a ``skip`` item unless
        ``force``; an output that is one of the inputs (or any file the batch reads) is an
        ``error`` item: no input is ever overwritten.

    Raises
    ------
    InvalidParameterError
        ``k`` or ``suffix`` is invalid.
    OutputCollisionError
        Two inputs would write the same output.
    """
    from .api import MAX_K, _check_int

    if target_psnr is not None:
        from .quality import check_target

        target_psnr = check_target(target_psnr)
        if k is not None:
            raise InvalidParameterError("give either K or a quality target, not both")
    else:
        k = _check_int("k", k, 1, MAX_K)
    output_name("x", k, suffix, target_psnr)  # validates the suffix once
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and out.exists() and not out.is_dir():
        raise ImageWriteError("output folder is a file", str(out))
    skip_dirs = {_key(out)} if out is not None else set()
    exts = image_extensions()

    # 1. expand: (src, error reason or None), duplicates dropped
    inputs: list[tuple[Path, str | None]] = []
    seen: set[str] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = _expand_folder(p, recursive, skip_dirs, exts)
            # a folder re-run must not compress its own outputs: drop "<stem><suffix>.png" files
            # whose source "<stem>.*" is in the same folder
            outputs_here = {_key(f.with_name(output_name(f, k, suffix, target_psnr))) for f in found}
            if suffix is None:  # also outputs of earlier runs at another K or quality target
                pattern = re.compile(r"^(.*)-(?:k\d{1,3}|q\d+(?:\.\d+)?)\.png$", re.IGNORECASE)
                stems = {(_key(f.parent), f.stem) for f in found}
                outputs_here |= {
                    _key(f) for f in found if (m := pattern.match(f.name)) and (_key(f.parent), m.group(1)) in stems
                }
            items = [(f, None) for f in found if _key(f) not in outputs_here]
        elif p.exists():
            items = [(p, None)]
        else:
            items = [(p, "no such file or folder")]
        for f, err in items:
            key = _key(f)
            if key in seen:
                continue
            seen.add(key)
            inputs.append((f, err))

    # 2. name the outputs and check for collisions before any work
    input_keys = {_key(f) for f, err in inputs if err is None}
    by_output: dict[str, Path] = {}
    planned: list[PlannedFile] = []
    for src, err in inputs:
        if err is not None:
            planned.append(PlannedFile(src, None, "error", err))
            continue
        dst = (out if out is not None else src.parent) / output_name(src, k, suffix, target_psnr)
        dkey = _key(dst)
        if dkey in by_output:
            raise OutputCollisionError(
                f"{by_output[dkey]} and {src} would both write {dst}; nothing was done "
                "(rename one, or use --suffix / --out-dir in separate runs)"
            )
        by_output[dkey] = src
        if dkey in input_keys or _same_existing(src, dst):
            planned.append(PlannedFile(src, dst, "error", f"output {dst} would overwrite an input; use --suffix or --out-dir"))
        elif dst.is_dir():
            planned.append(PlannedFile(src, dst, "error", f"output {dst} is a folder"))
        elif dst.exists() and not force:
            planned.append(PlannedFile(src, dst, "skip", f"output {dst} exists (--force to overwrite)"))
        else:
            planned.append(PlannedFile(src, dst, "compress"))
    return BatchPlan(planned, k, target_psnr)


def _same_existing(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------


@dataclass
class FileResult:
    """What happened to one input of a batch. Plain data: crosses process boundaries.

    Attributes
    ----------
    src : str; dst : str or None
    status : "ok", "skipped" or "error"
    message : str or None; the reason of a skip or error (one line, without the path)
    report : CompressReport or None; set when ``status == "ok"``
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
        if self.error_type is not None:
            d["error_type"] = self.error_type
        if self.report is not None:
            rep = self.report.as_dict()
            rep.pop("src", None)
            rep.pop("dst", None)
            d.update(rep)
        d["seconds"] = self.seconds
        return d


# Worker-side state. A worker process started by our own pool ignores SIGINT (the parent decides
# what an interrupt means) and turns SIGTERM into a clean stop: the file being written is removed
# by write_png's cleanup, then the process exits without taking another task.
_IN_TASK = False


class _Terminated(BaseException):
    """Raised inside a task when the worker is told to stop (SIGTERM)."""


def _on_sigterm(signum, frame):  # pragma: no cover - runs in worker processes
    if _IN_TASK:
        raise _Terminated()
    os._exit(128 + signum)


def _init_worker(threads: int | None) -> None:  # pragma: no cover - runs in worker processes
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    skip_numba_blas_probe()
    _set_threads(threads)


def skip_numba_blas_probe() -> None:
    """Spare a kmpress process numba's BLAS probe: 0.4 s of start-up where SciPy is installed.

    Loading the first compiled kernel makes numba import its NumPy support, which probes for BLAS
    by importing ``scipy.linalg`` (0.4 s here). kmpress's kernels use no BLAS, so the kmpress
    command and its worker processes hide SciPy's BLAS module during that one import and put it
    back at once (SciPy itself stays importable). For processes that run only kmpress: numba code
    of others in the same process would find no BLAS for ``np.dot``. Library users never get it.
    """
    key = "scipy.linalg.cython_blas"
    if "numba.np.arraymath" in sys.modules or key in sys.modules:
        return
    sys.modules[key] = None  # makes "import scipy.linalg.cython_blas" raise ImportError
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules[key]


def _set_threads(threads: int | None) -> None:
    """Set numba's thread count for this thread (numba ignores OMP_NUM_THREADS)."""
    if not threads:
        return
    import numba

    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))


def compress_file(src: str, dst: str, k: int, options: dict[str, Any], threads: int | None = None) -> FileResult:
    """Compress one file and describe the outcome; never raises for a bad file.

    The task a batch sends to its executor: arguments are a path, a path, an int and a dict of
    plain options, and the result is a :class:`FileResult`. A :class:`KmpressError` becomes an
    ``error`` result with its message; any other exception (a bug) too, with the traceback in
    ``detail``. ``threads`` sets numba's thread count first; None leaves it, except on a Dask
    worker, where the task takes its share of the worker's threads
    (:func:`kmpress.dask_batch.worker_threads`), so that a plain ``client.get_executor()`` works.
    """
    global _IN_TASK
    t0 = time.perf_counter()
    _IN_TASK = True
    try:
        if threads is None and "distributed" in sys.modules:  # no Dask imported: not on a worker
            from .dask_batch import worker_threads

            threads = worker_threads()
        _set_threads(threads)
        from .api import compress

        rep = compress(src, dst, k, **options)
        return FileResult(src, dst, "ok", None, rep, time.perf_counter() - t0)
    except KmpressError as e:
        return FileResult(src, dst, "error", e.message, None, time.perf_counter() - t0, error_type=type(e).__name__)
    except MemoryError:
        return FileResult(src, dst, "error", "out of memory", None, time.perf_counter() - t0)
    except _Terminated:  # pragma: no cover - worker told to stop; write_png has cleaned up
        os._exit(128 + signal.SIGTERM)
    except Exception as e:
        # Ctrl-C (or SIGTERM) landing inside a compiled numba function comes out as a SystemError
        # ("returned a result with an exception set") caused by the KeyboardInterrupt: it is the
        # interrupt, not a failure of this file
        behind = _interrupt_behind(e)
        if isinstance(behind, _Terminated):  # pragma: no cover - worker told to stop
            os._exit(128 + signal.SIGTERM)
        if behind is not None:
            raise KeyboardInterrupt() from None
        msg = f"internal error: {type(e).__name__}: {e}"
        return FileResult(src, dst, "error", msg, None, time.perf_counter() - t0, traceback.format_exc())
    finally:
        _IN_TASK = False


def _interrupt_behind(e: BaseException) -> BaseException | None:
    """The KeyboardInterrupt or _Terminated an exception was raised from, if any."""
    seen = 0
    cur: BaseException | None = e
    while cur is not None and seen < 10:
        if isinstance(cur, (KeyboardInterrupt, _Terminated)):
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


def _options(seed, max_iter, tol, init, backend, max_pixels, compress_level, quality=None) -> dict[str, Any]:
    """Validate the per-file options once, before any work, so a bad one is one error, not N.

    ``quality`` : dict of the optional :func:`kmpress.compress` options (``target_psnr``,
    ``max_colors``, ``strict``, ``colorspace``, ``dither``); only those set (not None) are
    passed on, so that the defaults stay the engine's.
    """
    from .api import MAX_K, _check_int, _check_tol

    opts: dict[str, Any] = {
        "seed": _check_int("seed", seed, 0),
        "max_iter": _check_int("max_iter", max_iter, 0),
        "tol": _check_tol(tol),
        "compress_level": _check_int("compress_level", compress_level, 0, 9),
        "max_pixels": None if max_pixels is None else _check_int("max_pixels", max_pixels, 1),
    }
    if init not in ("k-means++", "random"):
        raise InvalidParameterError(f"init must be 'k-means++' or 'random', not {init!r}")
    if backend not in ("numba", "numpy"):
        raise InvalidParameterError(f"backend must be 'numba' or 'numpy', not {backend!r}")
    opts["init"], opts["backend"] = init, backend
    extra = {key: v for key, v in (quality or {}).items() if v is not None}
    if "target_psnr" in extra:
        from .quality import check_target

        extra["target_psnr"] = check_target(extra["target_psnr"])
    elif "max_colors" in extra or extra.get("strict"):
        raise InvalidParameterError("max_colors and strict need a quality target (target_psnr / --quality)")
    if "max_colors" in extra:
        extra["max_colors"] = _check_int("max_colors", extra["max_colors"], 1, MAX_K)
    if "strict" in extra:
        extra["strict"] = bool(extra["strict"])
    if "colorspace" in extra:
        from .api import _check_choice
        from .colorspace import COLORSPACES

        extra["colorspace"] = _check_choice("colorspace", extra["colorspace"], COLORSPACES)
    if "dither" in extra:
        from .api import _check_choice
        from .kernels_numba.remap import DITHERS

        # "none" (text, e.g. from the CLI) means no dithering, as None does
        d = None if extra["dither"] in ("none", False) else extra["dither"]
        extra["dither"] = _check_choice("dither", d, (None, *DITHERS))
    if "n_init" in extra:
        extra["n_init"] = _check_int("n_init", extra["n_init"], 1, 32)
    if "smooth" in extra:
        from .api import _check_smooth

        extra["smooth"] = _check_smooth(extra["smooth"])
        if extra["smooth"] > 0 and extra.get("dither") is not None:
            raise InvalidParameterError("smooth and dither cannot be combined: choose one")
    opts.update(extra)
    return opts


def _crashed(item: PlannedFile) -> FileResult:
    return FileResult(
        str(item.src), str(item.dst), "error", "the worker process died while compressing this file (out of memory?)"
    )


def compress_many(
    paths: Iterable[str | os.PathLike] | BatchPlan,
    out_dir: str | os.PathLike | None = None,
    k: int = 16,
    *,
    suffix: str | None = None,
    recursive: bool = False,
    force: bool = False,
    executor: Executor | None = None,
    jobs: int | None = None,
    threads: int | None = None,
    seed: int = 0,
    max_iter: int | None = None,
    tol: float | None = None,
    init: str = "k-means++",
    backend: str = "numba",
    max_pixels: int | None | Literal["default"] = "default",
    compress_level: int = 6,
    on_start: Callable[[str], None] | None = None,
    target_psnr: float | None = None,
    max_colors: int | None = None,
    strict: bool | None = None,
    colorspace: str | None = None,
    dither: str | None = None,
    n_init: int | None = None,
    smooth: float | None = None,
) -> Iterator[FileResult]:
    """Compress many files; yield one :class:`FileResult` per input as each finishes.

    Parameters
    ----------
    paths : files and folders, as for :func:`plan_batch`, or a ready :class:`BatchPlan` (then
        ``out_dir``, ``k``, ``suffix``, ``recursive`` and ``force`` are taken from the plan's making)
    out_dir, k, suffix, recursive, force : as for :func:`plan_batch`
    executor : concurrent.futures.Executor, optional
        Where the files are compressed; e.g. ``dask.distributed.Client(...).get_executor()``. It
        receives :func:`compress_file` with paths and plain options only. Default: run in this
        process when there is one file or ``jobs == 1``, else a local process pool (spawn start
        method: numba's OpenMP layer aborts in forked children) that is shut down at the end.
    jobs : int >= 1, optional
        Files in flight at once. Default :func:`default_jobs` with the local pool; unlimited with
        a given executor (it schedules).
    threads : int >= 1, optional
        numba threads per file. Default: the usable cores divided by ``jobs`` for the local pool,
        all cores in-process, and unchanged on a given executor.
    seed, max_iter, tol, init, backend, max_pixels, compress_level : as for :func:`kmpress.compress`
        (``max_pixels="default"`` is Pillow's limit, None is no limit).
    on_start : callable(src), optional
        Called when a file is handed to a worker (for progress displays).
    target_psnr, max_colors, strict : a quality target instead of K (see :func:`kmpress.compress`);
        with ``target_psnr`` pass ``k=None`` (or a plan made with it). A file that misses the
        target under ``strict`` is an ``error`` whose ``error_type`` is ``"TargetNotReachedError"``.
    colorspace, dither, n_init, smooth : as for :func:`kmpress.compress`; None keeps the engine's default

    Yields
    ------
    FileResult
        Skips and planning errors first, then each compressed file as it finishes. An error in one
        file never stops the others. A worker process that dies (crash, out of memory) fails only
        the files it held: those are retried once in a fresh pool, then one by one, and a file that
        kills a worker on its own is reported as an error.

    Raises
    ------
    InvalidParameterError, OutputCollisionError
        Before any work, for a bad option or colliding outputs.
    KeyboardInterrupt
        Propagated after the local pool's workers are stopped; no partial output is left behind.
    """
    from .api import DEFAULT_MAX_ITER, DEFAULT_TOL
    from .io import DEFAULT_MAX_PIXELS

    if isinstance(paths, BatchPlan):
        plan = paths
        if target_psnr is None:
            target_psnr = plan.target_psnr
    else:
        if target_psnr is not None and k == 16:
            k = None  # the default K gives way to the quality target
        plan = plan_batch(paths, k, out_dir=out_dir, suffix=suffix, recursive=recursive, force=force, target_psnr=target_psnr)
    opts = _options(
        seed,
        DEFAULT_MAX_ITER if max_iter is None else max_iter,
        DEFAULT_TOL if tol is None else tol,
        init,
        backend,
        DEFAULT_MAX_PIXELS if max_pixels == "default" else max_pixels,
        compress_level,
        {"target_psnr": target_psnr, "max_colors": max_colors, "strict": strict or None, "colorspace": colorspace, "dither": dither, "n_init": n_init, "smooth": smooth},
    )
    if jobs is not None:
        from .api import _check_int

        jobs = _check_int("jobs", jobs, 1)
    if threads is not None:
        from .api import _check_int

        threads = _check_int("threads", threads, 1)

    for it in plan.items:
        if it.action == "skip":
            yield FileResult(str(it.src), str(it.dst), "skipped", it.reason)
        elif it.action == "error":
            yield FileResult(str(it.src), None if it.dst is None else str(it.dst), "error", it.reason)

    todo = plan.to_compress
    if not todo:
        return
    folders = {it.dst.parent for it in todo}
    for d in sorted(folders):
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ImageWriteError(f"cannot create output folder: {e.strerror or e}", str(d)) from None

    if executor is not None:
        yield from _run_on(executor, todo, plan.k, opts, jobs, threads, on_start)
        return
    n_jobs = jobs if jobs is not None else default_jobs(len(todo))
    if n_jobs == 1 or len(todo) == 1:
        # one at a time: in this process, no start-up cost, all cores on each file
        for it in todo:
            if on_start:
                on_start(str(it.src))
            yield compress_file(str(it.src), str(it.dst), plan.k, opts, threads or usable_cores())
        return
    n_jobs = min(n_jobs, len(todo))
    per_job = threads if threads is not None else max(1, usable_cores() // n_jobs)
    yield from _run_local_pool(todo, plan.k, opts, n_jobs, per_job, on_start)


def _submit_window(executor, queue, inflight, limit, k, opts, threads, on_start, task=compress_file):
    while queue and (limit is None or len(inflight) < limit):
        it = queue.pop(0)
        fut = executor.submit(task, str(it.src), str(it.dst), k, opts, threads)
        inflight[fut] = it
        if on_start:
            on_start(str(it.src))


def _run_on(executor, todo, k, opts, jobs, threads, on_start) -> Iterator[FileResult]:
    """Run on a caller's executor; a failed future (e.g. a killed worker) is that file's error."""
    queue = list(todo)
    inflight: dict[Future, PlannedFile] = {}
    try:
        _submit_window(executor, queue, inflight, jobs, k, opts, threads, on_start)
        while inflight:
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for fut in done:
                it = inflight.pop(fut)
                try:
                    yield fut.result()
                except Exception as e:
                    yield FileResult(str(it.src), str(it.dst), "error", f"worker failed: {type(e).__name__}: {e}")
            _submit_window(executor, queue, inflight, jobs, k, opts, threads, on_start)
    finally:
        for fut in inflight:
            fut.cancel()


def _new_pool(n_jobs: int, threads: int):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        max_workers=n_jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(threads,),
    )


def _run_local_pool(todo, k, opts, n_jobs, threads, on_start, task=compress_file) -> Iterator[FileResult]:
    """Our own spawn pool with crash recovery and clean interruption.

    A dead worker breaks the whole pool and fails every file in flight, innocent or not. Those
    files get a second round in a fresh pool of the same width; files failed again then run one
    at a time in a pool of one, so a crash there names its file. ``task`` is replaceable for tests.
    """
    crashed: list[PlannedFile] = []
    yield from _pool_round(todo, k, opts, n_jobs, threads, on_start, crashed, task)
    if crashed:
        again: list[PlannedFile] = []
        yield from _pool_round(crashed, k, opts, n_jobs, threads, on_start, again, task)
        for it in again:
            alone: list[PlannedFile] = []
            yield from _pool_round([it], k, opts, 1, usable_cores(), on_start, alone, task)
            for bad in alone:
                yield _crashed(bad)


def _pool_round(files, k, opts, n_jobs, threads, on_start, crashed: list, task=compress_file) -> Iterator[FileResult]:
    """One pool, at most ``n_jobs`` files in flight (so an interrupt has little to cancel and
    ``on_start`` means started); appends to ``crashed`` the files a dead worker took down."""
    pool = _new_pool(n_jobs, threads)
    queue = list(files)
    inflight: dict[Future, PlannedFile] = {}
    finished = False
    try:
        _submit_window(pool, queue, inflight, n_jobs, k, opts, None, on_start, task)
        while inflight:
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            ready: list[FileResult] = []
            for fut in done:
                it = inflight.pop(fut)
                try:
                    ready.append(fut.result())
                except BrokenProcessPool:
                    crashed.append(it)
                except Exception as e:  # e.g. a result that could not be sent back
                    ready.append(FileResult(str(it.src), str(it.dst), "error", f"worker failed: {type(e).__name__}: {e}"))
            # refill before handing results out: the consumer may take its time printing
            try:
                _submit_window(pool, queue, inflight, n_jobs, k, opts, None, on_start, task)
            except (BrokenProcessPool, RuntimeError):
                crashed.extend(queue)
                queue.clear()
            yield from ready
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            # interrupted (KeyboardInterrupt) or abandoned by the consumer: stop the workers
            # now and remove whatever temporary file a killed one may have left
            _stop_pool(pool, [it.dst for it in inflight.values()])


def _stop_pool(pool, dsts: list[Path], grace: float = 5.0) -> None:
    from .io import stale_temp_files

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
        for tmp in stale_temp_files(dst, pids=list(procs)):
            try:
                tmp.unlink()
            except OSError:
                pass
    try:
        pool.shutdown(wait=False, cancel_futures=True)
    except Exception:  # pragma: no cover - a broken pool may complain; nothing is left to do
        pass


# --------------------------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------------------------


def summarize(results: Iterable[FileResult], wall_seconds: float | None = None) -> dict[str, Any]:
    """Totals of a batch: counts per status, pixels, bytes in/out and their ratio, seconds."""
    res = list(results)
    ok = [r for r in res if r.status == "ok"]
    in_b = sum(r.report.input_bytes for r in ok)
    out_b = sum(r.report.output_bytes for r in ok)
    raw = sum(r.report.bits.raw for r in ok)
    idx = sum(r.report.bits.total for r in ok)
    return {
        "files": len(res),
        "ok": len(ok),
        "skipped": sum(1 for r in res if r.status == "skipped"),
        "errors": sum(1 for r in res if r.status == "error"),
        "pixels": sum(r.report.pixels for r in ok),
        "input_bytes": in_b,
        "output_bytes": out_b,
        "file_ratio": out_b / in_b if in_b else None,
        "bits_ratio": idx / raw if raw else None,
        "cpu_seconds": sum(r.seconds for r in res),
        "wall_seconds": wall_seconds,
    }


# --------------------------------------------------------------------------------------------
# single files: info and the demo's comparison sheet
# --------------------------------------------------------------------------------------------


def _png_header(path: Path) -> dict[str, Any] | None:
    """IHDR fields and palette length of a PNG, read from the chunks (None if not a PNG)."""
    import struct

    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        out: dict[str, Any] = {}
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            length, ctype = struct.unpack(">I4s", head)
            if ctype == b"IHDR":
                w, h, depth, colour_type = struct.unpack(">IIBB", f.read(10))
                out.update(width=w, height=h, bit_depth=depth, color_type=colour_type)
                f.seek(length - 10 + 4, 1)
            elif ctype == b"PLTE":
                out["palette_size"] = length // 3
                f.seek(length + 4, 1)
            elif ctype in (b"IDAT", b"IEND"):
                break
            else:
                f.seek(length + 4, 1)
        return out if "bit_depth" in out else None


def describe_image(path: str | os.PathLike, against: str | os.PathLike | None = None, *, max_pixels: int | None = None) -> dict[str, Any]:
    """Facts about an image file, and its PSNR against an original.

    Returns
    -------
    dict
        path, format, width, height, mode, bytes, bit_depth (bits per sample; PNG: from IHDR),
        palette_size (entries stored, None without a palette), colors_used (distinct colours, None
        when over 256 or not computed), icc_profile (bool), and with ``against``: against, psnr
        (dB, None when identical), mse.

    Raises
    ------
    ImageReadError
        A file is missing, not an image or corrupt; or the two images differ in size.
    """
    from PIL import Image

    from .io import reading

    p = Path(path)
    with reading(p):
        size = p.stat().st_size
        with Image.open(p) as im:
            info: dict[str, Any] = {
                "path": str(p),
                "format": im.format,
                "width": im.width,
                "height": im.height,
                "mode": im.mode,
                "bytes": size,
                "icc_profile": bool(im.info.get("icc_profile")),
            }
            pal = im.getpalette() if im.mode in ("P", "PA") else None
            info["palette_size"] = len(pal) // 3 if pal is not None else None
            colours = im.getcolors(maxcolors=256) if im.width * im.height <= (max_pixels or 1 << 62) else None
            info["colors_used"] = len(colours) if colours is not None else None
            bits = {"1": 1, "I;16": 16, "I;16B": 16, "I": 32, "F": 32}.get(im.mode, 8)
    hdr = _png_header(p) if info["format"] == "PNG" else None
    if hdr is not None:
        bits = hdr["bit_depth"]
        if "palette_size" in hdr:
            info["palette_size"] = hdr["palette_size"]
    info["bit_depth"] = bits
    if against is not None:
        info.update(compare_images(p, against))
    return info


def compare_images(image: str | os.PathLike, original: str | os.PathLike) -> dict[str, Any]:
    """PSNR and MSE of ``image`` against ``original`` (both decoded to 8-bit RGB or RGBA).

    If only one has transparency, the colour channels alone are compared.
    """
    import numpy as np

    from .io import read_image
    from .metrics import psnr_from_mse

    a = read_image(image, max_pixels=None)
    b = read_image(original, max_pixels=None)
    if a.shape[:2] != b.shape[:2]:
        raise ImageReadError(
            f"sizes differ: {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]} ({original})", str(image)
        )
    if a.shape[2] != b.shape[2]:
        a, b = a[:, :, :3], b[:, :, :3]
    d = a.astype(np.int32) - b.astype(np.int32)
    mse = float(np.einsum("ijk,ijk->", d, d, dtype=np.int64)) / d.size
    p = psnr_from_mse(mse)
    return {"against": str(original), "mse": mse, "psnr": None if math.isinf(p) else p}


def comparison_sheet(panels: list[tuple[str | os.PathLike, str]], dst: str | os.PathLike, *, height: int = 384) -> Path:
    """Write a side-by-side picture of several images, each labelled underneath.

    Parameters
    ----------
    panels : list of (image path, label)
    dst : PNG to write (atomically: temporary file, then rename)
    height : pixel height every panel is scaled to

    Returns
    -------
    Path of the written file.
    """
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=20)  # scalable when Pillow has FreeType
    except (TypeError, OSError, ImportError):  # pragma: no cover - old Pillow or no FreeType
        font = ImageFont.load_default()
    gap, label_h = 8, 30
    tiles = []
    for path, label in panels:
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                w = max(1, round(im.width * height / im.height))
                tiles.append((im.resize((w, height), Image.Resampling.LANCZOS), label))
        except (OSError, ValueError) as e:
            raise ImageReadError(f"cannot read: {e}", str(path)) from None
    width = sum(t.width for t, _ in tiles) + gap * (len(tiles) + 1)
    sheet = Image.new("RGB", (width, height + label_h + 2 * gap), "white")
    draw = ImageDraw.Draw(sheet)
    x = gap
    for tile, label in tiles:
        sheet.paste(tile, (x, gap))
        draw.text((x + 2, height + gap + 4), label, fill="black", font=font)
        x += tile.width + gap
    from .io import atomic_write

    return atomic_write(dst, lambda tmp: sheet.save(tmp, format="PNG"))


#: The colour counts ``kmpress demo`` shows.
DEMO_KS = (4, 16, 64)


def run_demo(
    out_dir: str | os.PathLike,
    ks: Iterable[int] = DEMO_KS,
    *,
    seed: int = 0,
    on_start: Callable[[str], None] | None = None,
    colorspace: str | None = None,
    dither: str | None = None,
) -> tuple[list[FileResult], Path | None]:
    """Compress the bundled sample at each K into ``out_dir`` and write ``comparison.png``.

    Outputs are ``<sample stem>-k<K>.png`` (replaced if present: the folder is the demo's own)
    and ``comparison.png`` beside them: the original and each result side by side, labelled with
    K and the PSNR.

    colorspace, dither : as for :func:`compress_many` (None: the engine's defaults)

    Returns
    -------
    (results, comparison path or None when a K failed)
    """
    from .sample import sample_path

    src = sample_path()
    out = Path(out_dir)
    results: list[FileResult] = []
    for k in ks:
        # one small file per K: compress_many runs it in this process, no pool start-up
        results.extend(
            compress_many([src], out, k, force=True, seed=seed, on_start=on_start, colorspace=colorspace, dither=dither)
        )
    if any(r.status != "ok" for r in results):
        return results, None
    panels: list[tuple[str | os.PathLike, str]] = [(src, "original")]
    for r in results:
        p = r.report.psnr
        quality = "lossless" if math.isinf(p) else f"PSNR {p:.1f} dB"
        panels.append((r.dst, f"K={r.report.k}  {quality}"))
    return results, comparison_sheet(panels, out / "comparison.png")
