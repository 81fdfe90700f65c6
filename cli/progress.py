"""Progress for the kmpress CLI: the batch's bar, the sweep's, and the notice of a first run's compiling.

Everything here draws on stderr only; rich is imported inside, when something is drawn.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from . import render


def _progress_bar(verb: str, describe: Callable[[], str] | None = None):
    """A transient rich progress bar on stderr: verb, bar, done/total, elapsed, ETA, and the
    task's description, or what ``describe()`` says at each refresh (ten times a second).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Described(ProgressColumn):
        def __init__(self, say: Callable[[], str]) -> None:
            super().__init__()
            self.say = say

        def render(self, task) -> Text:
            return Text(self.say(), no_wrap=True, overflow="ellipsis")

    return Progress(
        TextColumn(f"[bold]{verb}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.description}") if describe is None else Described(describe),
        console=render._terminal_console(),
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


#: Seconds a file runs before the progress bar shows its stage: a quick file's stages would only
#: flicker by, a long one's tell that the bar is not stuck.
STAGE_AFTER = 2.0
#: Files named in the progress bar (then "...").
SHOWN_FILES = 3


class Running:
    """The files in flight and the stage each is in: the progress bar's description, e.g.
    ``big.tif: lloyd, a.jpg``. A file's stage shows once it has run ``stage_after`` seconds.
    Safe to call from several threads (the engine may report stages from a background thread).
    ``names``: each path's name (see :func:`row_names`); by default its base name.
    """

    def __init__(
        self,
        stage_after: float = STAGE_AFTER,
        clock: Callable[[], float] = time.monotonic,
        names: dict[str, str] | None = None,
    ) -> None:
        self.stage_after = stage_after
        self.clock = clock
        self.names = names or {}
        self._files: dict[str, list] = {}  # full path -> [started at, stage or None], in start order
        self._lock = threading.Lock()

    def start(self, path: str) -> None:
        with self._lock:
            self._files[str(path)] = [self.clock(), None]  # a crashed file may start again

    def stage(self, path: str, stage: str) -> None:
        """``path`` begins ``stage``; ignored for a file not running (a late report)."""
        with self._lock:
            f = self._files.get(str(path))
            if f is not None:
                f[1] = stage

    def finish(self, path: str) -> bool:
        """Forget ``path``; False when it was not running (a skip, a missing input)."""
        with self._lock:
            return self._files.pop(str(path), None) is not None

    def describe(self) -> str:
        now = self.clock()
        with self._lock:
            files = list(self._files.items())
        note = CompileNotice.live_note
        if note:  # what stops the files for now
            return note
        parts = []
        for path, (t0, stage) in files[:SHOWN_FILES]:
            name = self.names.get(path) or os.path.basename(path)
            parts.append(f"{name}: {stage}" if stage is not None and now - t0 >= self.stage_after else name)
        return ", ".join(parts) + (" ..." if len(files) > SHOWN_FILES else "")


@contextmanager
def _bar_gone():
    try:
        yield
    finally:
        CompileNotice.bar_live = False
        CompileNotice.live_note = ""


@contextmanager
def progress(total: int, enabled: bool, stage_after: float | None = None, names: dict[str, str] | None = None):
    """A rich progress bar on stderr: files done/total, elapsed, ETA, the files running and,
    for one that has run ``stage_after`` seconds (default :data:`STAGE_AFTER`), its stage
    (``photo.tif: lloyd``; redrawn as each stage begins).

    Yields ``(started, finished, staged)``: ``started(path)`` and ``finished(path)`` (which
    ignores a path never started) do nothing when disabled; ``staged(path, stage)`` is the
    engine's ``on_stage`` for a batch, None when disabled (so nothing is sent for it).
    ``names``: each path's name in the bar (see :class:`Running`).
    """
    if not enabled or total <= 0:
        yield (lambda path: None), (lambda path: None), None
        return
    running = Running(STAGE_AFTER if stage_after is None else stage_after, names=names)
    bar = _progress_bar("compressing", running.describe)
    CompileNotice.bar_live = True
    with _closing(bar), bar, _bar_gone():
        task = bar.add_task("", total=total)

        def finished(path: str) -> None:
            # results of files that never started (skips, missing inputs) do not move the bar
            if running.finish(path):
                bar.update(task, advance=1)

        def staged(path: str, stage: str) -> None:
            running.stage(path, stage)
            bar.refresh()

        yield running.start, finished, staged


class CompileNotice:
    """Says on stderr that numba kernels compile, as :func:`kmpress.backends.on_compile` tells:
    on a terminal, a line rewritten as each kernel is done (inside the progress bar while one
    shows); elsewhere, one line. Writes on its own duplicate of the stderr descriptor, which the
    engine may hold for a while to gather what an image decoder prints; called from any thread.
    """

    #: What a live progress bar shows instead of its files while kernels compile ("" when none).
    live_note = ""
    #: Whether a progress bar is showing (set by :func:`progress`).
    bar_live = False

    def __init__(self) -> None:
        try:
            sys.stderr.flush()
            self.stream: IO[str] = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
        except (AttributeError, OSError, ValueError):  # no real descriptor (e.g. captured in tests)
            self.stream = sys.stderr
        self.tty = self.stream.isatty()
        self.said = False
        self.lock = threading.Lock()

    def __call__(self, status: Any) -> None:
        where = f"; cached in {status.cache_dir}" if status.cache_dir else ""
        with self.lock:
            if not self.tty:
                if not self.said:  # one line: the count known when compiling starts
                    self.said = True
                    self._write(
                        f"kmpress: compiling {status.total} numba kernel{'s' if status.total != 1 else ''} "
                        f"(first run only{where}) ...\n"
                    )
                return
            text = f"compiling numba kernels (first run only{where}): {status.done}/{status.total}"
            finished = status.done >= status.total
            if CompileNotice.bar_live:
                CompileNotice.live_note = "" if finished else text
                return
            self._write(f"\r{text}" + ("\n" if finished else ""))
            self.said = True

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed stderr: the notice is not worth failing for
            pass

    def close(self) -> None:
        CompileNotice.live_note = ""
        if self.stream is not sys.stderr:
            try:
                self.stream.close()
            except OSError:
                pass


@contextmanager
def compile_notice(on: bool) -> Iterator[None]:
    """While the command runs, numba kernels that compile (a first run) are said on stderr."""
    if not on:
        yield
        return
    from kmpress import backends

    notice = CompileNotice()
    backends.on_compile(notice)
    try:
        yield
    finally:
        backends.on_compile(None)
        notice.close()


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
