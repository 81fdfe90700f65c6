"""Standard input and output: ``kmpress compress - < photo.jpg > small.png``, as pngquant does.

``-`` as the one input reads one image from standard input; ``-o -`` (or ``-`` as the only input
without ``-o``) writes the result to standard output, and nothing else goes there. The image is
read whole before any work (an empty or truncated input is refused with one line), and the
output is written in one piece once it is complete, so a failure never leaves half an image in
the pipe. Planning follows the batch's rules (:func:`kmpress.batch.output_name` for ``-`` with
``-o DIR``: ``stdin-k16.png``; an existing output is skipped unless ``force``).

Nothing here prints; the CLI says what went wrong.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .api import CompressReport, compress
from .batch import output_name
from .errors import ImageWriteError, InvalidParameterError
from .options import Options
from .results import FileResult, run_one

#: The name that stands for standard input (as an input) and standard output (as ``-o``).
STDIO = "-"
#: The stem of the file written for standard input with ``-o DIR``.
STDIN_STEM = "stdin"


def is_stdio(path: str | os.PathLike | None) -> bool:
    """Whether a command-line path is ``-`` (standard input or output)."""
    return path is not None and os.fspath(path) == STDIO


@dataclass(frozen=True)
class PipeJob:
    """One image through standard input and/or output.

    Attributes
    ----------
    src : Path or None; the input file, None for standard input
    dst : Path or None; the output file, None for standard output
    action : "compress" or "skip" (the output file exists; ``force`` overwrites it)
    reason : why it is skipped
    """

    src: Path | None
    dst: Path | None
    action: str = "compress"
    reason: str | None = None

    @property
    def to_stdout(self) -> bool:
        return self.dst is None

    @property
    def src_name(self) -> str:
        return "<stdin>" if self.src is None else str(self.src)

    @property
    def dst_name(self) -> str:
        return "<stdout>" if self.dst is None else str(self.dst)


def plan_pipe(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None,
    options: Options,
    *,
    suffix: str | None = None,
    force: bool = False,
) -> PipeJob | None:
    """The job when standard input or output is involved (an input ``-``, or ``out_dir`` ``-``),
    else None (an ordinary batch).

    Raises
    ------
    InvalidParameterError
        ``-`` among other inputs; ``-o -`` with more than one input, or with a folder.
    """
    from_stdin = any(is_stdio(p) for p in paths)
    to_stdout = is_stdio(out_dir)
    if not from_stdin and not to_stdout:
        return None
    if from_stdin and len(paths) > 1:
        raise InvalidParameterError("'-' (standard input) must be the only input")
    if to_stdout and len(paths) != 1:
        raise InvalidParameterError("-o - writes one image to standard output: give exactly one input")
    src = None if from_stdin else Path(paths[0])
    if src is not None and src.is_dir():
        raise InvalidParameterError(f"-o - writes one image to standard output, but {src} is a folder")
    if from_stdin and out_dir is None:
        to_stdout = True
    if to_stdout:
        return PipeJob(src, None)
    assert out_dir is not None, "standard input without an output folder goes to standard output"
    dst = Path(out_dir) / output_name(
        STDIN_STEM, options.k, suffix, options.quality_tag, options.extension, psnr=options.target_psnr is not None
    )
    if dst.is_dir():
        raise InvalidParameterError(f"output {dst} is a folder")
    if dst.exists() and not force:
        return PipeJob(None, dst, "skip", f"output {dst} exists (--force to overwrite)")
    return PipeJob(None, dst)


def check_terminals(job: PipeJob, stdin: Any, stdout: Any) -> None:
    """Refuse to wait for an image typed on a terminal, or to print one on it.

    Raises
    ------
    InvalidParameterError
        Standard input is a terminal while it should hold the image, or standard output is a
        terminal while the image should go there.
    """
    if job.src is None and _isatty(stdin):
        raise InvalidParameterError("standard input is a terminal: pipe an image in (kmpress compress - < photo.jpg)")
    if job.to_stdout and _isatty(stdout):
        raise InvalidParameterError(
            "refusing to write an image to a terminal: redirect standard output (> small.png) or use -o DIR"
        )


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def run_pipe(job: PipeJob, options: Options, stdin: IO[bytes], stdout: IO[bytes]) -> FileResult:
    """Run one :class:`PipeJob` in this process; never raises for a bad input (the
    :class:`FileResult` says what happened, as for a batch's file), but Ctrl-C propagates.

    ``stdin`` / ``stdout`` are binary streams (``sys.stdin.buffer``, ``sys.stdout.buffer``).
    """
    if job.action == "skip":
        return FileResult(job.src_name, job.dst_name, "skipped", job.reason)
    src: Any = _Named(stdin, job.src_name) if job.src is None else job.src
    dst: Any = _Named(stdout, job.dst_name) if job.dst is None else job.dst

    def work() -> CompressReport:
        if job.dst is not None:
            try:
                job.dst.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ImageWriteError(f"cannot create output folder: {e.strerror or e}", str(job.dst.parent)) from None
        return compress(src, dst, options=options)

    return run_one(job.src_name, job.dst_name, work)


class _Named:
    """A binary stream under the name it has in messages (``<stdin>``, ``<stdout>``)."""

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self._stream = stream
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._stream, attr)
