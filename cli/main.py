"""The ``kmpress`` typer app: ``compress``, ``demo``, ``sweep`` and ``info``.

Each command declares its flags (defaults from :mod:`kmpress.options`), builds one
:class:`~kmpress.options.Options`, calls the engine, and hands the results to :mod:`.render`.
Every decision about files and every rule about options is the engine's. Only pure-Python
modules are imported at the top, so ``kmpress --help`` answers at once; numpy, Pillow and (when
the work needs it) numba load inside the commands.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from kmpress import options as opt
from kmpress.errors import (
    ImageReadError,
    InvalidParameterError,
    KmpressError,
    SchedulerLostError,
    TargetNotReachedError,
)

if TYPE_CHECKING:  # loaded when a command runs, not for --help
    from kmpress.results import FileResult

from .flags import (  # the flags' declarations and the exit codes
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LARGER,
    EXIT_OK,
    EXIT_SCHEDULER_LOST,
    EXIT_TARGET,
    EXIT_TERMINATED,
    EXIT_USAGE,
    FLAGS,
    AgainstOpt,
    ColorsOpt,
    DebugOpt,
    DemoOutDirOpt,
    DitherOpt,
    ForceOpt,
    FormatOpt,
    InfoFileArg,
    JobsOpt,
    JsonOpt,
    KsOpt,
    MaxColorsOpt,
    MaxIterOpt,
    MaxPixelsOpt,
    NoDitherOpt,
    OutDirOpt,
    PaletteOpt,
    PathsArg,
    QualityOpt,
    QuietOpt,
    RecursiveOpt,
    SchedulerOpt,
    SchedulerTimeoutOpt,
    SeedOpt,
    SkipIfLargerOpt,
    SmoothOpt,
    SpaceOpt,
    StartsOpt,
    StepOpt,
    StrictOpt,
    StripOpt,
    SuffixOpt,
    SweepFileArg,
    SweepMaxIterOpt,
    SweepOutDirOpt,
    TolOpt,
    _max_pixels,
    dither_option,
)
from .server import serve_command

#: click's usage-error base class, as this typer ships it (typer 0.2x vendors click).
_CLICK_ERROR: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _App(TyperGroup):
    """The app's click group. With ``--json`` among the arguments, a usage error that click
    itself catches (an unknown option, a value of the wrong type) gives the JSON document too."""

    # click's other keywords (standalone_mode, ...) pass through extra
    def main(self, args=None, prog_name=None, **extra):  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        if "--json" not in argv or extra.get("standalone_mode") is False:
            return super().main(args=argv, prog_name=prog_name, **extra)
        extra.pop("standalone_mode", None)
        command = argv[0] if argv and argv[0] in self.commands else None
        try:
            code = super().main(args=argv, prog_name=prog_name, standalone_mode=False, **extra)
        except _CLICK_ERROR as e:
            e.show()
            _print_json({"command": command, "error": e.format_message(), "exit_code": e.exit_code})
            sys.exit(e.exit_code)
        except typer.Abort:
            raise _fail("aborted", EXIT_FAILED, command, True) from None
        sys.exit(code if isinstance(code, int) else EXIT_OK)


app = typer.Typer(
    name="kmpress",
    cls=_App,
    help="Compress photos to small palette PNGs with k-means colour quantization (Numba kernels).",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# --------------------------------------------------------------------------------------------
# the one place errors become messages and exit codes
# --------------------------------------------------------------------------------------------


#: See :func:`_errors`.
STDOUT_IS_IMAGE = "_stdout_is_image"


def _fail(
    message: str, code: int, command: str | None = None, as_json: bool = False, doc: dict | None = None
) -> typer.Exit:
    """The one line on stderr and, with --json, the document saying the same on stdout (with
    what ``doc`` holds of the run so far)."""
    from .render import error_line

    error_line(message)
    if as_json:
        _print_json({"command": command, **(doc or {}), "error": message, "exit_code": code})
    return typer.Exit(code)


def _message(e: KmpressError) -> str:
    """The error's line, with the flags it is about when it is about options."""
    text = str(e)
    flags = [FLAGS[f] for f in getattr(e, "fields", ()) if f in FLAGS]
    return f"{text} ({', '.join(flags)})" if flags else text


