"""A process that runs only kmpress: the CLI's, and each worker of a local pool.

Such a process flips three process-wide switches that a library must leave alone in its
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
   Python), where an exception could only be printed as "ignored", with a traceback.
"""

from __future__ import annotations

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


@contextmanager
def kmpress_process(role: Role) -> Iterator[None]:
    """Within: this process runs only kmpress, as the CLI's process or a pool's worker.

    ``role`` is ``"main"`` or ``"worker"``; see the module for the three switches. The signal
    handlers in place before come back on exit (a worker's set-up lasts as long as the process).
    """
    backends.own_process()
    notes.capture_native_messages()
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


def _on_sigterm(signum: int, frame: FrameType | None) -> None:  # pragma: no cover - runs in worker processes
    if _CURRENT_DST is not None:
        remove_stale_temp_files(_CURRENT_DST, pids=[os.getpid()])
    os._exit(128 + signum)


@contextmanager
def writing(dst: str) -> Iterator[None]:
    """Within: ``dst`` is the output this process is making.

    A worker's SIGTERM removes its temporary file before the process exits.
    """
    global _CURRENT_DST
    _CURRENT_DST = dst
    try:
        yield
    finally:
        _CURRENT_DST = None
