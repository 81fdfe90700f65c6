"""Print what a finished command did and work out its exit code.

Its JSON document, the one-line error, the exit code of a batch, and the summary of a compress
run (drawn by :mod:`.render`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, Any

import typer

from kmpress.errors import InvalidParameterError, KmpressError, SchedulerLostError

from .flags import EXIT_FAILED, EXIT_LARGER, EXIT_OK, EXIT_SCHEDULER_LOST, EXIT_TARGET, flag_text


def exit_with(
    message: str, code: int, command: str | None = None, as_json: bool = False, doc: dict | None = None
) -> typer.Exit:
    """Print the one line on stderr and return the exit.

    With ``as_json``, the document saying the same goes to stdout, with what ``doc`` holds of the
    run so far.
    """
    from .render import error_line

    error_line(message)
    if as_json:
        print_json({"command": command, **(doc or {}), "error": message, "exit_code": code})
    return typer.Exit(code)


def flag_message(e: KmpressError) -> str:
    """Return the error's line, naming the flags of the options it is about (see :func:`flag_text`)."""
    return flag_text(str(e), getattr(e, "fields", ()))


def print_json(doc: dict[str, Any]) -> None:
    """Write ``doc`` to stdout as one JSON document."""
    import json

    sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


#: The ``error_type`` of the files a lost Dask scheduler left not done.
NOT_DONE = SchedulerLostError.__name__


def batch_exit_code(totals: dict[str, Any], results: Sequence[Any] = ()) -> int:
    """Return a batch's exit code.

    0 when nothing failed; 98 when nothing failed and nothing was written because every
    compressed file came out larger than its input (--skip-if-larger); 3 when the only failures
    are quality targets missed under --strict; 75 when a lost Dask scheduler left files not
    done (whatever else happened); else 1.
    """
    if any(getattr(r, "error_type", None) == NOT_DONE for r in results):
        return EXIT_SCHEDULER_LOST
    if not totals["errors"]:
        return EXIT_LARGER if totals.get("skipped_larger") and not totals["ok"] else EXIT_OK
    failed = [r for r in results if r.status == "error"]
    if failed and all(getattr(r, "error_type", None) == "TargetNotReachedError" for r in failed):
        return EXIT_TARGET
    return EXIT_FAILED


def binary(stream: Any) -> IO[bytes]:
    """Return the binary layer of a standard stream (the stream itself when it has none, as a test's)."""
    return getattr(stream, "buffer", stream)


def run_pipe(job: Any, options: Any, as_json: bool, quiet: bool, debug: bool) -> int:
    """Compress one image from standard input and/or to standard output; the exit code."""
    from kmpress import batch, pipes

    from .render import error_line

    if as_json and job.to_stdout:
        raise InvalidParameterError(
            "--json cannot be used when the image goes to standard output (-o -, or - as the only input)"
        )
    pipes.check_terminals(job, sys.stdin, sys.stdout)
    r = pipes.run_pipe(job, options, binary(sys.stdin), binary(sys.stdout))
    if debug and r.detail:
        sys.stderr.write(r.detail)
    if job.to_stdout:  # nothing but the image on stdout (and so no --json)
        if r.status == "error" or (r.status == "skipped" and not quiet):
            error_line(f"{r.src}: {flag_text(r.message or '', r.fields)}")
        return batch_exit_code(batch.summarize([r], r.seconds), [r])
    return report_compress([r], [r.as_dict()], r.seconds, options, as_json, quiet)


def report_compress(
    results: list,
    files: list[dict],
    seconds: float,
    options: Any,
    as_json: bool,
    quiet: bool,
    names: dict[str, str] | None = None,
) -> int:
    """Print what a compress run did (its JSON document, or the summary table); return its exit code.

    ``files`` are the document's entries (the results', and any input not found); ``names``
    each input's name in the table.
    """
    from kmpress import batch

    from .render import print_summary

    totals = batch.summarize(results, seconds)
    code = batch_exit_code(totals, results)
    lost = lost_scheduler(results)
    if lost is not None:
        totals["not_done"] = sum(1 for r in results if r.error_type == NOT_DONE)
    if as_json:
        error = {} if lost is None else {"error": lost}
        print_json(
            {
                "command": "compress",
                "k": options.k,
                **{f: getattr(options, f) for f in ("target_quality", "min_quality", "target_psnr")},
                "files": files,
                "summary": totals,
                **error,
                "exit_code": code,
            }
        )
    else:
        print_summary(results, totals, quiet=quiet, names=names)
    if lost is not None:
        from .render import error_line

        error_line(lost)
    return code


def lost_scheduler(results: list) -> str | None:
    """Return the one line that says a lost Dask scheduler left files not done, or None."""
    not_done = [r for r in results if getattr(r, "error_type", None) == NOT_DONE]
    if not not_done:
        return None
    why = not_done[0].message.removeprefix("not done: ")
    n = len(not_done)
    files = f"{n} of {len(results)} file{'s' if len(results) != 1 else ''}"
    return f"{why}: {files} not done (run the same command again to do {'them' if n > 1 else 'it'})"
