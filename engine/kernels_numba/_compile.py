"""Compiling kernels ahead of their first call, in several processes at once.

numba compiles one kernel at a time in a process (its compiler holds a global lock, and most of
its work is Python holding the GIL), so a first run that needs a dozen kernels waits for each in
turn. Here worker processes (:func:`serve`) each compile kernels asked of them one by one into
numba's shared on-disk cache, which is safe: each kernel has its own index and data files, written
atomically. The caller's process then loads them from the cache. Kernels are found through the
:data:`._jit.REGISTRY`, filled as the modules of this package are imported (:func:`all_kernels`
imports every one), so a new kernel module needs no list to be updated.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pkgutil
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence

from . import _jit
from ._jit import Kernel

# the workers running: stopped at once when this process exits (an interrupted first run leaves
# none behind compiling a kernel nobody waits for)
_live: set[subprocess.Popen] = set()
#: Names, in a worker's environment, the process that started it (see :func:`serve`).
PARENT_ENV = "KMPRESS_COMPILE_PARENT"


@atexit.register
def _kill_live() -> None:
    for proc in list(_live):
        try:
            proc.kill()
            proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass


def all_kernels() -> list[Kernel]:
    """Every kernel of the package, its modules imported first (in the order they define them)."""
    package = importlib.import_module(__package__ or "kmpress.kernels_numba")
    for m in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{m.name}")
    return list(_jit.REGISTRY.values())


def find(key: str) -> Kernel:
    """Return the kernel registered as ``key`` ("module:qualname"), its module imported first."""
    module = key.split(":", 1)[0]
    if not module.startswith((__package__ or "kmpress.kernels_numba") + "."):
        raise KeyError(key)
    importlib.import_module(module)
    return _jit.REGISTRY[key]


def cache_writable(kernel: Kernel) -> bool:
    """Tell whether numba can save compiled kernels where it caches ``kernel``.

    As numba checks it: the folder can be made and a file created in it. Kernels compiled in
    another process help only then.
    """
    where = kernel.cache_dir()
    if where is None:
        return False
    try:
        os.makedirs(where, exist_ok=True)
        tempfile.TemporaryFile(dir=where).close()
    except OSError:
        return False
    return True


def compile_in_processes(
    kernels: Sequence[Kernel],
    processes: int,
    command: Sequence[str],
    on_done: Callable[[Kernel, bool], None] | None = None,
    env: Mapping[str, str] | None = None,
    expect: bool = True,
) -> list[Kernel]:
    """Compile ``kernels`` into numba's cache in ``processes`` worker processes at once.

    Each worker runs ``command`` (which calls :func:`serve`; in the environment ``env``, default
    this process's) and takes the next kernel as it finishes one: the order given is the order
    started, so put first what is needed first. With ``expect``, each kernel is marked
    (:meth:`Kernel.expect`) so that a call in this process waits for it; as its worker answers,
    ``on_done(kernel, ok)`` is called. Without, the workers fill a cache this process does not
    load from (another CPU's: see :mod:`kmpress.prebuilt`).

    Returns
    -------
    list of Kernel
        Once all are done, those that failed (a worker died): they compile here at their first
        call, as without workers.
    """
    events = {k.key: k.expect() if expect else threading.Event() for k in kernels}
    todo: queue.SimpleQueue[Kernel] = queue.SimpleQueue()
    for k in kernels:
        todo.put(k)
    failed: list[Kernel] = []
    lock = threading.Lock()

    def finish(k: Kernel, ok: bool) -> None:
        with lock:
            if not ok:
                failed.append(k)
        events[k.key].set()
        if on_done is not None:
            try:
                on_done(k, ok)
            except Exception:  # a listener's failure never stops the compilation
                pass

    def drive() -> None:
        try:
            proc = subprocess.Popen(
                list(command),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
                env={**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())},
            )
            _live.add(proc)
        except OSError:
            proc = None
        assert proc is None or (proc.stdin is not None and proc.stdout is not None)
        try:
            while True:
                try:
                    k = todo.get_nowait()
                except queue.Empty:
                    return
                answer = ""
                if proc is not None:
                    try:
                        proc.stdin.write(k.key + "\n")  # type: ignore[union-attr]
                        proc.stdin.flush()  # type: ignore[union-attr]
                        answer = proc.stdout.readline().strip()  # type: ignore[union-attr]
                    except OSError:
                        answer = ""
                ok = answer == f"ok {k.key}"
                finish(k, ok)
                if not ok:
                    _stop(proc)
                    proc = None
        finally:
            _stop(proc)

    threads = [threading.Thread(target=drive, name="kmpress-compile", daemon=True) for _ in range(processes)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    finally:
        for e in events.values():  # a call never waits for a worker that is gone
            e.set()
    return failed


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    try:
        if proc.stdin is not None:
            proc.stdin.close()  # end of its input: it exits once its kernel is compiled
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    finally:
        # live until it has exited: this process may exit meanwhile (Ctrl-C), and then kills it
        _live.discard(proc)


def serve(stdin=None, stdout=None) -> None:
    """Run a worker's loop until the end of its input.

    Reads a kernel's key per line, compiles it (or loads it) into the cache, and answers
    ``ok KEY`` or ``error KEY``.
    """
    _die_with_parent()
    if _orphaned():
        return
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    for line in stdin:
        key = line.strip()
        if not key:
            continue
        try:
            _ = find(key).dispatcher
            answer = f"ok {key}"
        except Exception as e:  # the caller compiles it itself, and meets the error there
            answer = f"error {key} {type(e).__name__}"
        stdout.write(answer + "\n")
        stdout.flush()


def _orphaned() -> bool:
    """Tell whether the process that started this worker (:data:`PARENT_ENV`) is gone already.

    Its death signal (:func:`_die_with_parent`) comes only for a death after it is set up, which
    takes this worker's start-up; a caller that exits sooner (Ctrl-C as it starts its workers,
    one started after its exit handler has run) would leave it compiling a kernel nobody waits for.
    """
    want = os.environ.get(PARENT_ENV, "")
    return want.isdigit() and os.getppid() != int(want)


def _die_with_parent() -> None:
    """Have Linux kill this worker when the thread that started it ends (its process killed)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass
