"""What the decoders say while a file is read: Python warnings, Pillow's log records and, in a
process kmpress owns, what the C libraries under Pillow (libtiff...) print on the stderr file
descriptor, gathered per file into one-line notes instead of reaching the terminal.
No image is touched here.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

from .interrupts import deferred

#: Most notes kept per file, and most characters per note (they end up on one line).
MAX_NOTES = 20
NOTE_CHARS = 200

_collector = threading.local()
_ROUTER_LOCK = threading.Lock()
_capture_native = False
_NATIVE_LOCK = threading.RLock()


def capture_native_messages(enabled: bool = True) -> None:
    """Gather what the C libraries under Pillow (libtiff...) print on the stderr file descriptor
    while a file is read, into that file's notes, instead of letting it reach the terminal.

    For processes that run only kmpress (the CLI and its workers): the descriptor is swapped for
    the whole process while a file is decoded, so another thread's output would land there too.
    """
    global _capture_native
    _capture_native = bool(enabled)


def one_line(text: str) -> str:
    """``text`` on one line of at most :data:`NOTE_CHARS` characters."""
    text = " ".join(text.split())
    return text if len(text) <= NOTE_CHARS else text[: NOTE_CHARS - 3] + "..."


def _route_warning(message, category, filename, lineno, file=None, line=None):
    notes = getattr(_collector, "notes", None)
    if notes is None:
        return _previous_hook(message, category, filename, lineno, file, line)
    if not issubclass(category, Image.DecompressionBombWarning):  # kmpress's own limit applies
        notes.append(one_line(str(message)))
    return None


_previous_hook = warnings.showwarning


def _install_router() -> None:
    # warnings.catch_warnings swaps process-wide state and is not safe across threads; a
    # showwarning hook that hands a warning to the reading thread's list, or else to the hook it
    # replaced, is. Installed again if something (catch_warnings on exit) put another back.
    global _previous_hook
    with _ROUTER_LOCK:
        if warnings.showwarning is not _route_warning:
            _previous_hook = warnings.showwarning
            warnings.showwarning = _route_warning


class _LogRouter(logging.Filter):
    """On Pillow's loggers: a record of warning level or above logged while this thread reads a
    file goes to that file's notes instead of the handlers (Python's last resort prints it on
    stderr otherwise: libtiff's "More samples per pixel than can be decoded")."""

    def filter(self, record: logging.LogRecord) -> bool:
        notes = getattr(_collector, "notes", None)
        if notes is None or record.levelno < logging.WARNING:
            return True
        notes.append(one_line(record.getMessage()))
        return False


_LOG_ROUTER = _LogRouter()


def route_pillow_logs() -> None:
    """Put the router on every Pillow logger imported so far (a logger's filters see only its
    own records, not its children's: one per plugin module)."""
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (
            (name == "PIL" or name.startswith("PIL."))
            and isinstance(logger, logging.Logger)
            and _LOG_ROUTER not in logger.filters
        ):
            logger.addFilter(_LOG_ROUTER)


class Notes(list):
    """What was said while one file was read, one line each; ``native`` holds the lines a C
    library printed (the likely reason when its decoder failed)."""

    def __init__(self) -> None:
        super().__init__()
        self.native: list[str] = []

    def tidy(self) -> tuple[str, ...]:
        """Distinct notes in order, at most :data:`MAX_NOTES`."""
        return tuple(dict.fromkeys(self))[:MAX_NOTES]


@contextmanager
def gathering_notes() -> Iterator[Notes]:
    """Collect into a list what the decoders say while one file is read (see
    :class:`kmpress.io.LoadedImage`): nothing of it reaches the terminal."""
    _install_router()
    notes = Notes()
    outer = getattr(_collector, "notes", None)
    _collector.notes = notes
    try:
        if _capture_native:
            with _NATIVE_LOCK, _native_stderr(notes):
                yield notes
        else:
            yield notes
    finally:
        _collector.notes = outer


@contextmanager
def stderr_restored(timeout: float = 30.0) -> Iterator[None]:
    """Within: descriptor 2 is the process's own stderr again, not the capture of a file being
    decoded in another thread (:func:`capture_native_messages`), so a line written there reaches
    the terminal. Waits for that decode, at most ``timeout`` seconds."""
    got = _NATIVE_LOCK.acquire(timeout=timeout)
    try:
        yield
    finally:
        if got:
            _NATIVE_LOCK.release()


def _flush_stderr() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass


@contextmanager
def _native_stderr(notes: Notes) -> Iterator[None]:
    _flush_stderr()
    with tempfile.TemporaryFile() as tmp:
        # the swaps are deferred sections: a Ctrl-C must not leave descriptor 2 on the temporary
        # file (the "interrupted" line would go there)
        saved = None
        try:
            with deferred():
                saved = os.dup(2)
                os.dup2(tmp.fileno(), 2)
            yield
        finally:
            with deferred():
                _flush_stderr()
                if saved is not None:
                    os.dup2(saved, 2)
                    os.close(saved)
            tmp.seek(0)
            text = tmp.read(1 << 16).decode("utf-8", errors="replace")
            notes.native.extend(one_line(t) for t in text.splitlines() if t.strip())
            notes.extend(notes.native)