@contextmanager
def _errors(debug: bool, command: str, as_json: bool = False, owns_process: bool = False):
    """Turn what escapes a command into one line on stderr (and the JSON document) and an exit code.

    InvalidParameterError (a bad option value) -> 2; TargetNotReachedError -> 3; any other
    KmpressError and an OSError on a user path -> 1; Ctrl-C -> 130, SIGTERM -> 143; anything else
    is a bug: one line as well, and the traceback with ``--debug``. ``owns_process``: the command
    runs kmpress's work in this process (see :func:`_kmpress_process`). Yields a dict the command
    may fill with what an error's JSON document should carry (e.g. the files done so far); its
    key ``STDOUT_IS_IMAGE`` set says standard output holds an image: no document goes there then.
    """
    doc: dict[str, Any] = {}

    def fail(message: str, code: int) -> typer.Exit:
        shown = {k: v for k, v in doc.items() if k != STDOUT_IS_IMAGE}
        return _fail(message, code, command, as_json and not doc.get(STDOUT_IS_IMAGE), shown)

    try:
        with _kmpress_process() if owns_process else nullcontext():
            yield doc
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        if debug:
            import traceback

            traceback.print_exc()
        word, code = _interruption()
        raise fail(word, code) from None
    except Exception as e:
        if debug:
            import traceback

            traceback.print_exc()
        if isinstance(e, TargetNotReachedError):
            raise fail(str(e), EXIT_TARGET) from None
        if isinstance(e, ImageReadError):  # an unreadable input, also when a missing extra is why
            raise fail(str(e), EXIT_FAILED) from None
        if isinstance(e, InvalidParameterError):
            raise fail(_message(e), EXIT_USAGE) from None
        if isinstance(e, KmpressError):
            raise fail(str(e), EXIT_FAILED) from None
        if isinstance(e, OSError):
            where = f"{e.filename}: " if e.filename else ""
            raise fail(f"{where}{e.strerror or e}", EXIT_FAILED) from None
        hint = "" if debug else " (run with --debug for the traceback)"
        raise fail(f"internal error: {type(e).__name__}: {e}{hint}", EXIT_FAILED) from None


def _kmpress_process() -> AbstractContextManager[None]:
    """Process-wide set-up for a command whose work runs here (see :mod:`kmpress.process`):
    numba, when it loads, skips its BLAS probe; what Pillow's C libraries print while decoding
    becomes that file's notes; Ctrl-C and SIGTERM stop the work (and a pool's workers) the same
    way, and are never raised inside numba's code (see :mod:`kmpress.interrupts`)."""
    from kmpress.process import kmpress_process

    return kmpress_process("main")


def _interruption() -> tuple[str, int]:
    """The message and exit code of a KeyboardInterrupt: "terminated" and 143 when SIGTERM was
    behind it, else "interrupted" and 130 (Ctrl-C)."""
    from kmpress import interrupts

    if interrupts.received() == signal.SIGTERM:
        return "terminated", EXIT_TERMINATED
    return "interrupted", EXIT_INTERRUPTED


def _want_progress(quiet: bool, as_json: bool) -> bool:
    return not quiet and not as_json and sys.stderr.isatty()


def _print_json(doc: dict[str, Any]) -> None:
    import json

    sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


#: The ``error_type`` of the files a lost Dask scheduler left not done.
_NOT_DONE = SchedulerLostError.__name__


def _batch_exit_code(totals: dict[str, Any], results: Sequence[Any] = ()) -> int:
    """0 when nothing failed; 98 when nothing failed and nothing was written because every
    compressed file came out larger than its input (--skip-if-larger); 3 when the only failures
    are quality targets missed under --strict; 75 when a lost Dask scheduler left files not
    done (whatever else happened); else 1."""
    if any(getattr(r, "error_type", None) == _NOT_DONE for r in results):
        return EXIT_SCHEDULER_LOST
    if not totals["errors"]:
        return EXIT_LARGER if totals.get("skipped_larger") and not totals["ok"] else EXIT_OK
    failed = [r for r in results if r.status == "error"]
    if failed and all(getattr(r, "error_type", None) == "TargetNotReachedError" for r in failed):
        return EXIT_TARGET
    return EXIT_FAILED


