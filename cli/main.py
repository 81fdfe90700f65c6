"""The ``kmpress`` typer app: ``compress``, ``demo``, ``sweep``, ``info`` and ``warm``.

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
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from kmpress import options as opt
from kmpress.errors import (
    ImageReadError,
    InvalidParameterError,
    KmpressError,
    TargetNotReachedError,
)

if TYPE_CHECKING:  # loaded when a command runs, not for --help
    from kmpress.results import FileResult

from . import helptext
from .flags import (  # the flags' declarations and the exit codes
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TARGET,
    EXIT_TERMINATED,
    EXIT_USAGE,
    AgainstOpt,
    ColorsOpt,
    DebugOpt,
    DemoOutDirOpt,
    DitherOpt,
    DitherStrengthOpt,
    ForceOpt,
    FormatOpt,
    InfoFileArg,
    JobsOpt,
    JsonOpt,
    KsOldOpt,
    KsOpt,
    MaxColorsOpt,
    MaxIterOpt,
    MaxPixelsOpt,
    NoDitherOpt,
    OutDirOpt,
    PaletteOpt,
    PathsArg,
    ProcessesOpt,
    PsnrOpt,
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
from .inputs import nothing_found, stdin_file
from .outcome import batch_exit_code, exit_with, flag_message, print_json, report_compress, run_pipe
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
            print_json({"command": command, "error": e.format_message(), "exit_code": e.exit_code})
            sys.exit(e.exit_code)
        except typer.Abort:
            raise exit_with("aborted", EXIT_FAILED, command, True) from None
        sys.exit(code if isinstance(code, int) else EXIT_OK)


app = typer.Typer(
    name="kmpress",
    cls=_App,
    help=helptext.APP.help(),
    epilog=helptext.APP.epilog(),
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
#: See :func:`_errors`: (files written, files to compress) of a batch so far.
PROGRESS = "_progress"


@contextmanager
def _errors(debug: bool, command: str, as_json: bool = False, owns_process: bool = False, notice: bool = True):
    """Turn what escapes a command into one line on stderr (and the JSON document) and an exit code.

    InvalidParameterError (a bad option value) -> 2; TargetNotReachedError -> 3; any other
    KmpressError and an OSError on a user path -> 1; Ctrl-C -> 130, SIGTERM -> 143; anything else
    is a bug: one line as well, and the traceback with ``--debug``. ``owns_process``: the command
    runs kmpress's work in this process (see :func:`_kmpress_process`) and, with ``notice``, says
    on stderr when numba kernels compile (a first run). Yields a dict the command may fill with
    what an error's JSON document should carry (e.g. the files done so far); its key
    ``STDOUT_IS_IMAGE`` set says standard output holds an image: no document goes there then;
    its key ``PROGRESS`` says how far a batch got, for the line an interruption prints.
    """
    doc: dict[str, Any] = {}

    def fail(message: str, code: int) -> typer.Exit:
        shown = {k: v for k, v in doc.items() if k not in (STDOUT_IS_IMAGE, PROGRESS)}
        return exit_with(message, code, command, as_json and not doc.get(STDOUT_IS_IMAGE), shown)

    from .progress import compile_notice  # rich itself loads only when something is drawn

    try:
        with _kmpress_process() if owns_process else nullcontext(), compile_notice(notice and owns_process):
            yield doc
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        if debug:
            import traceback

            traceback.print_exc()
        word, code = _interruption()
        written, total = doc.get(PROGRESS, (0, 0))
        if total > 1:
            word += f": {written} of {total} written; run the same command again to go on"
        raise fail(word, code) from None
    except Exception as e:
        if debug:
            import traceback

            traceback.print_exc()
        if isinstance(e, TargetNotReachedError):
            raise fail(flag_message(e), EXIT_TARGET) from None
        if isinstance(e, ImageReadError):  # an unreadable input, also when a missing extra is why
            raise fail(str(e), EXIT_FAILED) from None
        if isinstance(e, InvalidParameterError):
            raise fail(flag_message(e), EXIT_USAGE) from None
        if isinstance(e, KmpressError):
            raise fail(flag_message(e), EXIT_FAILED) from None
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


@contextmanager
def _closed(results: Iterator[Any]) -> Iterator[Iterator[Any]]:
    """Yield ``results``, closed (when it can be) however the loop over it ends."""
    try:
        yield results
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def _want_progress(quiet: bool, as_json: bool) -> bool:
    return not quiet and not as_json and sys.stderr.isatty()


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
    """The options before a command (``--version``); the app's help is :data:`helptext.APP`."""


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


