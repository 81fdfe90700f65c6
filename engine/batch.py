"""Many files at once: planning the outputs, then running :func:`kmpress.compress` on each.

Two steps, so that every naming problem is known before any work starts:

1. :func:`plan_batch` expands folders, names each output (mirroring sub-folders under an output
   folder), and decides what to do with each input (compress it, skip it because its output
   exists, or report it as an error: unusable path, output shared with another input, output
   that would overwrite an input). A bad input never stops the others.
2. :func:`compress_many` runs the plan and yields one :class:`FileResult` per input as each
   finishes, in this process, on a local process pool or on any
   :class:`concurrent.futures.Executor` (:func:`run_plan`; see :mod:`kmpress.runs` and
   :mod:`kmpress.pool`).

Nothing in this module prints.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Unpack

from .errors import ImageWriteError, InvalidParameterError, OutputCollisionError
from .formats import readable_extensions
from .limits import usable_cores
from .options import JobFields, Options, make_options
from .pool import default_jobs, run_pool
from .results import FileResult
from .runs import BatchRun, run_here, run_on
from .spawn import refuse_in_starting_worker
from .workers import StageListener, StartListener

#: Default output suffix; ``{k}`` is replaced by the number of colours.
DEFAULT_SUFFIX = "-k{k}"
#: Default output suffix with a perceptual target; ``{q}`` is replaced by the target (``70``,
#: ``60-80``).
DEFAULT_QUALITY_SUFFIX = "-q{q}"
#: Default output suffix with a PSNR target; ``{q}`` is replaced by the target in dB.
DEFAULT_PSNR_SUFFIX = "-psnr{q}"


# --------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------


_EXTENSIONS: frozenset[str] | None = None


def image_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) of every format that can be opened here
    (:func:`kmpress.formats.readable_extensions`: AVIF with a Pillow that reads it, HEIC/HEIF
    with ``kmpress[heif]``)."""
    global _EXTENSIONS
    if _EXTENSIONS is None:
        _EXTENSIONS = readable_extensions()
    return _EXTENSIONS


def quality_label(target: float | str) -> str:
    """The target as it appears in file names: ``40``, ``37.5``, ``60-80`` (text as it is)."""
    return target if isinstance(target, str) else f"{float(target):g}"


def output_name(
    src: str | os.PathLike,
    k: int | None,
    suffix: str | None = None,
    target: float | str | None = None,
    ext: str = ".png",
    *,
    psnr: bool = False,
) -> str:
    """File name of the output written for ``src``: ``<stem><suffix><ext>``, suffix ``-k<K>`` by
    default, ``-q<target>`` with a perceptual target and ``-psnr<target>`` with a PSNR one
    (``psnr=True``; ``k`` None: K is chosen per file), ``ext`` the output format's (``.png``,
    ``.webp``).

    ``{k}`` in ``suffix`` is replaced by ``k``, ``{q}`` by the quality target
    (:attr:`kmpress.options.Options.quality_tag`).
    """
    if suffix is None:
        sfx = DEFAULT_SUFFIX if target is None else DEFAULT_PSNR_SUFFIX if psnr else DEFAULT_QUALITY_SUFFIX
    else:
        sfx = suffix
    if not isinstance(sfx, str):
        raise InvalidParameterError(f"suffix must be text, not {type(suffix).__name__}")
    if "/" in sfx or os.sep in sfx or "\0" in sfx:
        raise InvalidParameterError(f"suffix must not contain a path separator: {suffix!r}")
    if "{k}" in sfx and k is None:
        raise InvalidParameterError("suffix cannot use {k} with a quality target (K is chosen per file); use {q}")
    if "{q}" in sfx and target is None:
        raise InvalidParameterError("suffix uses {q} but no quality target is given")
    if k is not None:
        sfx = sfx.replace("{k}", str(k))
    if target is not None:
        sfx = sfx.replace("{q}", quality_label(target))
    return f"{Path(src).stem}{sfx}{ext}"


