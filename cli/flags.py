"""The kmpress commands' flags.

The exit codes, the flag of each engine option (to name it in error messages), and the
declarations of the flags (help text, metavar, default shown). Pure Python and typer only, so
that ``kmpress --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kmpress import options as opt
from kmpress.errors import InvalidParameterError

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

#: The flag of each engine option, to name it in error messages.
FLAGS = {
    "k": "-k/--colors",
    "target_quality": "--quality",
    "min_quality": "--quality",
    "target_psnr": "--psnr",
    "max_colors": "--max-colors",
    "strict": "--strict",
    "seed": "--seed",
    "max_iter": "--max-iter",
    "tol": "--tol",
    "colorspace": "--space",
    "dither": "--dither",
    "dither_strength": "--dither-strength",
    "n_init": "--starts",
    "smooth": "--smooth",
    "max_pixels": "--max-pixels",
    "jobs": "--jobs",
    "format": "--format",
    "strip": "--strip",
    "skip_if_larger": "--skip-if-larger",
    "scheduler_timeout": "--scheduler-timeout",
}


def flag_text(message: str, fields: tuple[str, ...] | list[str] = ()) -> str:
    """Put an engine message in the command line's words.

    Each option of ``fields`` that it names (``k``, ``max_colors``) becomes its flag
    (``-k/--colors``, ``--max-colors``) through :data:`FLAGS`, the one mapping of option fields
    to flags; the flags of those it does not name follow in parentheses.
    """
    import re

    unnamed = []
    for f in fields:
        flag = FLAGS.get(f)
        if flag is None:
            continue
        # a whole option name: not part of a word, a hyphenated word (k-means) or a flag
        message, n = re.subn(rf"(?<![\w-]){re.escape(f)}(?![\w-])", flag, message)
        if not n:
            unnamed.append(flag)
    return f"{message} ({', '.join(unnamed)})" if unnamed else message


def _max_pixels(value: int | None):
    """--max-pixels to the option: not given is "auto", 0 is no limit."""
    return opt.DEFAULT_MAX_PIXELS if value is None else (None if value == 0 else value)


MaxPixelsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-pixels",
        help="Refuse images with more pixels than this (0 = no limit).  [default: auto: only decompression bombs "
        "(a file far too small for the size it declares), over 2^30 pixels, or beyond this machine's available "
        "memory]",
        metavar="N|0",
        show_default=False,
    ),
]


DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else there.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the k-means++ initialisation (same seed, same output).")]
SpaceOpt = Annotated[
    str,
    typer.Option(
        "--space",
        help="Colour space to cluster in: rgb or oklab (perceptual; see docs/quality.md).",
        metavar="rgb|oklab",
    ),
]
DitherOpt = Annotated[
    str | None,
    typer.Option(
        "--dither",
        help="Error diffusion when remapping: adaptive (where banding would show, little in texture; weights the "
        "palette by contrast) or floyd-steinberg (uniform).  [default: adaptive]",
        metavar="adaptive|floyd-steinberg",
        show_default=False,
    ),
]


def dither_option(method: str | None, off: bool) -> str | None:
    """Turn ``--dither METHOD`` and ``--no-dither`` into the option (the method is checked by Options)."""
    if off and method is not None:
        raise InvalidParameterError("give --dither or --no-dither, not both", fields=("dither",))
    return None if off else opt.default("dither") if method is None else method


NoDitherOpt = Annotated[
    bool,
    typer.Option(
        "--no-dither",
        help="No dithering: each pixel its colour's nearest entry, the palette fitted to plain pixel counts "
        "(smaller files, bands in skies).",
    ),
]
DitherStrengthOpt = Annotated[
    float | None,
    typer.Option(
        "--dither-strength",
        help="How much of the error the dither diffuses, 0-1. adaptive: the least share any pixel takes, more "
        "where banding would show (default 0.5 up to 64 colours, rising to 0.7 at 256; 1: colours kept best, "
        "larger files); floyd-steinberg: the share everywhere (default 0.75).",
        metavar="S",
        show_default=False,
    ),
]
StartsOpt = Annotated[
    int,
    typer.Option(
        "--starts",
        help="k-means runs from different seeds; the lowest cost wins (~N times the clustering time).",
        metavar="N",
    ),
]
SmoothOpt = Annotated[
    float,
    typer.Option(
        "--smooth",
        help="Rate-aware remap: a pixel may keep its neighbour's colour when that costs at most X times the "
        "mean squared error more (smaller files; 0.3 with --starts 4 beat pngquant on size and PSNR, see "
        "docs/quality.md).",
        metavar="X",
    ),
]
QualityOpt = Annotated[
    str | None,
    typer.Option(
        "--quality",
        help="Perceptual target instead of -k: a SSIMULACRA 2 score 0-100 (~90 visually lossless, 70 high, 50 "
        "medium). The smallest file reaching MAX is written (K up to --max-colors, and dithering or none); one "
        "below MIN is not written (exit code 3), as pngquant's --quality MIN-MAX. Outputs are named "
        "<stem>-q<MAX>.png (<stem>-q<MIN>-<MAX>.png).",
        metavar="MAX|MIN-MAX",
        show_default=False,
    ),
]
PsnrOpt = Annotated[
    float | None,
    typer.Option(
        "--psnr",
        help="PSNR target in dB instead of -k: the smallest K (up to --max-colors) reaching it. Outputs are named "
        "<stem>-psnr<DB>.png.",
        metavar="DB",
        show_default=False,
    ),
]
MaxColorsOpt = Annotated[int, typer.Option("--max-colors", help="Largest K --quality or --psnr may use, 1-256.")]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="With --quality N or --psnr: fail (exit code 3, nothing written) when --max-colors colours cannot "
        "reach the target, instead of writing the --max-colors result (--quality N --strict is --quality N-N).",
    ),
]
MaxIterOpt = Annotated[int, typer.Option("--max-iter", help="Most k-means iterations per image.")]
TolOpt = Annotated[float, typer.Option("--tol", help="Convergence tolerance (relative centroid shift).")]


# The flags of compress alone.
PathsArg = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Image files and/or folders (folders: every image Pillow reads in them); - reads one image from "
        "standard input (the result goes to standard output unless -o DIR).",
        metavar="PATH...",
        show_default=False,
    ),
]
ColorsOpt = Annotated[
    int | None,
    typer.Option(
        "-k",
        "--colors",
        help=f"Colours in the palette, 1-256 (not with --quality or --psnr).  [default: {opt.DEFAULT_K}]",
        show_default=False,
    ),
]
OutDirOpt = Annotated[
    Path | None,
    typer.Option(
        "-o",
        "--out-dir",
        help="Write the outputs here (created if missing) instead of beside each input, each of several folders "
        "under a sub-folder of its name; - writes the one input's image to standard output.",
    ),
]
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        help="Output format: png (indexed PNG) or webp (lossless WebP with exactly the same colours: 10-17 % "
        "smaller, 5-9x slower to encode).",
        metavar="png|webp",
    ),
]
StripOpt = Annotated[
    bool,
    typer.Option(
        "--strip", help="Write no metadata (by default the ICC profile and the EXIF (date, camera, GPS) are kept)."
    ),
]
SkipIfLargerOpt = Annotated[
    bool,
    typer.Option(
        "--skip-if-larger",
        help="Do not write an output larger than its input file (reported as skipped with both sizes; exit code 98 "
        "when no file is written for this reason).",
    ),
]
SuffixOpt = Annotated[
    str | None,
    typer.Option(
        "--suffix",
        help="Text added to the file stem; {k} becomes K, {q} the --quality (or --psnr) target.  "
        "[default: -k{k}; -q{q} with --quality; -psnr{q} with --psnr]",
        show_default=False,
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite existing outputs (default: skip them).")]
JobsOpt = Annotated[
    int | None,
    typer.Option("-j", "--jobs", help="Files compressed in parallel.  [default: one per core]", show_default=False),
]
RecursiveOpt = Annotated[bool, typer.Option("-r", "--recursive", help="Descend into sub-folders.")]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Run the batch on this Dask cluster (tcp://HOST:PORT; needs kmpress[dask]; the workers must see the "
        "files at the same paths). --jobs then limits the files in flight (default: all).",
        metavar="ADDRESS",
        show_default=False,
    ),
]
SchedulerTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--scheduler-timeout",
        help="With --scheduler: give up on a scheduler that does not answer for this long (frozen, or cut off by "
        "the network); the files not done are listed and the exit code is 75.  "
        "[default: wait as long as it takes]",
        metavar="SECONDS",
        show_default=False,
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "-q",
        "--quiet",
        help="No progress bar and no table (nor the per-pixel figures only they would show); "
        "failures still go to stderr.",
    ),
]

# The flags of warm.
ProcessesOpt = Annotated[
    int | None,
    typer.Option(
        "-p",
        "--processes",
        min=1,
        help="Kernels compiled at once, each in its own process.  [default: one per core]",
        show_default=False,
    ),
]

# The flags of demo, info and sweep.
DemoOutDirOpt = Annotated[Path, typer.Option("-o", "--out-dir", help="Folder for the demo's files.")]
InfoFileArg = Annotated[
    Path,
    typer.Argument(
        help="An image (e.g. a PNG written by kmpress); - reads it from standard input.",
        metavar="FILE",
        show_default=False,
    ),
]
AgainstOpt = Annotated[
    Path | None, typer.Option("--against", help="The original, to report the PSNR of FILE against it.")
]
PaletteOpt = Annotated[
    Path | None,
    typer.Option(
        "--palette",
        help="Write FILE's palette as a swatch image (PNG, one square per entry, 16 per row) to this path.",
        metavar="OUT.png",
        show_default=False,
    ),
]
SweepFileArg = Annotated[Path, typer.Argument(help="An image.", metavar="FILE", show_default=False)]
KsOpt = Annotated[
    str,
    typer.Option(
        "-k",
        "--colors",
        help="K values: a range 2..64 (with --step), a list 4,16,64, or both (2..8,16,32).",
        metavar="KS",
    ),
]
#: sweep's former spelling of -k/--colors, kept for scripts.
KsOldOpt = Annotated[str | None, typer.Option("--k", hidden=True)]
StepOpt = Annotated[int, typer.Option("--step", help="Step through the K range.")]
SweepOutDirOpt = Annotated[
    Path,
    typer.Option(
        "-o", "--out-dir", help="Folder for <stem>-sweep.csv, <stem>-sweep.png (plot) and <stem>-contact.png."
    ),
]
SweepMaxIterOpt = Annotated[int, typer.Option("--max-iter", help="Most k-means iterations per K.")]