@app.command(**helptext.COMPRESS.command())
def compress(
    paths: PathsArg = None,
    colors: ColorsOpt = None,
    quality: QualityOpt = None,
    psnr: PsnrOpt = None,
    max_colors: MaxColorsOpt = opt.default("max_colors"),
    strict: StrictOpt = opt.default("strict"),
    space: SpaceOpt = opt.default("colorspace"),
    dither: DitherOpt = None,
    no_dither: NoDitherOpt = False,
    dither_strength: DitherStrengthOpt = None,
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
    """Compress images to palette files (see :data:`helptext.COMPRESS`)."""
    if not paths:
        raise exit_with(
            "no input given (try: kmpress compress PHOTO.jpg, or kmpress --help)", EXIT_USAGE, "compress", as_json
        )
    with _errors(debug, "compress", as_json, owns_process=True, notice=not quiet) as doc:
        low, target = (None, None) if quality is None else opt.parse_quality(quality)
        options = opt.Options(
            k=colors,
            target_quality=target,
            min_quality=low,
            target_psnr=psnr,
            max_colors=max_colors,
            strict=strict,
            seed=seed,
            max_iter=max_iter,
            tol=tol,
            colorspace=space,
            dither=dither_option(dither, no_dither),
            dither_strength=dither_strength,
            n_init=starts,
            smooth=smooth,
            max_pixels=_max_pixels(max_pixels),
            format=out_format,
            strip=strip,
            skip_if_larger=skip_if_larger,
            # quiet without --json shows no figures: the ones that cost a pass over the pixels are
            # left out (the files are the same)
            measure=as_json or not quiet,
            scheduler_timeout=scheduler_timeout,
        )
        from kmpress import batch, pipes

        job = pipes.plan_pipe(paths, out_dir, options, suffix=suffix, force=force)
        if job is not None:
            doc[STDOUT_IS_IMAGE] = job.to_stdout
            raise typer.Exit(run_pipe(job, options, as_json, quiet, debug))

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
            raise nothing_found(plan, paths, recursive, as_json, doc)
        t0 = time.perf_counter()
        results = []
        from .progress import progress
        from .render import row_names

        srcs = [str(it.src) for it in plan.items]
        names = dict(zip(srcs, row_names(srcs, [p for p in paths if p.is_dir()]), strict=True))
        bar = progress(len(plan.to_compress), _want_progress(quiet, as_json), names=names)
        written, total = 0, len(plan.to_compress)
        doc[PROGRESS] = (written, total)
        # closed however the loop ends: the batch removes the output folders it left empty
        with bar as (started, finished, staged), _closed(run(plan, jobs=jobs, on_start=started, on_stage=staged)) as rs:
            for r in rs:
                written += r.status == "ok"
                doc[PROGRESS] = (written, total)
                results.append(r)
                done.append(r.as_dict())
                finished(r.src)
                if debug and r.detail:
                    sys.stderr.write(r.detail)
        order = {src: i for i, src in enumerate(srcs)}  # the table and the document in input order
        results.sort(key=lambda r: order.get(r.src, len(order)))
        done = [r.as_dict() for r in results]
        code = report_compress(results, done, time.perf_counter() - t0, plan.options, as_json, quiet, names)
    raise typer.Exit(code)


@app.command(**helptext.DEMO.command())
def demo(
    out_dir: DemoOutDirOpt = Path("kmpress-demo"),
    seed: SeedOpt = opt.default("seed"),
    space: SpaceOpt = opt.default("colorspace"),
    dither: DitherOpt = None,
    no_dither: NoDitherOpt = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Compress the bundled sample photo at K = 4, 16 and 64 (see :data:`helptext.DEMO`)."""
    with _errors(debug, "demo", as_json, owns_process=True):
        options = opt.Options(seed=seed, colorspace=space, dither=dither_option(dither, no_dither))
        from kmpress import batch, report

        if not as_json:
            print("compressing the sample at K = 4, 16, 64 ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        results, sheet = report.run_demo(out_dir, options=options)
        sky, banding = report.run_gradient_demo(out_dir, options=options)
        totals = batch.summarize(results + sky, time.perf_counter() - t0)
        code = batch_exit_code(totals)
        if as_json:
            print_json(
                {
                    "command": "demo",
                    "files": [r.as_dict() for r in results + sky],
                    "comparison": None if sheet is None else str(sheet),
                    "dithering": None if banding is None else str(banding),
                    "summary": totals,
                    "exit_code": code,
                }
            )
        else:
            from .render import print_summary, stdout_console

            title = "kmpress demo: the bundled sample at K = 4, 16, 64; a gradient at K = 8"
            print_summary(results + sky, totals, quiet=False, title=title, by_output=True)
            for what, path in (("side-by-side comparison", sheet), ("dithering on a gradient", banding)):
                if path is not None:
                    stdout_console().print(f"{what}: {path}", markup=False)
    raise typer.Exit(code)


@app.command(**helptext.INFO.command())
def info(
    file: InfoFileArg,
    against: AgainstOpt = None,
    palette: PaletteOpt = None,
    max_pixels: MaxPixelsOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Describe an image (see :data:`helptext.INFO`)."""
    with _errors(debug, "info", as_json, owns_process=True), stdin_file(file) as path:
        from kmpress import report

        facts = report.describe_image(path, against, max_pixels=_max_pixels(max_pixels))
        if palette is not None:
            facts.update(report.palette_swatch(path, palette))
        facts["path"] = str(file)
        if as_json:
            print_json({"command": "info", **facts, "exit_code": EXIT_OK})
        else:
            from .render import print_info

            print_info(facts)


@app.command(name="sweep", **helptext.SWEEP.command())
def sweep_cmd(
    file: SweepFileArg,
    ks: KsOpt = "2..64",
    ks_old: KsOldOpt = None,
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
    """Quantize FILE at every K of a range (see :data:`helptext.SWEEP`)."""
    with _errors(debug, "sweep", as_json, owns_process=True):
        options = opt.Options(
            seed=seed, max_iter=max_iter, tol=tol, colorspace=space, dither=dither_option(dither, no_dither)
        )
        from kmpress import ksweep, report

        values = ksweep.parse_ks(ks if ks_old is None else ks_old, step)
        if not as_json:
            print(
                f"sweeping {file} at {len(values)} values of K ({values[0]}..{values[-1]}) ...",
                file=sys.stderr,
                flush=True,
            )
        from .progress import sweep_progress

        with sweep_progress(len(values), _want_progress(False, as_json)) as on_row:
            files = report.write_sweep(file, out_dir, values, options=options, on_row=on_row)
        if as_json:
            print_json({"command": "sweep", "src": str(file), **files.as_dict(), "exit_code": EXIT_OK})
        else:
            from .render import print_sweep

            print_sweep(files, str(file))
        if files.plot_error:
            from .render import error_line

            error_line(files.plot_error)


@app.command(**helptext.WARM.command())
def warm(processes: ProcessesOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Compile every numba kernel now, several at once (see :data:`helptext.WARM`)."""
    with _errors(debug, "warm", as_json, owns_process=True):
        from kmpress import backends

        facts = backends.warm(processes)
        if as_json:
            print_json({"command": "warm", **facts, "exit_code": EXIT_OK})
        else:
            from .render import print_warm

            print_warm(facts)


app.command(name="serve", **helptext.SERVE.command())(serve_command)  # kmpress serve: cli/server.py


def main() -> None:
    """Run the app as the ``kmpress`` command: Ctrl-C and SIGTERM are handled throughout (see
    :func:`kmpress.cli.run`, the console entry point, which calls this)."""
    from kmpress import interrupts

    try:
        with interrupts.handling_signals():
            app(prog_name="kmpress")
    except KeyboardInterrupt:  # outside a command body
        from .render import error_line

        word, code = _interruption()
        error_line(word)
        sys.exit(code)


if __name__ == "__main__":
    main()
