"""Presentation for the kmpress CLI: tables, progress, number formats. No engine logic here.

The functions take the engine's result objects (or their dicts) and print; rich is imported
here, so importing this module is deferred until a command has output to show.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

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


def summary_table(results: Iterable[Any], totals: dict[str, Any], title: str | None = None, by_output: bool = False) -> Table:
    """The per-file table (compressed files, and files left unwritten by --skip-if-larger, marked
    "not written") with a totals row (of the written files).

    ``results`` are engine ``FileResult`` objects; ``totals`` is ``kmpress.batch.summarize``'s dict.
    "out/in" is output bytes / input bytes; "bits/raw" is the indexed size in bits (indices + palette)
    over the raw 24-bit (32 with alpha) size. ``by_output`` names rows by the output file.
    """
    from rich.table import Table

    t = Table(title=title, show_edge=False, header_style="bold")
    for i, name in enumerate(COLUMNS):
        t.add_column(name, justify="left" if i == 0 else "right", no_wrap=i != 0, overflow="fold")
    for r in results:
        if r.status != "ok" and not r.skipped_larger:
            continue
        rep = r.report
        d = rep.as_dict()
        name = os.path.basename(r.dst if by_output else r.src)
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
            if any(r.status == "ok" and not r.report.converged for r in results):
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
        line = f"{totals['ok']} written, {totals['skipped']} skipped, {totals['errors']} failed"
        out.print(line + (f" in {wall:.1f} s" if wall is not None else ""), markup=False)
    for r in results:
        if r.status == "error":
            error_line(f"{r.src}: {r.message}")
        elif r.status == "ok" and not quiet and getattr(r.report, "warnings", None):
            error_line(f"{r.src}: warning: {one_warning(r.report.warnings)}")


def one_warning(warnings: list[str]) -> str:
    """A file's warnings as one line: the first, and how many more there were."""
    more = len(warnings) - 1
    return warnings[0] + (f" (and {more} more)" if more > 0 else "")


def error_line(message: str) -> None:
    """One line on stderr, prefixed with the program name."""
    print(f"kmpress: {message}", file=sys.stderr, flush=True)


def _progress_bar(verb: str):
    """A transient rich progress bar on stderr: verb, bar, done/total, elapsed, ETA, description."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn(f"[bold]{verb}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
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


@contextmanager
def progress(total: int, enabled: bool):
    """A rich progress bar on stderr: files done/total, current file, elapsed, ETA.

    Yields ``(started, finished)`` callbacks taking a path; both do nothing when disabled, and
    ``finished`` ignores a path that was never started.
    """
    if not enabled or total <= 0:
        yield (lambda path: None), (lambda path: None)
        return
    running: dict[str, None] = {}  # ordered set of full paths (a crashed file may start twice)
    bar = _progress_bar("compressing")
    with _closing(bar), bar:
        task = bar.add_task("", total=total)

        def describe() -> str:
            names = [os.path.basename(p) for p in running]
            return ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")

        def started(path: str) -> None:
            running[str(path)] = None
            bar.update(task, description=describe())

        def finished(path: str) -> None:
            # results of files that never started (skips, missing inputs) do not move the bar
            if str(path) in running:
                del running[str(path)]
                bar.update(task, advance=1, description=describe())

        yield started, finished


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
    t = Table(title=f"kmpress sweep: {os.path.basename(src)} ({files.width} x {files.height})", show_edge=False, header_style="bold")
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
    out.print(f"{len(files.rows)} values of K in {files.seconds:.1f} s (each K warm-started from the one before)", markup=False)


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
