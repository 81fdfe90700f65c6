"""The spawn start method seen from a library that starts process pools on its callers' behalf.

*Spawn* (the local pool's start method: numba's OpenMP layer aborts in forked children) starts
each worker by importing the caller's main script again. A script that starts a batch at its
top level, outside ``if __name__ == "__main__":``, would start it again in every worker; here
that call is recognised (:func:`refuse_in_starting_worker`) and the parent's message for a pool
whose workers never started names the fix (:func:`not_started_warning`). Nothing here starts
a process, and :mod:`multiprocessing` is never imported.
"""

from __future__ import annotations

import sys

from .errors import UnguardedMainError


def starting_worker() -> bool:
    """Whether this process is a worker of a process pool still being started by the *spawn*
    (or *forkserver*) start method: it is importing the parent's main module and the objects of
    its task. The flag read is the one :mod:`multiprocessing` itself checks before refusing to
    start a process then."""
    mp_process = sys.modules.get("multiprocessing.process")  # always loaded in such a worker
    return mp_process is not None and bool(getattr(mp_process.current_process(), "_inheriting", False))


def refuse_in_starting_worker(what: str) -> None:
    """Raise :class:`~kmpress.errors.UnguardedMainError` when :func:`starting_worker`: ``what``
    (a batch) is being started again by a worker's re-import of an unguarded main script."""
    if starting_worker():
        raise UnguardedMainError(
            f"{what} was called while this process was starting as a worker of a process pool: the "
            "spawn start method re-imports the main script in every worker, so a script must start "
            "a batch under 'if __name__ == \"__main__\":'"
        )


def main_script() -> str | None:
    """The main module that the spawn start method re-imports in every worker process (a
    script's path, or a module run with ``python -m``), or None when it re-imports none
    (an interactive session, ``python -c``, a package's ``__main__``, the kmpress command)."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:
        return None if name == "__main__" or name.endswith(".__main__") else name
    return getattr(main, "__file__", None)


def not_started_warning() -> str:
    """What a local pool whose workers all exited while starting says, with the likely cause."""
    msg = "kmpress: the batch's worker processes exited while starting, so it runs in this process, one file at a time"
    script = main_script()
    if script is not None:  # the usual cause, which only the script's author can tell
        msg += (
            f"; the spawn start method re-imports {script} in every worker: if it starts the batch "
            "outside 'if __name__ == \"__main__\":', start it under that guard"
        )
    return msg
