"""A process that runs only kmpress: the CLI's, and each worker of a local pool.

Such a process flips four process-wide switches that a library must leave alone in its
callers' processes, all in :func:`kmpress_process`:

1. numba, when it loads, skips its BLAS probe (:func:`kmpress.backends.own_process`); in the main
   process, a run on the prebuilt portable kernels compiles this CPU's own behind its work, at the
   lowest priority (:func:`kmpress.backends.compile_behind`);
2. what Pillow's C libraries print while decoding becomes that file's notes
   (:func:`kmpress.notes.capture_native_messages`);
3. signals. In the main process (``role="main"``), Ctrl-C and SIGTERM become a KeyboardInterrupt,
   never raised inside numba's code (:func:`kmpress.interrupts.handling_signals`). A worker
   (``role="worker"``) ignores SIGINT (its parent decides what an interrupt means) and turns
   SIGTERM into a clean stop: the temporary file of the output being written (see
   :func:`writing`) is removed and the process exits at once. Nothing is raised from that
   handler: it may run inside a C callback (numba's compiler and cache loader call back into
   Python), where an exception could only be printed as "ignored", with a traceback;
4. Python's cyclic garbage collector. numba, the kernels and the CLI's imports make some 100 000
   objects that live as long as the process, and the collector scans them again and again while
   they are made: 4 % of the time of a 4 MP compression. It is off until a second file begins
   (:func:`writing`); then those objects are collected once and frozen out of its scans
   (``gc.freeze``) and it runs as usual. A run of one file never pays for a collection.
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Literal

from . import backends, interrupts, notes
from .writing import remove_stale_temp_files

Role = Literal["main", "worker"]

#: In a worker: the output being written, whose temporary file SIGTERM removes.
_CURRENT_DST: str | None = None
#: The collector is held off by :func:`kmpress_process` (switch 4), until a second file begins.
_COLLECTOR_HELD = False
#: The collector's start-up objects have been frozen out of its scans (undone on leaving).
_FROZEN = False
#: Files begun in this process (by :func:`writing`).
_FILES = 0


@contextmanager
def kmpress_process(role: Role) -> Iterator[None]:
    """Within: this process runs only kmpress, as the CLI's process or a pool's worker.

    ``role`` is ``"main"`` or ``"worker"``; see the module for the four switches. The signal
    handlers in place before come back on exit (a worker's set-up lasts as long as the process).
    """
    backends.own_process()
    notes.capture_native_messages()
    with _collector_held():
        if role == "main":
            backends.compile_behind()
            with interrupts.handling_signals():
                yield
            return
        saved = {
            signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
            signal.SIGTERM: signal.signal(signal.SIGTERM, _on_sigterm),
        }
        try:
            yield
        finally:
            for s, h in saved.items():
                signal.signal(s, h)


@contextmanager
def _collector_held() -> Iterator[None]:
    # switch 4: the collector off until a second file begins (see _release_collector); as it was
    # on leaving (an in-process CLI run, e.g. in tests, leaves its caller's collector alone)
    global _COLLECTOR_HELD, _FROZEN, _FILES
    held = gc.isenabled() and not _COLLECTOR_HELD
    if held:
        gc.disable()
        _COLLECTOR_HELD, _FILES = True, 0
    try:
        yield
    finally:
        if held:
            if _FROZEN:
                gc.unfreeze()
            _COLLECTOR_HELD = _FROZEN = False
            gc.enable()


def _release_collector() -> None:
    # the objects that live as long as the process exist by now (the first file is done):
    # collect once, freeze the survivors out of the collector's scans and let it run
    global _FROZEN
    if _COLLECTOR_HELD and not _FROZEN and not gc.isenabled():
        gc.collect()
        gc.freeze()
        _FROZEN = True
        gc.enable()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:  # pragma: no cover - runs in worker processes
    if _CURRENT_DST is not None:
        remove_stale_temp_files(_CURRENT_DST, pids=[os.getpid()])
    os._exit(128 + signum)


@contextmanager
def writing(dst: str) -> Iterator[None]:
    """Within: ``dst`` is the output this process is making.

    A worker's SIGTERM removes its temporary file before the process exits. In a process of
    :func:`kmpress_process`, the second file's start lets the collector run (switch 4).
    """
    global _CURRENT_DST, _FILES
    if _FILES:
        _release_collector()
    _FILES += 1
    _CURRENT_DST = dst
    try:
        yield
    finally:
        _CURRENT_DST = None
