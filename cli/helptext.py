"""Declare what each command's ``--help`` says beyond its flags.

That is a line for the command list, a description, examples, and the exit codes that command
can give.

A command declares one :class:`CommandHelp` and passes :meth:`CommandHelp.command` to
``app.command``::

    WARM = CommandHelp(
        summary="Compile the kernels now, not on the first photo.",
        text="...",
        examples=(("kmpress warm", "compile (or load) every kernel"),),
        exit_codes=(0, 1, 130, 143),
    )

    @app.command(**WARM.command())
    def warm(...): ...

The meanings of the exit codes are :data:`EXIT_MEANINGS`' (one table for every command);
``exit_notes`` words one differently for a command. Pure Python, so that ``--help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .flags import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LARGER,
    EXIT_OK,
    EXIT_SCHEDULER_LOST,
    EXIT_TARGET,
    EXIT_TERMINATED,
    EXIT_USAGE,
)

#: What each exit code means, in every command that can give it.
EXIT_MEANINGS: dict[int, str] = {
    EXIT_OK: "done (skipped files included)",
    EXIT_FAILED: "one or more inputs failed (the others are still written)",
    EXIT_USAGE: "usage error (bad option, no input given or found)",
    EXIT_TARGET: "a --quality MIN or --strict target out of reach (file not written)",
    EXIT_SCHEDULER_LOST: "--scheduler: the Dask scheduler was lost (run the command again)",
    EXIT_LARGER: "--skip-if-larger: nothing written, every output would be larger",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_TERMINATED: "terminated (SIGTERM)",
}

#: The codes every command can give.
COMMON_EXIT_CODES = (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED)

#: click prints a paragraph that starts with this line as it is written (no re-wrapping).
_VERBATIM = "\b\n"


@dataclass(frozen=True)
class CommandHelp:
    """One command's help text.

    Attributes
    ----------
    summary : str; its line in ``kmpress --help``'s command list (short: never cut there)
    text : str; the description under the usage line (paragraphs separated by blank lines)
    examples : tuple of (command line, what it does); shown under the description, each command
        line whole on a line of its own (to copy), what it does indented below it
    exit_codes : tuple of int; the codes the command can give, in the order shown
    exit_notes : mapping of int to str; this command's wording of a code (default
        :data:`EXIT_MEANINGS`)
    json : bool; the command has ``--json`` (the epilog says what stdout then holds)
    """

    summary: str
    text: str
    examples: tuple[tuple[str, str], ...]
    exit_codes: tuple[int, ...] = COMMON_EXIT_CODES
    exit_notes: Mapping[int, str] = field(default_factory=dict)
    json: bool = True

    def help(self) -> str:
        """Return the description and the examples, as click prints them."""
        lines = [f"  {line}\n      {what}" for line, what in self.examples]
        return f"{self.text}\n\n{_VERBATIM}Examples:\n" + "\n".join(lines)

    def epilog(self) -> str:
        """Return the exit codes this command can give, one a line, and what --json promises."""
        lines = [f"  {code:>3}  {self.exit_notes.get(code, EXIT_MEANINGS[code])}" for code in self.exit_codes]
        out = f"{_VERBATIM}Exit codes:\n" + "\n".join(lines)
        if self.json:
            out += "\n\nWith --json, stdout holds one JSON document whatever happens (an error: its message and "
            out += "exit_code)."
        return out

    def command(self) -> dict[str, Any]:
        """Return the keyword arguments of ``app.command`` (or ``typer.Typer``) for this help."""
        return {"help": self.help(), "short_help": self.summary, "epilog": self.epilog()}


APP = CommandHelp(
    summary="",
    text="Compress photos to small palette PNGs with k-means colour quantization (Numba kernels). "
    "Each command's --help has its own examples and exit codes.",
    examples=(
        ("kmpress compress ~/Pictures/2024-trip -r -o small", "every photo below the folder -> small/..."),
        ("kmpress compress photo.jpg -k 32", "-> photo-k32.png beside it"),
        ("kmpress demo", "the bundled sample at K = 4, 16, 64, side by side"),
    ),
    json=False,
)

COMPRESS = CommandHelp(
    summary="Compress photos to K-colour palette PNGs (or WebP).",
    text="Compress images to palette PNGs named <stem>-k<K>.png (<stem>-q<Q>.png with --quality, "
    "<stem>-psnr<DB>.png with --psnr).\n\n"
    "Existing outputs are skipped unless --force; an input is never overwritten. With -o, the files found in a "
    "folder's sub-folders go to the same sub-folders under it; inputs that would still write the same output "
    "(a.jpg beside a.png) fail, the others are done. Writes are atomic: an interrupted run leaves no partial "
    "file, and running the same command again goes on where it stopped.",
    examples=(
        ("kmpress compress photo.jpg", "-> photo-k16.png beside it"),
        ("kmpress compress ~/Pictures/2024-trip -r -o small", "sub-folders too, mirrored under small/"),
        ("kmpress compress photos/ -k 64 --format webp", "64 colours, lossless WebP"),
        ("kmpress compress photo.jpg --quality 70", "the smallest file scoring SSIMULACRA 2 70"),
        ("kmpress compress photo.jpg --quality 60-80", "aim at 80; write nothing below 60"),
        ("cat photo.jpg | kmpress compress - > small.png", "standard input to standard output"),
    ),
    exit_codes=(EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TARGET, EXIT_LARGER, EXIT_SCHEDULER_LOST)
    + (EXIT_INTERRUPTED, EXIT_TERMINATED),
)

DEMO = CommandHelp(
    summary="Compress the bundled sample at K = 4, 16, 64.",
    text="Compress the bundled sample photo at K = 4, 16 and 64 and a gradient at K = 8 with and without "
    "dithering.\n\n"
    "Writes <out-dir>/astronaut-k4.png, -k16.png, -k64.png and comparison.png (original and each K, labelled "
    "with K and PSNR), sky.png, sky-k8-dither.png, sky-k8-nodither.png and dithering.png (banding against "
    "dithering), then prints the table.",
    examples=(
        ("kmpress demo", "-> kmpress-demo/"),
        ("kmpress demo -o /tmp/d --space oklab", "cluster in OKLab instead"),
    ),
    exit_notes={EXIT_FAILED: "a file could not be written"},
)

INFO = CommandHelp(
    summary="Show an image's size, palette, bit depth, PSNR.",
    text="Show an image's size, mode, palette size and bit depth; with --against, its PSNR and SSIMULACRA 2 "
    "score; with --palette, write its palette as a swatch picture. FILE - reads standard input.",
    examples=(
        ("kmpress info photo-k16.png", "size, mode, palette, metadata kept"),
        ("kmpress info photo-k16.png --against photo.jpg", "and its PSNR against the original"),
        ("kmpress info photo-k16.png --palette swatch.png", "and its palette as a picture"),
    ),
    exit_notes={EXIT_FAILED: "the file (or --against's) cannot be read", EXIT_OK: "done"},
)

SWEEP = CommandHelp(
    summary="Try many K on one photo: cost, PSNR, size per K.",
    text="The elbow study: quantize FILE at every K in one pass (each K warm-started from the one before) and "
    "report the k-means cost (inertia), PSNR, mean delta E, PNG bytes and seconds per K.\n\n"
    "Prints the table and writes it as CSV, a plot of cost and time against K (needs matplotlib: "
    'pip install "kmpress[plot]"; without it the rest is still written) and a contact sheet of the '
    "reconstructed images labelled with K and PSNR.",
    examples=(
        ("kmpress sweep photo.jpg", "K = 2..64 -> kmpress-sweep/"),
        ("kmpress sweep photo.jpg -k 4,16,64", "three values of K"),
        ("kmpress sweep photo.jpg -k 2..128 --step 8", "every 8th K"),
    ),
    exit_notes={EXIT_FAILED: "FILE cannot be read, or an output cannot be written", EXIT_OK: "done"},
)


WARM = CommandHelp(
    summary="Compile every numba kernel now (Docker images, CI).",
    text="Compile every numba kernel now, several at once, into numba's cache (NUMBA_CACHE_DIR chooses the "
    "folder), and say where it is: for a Docker image or a CI machine, whose first run then only loads them. "
    "Kernels already cached for this CPU and numba are only loaded. Until then, runs load the prebuilt kernels "
    "shipped with the package (compiled for any x86-64-v3 CPU, a little slower) and compile this CPU's behind "
    "their work.",
    examples=(
        ("kmpress warm", "compile what is missing, one process per core"),
        ("NUMBA_CACHE_DIR=/opt/kmpress-cache kmpress warm -p 4", "into that folder, in 4 processes"),
    ),
    exit_notes={EXIT_FAILED: "a kernel could not be compiled", EXIT_OK: "every kernel is compiled or cached"},
)


SERVE = CommandHelp(
    summary="Keep kmpress warm for the kmpress commands that follow (opt-in).",
    text="Keep kmpress warm for the kmpress commands that follow (opt-in).\n\n"
    "While it runs, every kmpress command of this user and installation runs in it, without the start-up "
    "(~0.4 s), with the same output, files and exit codes; when none answers, commands run in their own "
    "process as before. Set KMPRESS_SERVER=0 to never use it. The socket is in a folder only you can enter; "
    "the server exits after --idle-timeout, and when kmpress is upgraded.",
    examples=(
        ("kmpress serve --detach", "start it in the background; returns once it answers"),
        ("kmpress serve --status", "exit 0 when one runs, 1 when none"),
        ("kmpress serve --stop", "stop it"),
    ),
    exit_codes=(EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED),
    exit_notes={EXIT_FAILED: "--status: no server runs; else it could not start (one line says why)"},
)