@dataclass(frozen=True)
class PlannedFile:
    """One input of a batch and what will happen to it.

    Attributes
    ----------
    src : Path; the input as given or found (not resolved)
    dst : Path or None; the output it maps to (None when the input itself is unusable)
    action : "compress", "skip" (output exists) or "error" (e.g. missing input)
    reason : str or None; why it is skipped or an error
    error_type : str or None; the KmpressError class an ``error`` stands for, when one does
        (``"OutputCollisionError"``)
    """

    src: Path
    dst: Path | None
    action: Literal["compress", "skip", "error"]
    reason: str | None = None
    error_type: str | None = None


@dataclass
class BatchPlan:
    """The outcome of :func:`plan_batch`.

    Attributes
    ----------
    items : list of PlannedFile, in input order (folders expanded in sorted order)
    options : Options; the job every file gets (its K, or its quality target, named the outputs)
    """

    items: list[PlannedFile]
    options: Options

    @property
    def k(self) -> int | None:
        """Colours asked for (None with a quality target)."""
        return self.options.k

    @property
    def target_psnr(self) -> float | None:
        """The PSNR target (dB) instead of K, or None."""
        return self.options.target_psnr

    @property
    def target_quality(self) -> float | None:
        """The perceptual target (SSIMULACRA 2) instead of K, or None."""
        return self.options.target_quality

    @property
    def to_compress(self) -> list[PlannedFile]:
        return [it for it in self.items if it.action == "compress"]

    @property
    def n_found(self) -> int:
        """Inputs that exist (everything but missing paths)."""
        return sum(1 for it in self.items if it.dst is not None)


def _key(p: Path) -> str:
    """Identity of a path for duplicate and collision checks (links resolved, case kept).
    ``os.path.realpath``, not ``Path.resolve``: it never raises on a symbolic-link loop."""
    return os.path.normcase(os.path.realpath(p))


def _unusable(p: Path) -> str | None:
    """Why a path cannot be read at all (missing, a broken link, a link loop...), or None."""
    try:
        os.stat(p)
    except FileNotFoundError:
        return "broken symbolic link (its target does not exist)" if os.path.islink(p) else "no such file or folder"
    except PermissionError:
        return "permission denied"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop (too many levels of symbolic links)"
        return f"cannot access: {e.strerror or e}"
    except ValueError as e:  # e.g. a NUL byte in the name
        return f"invalid path: {e}"
    return None


#: One input found: (path, reason it is unusable or None, its folder relative to the folder
#: given, which the output mirrors under ``out_dir``).
_Found = tuple[Path, "str | None", Path]


def _expand_folder(folder: Path, recursive: bool, skip_dirs: set[str], exts: frozenset[str]) -> list[_Found]:
    found: list[_Found] = []

    def unlisted(e: OSError) -> None:  # a sub-folder that cannot be listed is a failed input
        found.append((Path(e.filename or folder), f"cannot list folder: {e.strerror or e}", Path(".")))

    walker = os.walk(folder, onerror=unlisted) if recursive else [(str(folder), [], None)]
    for root, dirs, _files in walker:
        if recursive:
            # never descend into the output folder: its PNGs are outputs, not inputs
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and _key(Path(root, d)) not in skip_dirs)
        try:
            names = sorted(os.listdir(root))
        except OSError as e:
            if not recursive:
                found.append((Path(root), f"cannot list folder: {e.strerror or e}", Path(".")))
            continue
        rel = Path(os.path.relpath(root, folder))
        for name in names:
            p = Path(root, name)
            if name.startswith(".") or p.suffix.lower() not in exts:
                continue
            reason = _unusable(p)
            if reason is not None:  # a broken link or a link loop named like an image
                found.append((p, reason, rel))
            elif p.is_file():
                found.append((p, None, rel))
    return found


