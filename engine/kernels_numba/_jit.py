"""How the numba kernels are compiled: explicit signatures, on first use, cached on disk.

- :func:`kernel` gives a public kernel its dtype contract as a numba signature
  (``"void(f4[:, ::1], i4[::1])"``): a call with another dtype or layout raises ``TypeError``
  instead of silently compiling a second specialisation. Compilation (or loading from numba's
  cache) happens at the first call, not at import, so a run pays only for the kernels it uses.
- Every kernel is registered (:data:`REGISTRY`) under its module and qualified name, so that
  whatever compiles ahead (``kmpress warm``, a first run: :mod:`._compile`) finds every kernel,
  also those of modules added later. :meth:`Kernel.cached` tells, without compiling or loading,
  whether numba's cache holds the kernel for this CPU and numba; a kernel compiled in another
  process (:meth:`Kernel.expect`) is waited for, then loaded from the cache. A kernel that is not
  in the cache tells :data:`on_compile` before it compiles: a first run says so.
- :func:`twins` makes a serial and a parallel entry point from one function, and
  :class:`Twin` picks one by the size of the work (:data:`SERIAL_WORK`): below it, starting the
  thread pool costs more than the work, and on a busy machine a parallel region waits for every
  thread. The two are cached under different names (numba's cache is keyed by qualified name).

Determinism: every kernel splits its work in chunks of :data:`CHUNK` points whatever the number of
threads, each chunk writes its own partial results and the caller merges them in chunk order, so
results are bitwise identical with 1 or 64 threads.

Unsigned indices in the hot loops (``p = a + np.uint64(i)`` with ``a = np.uint64(start)``): numba
wraps a negative signed index around (``x[-1]``), a test and select before every load that LLVM
cannot drop unless it can prove the index is not negative, which it can only for a ``range``
from 0. Those tests turned contiguous loads into gathers or kept loops from vectorising: the
nearest-centroid search ran 3x slower with them, the gather of palette indices 3-4x.
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
_LOCK = threading.RLock()  # re-entered by a listener asking where the cache is

#: Every kernel made so far, by :attr:`Kernel.key` ("module:qualname"), in the order defined.
REGISTRY: dict[str, Kernel] = {}

#: Called as ``on_compile(kernel, False)`` when a kernel is about to be compiled in this process
#: (it is not in numba's cache), then ``on_compile(kernel, True)`` once it is; None: nobody
#: listens. Set by :mod:`kmpress.backends`.
on_compile: Callable[[Kernel, bool], None] | None = None
#: Called before a kernel is first compiled or loaded in this process, to wait while another
#: thread is still choosing what to compile ahead; None: nothing to wait for.
before_first_load: Callable[[], None] | None = None


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
        self.key = f"{py_func.__module__}:{py_func.__qualname__}"
        self._dispatcher: Any = None
        self._lazy: Any = None
        self._pending: threading.Event | None = None
        REGISTRY[self.key] = self

    def _numba(self) -> Any:
        """Return numba's dispatcher for the function, not compiled yet (made once, under the lock)."""
        if self._lazy is None:
            # nogil: a kernel leaves the GIL to other threads (a warm-up loading the next
            # kernels, the PNG encoder) while it runs; it touches no Python object
            self._lazy = njit(cache=True, parallel=self.parallel, nogil=True, error_model=self.error_model)(
                self.py_func
            )
        return self._lazy

    def cached(self) -> bool:
        """Whether numba's cache holds this kernel for this CPU, numba and source (read from the
        cache's index: nothing is compiled or loaded). The index is keyed on the signature, the
        CPU's name and features, numba's version and the bytecode; an entry for another CPU or
        numba is not this one."""
        with _LOCK:
            if self._dispatcher is not None:
                return True
            d = self._numba()
            # NUMBA_DISABLE_JIT: the Python function, nothing to compile
            return not hasattr(d, "compile") or self._in_cache(d)

    def cache_dir(self) -> str | None:
        """The folder numba caches this kernel in (None when it cannot say)."""
        try:
            with _LOCK:
                return str(self._numba()._cache.cache_path)
        except Exception:
            return None

    def expect(self) -> threading.Event:
        """Mark the kernel as being compiled in another process: a call waits for the event
        returned (to be set when that process is done, or has failed), then loads the kernel
        from the cache (or compiles it here if it is still not there)."""
        self._pending = threading.Event()
        return self._pending

    @property
    def loaded(self) -> bool:
        """Whether the kernel is compiled or loaded in this process already (calls cost nothing more)."""
        return self._dispatcher is not None

    @property
    def pending(self) -> bool:
        """Whether another process is compiling the kernel for this one (see :meth:`expect`)."""
        return self._pending is not None and not self._pending.is_set()

    @property
    def dispatcher(self) -> Any:
        """The compiled numba dispatcher (compiled, or loaded from the cache, now if not yet)."""
        if self._dispatcher is None:
            wait = before_first_load
            if wait is not None:
                wait()
            pending = self._pending
            if pending is not None:
                pending.wait()
            compiling = False
            with _LOCK:
                if self._dispatcher is None:
                    # Deferred: the compiler and the cache loader are called back from C
                    with deferred():
                        d = self._numba()
                        if not hasattr(d, "compile"):  # NUMBA_DISABLE_JIT: the Python function
                            self._dispatcher = d
                            return d
                        listen = on_compile
                        if listen is not None and not self._in_cache(d):
                            compiling = True
                            listen(self, False)
                        try:
                            d.compile(self.sig)
                            # as an explicit signature does: another dtype raises TypeError
                            d.disable_compile()
                        finally:
                            if compiling and listen is not None:
                                listen(self, True)
                        self._dispatcher = d
        return self._dispatcher

    def _in_cache(self, d: Any) -> bool:
        # numba's cache index: {(signature, (triple, cpu name, cpu features), bytecode hashes):
        # data file}, only when its numba version and source stamp match (numba.core.caching)
        try:
            cache = d._cache
            return cache._index_key(self.sig, d.targetctx.codegen()) in cache._cache_file._load_index()
        except Exception:  # numba's private API changed: "not cached" only means a notice too many
            return False

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
