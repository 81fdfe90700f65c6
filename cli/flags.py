"""What the kmpress commands share: the exit codes, the flag of each engine option (to name it in
error messages), and the declarations of the flags more than one command takes. Pure Python and
typer only, so that ``kmpress --help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from kmpress import options as opt

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TARGET = 3
#: --skip-if-larger left every compressed file unwritten: pngquant's code for the same outcome,
#: so that scripts written for pngquant keep working.
EXIT_LARGER = 98
#: The Dask scheduler was lost mid-batch (--scheduler): sysexits.h's EX_TEMPFAIL, "a temporary
#: failure: try again": the same command finishes the batch (written files are skipped).
EXIT_SCHEDULER_LOST = 75
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

EXIT_CODES_HELP = (
    "Exit codes: 0 all done (skipped files included); 1 one or more inputs failed (the others are "
    "still written); 2 usage error (bad option, no input given or found); 130 interrupted (Ctrl-C); "
    "143 terminated (SIGTERM). 3: with --strict, a --quality target out of reach within --max-colors "
    "(such files are not written; any other failure gives 1). 98: with --skip-if-larger, no file "
    "written because every output would have been larger than its input (as pngquant). 75: with "
    "--scheduler, the Dask scheduler was lost mid-batch (the files not done are listed; run the "
    "same command again to do them). With "
    "--json, stdout holds one JSON document whatever happens (an error: its message and exit_code)."
)

#: The flag of each engine option, to name it in error messages.
FLAGS = {
    "k": "-k/--colors",
    "target_psnr": "--quality",
    "max_colors": "--max-colors",
    "strict": "--strict",
    "seed": "--seed",
    "max_iter": "--max-iter",
    "tol": "--tol",
    "colorspace": "--space",
    "dither": "--dither",
    "n_init": "--starts",
    "smooth": "--smooth",
    "max_pixels": "--max-pixels",
    "jobs": "--jobs",
    "format": "--format",
    "strip": "--strip",
    "skip_if_larger": "--skip-if-larger",
    "scheduler_timeout": "--scheduler-timeout",
}

def _max_pixels(value: int | None):
    """--max-pixels to the option: not given is "auto", 0 is no limit."""
    return opt.DEFAULT_MAX_PIXELS if value is None else (None if value == 0 else value)


MaxPixelsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--max-pixels",
        help="Refuse images with more pixels (0 = no limit).  [default: auto: only decompression bombs (a file far "
        "too small for the size it declares), over 2^30 pixels, or beyond this machine's available memory]",
        show_default=False,
    ),
]


DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the k-means++ initialisation (same seed, same output).")]
SpaceOpt = Annotated[
    str,
    typer.Option("--space", help="Colour space to cluster in: rgb or oklab (perceptual; see docs/quality.md).", metavar="rgb|oklab"),
]
DitherOpt = Annotated[bool, typer.Option("--dither/--no-dither", help="Floyd-Steinberg error diffusion when remapping.")]
StartsOpt = Annotated[
    int,
    typer.Option("--starts", help="k-means runs from different seeds; the lowest cost wins (~N times the clustering time).", metavar="N"),
]
SmoothOpt = Annotated[
    float,
    typer.Option(
        "--smooth",
        help="Rate-aware remap: a pixel may keep its neighbour's colour when that costs at most X times the "
        "mean squared error more (smaller files; 0.3 with --starts 4 beat pngquant on size and PSNR, see docs/quality.md).",
        metavar="X",
    ),
]
QualityOpt = Annotated[
    Optional[float],
    typer.Option(
        "--quality",
        help="Target PSNR in dB instead of -k: the smallest K (up to --max-colors) reaching it. Outputs are named <stem>-q<PSNR>.png.",
        metavar="PSNR_DB",
        show_default=False,
    ),
]
MaxColorsOpt = Annotated[int, typer.Option("--max-colors", help="Largest K --quality may use, 1-256.")]
StrictOpt = Annotated[
    bool,
    typer.Option("--strict", help="With --quality: fail (exit code 3, nothing written) when --max-colors colours cannot reach the target, instead of writing the --max-colors result."),
]
MaxIterOpt = Annotated[int, typer.Option("--max-iter", help="Most k-means iterations per image.")]
TolOpt = Annotated[float, typer.Option("--tol", help="Convergence tolerance (relative centroid shift).")]