def plan_batch(
    paths: Iterable[str | os.PathLike],
    options: Options | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    suffix: str | None = None,
    recursive: bool = False,
    force: bool = False,
) -> BatchPlan:
    """Decide the output of every input; nothing is written.

    Parameters
    ----------
    paths : files and/or folders. A file is taken whatever its extension (Pillow decides whether it
        is an image); a folder contributes the files with an extension Pillow reads (sub-folders too
        with ``recursive``), skipping hidden files, the output folder, and the outputs of the
        folder's own images (``a-k16.png`` beside ``a.jpg``). An input named twice counts once.
    options : Options; its ``k`` (or ``target_psnr``) goes into the default output name
    out_dir : folder for the outputs (created by :func:`compress_many` if missing); default
        beside each input. The files found in a folder's sub-folders go to the same sub-folders
        under it (``DCIM/100CANON/IMG_1.JPG`` -> ``<out_dir>/100CANON/IMG_1-k16.png`` for the
        folder ``DCIM``), so that repeated names in different folders do not collide. With
        several folders, each one's outputs go under a sub-folder of its own name, as ``cp -r``
        puts them (``2023-summer`` and ``2023-autumn`` -> ``<out_dir>/2023-summer/...`` and
        ``<out_dir>/2023-autumn/...``); folders of the same name are told apart by as many of
        their parent folders as it takes (``a/photos`` and ``b/photos`` -> ``<out_dir>/a/photos``
        and ``<out_dir>/b/photos``; see :func:`folder_labels`). Files given themselves go to
        ``out_dir`` itself.
    suffix : text added to the stem, ``{k}`` replaced by K; default ``-k{k}``
    force : overwrite existing outputs instead of skipping them

    Returns
    -------
    BatchPlan
        An unusable path (missing, a broken symbolic link, a link loop) is an ``error`` item; an
        output that exists is a ``skip`` item unless ``force``; an output that is one of the inputs
        (or any file the batch reads) is an ``error`` item: no input is ever overwritten. Inputs
        that would write the same output (``a.jpg`` beside ``a.png``) are each an ``error`` item
        naming the others; the rest of the batch is unaffected.

    Raises
    ------
    InvalidParameterError
        ``suffix`` is invalid.
    ImageWriteError
        ``out_dir`` is a file.
    """
    opts = make_options(options)
    k, tag, ext = opts.k, opts.quality_tag, opts.extension
    psnr = opts.target_psnr is not None
    output_name("x", k, suffix, tag, psnr=psnr)  # validates the suffix once
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and out.exists() and not out.is_dir():
        raise ImageWriteError("output folder is a file", str(out))
    skip_dirs = {_key(out)} if out is not None else set()
    idents: dict[Path, str] = {}

    def ident(p: Path) -> str:  # each path's _key resolved once (a realpath is a stat per part)
        i = idents.get(p)
        if i is None:
            i = idents[p] = _key(p)
        return i

    # 1. expand: (src, error reason or None, its folder under out_dir), duplicates dropped
    given = [(p, _unusable(p)) for p in map(Path, paths)]
    folders = {ident(p): p for p, reason in reversed(given) if reason is None and p.is_dir()}  # first spelling
    labels: dict[str, Path] = {}
    if out is not None and len(folders) > 1:
        labels = {ident(f): label for f, label in folder_labels(list(folders.values())).items()}
    inputs: list[_Found] = []
    seen: set[str] = set()
    for p, reason in given:
        if reason is None and p.is_dir():
            found = _expand_folder(p, recursive, skip_dirs, image_extensions())
            if labels:
                found = [(f, err, labels[ident(p)] / rel) for f, err, rel in found]
            # a folder re-run must not compress its own outputs: drop "<stem><suffix>.<ext>" files
            # whose source "<stem>.*" is in the same folder
            ok = [f for f, err, _ in found if err is None]
            outputs_here = {ident(f.with_name(output_name(f, k, suffix, tag, ext, psnr=psnr))) for f in ok}
            if suffix is None:  # also outputs of earlier runs at another K, quality target or format
                pattern = re.compile(
                    r"^(.*)-(?:k\d{1,3}|q\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?|psnr\d+(?:\.\d+)?)\.(?:png|webp)$",
                    re.IGNORECASE,
                )
                stems = {(ident(f.parent), f.stem) for f in ok}
                outputs_here |= {
                    ident(f) for f in ok if (m := pattern.match(f.name)) and (ident(f.parent), m.group(1)) in stems
                }
            items = [it for it in found if it[1] is not None or ident(it[0]) not in outputs_here]
        else:
            items = [(p, reason, Path("."))]
        for f, err, rel in items:
            key = ident(f)
            if key in seen:
                continue
            seen.add(key)
            inputs.append((f, err, rel))

    # 2. name the outputs; inputs sharing one output fail, each naming the others
    input_keys = {ident(f) for f, err, _ in inputs if err is None}
    named = [
        (
            src,
            err,
            None
            if err
            else (out / rel if out is not None else src.parent) / output_name(src, k, suffix, tag, ext, psnr=psnr),
        )
        for src, err, rel in inputs
    ]
    writers: dict[str, list[Path]] = {}
    for src, _err, dst in named:
        if dst is not None:
            writers.setdefault(ident(dst), []).append(src)
    planned: list[PlannedFile] = []
    for src, err, dst in named:
        if dst is None:
            planned.append(PlannedFile(src, None, "error", err))
            continue
        dkey = ident(dst)
        others = [o for o in writers[dkey] if o is not src]
        if others:
            planned.append(PlannedFile(src, dst, "error", _collision(others, dst), OutputCollisionError.__name__))
        elif dkey in input_keys or _same_existing(src, dst):
            planned.append(
                PlannedFile(src, dst, "error", f"output {dst} would overwrite an input; use --suffix or --out-dir")
            )
        elif dst.is_dir():
            planned.append(PlannedFile(src, dst, "error", f"output {dst} is a folder"))
        elif dst.exists() and not force:
            planned.append(PlannedFile(src, dst, "skip", f"output {dst} exists (--force to overwrite)"))
        else:
            planned.append(PlannedFile(src, dst, "compress"))
    return BatchPlan(planned, opts)


