"""How the numba kernels are compiled: explicit signatures, on first use, cached on disk.

- :func:`kernel` gives a public kernel its dtype contract as a numba signature
  (``"void(f4[:, ::1], i4[::1])"``): a call with another dtype or layout raises ``TypeError``
  instead of silently compiling a second specialisation. Compilation (or loading from numba's
  cache) happens at the first call, not at import, so a run pays only for the kernels it uses.
- :func:`twins` makes a serial and a parallel entry point from one function, and
  :class:`Twin` picks one by the size of the work (:data:`SERIAL_WORK`): below it, starting the
  thread pool costs more than the work, and on a busy machine a parallel region waits for every
  thread. The two are cached under different names (numba's cache is keyed by qualified name).

Determinism: every kernel splits its work in chunks of :data:`CHUNK` points whatever the number of
threads, each chunk writes its own partial results and the caller merges them in chunk order, so
results are bitwise identical with 1 or 64 threads.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from typing import Any, Literal

from numba import njit

from ..interrupts import deferred

#: Points per chunk of work. Fixed (never derived from the thread count) so that partial sums,
#: and hence results, do not depend on how many threads run.
CHUNK = 8192
#: Points per block inside a chunk: the block's best distances stay in L1 while all K centroids
#: stream past them.
BLOCK = 256
#: Below this many units of work (pixel-centroid pairs) a kernel runs in the calling thread.
SERIAL_WORK = 1 << 22

#: numba's error models: "python" tests every divisor for zero (ZeroDivisionError), "numpy" does not.
ErrorModel = Literal["python", "numpy"]

# one compilation (or cache load) per kernel even when a warm-up thread and the caller ask at once
_LOCK = threading.Lock()


class Kernel:
    """A numba kernel compiled with an explicit signature at its first call (see the module)."""

    def __init__(self, py_func: Callable, sig: str, parallel: bool = False, error_model: ErrorModel = "python") -> None:
        self.py_func = py_func
        self.sig = sig
        self.parallel = parallel
        self.error_model = error_model
        self.__name__ = py_func.__name__
        self.__qualname__ = py_func.__qualname__
        self.__doc__ = py_func.__doc__
        self._dispatcher: Any = None

    @property
    def dispatcher(self) -> Any:
        """The compiled numba dispatcher (compiled, or loaded from the cache, now if not yet)."""
        if self._dispatcher is None:
            with _LOCK:
                if self._dispatcher is None:
                    # nogil: a kernel leaves the GIL to other threads (a warm-up loading the next
                    # kernels, the PNG encoder) while it runs; it touches no Python object.
                    # Deferred: the compiler and the cache loader are called back from C
                    with deferred():
                        self._dispatcher = njit(
                            self.sig, cache=True, parallel=self.parallel, nogil=True, error_model=self.error_model
                        )(self.py_func)
        return self._dispatcher

    def __call__(self, *args: Any) -> Any:
        d = self._dispatcher
        if d is None:
            d = self.dispatcher
        # the compiled wrapper calls back into Python (to box the arrays it returns) and cannot
        # take an exception there: a Ctrl-C is raised once it has returned (kmpress.interrupts)
        with deferred():
            return d(*args)

    def __repr__(self) -> str:
        return f"<kmpress kernel {self.__qualname__} {self.sig}{' parallel' if self.parallel else ''}>"


def kernel(sig: str, parallel: bool = False, error_model: ErrorModel = "python") -> Callable[[Callable], Kernel]:
    """Decorator: a :class:`Kernel` with signature ``sig``.

    ``error_model="numpy"`` drops the zero test numba puts before every float division (to raise
    ZeroDivisionError), which keeps LLVM from vectorizing a loop that divides; for kernels whose
    divisors are never zero, where the quotients are the same.
    """
    return lambda f: Kernel(f, sig, parallel, error_model)


class Twin:
    """A serial and a parallel :class:`Kernel` of one function. A call measures its work with
    ``work(*args)`` and runs the serial kernel when that is below :data:`SERIAL_WORK`: the one
    size dispatcher of every twin."""

    def __init__(self, serial: Kernel, parallel: Kernel, work: Callable[..., int]) -> None:
        self.serial = serial
        self.parallel = parallel
        self.work = work
        self.__name__ = serial.__name__
        self.__qualname__ = serial.__qualname__
        self.__doc__ = serial.__doc__

    def pick(self, work: int) -> Kernel:
        """The variant that runs a call of ``work`` units."""
        return self.serial if work < SERIAL_WORK else self.parallel

    def __call__(self, *args: Any) -> Any:
        return self.pick(self.work(*args))(*args)


def twins(sig: str, work: Callable[..., int]) -> Callable[[Callable], Twin]:
    """Decorator: a :class:`Twin` with signature ``sig``, whose work is ``work(*args)`` (e.g.
    points x centroids). The function uses ``prange``, which is ``range`` in the serial twin."""

    def make(f: Callable) -> Twin:
        # a copy of the function under another qualified name: numba caches by that name
        g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_parallel", f.__defaults__, f.__closure__)
        g.__qualname__ = f.__qualname__ + "_parallel"
        g.__doc__ = f.__doc__
        return Twin(Kernel(f, sig, False), Kernel(g, sig, True), work)

    return make