def _binary(stream: Any) -> IO[bytes]:
    """The binary layer of a standard stream (the stream itself when it has none, as a test's)."""
    return getattr(stream, "buffer", stream)


def _run_pipe(job: Any, options: Any, as_json: bool, quiet: bool, debug: bool) -> int:
    """Compress one image from standard input and/or to standard output; the exit code."""
    from kmpress import batch, pipes

    from .render import error_line

    if as_json and job.to_stdout:
        raise InvalidParameterError(
            "--json cannot be used when the image goes to standard output (-o -, or - as the only input)"
        )
    pipes.check_terminals(job, sys.stdin, sys.stdout)
    r = pipes.run_pipe(job, options, _binary(sys.stdin), _binary(sys.stdout))
    if debug and r.detail:
        sys.stderr.write(r.detail)
    if job.to_stdout:  # nothing but the image on stdout (and so no --json)
        if r.status == "error" or (r.status == "skipped" and not quiet):
            error_line(f"{r.src}: {r.message}")
        return _batch_exit_code(batch.summarize([r], r.seconds), [r])
    return _report_compress([r], [r.as_dict()], r.seconds, options.k, options.target_psnr, as_json, quiet)


def _report_compress(
    results: list, files: list[dict], seconds: float, k: Any, target_psnr: Any, as_json: bool, quiet: bool
) -> int:
    """Print what a compress run did (its JSON document, or the summary table) and return its
    exit code; ``files`` are the document's entries (the results', and any input not found)."""
    from kmpress import batch

    from .render import print_summary

    totals = batch.summarize(results, seconds)
    code = _batch_exit_code(totals, results)
    lost = _lost_scheduler(results)
    if lost is not None:
        totals["not_done"] = sum(1 for r in results if r.error_type == _NOT_DONE)
    if as_json:
        error = {} if lost is None else {"error": lost}
        _print_json(
            {
                "command": "compress",
                "k": k,
                "target_psnr": target_psnr,
                "files": files,
                "summary": totals,
                **error,
                "exit_code": code,
            }
        )
    else:
        print_summary(results, totals, quiet=quiet)
    if lost is not None:
        from .render import error_line

        error_line(lost)
    return code


def _lost_scheduler(results: list) -> str | None:
    """The one line that says a lost Dask scheduler left files not done, or None."""
    not_done = [r for r in results if getattr(r, "error_type", None) == _NOT_DONE]
    if not not_done:
        return None
    why = not_done[0].message.removeprefix("not done: ")
    n = len(not_done)
    files = f"{n} of {len(results)} file{'s' if len(results) != 1 else ''}"
    return f"{why}: {files} not done (run the same command again to do {'them' if n > 1 else 'it'})"


