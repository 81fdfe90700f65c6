"""What happened to one input of a batch: :class:`FileResult`, and :func:`run_one`.

:func:`run_one` turns the compression of one file into its result.

A result is plain, picklable data: it crosses process boundaries (a pool's workers, a Dask
cluster) and is what every way of running a batch yields, one per input. Nothing here prints.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .api import CompressReport
from .errors import KmpressError

Status = Literal["ok", "skipped", "error"]


@dataclass
class FileResult:
    """What happened to one input of a batch. Plain data: crosses process boundaries.

    Attributes
    ----------
    src : str; dst : str or None
    status : "ok", "skipped" or "error"
    message : str or None; the reason of a skip or error (one line, without the path)
    report : CompressReport or None; set when ``status == "ok"``, and for a file skipped because
        its output would have been larger than the input (``skip_if_larger``; the report has
        ``written=False`` and both sizes)
    seconds : float; wall time spent on this file in its worker (0 for skips)
    detail : str or None; the traceback of an unexpected error (a bug), for ``--debug``
    error_type : str or None; the class name of the KmpressError behind an ``error`` (e.g.
        ``"TargetNotReachedError"``, which the CLI gives its own exit code)
    """

    src: str
    dst: str | None
    status: Status
    message: str | None = None
    report: Any = None
    seconds: float = 0.0
    detail: str | None = field(default=None, repr=False)
    error_type: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: src, dst, status, message, seconds and, when ok, every report field."""
        d: dict[str, Any] = {"src": self.src, "dst": self.dst, "status": self.status, "message": self.message}
        if self.status == "skipped":
            d["skip_reason"] = "larger" if self.skipped_larger else "exists"
        if self.error_type is not None:
            d["error_type"] = self.error_type
        if self.report is not None:
            rep = self.report.as_dict()
            rep.pop("src", None)
            rep.pop("dst", None)
            d.update(rep)
        d["seconds"] = self.seconds
        return d

    @property
    def skipped_larger(self) -> bool:
        """Skipped because the output would have been larger than its input (``skip_if_larger``)."""
        return self.status == "skipped" and self.report is not None and not self.report.written


def report_result(src: str, dst: str, rep: CompressReport, seconds: float) -> FileResult:
    """Return the :class:`FileResult` of a finished :func:`kmpress.compress`.

    Its status is ``ok``, or ``skipped`` with both sizes when ``skip_if_larger`` left the output
    unwritten.
    """
    if rep.written:
        return FileResult(src, dst, "ok", None, rep, seconds)
    why = (
        f"not written: the {rep.format.upper()} would be {rep.output_bytes:,} bytes, larger than the "
        f"input's {rep.input_bytes:,} (--skip-if-larger)"
    )
    return FileResult(src, dst, "skipped", why, rep, seconds)


def run_one(src: str, dst: str, work: Callable[[], CompressReport]) -> FileResult:
    """Run ``work()``, the compression of one input, and return it as its :class:`FileResult`.

    The result is timed and holds its report, or what it raised as that file's one-line error.
    Never raises for a file's failure; Ctrl-C propagates.
    """
    t0 = time.perf_counter()
    try:
        return report_result(src, dst, work(), time.perf_counter() - t0)
    except KmpressError as e:
        return FileResult(src, dst, "error", e.message, None, time.perf_counter() - t0, error_type=type(e).__name__)
    except MemoryError:
        return FileResult(src, dst, "error", "out of memory", None, time.perf_counter() - t0)
    except Exception as e:
        # a KeyboardInterrupt raised in Python code that a compiled numba function calls back
        # comes out as a SystemError ("returned a result with an exception set") caused by it:
        # the interrupt, not a failure of this file (kmpress.interrupts keeps its own handler's
        # exception out of there; another handler may not)
        if interrupt_behind(e):
            raise KeyboardInterrupt() from None
        msg = f"internal error: {type(e).__name__}: {e}"
        return FileResult(src, dst, "error", msg, None, time.perf_counter() - t0, traceback.format_exc())


def interrupt_behind(e: BaseException) -> bool:
    """Whether an exception was raised from a KeyboardInterrupt."""
    seen = 0
    cur: BaseException | None = e
    while cur is not None and seen < 10:
        if isinstance(cur, KeyboardInterrupt):
            return True
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return False