def folder_labels(folders: list[Path]) -> dict[Path, Path]:
    """The sub-folder of the output folder that each of several folder arguments' outputs go to:
    its name (``photos/2023-summer`` -> ``2023-summer``), or, for folders of the same name, as
    many of its parent folders as tell it apart from the others (``a/photos`` -> ``a/photos``,
    ``b/photos`` -> ``b/photos``; then from the absolute path, ``photos`` in ``/w`` ->
    ``w/photos``). Links are not resolved: the name is the one given. Distinct folders always get
    distinct labels; the file system root gets ``.`` (the output folder itself).

    Parameters
    ----------
    folders : list of Path; distinct folders

    Returns
    -------
    dict
        Each folder of ``folders`` -> its label, a relative Path.
    """
    parts = {f: Path(os.path.abspath(f)).parts[1:] for f in folders}
    depth = {f: 1 for f in folders}
    while True:
        label = {f: Path(*parts[f][len(parts[f]) - min(depth[f], len(parts[f])) :]) for f in folders}
        by_label: dict[Path, list[Path]] = {}
        for f, lab in label.items():
            by_label.setdefault(lab, []).append(f)
        # distinct absolute paths differ in their last parts: lengthening the tied ones ends
        grow = [f for tied in by_label.values() if len(tied) > 1 for f in tied if depth[f] < len(parts[f])]
        if not grow:
            return label
        for f in grow:
            depth[f] += 1


def _collision(others: list[Path], dst: Path) -> str:
    named = ", ".join(map(str, others[:2])) + (f" and {len(others) - 2} more" if len(others) > 2 else "")
    which = "neither is written" if len(others) == 1 else "none of them is written"
    return f"{named} would write the same output {dst}: {which} (rename one, or use --suffix)"