def _version(value: bool) -> None:
    if value:
        import kmpress

        print(f"kmpress {kmpress.__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _app_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Compress photos to small palette PNGs with k-means colour quantization (Numba kernels)."""


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


@app.command(epilog=EXIT_CODES_HELP)
def compress(
    paths: PathsArg = None,
    colors: ColorsOpt = None,
    quality: QualityOpt = None,
    max_colors: MaxColorsOpt = opt.default("max_colors"),
    strict: StrictOpt = opt.default("strict"),
    space: SpaceOpt = opt.default("colorspace"),
    dither: DitherOpt = None,
    no_dither: NoDitherOpt = False,
    starts: StartsOpt = opt.default("n_init"),
    smooth: SmoothOpt = opt.default("smooth"),
    out_dir: OutDirOpt = None,
    out_format: FormatOpt = opt.default("format"),
    strip: StripOpt = opt.default("strip"),
    skip_if_larger: SkipIfLargerOpt = opt.default("skip_if_larger"),
    suffix: SuffixOpt = None,
    force: ForceOpt = False,
    jobs: JobsOpt = None,
    seed: SeedOpt = opt.default("seed"),
    max_iter: MaxIterOpt = opt.default("max_iter"),
    tol: TolOpt = opt.default("tol"),
    recursive: RecursiveOpt = False,
    max_pixels: MaxPixelsOpt = None,
    scheduler: SchedulerOpt = None,
    scheduler_timeout: SchedulerTimeoutOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Compress images to palette PNGs named <stem>-k<K>.png (<stem>-q<PSNR>.png with --quality).

    Existing outputs are skipped unless --force; an input is never overwritten. With -o, the files
    found in a folder's sub-folders go to the same sub-folders under it; inputs that would still
    write the same output (a.jpg beside a.png) fail, the others are done. Writes are atomic: an
    interrupted run leaves no partial file.
    """
    if not paths:
        raise _fail(
            "no input given (try: kmpress compress PHOTO.jpg, or kmpress --help)", EXIT_USAGE, "compress", as_json
        )
    with _errors(debug, "compress", as_json, owns_process=True) as doc:
        options = opt.Options(
            k=colors,
            target_psnr=quality,
            max_colors=max_colors,
            strict=strict,
            seed=seed,
            max_iter=max_iter,
            tol=tol,
            colorspace=space,
            dither=dither_option(dither, no_dither),
            n_init=starts,
            smooth=smooth,
            max_pixels=_max_pixels(max_pixels),
            format=out_format,
            strip=strip,
            skip_if_larger=skip_if_larger,
            scheduler_timeout=scheduler_timeout,
        )
        from kmpress import batch, pipes

        job = pipes.plan_pipe(paths, out_dir, options, suffix=suffix, force=force)
        if job is not None:
            doc[STDOUT_IS_IMAGE] = job.to_stdout
            raise typer.Exit(_run_pipe(job, options, as_json, quiet, debug))

        run: Callable[..., Iterator[FileResult]] = batch.compress_many
        if scheduler is not None:
            # Dask only now (kmpress --help stays fast); missing -> one line and exit 2
            from kmpress import dask_batch

            dask_batch.import_distributed()
            dask_batch.check_address(scheduler)  # a typo fails before the files are listed

            def run_dask(plan, on_stage=None, **kw):  # a cluster's workers report no stages
                # Dask logs a lost scheduler as tracebacks; the batch's results say it in one line
                with nullcontext() if debug else dask_batch.quiet_logs():
                    yield from dask_batch.compress_many_dask(plan, scheduler=scheduler, **kw)

            run = run_dask

        plan = batch.plan_batch(paths, options, out_dir=out_dir, suffix=suffix, recursive=recursive, force=force)
        done = doc.setdefault("files", [])  # an interrupted run's document lists what finished
        if plan.n_found == 0:
            from .render import error_line

            for it in plan.items:
                error_line(f"{it.src}: {it.reason}")
                done.append({"src": str(it.src), "dst": None, "status": "error", "message": it.reason})
            raise _fail(f"no image found in {', '.join(map(str, paths))}", EXIT_USAGE, "compress", as_json, doc)
        t0 = time.perf_counter()
        results = []
        from .render import progress

        with progress(len(plan.to_compress), _want_progress(quiet, as_json)) as (started, finished, staged):
            for r in run(plan, jobs=jobs, on_start=started, on_stage=staged):
                results.append(r)
                done.append(r.as_dict())
                finished(r.src)
                if debug and r.detail:
                    sys.stderr.write(r.detail)
        code = _report_compress(results, done, time.perf_counter() - t0, plan.k, plan.target_psnr, as_json, quiet)
    raise typer.Exit(code)


@app.command(epilog=EXIT_CODES_HELP)
def demo(
    out_dir: DemoOutDirOpt = Path("kmpress-demo"),
    seed: SeedOpt = opt.default("seed"),
    space: SpaceOpt = opt.default("colorspace"),
    dither: DitherOpt = None,
    no_dither: NoDitherOpt = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Compress the bundled sample photo at K = 4, 16 and 64 and write a side-by-side comparison.

    Writes <out-dir>/astronaut-k4.png, -k16.png, -k64.png and comparison.png (original and each K,
    labelled with K and PSNR), then prints the table.
    """
    with _errors(debug, "demo", as_json, owns_process=True):
        options = opt.Options(seed=seed, colorspace=space, dither=dither_option(dither, no_dither))
        from kmpress import batch, report

        if not as_json:
            print(
                "compressing the sample at K = 4, 16, 64 (the very first run compiles the kernels, ~20 s) ...",
                file=sys.stderr,
                flush=True,
            )
        t0 = time.perf_counter()
        results, sheet = report.run_demo(out_dir, options=options)
        totals = batch.summarize(results, time.perf_counter() - t0)
        code = _batch_exit_code(totals)
        if as_json:
            _print_json(
                {
                    "command": "demo",
                    "files": [r.as_dict() for r in results],
                    "comparison": None if sheet is None else str(sheet),
                    "summary": totals,
                    "exit_code": code,
                }
            )
        else:
            from .render import print_summary, stdout_console

            print_summary(
                results, totals, quiet=False, title="kmpress demo: the bundled sample at K = 4, 16, 64", by_output=True
            )
            if sheet is not None:
                stdout_console().print(f"side-by-side comparison: {sheet}", markup=False)
    raise typer.Exit(code)


@app.command(epilog=EXIT_CODES_HELP)
def info(
    file: InfoFileArg,
    against: AgainstOpt = None,
    palette: PaletteOpt = None,
    max_pixels: MaxPixelsOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show an image's size, mode, palette size and bit depth; with --against, its PSNR; with
    --palette, write its palette as a swatch picture."""
    with _errors(debug, "info", as_json, owns_process=True):
        from kmpress import report

        facts = report.describe_image(file, against, max_pixels=_max_pixels(max_pixels))
        if palette is not None:
            facts.update(report.palette_swatch(file, palette))
        if as_json:
            _print_json({"command": "info", **facts, "exit_code": EXIT_OK})
        else:
            from .render import print_info

            print_info(facts)


@app.command(name="sweep", epilog=EXIT_CODES_HELP)
def sweep_cmd(
    file: SweepFileArg,
    ks: KsOpt = "2..64",
    step: StepOpt = 1,
    out_dir: SweepOutDirOpt = Path("kmpress-sweep"),
    seed: SeedOpt = opt.default("seed"),
    space: SpaceOpt = opt.default("colorspace"),
    dither: DitherOpt = None,
    no_dither: NoDitherOpt = False,
    max_iter: SweepMaxIterOpt = opt.default("max_iter"),
    tol: TolOpt = opt.default("tol"),
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """The elbow study: quantize FILE at every K in one pass (each K warm-started from the one
    before) and report the k-means cost (inertia), PSNR, mean delta E, PNG bytes and seconds per K.

    Prints the table and writes it as CSV, a plot of cost and time against K (needs matplotlib:
    pip install "kmpress[plot]"; without it the rest is still written) and a contact sheet of the
    reconstructed images labelled with K and PSNR.
    """
    with _errors(debug, "sweep", as_json, owns_process=True):
        options = opt.Options(
            seed=seed, max_iter=max_iter, tol=tol, colorspace=space, dither=dither_option(dither, no_dither)
        )
        from kmpress import ksweep, report

        values = ksweep.parse_ks(ks, step)
        if not as_json:
            print(
                f"sweeping {file} at {len(values)} values of K ({values[0]}..{values[-1]}) ...",
                file=sys.stderr,
                flush=True,
            )
        from .render import sweep_progress

        with sweep_progress(len(values), _want_progress(False, as_json)) as on_row:
            files = report.write_sweep(file, out_dir, values, options=options, on_row=on_row)
        if as_json:
            _print_json({"command": "sweep", "src": str(file), **files.as_dict(), "exit_code": EXIT_OK})
        else:
            from .render import print_sweep

            print_sweep(files, str(file))
        if files.plot_error:
            from .render import error_line

            error_line(files.plot_error)


app.command(name="serve")(serve_command)  # kmpress serve: cli/server.py


def main() -> None:
    """Run the app as the ``kmpress`` command: Ctrl-C and SIGTERM are handled throughout (see
    :func:`kmpress.cli.run`, the console entry point, which calls this)."""
    from kmpress import interrupts

    try:
        with interrupts.handling_signals():
            app(prog_name="kmpress")
    except KeyboardInterrupt:  # outside a command body
        word, code = _interruption()
        print(f"kmpress: {word}", file=sys.stderr)
        sys.exit(code)


if __name__ == "__main__":
    main()
