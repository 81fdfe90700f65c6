"""Presentation for the kmpress CLI: tables, progress, number formats. No engine logic here.

The functions take the engine's result objects (or their dicts) and print; rich is imported
here, so importing this module is deferred until a command has output to show.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from kmpress.errors import SchedulerLostError

if TYPE_CHECKING:  # rich loads only when something is drawn (kmpress -q draws nothing)
    from rich.console import Console
    from rich.table import Table


def stdout_console() -> Console:
    from rich.console import Console

    # Piped output keeps a usable width instead of rich's 80-column default for non-terminals.
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
    return Console(file=sys.stdout, width=width, highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False)


def _terminal_console() -> Console:
    """A console on a duplicate of the stderr descriptor, for the progress bar: its refresh
    thread keeps drawing on the terminal while the engine holds descriptor 2 to gather what a
    decoder's C library prints (kmpress.notes.capture_native_messages)."""
    from rich.console import Console

    try:
        sys.stderr.flush()
        stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
    except (AttributeError, OSError, ValueError):  # no real descriptor (e.g. captured in tests)
        return stderr_console()
    return Console(file=stream, highlight=False, force_terminal=sys.stderr.isatty())


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def human_pixels(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.1f} MP" if n >= 100_000 else f"{n:,}"


def percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def db(x: float | None) -> str:
    return "lossless" if x is None else f"{x:.2f} dB"


COLUMNS = ("file", "pixels", "K", "input", "output", "out/in", "bits/raw", "PSNR", "iter", "seconds")


def summary_table(
    results: Iterable[Any], totals: dict[str, Any], title: str | None = None, by_output: bool = False
) -> Table:
    """The per-file table (compressed files, and files left unwritten by --skip-if-larger, marked
    "not written") with a totals row (of the written files).

    ``results`` are engine ``FileResult`` objects; ``totals`` is ``kmpress.batch.summarize``'s dict.
    "out/in" is output bytes / input bytes; "bits/raw" is the indexed size in bits (indices + palette)
    over the raw 24-bit (32 with alpha) size. ``by_output`` names rows by the output file. Rows
    are named as :func:`row_names` says.
    """
    from rich.table import Table

    t = Table(title=title, show_edge=False, header_style="bold")
    for i, name in enumerate(COLUMNS):
        t.add_column(name, justify="left" if i == 0 else "right", no_wrap=i != 0, overflow="fold")
    shown = [r for r in results if r.status == "ok" or r.skipped_larger]
    for r, name in zip(shown, row_names([r.dst if by_output else r.src for r in shown]), strict=True):
        rep = r.report
        if rep is None:  # written, but its figures were lost (a Dask scheduler gone mid-batch)
            t.add_row(f"{name} (figures lost)", *["-"] * (len(COLUMNS) - 1))
            continue
        d = rep.as_dict()
        t.add_row(
            name if rep.written else f"{name} (not written: larger)",
            human_pixels(rep.pixels),
            _k_cell(rep),
            human_bytes(rep.input_bytes),
            human_bytes(rep.output_bytes),
            percent(rep.file_ratio),
            percent(rep.bits.ratio),
            db(d["psnr"]),
            str(rep.n_iter) + ("" if rep.converged else "*"),
            f"{r.seconds:.2f}",
        )
    t.add_section()
    wall = totals.get("wall_seconds")
    t.add_row(
        f"total: {totals['ok']} written",
        human_pixels(totals["pixels"]),
        "",
        human_bytes(totals["input_bytes"]),
        human_bytes(totals["output_bytes"]),
        percent(totals["file_ratio"]),
        percent(totals["bits_ratio"]),
        "",
        "",
        f"{wall:.2f}" if wall is not None else "",
        style="bold",
    )
    return t