def _same_existing(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------


def as_plan(paths: Any, k: int | None, options: Options | None, kwargs: JobFields, **planning: Any) -> BatchPlan:
    """The :class:`BatchPlan` a batch call runs: ``paths`` itself when it is one (which carries
    its options: then none may be given), else planned with ``planning`` (``out_dir``,
    ``suffix``, ``recursive``, ``force``) under the options made of ``options``, ``k`` and
    ``kwargs``."""
    if isinstance(paths, BatchPlan):
        if k is not None or options is not None or kwargs:
            raise InvalidParameterError("a BatchPlan carries its options: give none with it")
        return paths
    opts = make_options(options, **({**kwargs, "k": k} if k is not None else kwargs))
    return plan_batch(paths, opts, **planning)


def compress_many(
    paths: Iterable[str | os.PathLike] | BatchPlan,
    out_dir: str | os.PathLike | None = None,
    k: int | None = None,
    *,
    options: Options | None = None,
    suffix: str | None = None,
    recursive: bool = False,
    force: bool = False,
    executor: Executor | None = None,
    jobs: int | None = None,
    threads: int | None = None,
    on_start: StartListener | None = None,
    on_stage: StageListener | None = None,
    **kwargs: Unpack[JobFields],
) -> Iterator[FileResult]:
    """Compress many files; yield one :class:`FileResult` per input as each finishes.

    Parameters
    ----------
    paths : files and folders, as for :func:`plan_batch`, or a ready :class:`BatchPlan` (then
        its options are the job's, and ``out_dir``, ``suffix``, ``recursive`` and ``force`` were
        taken when it was made)
    out_dir, suffix, recursive, force : as for :func:`plan_batch`
    k, options, **kwargs : the job, as for :func:`kmpress.compress` (``k`` default 16, or
        ``target_psnr=``; a file that misses the target under ``strict`` is an ``error`` whose
        ``error_type`` is ``"TargetNotReachedError"``)
    executor : concurrent.futures.Executor, optional
        Where the files are compressed; e.g. ``dask.distributed.Client(...).get_executor()``. It
        receives :func:`kmpress.workers.compress_file` with paths and the options only. Default: run
        in this process when there is one file or ``jobs == 1``, else a local process pool (spawn
        start method: numba's OpenMP layer aborts in forked children) that is shut down at the end.
    jobs : int >= 1, optional
        Files in flight at once. Default :func:`kmpress.pool.default_jobs` with the local pool;
        unlimited with a given executor (it schedules).
    threads : int >= 1, optional
        numba threads per file. Default: the usable cores divided by ``jobs`` for the local pool,
        all cores in-process, and unchanged on a given executor.
    on_start : callable(src), optional
        Called when a file is handed to a worker (for progress displays).
    on_stage : callable(src, stage), optional
        Called when a file being compressed begins a stage (``read``, ``histogram``, ...
        ``write``: see :func:`kmpress.compress`), for progress displays: in this process, or
        from a local pool's workers through a pipe (then from a background thread of this
        process, a moment late). Not on a given ``executor`` (its workers may be elsewhere).

    Yields
    ------
    FileResult
        Skips and planning errors first, then each compressed file as it finishes. An error in one
        file never stops the others. A worker process that dies (crash, out of memory) fails only
        the files it held: those are retried once in a fresh pool, then one by one, and a file that
        kills a worker on its own is reported as an error. When the local pool's workers cannot
        start at all (the usual cause: a script that calls this outside
        ``if __name__ == "__main__":``, which the spawn start method re-imports in each worker),
        the batch runs in this process instead, after a :class:`RuntimeWarning` naming the fix.

    Raises
    ------
    InvalidParameterError
        Before any work, for a bad option.
    UnguardedMainError
        When called in a worker process that is still starting (re-importing an unguarded main
        script): the batch would be started again in every worker.
    KeyboardInterrupt
        Propagated after the local pool's workers are stopped; no partial output is left behind.
    """
    refuse_in_starting_worker("compress_many")
    plan = as_plan(paths, k, options, kwargs, out_dir=out_dir, suffix=suffix, recursive=recursive, force=force)
    run = BatchRun(executor=executor, jobs=jobs, threads=threads, on_start=on_start, on_stage=on_stage)
    yield from run_plan(plan, run)


def run_plan(plan: BatchPlan, run: BatchRun) -> Generator[FileResult, None, None]:
    """Run a :class:`BatchPlan` as ``run`` says; yield one :class:`FileResult` per input as each
    finishes (see :func:`compress_many`, which is this on the plan of its arguments).

    Where the files run: on ``run.executor`` when given (``run.jobs`` files in flight, default
    all); else in this process when there is one file or ``run.jobs == 1`` (``run.threads``
    numba threads, default every usable core); else on a local pool
    (:func:`kmpress.pool.run_pool`) of ``run.jobs`` workers (default
    :func:`kmpress.pool.default_jobs`) with ``run.threads`` numba threads each (default the
    usable cores shared among them).
    """
    opts = plan.options
    for it in plan.items:
        if it.action == "skip":
            yield FileResult(str(it.src), str(it.dst), "skipped", it.reason)
        elif it.action == "error":
            yield FileResult(
                str(it.src), None if it.dst is None else str(it.dst), "error", it.reason, error_type=it.error_type
            )

    todo: list[PlannedFile] = []
    unwritable: dict[Path, str] = {}
    made: list[Path] = []  # output folders this run created, parents first
    for it in plan.to_compress:
        assert it.dst is not None  # a file to compress has its output
        d = it.dst.parent
        if d not in unwritable:
            try:
                made += [p for p in reversed([d, *d.parents]) if not p.exists()]
                d.mkdir(parents=True, exist_ok=True)
                unwritable[d] = ""
            except OSError as e:
                unwritable[d] = f"cannot create output folder {d}: {e.strerror or e}"
        if unwritable[d]:  # fails the files bound for that folder only
            yield FileResult(str(it.src), str(it.dst), "error", unwritable[d], error_type=ImageWriteError.__name__)
        else:
            todo.append(it)
    try:
        if not todo:
            return
        if run.executor is not None:
            yield from run_on(run.executor, todo, opts, run)
            return
        n_jobs = run.jobs if run.jobs is not None else default_jobs(len(todo))
        if n_jobs == 1 or len(todo) == 1:
            # one at a time: in this process, no start-up cost, all cores on each file
            yield from run_here(todo, opts, replace(run, threads=run.threads or usable_cores()))
            return
        n_jobs = min(n_jobs, len(todo))
        per_job = run.threads if run.threads is not None else max(1, usable_cores() // n_jobs)
        yield from run_pool(todo, opts, replace(run, jobs=n_jobs, threads=per_job))
    finally:
        _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders of ``folders`` (created by this run, parents first) that are empty at
    its end: an interrupted run, or one whose every file failed, leaves no empty output folder."""
    for d in reversed(folders):
        try:
            d.rmdir()  # only when empty
        except OSError:
            pass


def summarize(results: Iterable[FileResult], wall_seconds: float | None = None) -> dict[str, Any]:
    """Totals of a batch: counts per status, pixels, bytes in/out and their ratio, seconds
    (the figures over the written files whose report came back)."""
    res = list(results)
    ok = [r for r in res if r.status == "ok"]
    n_ok = len(ok)
    ok = [r for r in ok if r.report is not None]  # a Dask batch may lose a written file's figures
    in_b = sum(r.report.input_bytes for r in ok)
    out_b = sum(r.report.output_bytes for r in ok)
    raw = sum(r.report.bits.raw for r in ok)
    idx = sum(r.report.bits.total for r in ok)
    return {
        "files": len(res),
        "ok": n_ok,
        "skipped": sum(1 for r in res if r.status == "skipped"),
        "skipped_larger": sum(1 for r in res if r.skipped_larger),
        "errors": sum(1 for r in res if r.status == "error"),
        "pixels": sum(r.report.pixels for r in ok),
        "input_bytes": in_b,
        "output_bytes": out_b,
        "file_ratio": out_b / in_b if in_b else None,
        "bits_ratio": idx / raw if raw else None,
        "cpu_seconds": sum(r.seconds for r in res),
        "wall_seconds": wall_seconds,
    }
