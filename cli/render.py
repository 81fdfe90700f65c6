"""Presentation for the kmpress CLI: tables, progress, number formats. No engine logic here.

The functions take the engine's result objects (or their dicts) and print; rich is imported
here, so importing this module is deferred until a command has output to show.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from kmpress.errors import SchedulerLostError

from .flags import flag_text

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


#: The summary table's columns, left to right: (header, drop rank). When the table is wider than
#: the terminal, columns give way by rank, 1 first; the file, K, the output's size, PSNR and
#: SSIMULACRA 2 (rank None) never do.
SUMMARY_COLUMNS: tuple[tuple[str, int | None], ...] = (
    ("file", None),
    ("pixels", 4),
    ("K", None),
    ("input", 5),
    ("output", None),
    ("out/in", 6),
    ("bits/raw", 1),
    ("PSNR", None),
    ("SSIM2", None),
    ("iter", 2),
    ("seconds", 3),
)
COLUMNS = tuple(name for name, _ in SUMMARY_COLUMNS)
#: The sweep table's columns, as :data:`SUMMARY_COLUMNS`: K, PSNR and the PNG's size stay.
SWEEP_COLUMNS: tuple[tuple[str, int | None], ...] = (
    ("K", None),
    ("colours", 3),
    ("inertia", 5),
    ("PSNR", None),
    ("ΔE (OKLab)", 6),
    ("PNG", None),
    ("bits/px", 4),
    ("iter", 1),
    ("seconds", 2),
)
#: The narrowest the first column (a file's name) is folded to before the table outgrows the
#: terminal instead.
NAME_MIN_WIDTH = 16
#: Characters between two columns of :func:`fitted_table`'s tables.
GAP = 2


def score(x: float | None) -> str:
    """A SSIMULACRA 2 score (None: not measured)."""
    return "-" if x is None else f"{x:.1f}"


def fitted_table(
    columns: tuple[tuple[str, int | None], ...],
    rows: Sequence[tuple[str, ...]],
    width: int,
    *,
    footer: tuple[str, ...] | None = None,
    title: str | None = None,
    name_first: bool = True,
) -> Table:
    """A table of ``rows`` that fits ``width`` characters: columns give way in the order of their
    drop rank until the rest fits, and a value is never cut.

    Every value keeps its whole width (no wrap, no ellipsis), so that a number is never shortened
    or split. When the columns that never give way are still too wide, the first column (a file's
    name, with ``name_first``) folds onto further lines, down to :data:`NAME_MIN_WIDTH`; only below
    that does the table outgrow ``width``.

    Parameters
    ----------
    columns : (header, drop rank) per column; rank 1 gives way first, None never
    rows : one tuple of cell texts per row, one cell per column
    width : int; characters available (the console's width)
    footer : tuple of str, optional; a totals row, after a rule, in bold
    title : str, optional
    name_first : bool; the first column is left-aligned text that may fold (else every column
        is a right-aligned value)
    """
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table

    body = [*rows, *([footer] if footer is not None else [])]
    natural = [max([cell_len(name), *(cell_len(r[i]) for r in body)]) for i, (name, _) in enumerate(columns)]
    keep = list(range(len(columns)))

    def total(shown: list[int]) -> int:
        return sum(natural[i] for i in shown) + GAP * (len(shown) - 1)

    ranked = sorted((rank, i) for i, (_, rank) in enumerate(columns) if rank is not None)
    for _, i in ranked:
        if total(keep) <= width:
            break
        keep.remove(i)
    over = total(keep) - width
    t = Table(
        title=title, show_edge=False, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    for i in keep:
        name = columns[i][0]
        if i == 0 and name_first:
            fold = over > 0 and natural[0] > NAME_MIN_WIDTH
            w = max(NAME_MIN_WIDTH, natural[0] - over) if fold else natural[0]
            t.add_column(name, justify="left", no_wrap=not fold, overflow="fold", width=w, min_width=w)
        else:
            # never narrower than its widest value; print_table() widens the output if need be
            t.add_column(name, justify="right", no_wrap=True, overflow="crop", min_width=natural[i])
    for r in rows:
        t.add_row(*(r[i] for i in keep))
    if footer is not None:
        t.add_section()
        t.add_row(*(footer[i] for i in keep), style="bold")
    return t


def print_table(out: Console, table: Table) -> None:
    """Print a :func:`fitted_table` whole: wider than the console only when it cannot fit (its
    lines then wrap in the terminal), never with a value squeezed."""
    from rich.measure import Measurement

    needed = Measurement.get(out, out.options.update_width(10_000), table).maximum
    width = out.width
    out.width = max(width, needed)  # rich never prints wider than its console
    try:
        out.print(table)
    finally:
        out.width = width


def summary_table(
    results: Iterable[Any],
    totals: dict[str, Any],
    title: str | None = None,
    by_output: bool = False,
    *,
    width: int = 80,
    names: dict[str, str] | None = None,
) -> Table:
    """The per-file table (compressed files, and files left unwritten by --skip-if-larger, marked
    "not written") with a totals row (of the written files), fitted to ``width`` characters
    (see :func:`fitted_table` and :data:`SUMMARY_COLUMNS`).

    ``results`` are engine ``FileResult`` objects; ``totals`` is ``kmpress.batch.summarize``'s dict.
    "out/in" is output bytes / input bytes; "bits/raw" is the indexed size in bits (indices + palette)
    over the raw 24-bit (32 with alpha) size. ``by_output`` names rows by the output file's name;
    else ``names`` (input path -> its name in the table) does, or :func:`row_names`.
    """
    shown = [r for r in results if r.status == "ok" or r.skipped_larger]
    if by_output:
        labels = [os.path.basename(str(r.dst)) for r in shown]
    elif names is not None:
        labels = [names.get(str(r.src), str(r.src)) for r in shown]
    else:
        labels = row_names([r.src for r in shown])
    rows: list[tuple[str, ...]] = []
    for r, name in zip(shown, labels, strict=True):
        rep = r.report
        if rep is None:  # written, but its figures were lost (a Dask scheduler gone mid-batch)
            rows.append((f"{name} (figures lost)", *["-"] * (len(COLUMNS) - 1)))
            continue
        d = rep.as_dict()
        rows.append(
            (
                name if rep.written else f"{name} (not written: larger)",
                human_pixels(rep.pixels),
                _k_cell(rep),
                human_bytes(rep.input_bytes),
                human_bytes(rep.output_bytes),
                percent(rep.file_ratio),
                percent(rep.bits.ratio),
                db(d["psnr"]),
                score(d["ssimulacra2"]),
                str(rep.n_iter) + ("" if rep.converged else "*"),
                f"{r.seconds:.2f}",
            )
        )
    wall = totals.get("wall_seconds")
    footer = (
        f"total: {totals['ok']} written",
        human_pixels(totals["pixels"]),
        "",
        human_bytes(totals["input_bytes"]),
        human_bytes(totals["output_bytes"]),
        percent(totals["file_ratio"]),
        percent(totals["bits_ratio"]),
        "",
        "",
        "",
        f"{wall:.2f}" if wall is not None else "",
    )
    return fitted_table(SUMMARY_COLUMNS, rows, width, footer=footer, title=title)


def row_names(paths: list[str], folders: Iterable[str | os.PathLike] = ()) -> list[str]:
    """The files' names for the rows of a table and the progress bar.

    A file found in one of ``folders`` (the folder arguments) is named by its path below that
    folder (``2024-trip/DCIM/100CAM/DSC_0001.jpg`` for the folder ``photos``), a file given itself
    by its base name. When two names are still the same (``DSC_0001.jpg`` of two folder
    arguments), every file is named by its path below the folder they all share.
    """
    roots = sorted((os.path.normpath(f) for f in folders), key=len, reverse=True)

    def name(p: str) -> str:
        path = os.path.normpath(p)
        for root in roots:  # the innermost folder argument that holds the file
            if root == "." and not os.path.isabs(path) and not path.startswith(".."):
                return path
            if path.startswith(root.rstrip(os.sep) + os.sep):
                return os.path.relpath(path, root)
        return os.path.basename(path)

    names = [name(str(p)) for p in paths]
    if len(set(names)) == len(names):
        return names
    full = [os.path.abspath(p) for p in paths]
    common = os.path.commonpath(full) if len(full) > 1 else os.path.dirname(full[0])
    return [os.path.relpath(p, common) for p in full]


def _k_cell(rep: Any) -> str:
    """K, "entries/K" when fewer entries were stored, and "!" when a --quality target was missed."""
    text = f"{rep.colors}/{rep.k}" if rep.colors != rep.k else str(rep.k)
    return text + ("!" if getattr(rep, "target_reached", None) is False else "")


def print_summary(
    results: list[Any],
    totals: dict[str, Any],
    *,
    quiet: bool,
    title: str | None = None,
    by_output: bool = False,
    names: dict[str, str] | None = None,
) -> None:
    """Table and the skipped files on stdout; failures on stderr, one line each (also when quiet).

    ``names``: each input path's name in the table (see :func:`row_names`)."""
    if not quiet:
        out = stdout_console()
        if totals["ok"] or totals.get("skipped_larger"):
            print_table(out, summary_table(results, totals, title, by_output, width=out.width, names=names))
            if any(r.status == "ok" and r.report is not None and not r.report.converged for r in results):
                out.print("* stopped at --max-iter before converging")
            missed = [r for r in results if r.status == "ok" and getattr(r.report, "target_reached", None) is False]
            if missed:
                flag = "--psnr" if getattr(missed[0].report, "target_quality", None) is None else "--quality"
                out.print(
                    f"! {len(missed)} file(s) could not reach the {flag} target within --max-colors; "
                    "written at --max-colors (a --quality MIN-MAX, or --strict, writes none below it)",
                    markup=False,
                )
        larger = larger_line(results)
        if larger:
            out.print(larger, markup=False)
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
            error_line(f"{r.src}: {flag_text(r.message or '', r.fields)}")
        elif r.status == "ok" and not quiet and getattr(r.report, "warnings", None):
            error_line(f"{r.src}: warning: {one_warning(r.report.warnings)}")


def larger_line(results: Iterable[Any]) -> str | None:
    """The one line saying how many written outputs are larger than their input, and what helps
    (None when none is)."""
    written = [r for r in results if r.status == "ok" and r.report is not None and r.report.written]
    larger = [r.report for r in written if r.report.output_bytes > r.report.input_bytes]
    if not larger:
        return None
    helps = [] if all(rep.format == "webp" for rep in larger) else ["--format webp"]
    helps += ["a smaller -k", "--skip-if-larger"]
    return f"{len(larger)} of {len(written)} larger than the input: try {', '.join(helps)}"


#: The ``error_type`` of the files a lost Dask scheduler left not done.
NOT_DONE = SchedulerLostError.__name__


def one_warning(warnings: list[str]) -> str:
    """A file's warnings as one line: the first, and how many more there were."""
    more = len(warnings) - 1
    return warnings[0] + (f" (and {more} more)" if more > 0 else "")


def error_line(message: str) -> None:
    """One line on stderr, prefixed with the program name (after any decode in another thread has
    given the descriptor back: the last line of an interrupted batch must not land in its capture)."""
    from kmpress.notes import stderr_restored

    with stderr_restored():
        print(f"kmpress: {message}", file=sys.stderr, flush=True)


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
    if facts.get("tier") == "portable":
        out.print("runs load the prebuilt kernels until this cache holds every one", markup=False)
    else:
        out.print("runs load this cache (compiled for this CPU)", markup=False)
    if facts.get("archive"):
        where = f", unpacked in {facts['portable_dir']}" if facts.get("portable_dir") else ""
        out.print(f"prebuilt kernels (any x86-64-v3 CPU): {facts['archive']}{where}", markup=False)
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
        rows.append(("SSIMULACRA 2", score(info["ssimulacra2"])))
        rows.append(("MSE", f"{info['mse']:.3f}"))
    for k, v in rows:
        t.add_row(k, str(v))
    out.print(t)


def print_sweep(files: Any, src: str) -> None:
    """The table of :func:`kmpress.report.write_sweep` and the files it wrote, on stdout."""
    out = stdout_console()
    pixels = files.width * files.height
    rows = []
    for r in files.rows:
        d = r.as_dict()
        rows.append(
            (
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
        )
    title = f"kmpress sweep: {os.path.basename(src)} ({files.width} x {files.height})"
    print_table(out, fitted_table(SWEEP_COLUMNS, rows, out.width, title=title, name_first=False))
    out.print(f"table: {files.table}", markup=False)
    out.print(f"contact sheet: {files.contact}", markup=False)
    if files.plot is not None:
        out.print(f"plot: {files.plot}", markup=False)
    out.print(
        f"{len(files.rows)} values of K in {files.seconds:.1f} s (each K warm-started from the one before)",
        markup=False,
    )