def row_names(paths: list[str]) -> list[str]:
    """The files' names for the rows of a table: their base names, or, when two of them share
    one (``DSC_0001.jpg`` of two folders), every file's path below the folder they all share
    (``2023-summer/DSC_0001.jpg``, ``2023-autumn/DSC_0001.jpg``)."""
    names = [os.path.basename(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    full = [os.path.abspath(p) for p in paths]
    common = os.path.commonpath(full)
    return [os.path.relpath(p, common) for p in full]


def _k_cell(rep: Any) -> str:
    """K, "entries/K" when fewer entries were stored, and "!" when a --quality target was missed."""
    text = f"{rep.colors}/{rep.k}" if rep.colors != rep.k else str(rep.k)
    return text + ("!" if getattr(rep, "target_reached", None) is False else "")


def print_summary(
    results: list[Any], totals: dict[str, Any], *, quiet: bool, title: str | None = None, by_output: bool = False
) -> None:
    """Table and the skipped files on stdout; failures on stderr, one line each (also when quiet)."""
    if not quiet:
        out = stdout_console()
        if totals["ok"] or totals.get("skipped_larger"):
            out.print(summary_table(results, totals, title, by_output))
            if any(r.status == "ok" and r.report is not None and not r.report.converged for r in results):
                out.print("* stopped at --max-iter before converging")
            missed = [r for r in results if r.status == "ok" and getattr(r.report, "target_reached", None) is False]
            if missed:
                out.print(
                    f"! {len(missed)} file(s) could not reach the --quality target within --max-colors; "
                    "written at --max-colors (use --strict to fail instead)",
                    markup=False,
                )
        skipped = [r for r in results if r.status == "skipped"]
        if skipped:
            out.print(f"skipped {len(skipped)}:")
            for r in skipped:
                out.print(f"  {r.src}: {r.message}", markup=False)
        wall = totals.get("wall_seconds")
        not_done = totals.get("not_done", 0)
        line = f"{totals['ok']} written, {totals['skipped']} skipped, {totals['errors'] - not_done} failed"
        line += f", {not_done} not done" if not_done else ""
        out.print(line + (f" in {wall:.1f} s" if wall is not None else ""), markup=False)
    for r in results:
        if r.status == "error" and r.error_type == NOT_DONE:
            continue  # the caller says why in one line, not once per file
        if r.status == "error":
            error_line(f"{r.src}: {r.message}")
        elif r.status == "ok" and not quiet and getattr(r.report, "warnings", None):
            error_line(f"{r.src}: warning: {one_warning(r.report.warnings)}")


#: The ``error_type`` of the files a lost Dask scheduler left not done.
NOT_DONE = SchedulerLostError.__name__


def one_warning(warnings: list[str]) -> str:
    """A file's warnings as one line: the first, and how many more there were."""
    more = len(warnings) - 1
    return warnings[0] + (f" (and {more} more)" if more > 0 else "")


def error_line(message: str) -> None:
    """One line on stderr, prefixed with the program name."""
    print(f"kmpress: {message}", file=sys.stderr, flush=True)


def _progress_bar(verb: str, describe: Callable[[], str] | None = None):
    """A transient rich progress bar on stderr: verb, bar, done/total, elapsed, ETA, and the
    task's description, or what ``describe()`` says at each refresh (ten times a second)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Described(ProgressColumn):
        def __init__(self, say: Callable[[], str]) -> None:
            super().__init__()
            self.say = say

        def render(self, task) -> Text:
            return Text(self.say(), no_wrap=True, overflow="ellipsis")

    return Progress(
        TextColumn(f"[bold]{verb}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.description}") if describe is None else Described(describe),
        console=_terminal_console(),
        transient=True,
    )


@contextmanager
def _closing(bar):
    """Close the progress bar's own stream (a duplicate descriptor) once it is done."""
    try:
        yield
    finally:
        if bar.console.file not in (sys.stderr, sys.__stderr__):
            bar.console.file.close()


#: Seconds a file runs before the progress bar shows its stage: a quick file's stages would only
#: flicker by, a long one's tell that the bar is not stuck.
STAGE_AFTER = 2.0
#: Files named in the progress bar (then "...").
SHOWN_FILES = 3


class Running:
    """The files in flight and the stage each is in: the progress bar's description, e.g.
    ``big.tif: lloyd, a.jpg``. A file's stage shows once it has run ``stage_after`` seconds.
    Safe to call from several threads (the engine may report stages from a background thread)."""

    def __init__(self, stage_after: float = STAGE_AFTER, clock: Callable[[], float] = time.monotonic) -> None:
        self.stage_after = stage_after
        self.clock = clock
        self._files: dict[str, list] = {}  # full path -> [started at, stage or None], in start order
        self._lock = threading.Lock()

    def start(self, path: str) -> None:
        with self._lock:
            self._files[str(path)] = [self.clock(), None]  # a crashed file may start again

    def stage(self, path: str, stage: str) -> None:
        """``path`` begins ``stage``; ignored for a file not running (a late report)."""
        with self._lock:
            f = self._files.get(str(path))
            if f is not None:
                f[1] = stage

    def finish(self, path: str) -> bool:
        """Forget ``path``; False when it was not running (a skip, a missing input)."""
        with self._lock:
            return self._files.pop(str(path), None) is not None

    def describe(self) -> str:
        now = self.clock()
        with self._lock:
            files = list(self._files.items())
        note = CompileNotice.live_note
        if note:  # what stops the files for now
            return note
        parts = []
        for path, (t0, stage) in files[:SHOWN_FILES]:
            name = os.path.basename(path)
            parts.append(f"{name}: {stage}" if stage is not None and now - t0 >= self.stage_after else name)
        return ", ".join(parts) + (" ..." if len(files) > SHOWN_FILES else "")


@contextmanager
def _bar_gone():
    try:
        yield
    finally:
        CompileNotice.bar_live = False
        CompileNotice.live_note = ""


@contextmanager
def progress(total: int, enabled: bool, stage_after: float | None = None):
    """A rich progress bar on stderr: files done/total, elapsed, ETA, the files running and,
    for one that has run ``stage_after`` seconds (default :data:`STAGE_AFTER`), its stage
    (``photo.tif: lloyd``; redrawn as each stage begins).

    Yields ``(started, finished, staged)``: ``started(path)`` and ``finished(path)`` (which
    ignores a path never started) do nothing when disabled; ``staged(path, stage)`` is the
    engine's ``on_stage`` for a batch, None when disabled (so nothing is sent for it).
    """
    if not enabled or total <= 0:
        yield (lambda path: None), (lambda path: None), None
        return
    running = Running(STAGE_AFTER if stage_after is None else stage_after)
    bar = _progress_bar("compressing", running.describe)
    CompileNotice.bar_live = True
    with _closing(bar), bar, _bar_gone():
        task = bar.add_task("", total=total)

        def finished(path: str) -> None:
            # results of files that never started (skips, missing inputs) do not move the bar
            if running.finish(path):
                bar.update(task, advance=1)

        def staged(path: str, stage: str) -> None:
            running.stage(path, stage)
            bar.refresh()

        yield running.start, finished, staged


class CompileNotice:
    """Says on stderr that numba kernels compile, as :func:`kmpress.backends.on_compile` tells:
    on a terminal, a line rewritten as each kernel is done (inside the progress bar while one
    shows); elsewhere, one line. Writes on its own duplicate of the stderr descriptor, which the
    engine may hold for a while to gather what an image decoder prints; called from any thread."""

    #: What a live progress bar shows instead of its files while kernels compile ("" when none).
    live_note = ""
    #: Whether a progress bar is showing (set by :func:`progress`).
    bar_live = False

    def __init__(self) -> None:
        try:
            sys.stderr.flush()
            self.stream: IO[str] = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
        except (AttributeError, OSError, ValueError):  # no real descriptor (e.g. captured in tests)
            self.stream = sys.stderr
        self.tty = self.stream.isatty()
        self.said = False
        self.lock = threading.Lock()

    def __call__(self, status: Any) -> None:
        where = f"; cached in {status.cache_dir}" if status.cache_dir else ""
        with self.lock:
            if not self.tty:
                if not self.said:  # one line: the count known when compiling starts
                    self.said = True
                    self._write(
                        f"kmpress: compiling {status.total} numba kernel{'s' if status.total != 1 else ''} "
                        f"(first run only{where}) ...\n"
                    )
                return
            text = f"compiling numba kernels (first run only{where}): {status.done}/{status.total}"
            finished = status.done >= status.total
            if CompileNotice.bar_live:
                CompileNotice.live_note = "" if finished else text
                return
            self._write(f"\r{text}" + ("\n" if finished else ""))
            self.said = True

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed stderr: the notice is not worth failing for
            pass

    def close(self) -> None:
        CompileNotice.live_note = ""
        if self.stream is not sys.stderr:
            try:
                self.stream.close()
            except OSError:
                pass


@contextmanager
def compile_notice(on: bool) -> Iterator[None]:
    """While the command runs, numba kernels that compile (a first run) are said on stderr."""
    if not on:
        yield
        return
    from kmpress import backends

    notice = CompileNotice()
    backends.on_compile(notice)
    try:
        yield
    finally:
        backends.on_compile(None)
        notice.close()


def lost_scheduler(results: list) -> str | None:
    """The one line that says a lost Dask scheduler left files not done, or None."""
    not_done = [r for r in results if getattr(r, "error_type", None) == NOT_DONE]
    if not not_done:
        return None
    why = not_done[0].message.removeprefix("not done: ")
    n = len(not_done)
    files = f"{n} of {len(results)} file{'s' if len(results) != 1 else ''}"
    return f"{why}: {files} not done (run the same command again to do {'them' if n > 1 else 'it'})"


def print_warm(facts: dict[str, Any]) -> None:
    """What ``kmpress warm`` did, and where the cache is."""
    out = stdout_console()
    n, compiled = facts["kernels"], facts["compiled"]
    if compiled:
        how = f"in {facts['processes']} processes" if facts["processes"] else "in this process"
        out.print(f"compiled {compiled} of {n} numba kernels {how} in {facts['seconds']:.1f} s", markup=False)
    else:
        out.print(f"all {n} numba kernels were already compiled (loaded in {facts['seconds']:.1f} s)", markup=False)
    out.print(f"cache: {facts['cache_dir']}", markup=False)
    if not facts["cache_writable"]:
        out.print(
            "the cache folder cannot be written: nothing was saved, every run compiles again "
            "(set NUMBA_CACHE_DIR to a writable folder)",
            markup=False,
        )


def print_info(info: dict[str, Any]) -> None:
    from rich.table import Table

    out = stdout_console()
    t = Table(show_header=False, show_edge=False, box=None)
    t.add_column(style="bold")
    t.add_column()
    rows = [
        ("file", info["path"]),
        ("format", info.get("format") or "-"),
        ("size", f"{info['width']} x {info['height']} ({human_pixels(info['width'] * info['height'])})"),
        ("mode", info["mode"]),
        ("bytes", f"{info['bytes']:,} ({human_bytes(info['bytes'])})"),
        ("palette size", "-" if info.get("palette_size") is None else str(info["palette_size"])),
        ("colours used", "> 256" if info.get("colors_used") is None else str(info["colors_used"])),
        ("bit depth", f"{info['bit_depth']} bits per {'index' if info['mode'] in ('P', 'PA') else 'sample'}"),
        ("ICC profile", "yes" if info.get("icc_profile") else "no"),
        ("EXIF", "yes" if info.get("exif") else "no"),
    ]
    if info.get("warnings"):
        rows.append(("warnings", one_warning(info["warnings"])))
    if "palette_path" in info:
        rows.append(("palette swatch", f"{info['palette_path']} ({info['palette_entries']} entries)"))
    if "against" in info:
        rows.append(("against", info["against"]))
        rows.append(("PSNR", db(info["psnr"])))
        rows.append(("MSE", f"{info['mse']:.3f}"))
    for k, v in rows:
        t.add_row(k, str(v))
    out.print(t)


def print_sweep(files: Any, src: str) -> None:
    """The table of :func:`kmpress.report.write_sweep` and the files it wrote, on stdout."""
    from rich.table import Table

    out = stdout_console()
    t = Table(
        title=f"kmpress sweep: {os.path.basename(src)} ({files.width} x {files.height})",
        show_edge=False,
        header_style="bold",
    )
    for name in ("K", "colours", "inertia", "PSNR", "ΔE (OKLab)", "PNG", "bits/px", "iter", "seconds"):
        t.add_column(name, justify="right", no_wrap=True)
    pixels = files.width * files.height
    for r in files.rows:
        d = r.as_dict()
        t.add_row(
            str(r.k),
            str(r.colors),
            f"{r.inertia:.4g}",
            db(d["psnr"]),
            f"{r.delta_e:.4f}",
            human_bytes(r.bytes),
            f"{8 * r.bytes / pixels:.3f}",
            str(r.n_iter) + ("" if r.converged else "*"),
            f"{r.seconds:.2f}",
        )
    out.print(t)
    out.print(f"table: {files.table}", markup=False)
    out.print(f"contact sheet: {files.contact}", markup=False)
    if files.plot is not None:
        out.print(f"plot: {files.plot}", markup=False)
    out.print(
        f"{len(files.rows)} values of K in {files.seconds:.1f} s (each K warm-started from the one before)",
        markup=False,
    )


@contextmanager
def sweep_progress(total: int, enabled: bool):
    """A rich progress bar on stderr for a sweep: K values done/total, the last K, elapsed, ETA.

    Yields a callback taking an ``kmpress.ksweep.SweepRow``; it does nothing when disabled.
    """
    if not enabled or total <= 0:
        yield lambda row: None
        return
    bar = _progress_bar("sweeping")
    with _closing(bar), bar:
        task = bar.add_task("", total=total)

        def done(row: Any) -> None:
            bar.update(task, advance=1, description=f"K={row.k}")

        yield done
