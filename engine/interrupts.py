"""Ctrl-C and SIGTERM in a process that runs only kmpress (the CLI): both become a
KeyboardInterrupt in the main thread, raised only where Python can unwind safely, and never lost.

A Python signal handler runs at the main thread's next bytecode, and that may be Python code
that C calls back without expecting an exception:

- numba's compiled wrappers call ``numba.core.serialize._numba_unpickle`` while they box the
  arrays a kernel returns; an exception there leaves a NULL in the returned tuple (a
  segmentation fault when it is unpacked) or comes out as a SystemError;
- llvmlite's ctypes callbacks (numba's compiler and cache loader): the exception is printed as
  "Exception ignored on calling ctypes callback" and lost;
- finalizers run by the garbage collector: printed as "Exception ignored in" and lost.

So the handler first records the signal, then raises only outside a :func:`deferred` section
(kmpress enters one around every call into numba: a kernel, its compilation or cache load,
numba's import and thread set-up), which raises instead as it ends, once numba has returned; and
only when no numba or llvmlite code is on the stack, else the signal is sent again a moment
later. A recorded signal is raised again as every later deferred section ends, so even one whose
exception a finalizer swallowed stops the work at the next kernel call.

Only the main thread handles signals; everything here is a no-op in other threads.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: The signals handled.
SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Seconds before a signal that arrived in numba's or llvmlite's code is sent again.
RETRY_SECONDS = 0.05

_received: int | None = None  # the last signal received while handling, until handling starts anew
_installs = 0  # nesting depth of handling_signals in the main thread
_local = threading.local()  # .depth: nesting depth of deferred sections in this thread
_UNSAFE = (f"{os.sep}numba{os.sep}", f"{os.sep}llvmlite{os.sep}")


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _depth() -> int:
    return getattr(_local, "depth", 0)


def _numba_on_stack(frame) -> bool:
    """Whether numba's or llvmlite's Python code is on the stack of ``frame`` (called back from
    C: see the module docstring)."""
    depth = 0
    while frame is not None and depth < 500:
        name = frame.f_code.co_filename
        if any(m in name for m in _UNSAFE):
            return True
        frame = frame.f_back
        depth += 1
    return False


def _on_signal(signum, frame):
    global _received
    _received = signum
    if _depth() > 0:  # the deferred section raises as it ends
        return
    if _numba_on_stack(frame):
        retry = threading.Timer(RETRY_SECONDS, os.kill, (os.getpid(), signum))
        retry.daemon = True
        retry.start()
        return
    raise KeyboardInterrupt()


@contextmanager
def handling_signals() -> Iterator[None]:
    """Within: SIGINT and SIGTERM raise KeyboardInterrupt in the main thread (see the module:
    never inside numba's or llvmlite's code, never lost), also when the process started with
    SIGINT ignored (a background job of a shell script); the previous handlers come back on exit.
    Nested uses keep the outermost's handlers and the signal it recorded, but put the handlers
    back when something replaced them meanwhile (a server's loop, a forked process that reset
    them: it inherits the outer uses but not their handlers). Outside the main thread, nothing
    changes (only it may handle signals). See :func:`received`."""
    global _received, _installs
    if not _in_main_thread():
        yield
        return
    saved = None
    if _installs == 0 or any(signal.getsignal(s) is not _on_signal for s in SIGNALS):
        if _installs == 0:
            _received = None
        saved = {s: signal.signal(s, _on_signal) for s in SIGNALS}
    _installs += 1
    try:
        yield
    finally:
        _installs -= 1
        if saved is not None:
            for s, h in saved.items():
                signal.signal(s, h)


def received() -> int | None:
    """The signal (``signal.SIGINT`` or ``signal.SIGTERM``) last received under
    :func:`handling_signals`, None if none (kept after it ends, for the exit code)."""
    return _received


def check() -> None:
    """Raise KeyboardInterrupt if a signal was received under :func:`handling_signals` and this
    is the main thread, outside a deferred section: a point where the work may stop."""
    if _received is not None and _installs > 0 and _depth() == 0 and _in_main_thread():
        raise KeyboardInterrupt()


class _Deferred:
    """See :func:`deferred` (a plain class: entered at every kernel call, it must cost little)."""

    __slots__ = ()

    def __enter__(self) -> None:
        _local.depth = _depth() + 1

    def __exit__(self, *exc) -> None:
        _local.depth = _depth() - 1
        check()


_DEFERRED = _Deferred()


def deferred() -> _Deferred:
    """A section during which a signal only is recorded, raised as the section ends (by then as
    KeyboardInterrupt, also when the section raised): for code that C calls back into Python
    from (numba's kernels, compiler and set-up). Sections nest; in threads other than the main
    one they change nothing."""
    return _DEFERRED
