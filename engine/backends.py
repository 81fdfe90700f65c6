"""The backend pick, and numba's set-up in a process: done once, and only when numba is needed.

``load("numpy")`` never imports numba. ``load("numba")`` imports it on first use, after making
sure its compiled kernels can be cached (see :func:`prepare_numba_cache`) and applying what the
process asked for beforehand (:func:`set_threads`, :func:`own_process`), so that a run whose work
never reaches numba never pays for it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .interrupts import deferred

_threads: int | None = None
_skip_blas_probe = False

#: "auto" runs numpy when the clustering's work, distinct colours x K, is at most this: numba's
#: start-up (importing it and loading its cached kernels, about 0.5 s of CPU here) costs more than
#: such work in NumPy. Measured with bench/auto_pick.py (docs/speed.md).
AUTO_NUMPY_WORK = 1 << 22
#: The same when numba is already imported in the process (a batch, a second job): only the
#: kernels are left to load.
AUTO_NUMPY_WORK_LOADED = 1 << 20
#: "auto" runs numba without looking at the colours when the image has more pixels than this:
#: numba's histogram and remap alone then save more than its start-up costs.
AUTO_NUMBA_PIXELS = 1 << 21
#: "auto" runs numba when the remap works pixel by pixel (error diffusion, the rate-aware remap)
#: and its work, pixels x (K + 24), is over this: NumPy's twin of the diffusion is a sequential
#: Python loop that searches the whole palette for each pixel, about 6 us + 0.25 us x K a pixel
#: against numba's 0.02, so past some 2 M units numba's start-up pays for itself (astronaut crops,
#: whole processes, wall and CPU time alike: 64x64 at K=256 and 181x181 at K=16 run faster on
#: NumPy, 128x128 at K=256 twice as fast on numba; bench/auto_pick.py --per-pixel).
AUTO_NUMPY_PIXEL_WORK = 1 << 21
#: What one pixel of a per-pixel remap costs NumPy besides its palette search, in palette entries.
PIXEL_OVERHEAD = 24


def numba_is_warm() -> bool:
    """Whether numba's serial kernels are all loaded in this process already (a warm ``kmpress
    serve``): then numba has no start-up left to pay and runs every job faster than NumPy."""
    jit = sys.modules.get("kmpress.kernels_numba._jit")
    if jit is None:
        return False
    kernels = [k for k in jit.REGISTRY.values() if not k.parallel]
    return bool(kernels) and all(k.loaded for k in kernels)


def choose(
    name: str,
    pixels: int,
    k: int,
    colors: int | None = None,
    numba_loaded: bool | None = None,
    per_pixel: bool = False,
    numba_warm: bool | None = None,
) -> str:
    """The backend that runs a job: ``name`` itself, or for "auto" the faster one for its work.

    "auto" runs numba in a process where its kernels are loaded already (a warm server, a second
    job), else picks in two steps. Before the histogram (``colors`` None): numba when ``pixels``
    is over :data:`AUTO_NUMBA_PIXELS`, else numpy, which builds the histogram (cheap at that
    size). Then, with the distinct colours known: numpy when ``colors * k`` is at most
    :data:`AUTO_NUMPY_WORK` (:data:`AUTO_NUMPY_WORK_LOADED` when numba is already imported),
    else numba. The pick is a function of these numbers alone, and the backends give the same
    results bit for bit, so it changes only the speed.

    Parameters
    ----------
    name : "auto", "numba" or "numpy" (already checked)
    pixels : the image's pixels (points, for :func:`kmpress.kmeans`)
    k : the largest K the job fits
    colors : the image's distinct colours once its histogram is built (points for kmeans)
    numba_loaded : whether numba is already imported in the process (default: looked up)
    per_pixel : the remap works pixel by pixel (dithering, ``smooth``): numba when ``pixels x
        (k + PIXEL_OVERHEAD)`` is over :data:`AUTO_NUMPY_PIXEL_WORK`, whatever the colours
    numba_warm : whether numba's kernels are loaded already (default: :func:`numba_is_warm`): then
        numba, whatever the work
    """
    if name != "auto":
        return name
    if numba_warm is None:
        numba_warm = numba_is_warm()
    if numba_warm:
        return "numba"
    if per_pixel and pixels * (k + PIXEL_OVERHEAD) > AUTO_NUMPY_PIXEL_WORK:
        return "numba"
    if colors is None:
        return "numba" if pixels > AUTO_NUMBA_PIXELS else "numpy"
    if numba_loaded is None:
        numba_loaded = "numba" in sys.modules
    limit = AUTO_NUMPY_WORK_LOADED if numba_loaded else AUTO_NUMPY_WORK
    return "numpy" if colors * k <= limit else "numba"


def load(name: str) -> ModuleType:
    """The kernel module of backend ``name`` ("numba" or "numpy", already checked)."""
    if name == "numpy":
        from . import kernels_numpy

        return kernels_numpy
    # deferred: numba's import and thread set-up run llvmlite's code, which C calls back
    with deferred():
        if "numba" not in sys.modules:
            prepare_numba_cache()
            if _skip_blas_probe:
                _import_numba_without_blas_probe()
        from . import kernels_numba
        from .kernels_numba import _jit

        _jit.on_compile = _compiling_here
        _jit.before_first_load = _wait_for_plans
        if _threads is not None:
            _apply_threads(_threads)
    return kernels_numba


def warm_up(
    pixels: int, ks: int | Sequence[int], colorspace: str = "rgb", dither: str | None = None, smooth: bool = False
) -> threading.Thread:
    """Load numba and the kernels a compression of ``pixels`` pixels at each K of ``ks`` needs
    (with these options: see ``kmpress.kernels_numba.warm_up_kernels``), in a background thread
    (returned, started).

    For a run that will use numba: its start-up then overlaps the decoding of the image, which
    releases the GIL. The kernels are loaded from numba's cache; those not in it are compiled
    first, in several processes at once (:func:`compile_ahead`), and a call of one waits for it."""

    def work() -> None:
        try:
            try:
                kernels = load("numba").warm_up_kernels(pixels, ks, colorspace, dither, smooth)
                compile_ahead(kernels)
            finally:
                _planned(-1)
            for kernel in kernels:
                _ = kernel.dispatcher  # reading the attribute loads the kernel
        except BaseException:  # the caller meets the same problem itself, and reports it
            pass

    _planned(+1)  # until the kernels to compile ahead are chosen, a kernel's first call waits
    t = threading.Thread(target=work, name="kmpress-numba-warm-up", daemon=True)
    try:
        t.start()
    except BaseException:
        _planned(-1)
        raise
    return t


_planning = 0  # warm-ups still choosing what to compile ahead
_plan_done = threading.Condition()


def _planned(change: int) -> None:
    global _planning
    with _plan_done:
        _planning += change
        _plan_done.notify_all()


def _wait_for_plans() -> None:
    """The hook of ``kernels_numba._jit`` before a kernel's first load: wait for the warm-ups
    choosing what to compile ahead, so that a kernel they compile elsewhere is not also compiled
    here (a first run then says at once how many kernels it compiles)."""
    with _plan_done:
        _plan_done.wait_for(lambda: _planning == 0, timeout=60)


# ------------------------------------------------------------------------------------------
# compiling: ahead of the first call, in several processes, and told to a listener
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compiling:
    """What a process's compilation of kernels has come to, as told to :func:`on_compile`'s
    listener: ``done`` of ``total`` kernels compiled (``total`` grows when a kernel that was not
    foreseen turns out to be missing from the cache), saved in ``cache_dir`` (None if unknown)."""

    done: int
    total: int
    cache_dir: str | None


_compile_lock = threading.Lock()
_counted: set[str] = set()  # the kernels counted in the total
_done = 0
_listener: Callable[[Compiling], None] | None = None
_cache_dir: str | None = None


def on_compile(listener: Callable[[Compiling], None] | None) -> None:
    """Have ``listener`` told, from any thread, each time this process starts compiling kernels
    (``done`` 0, or more when some were done before) and as each is done, until the listener is
    replaced (None: nobody). Never called when every kernel loads from numba's cache: so a first
    run can say that it compiles, with progress, and a later run says nothing."""
    global _listener
    _listener = listener


def _tell(kernels: Sequence[Any] = (), done: bool = False) -> None:
    """Count ``kernels`` in the total (once each) or one more done, and tell the listener."""
    global _done, _cache_dir
    with _compile_lock:
        new = [k for k in kernels if k.key not in _counted]
        if kernels and not new:
            return
        _counted.update(k.key for k in new)
        if _cache_dir is None and new:
            _cache_dir = new[0].cache_dir()
        if done:
            _done += 1
        status = Compiling(_done, len(_counted), _cache_dir)
        listener = _listener
    if listener is not None:
        listener(status)


def _compiling_here(kernel: Any, finished: bool) -> None:
    """The hook of ``kernels_numba._jit``: ``kernel`` compiles in this process (then is done)."""
    if finished:
        _tell(done=True)
    else:
        _tell([kernel])


def compile_processes() -> int:
    """How many processes compile kernels at once: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def compile_ahead(kernels: Sequence[Any], processes: int | None = None) -> list:
    """Compile the ``kernels`` (numba's, from ``load("numba")``) not in numba's cache, in up to
    ``processes`` worker processes at once (default :func:`compile_processes`), into the cache,
    and return them. Those another thread already has compiled elsewhere are left to it.

    The listener of :func:`on_compile` is told the number to compile first, then each as it is
    done. With one process, or where the cache cannot be written (a read-only install: a worker's
    kernel could not reach this process), nothing is compiled ahead: each compiles here at its first
    call, as before, and is told just the same."""
    kn = load("numba")
    missing = [k for k in kernels if not k.pending and not k.cached()]
    if not missing:
        return []
    _tell(missing)
    n = min(len(missing), processes or compile_processes())
    if n < 2 or not kn.cache_writable(missing[0]):
        return []
    command = [sys.executable, "-c", "from kmpress.backends import serve_compiles; serve_compiles()"]

    def done(kernel: Any, ok: bool) -> None:
        if ok:
            _tell(done=True)

    failed = kn.compile_in_processes(missing, n, command, on_done=done)
    return [k for k in missing if k not in failed]


def serve_compiles() -> None:
    """A compiling worker of :func:`compile_ahead`: compiles the kernels named on its standard
    input, one a line, into numba's cache, answering each on its standard output."""
    import signal

    # Ctrl-C goes to the whole terminal's process group: the caller handles it and closes this
    # worker's input, which ends it once its kernel is compiled
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    own_process()
    load("numba").serve_compiles()


def warm(processes: int | None = None) -> dict[str, Any]:
    """Compile every kernel not in numba's cache now, in up to ``processes`` processes at once,
    then load them all: what ``kmpress warm`` does, for a machine image or a CI cache.

    Returns
    -------
    dict with ``kernels`` (how many the package has), ``compiled`` (how many were not in the
    cache), ``processes`` (the worker processes used; 0: compiled in this process),
    ``cache_dir`` (where numba keeps them), ``cache_writable`` (False: nothing could be saved,
    a later run compiles again) and ``seconds``.
    """
    import time

    t0 = time.perf_counter()
    kn = load("numba")
    kernels = kn.all_kernels()
    missing = [k for k in kernels if not k.cached()]
    n = min(len(missing), processes or compile_processes())
    writable = kn.cache_writable(kernels[0])
    ahead = compile_ahead(missing, n)
    with deferred():
        for k in kernels:
            _ = k.dispatcher  # loads it (compiles here what no worker could)
    return {
        "kernels": len(kernels),
        "compiled": len(missing),
        "processes": n if ahead else 0,
        "cache_dir": kernels[0].cache_dir(),
        "cache_writable": writable,
        "seconds": time.perf_counter() - t0,
    }


def set_threads(threads: int | None) -> None:
    """numba's thread count for this thread from now on (numba ignores OMP_NUM_THREADS); applied
    when numba loads if it has not yet. None leaves it as it is."""
    global _threads
    if not threads:
        return
    _threads = int(threads)
    if "numba" in sys.modules:
        _apply_threads(_threads)


def _apply_threads(threads: int) -> None:
    import numba

    with deferred():  # may start numba's thread pool
        # numba.config sets its attributes at import time
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]


#: Set in a process of kmpress's own (:func:`own_process`) unless the user set them: how long an
#: idle OpenMP thread (numba's usual threading layer, GNU OpenMP) spins before it sleeps. GNU's
#: default spins some 300 000 rounds, which on a busy machine (more runnable processes than
#: cores) keeps a thread on a core the next parallel region needs: a 0.1 MP photo then took 4x
#: longer on 2 threads than on 1. With 10 000 rounds two threads are never slower than one under
#: load, and as fast as before on an idle machine (docs/speed.md, "Busy machines").
OPENMP_DEFAULTS = {"GOMP_SPINCOUNT": "10000"}


def own_process() -> None:
    """Declare that this process runs only kmpress (the CLI and its workers): numba's BLAS probe
    is skipped when numba loads, and OpenMP's threads spin less (:data:`OPENMP_DEFAULTS`, set in
    the environment unless the user set them, before numba's threading layer loads).

    Loading the first compiled kernel makes numba import its NumPy support, which probes for BLAS
    by importing ``scipy.linalg`` (0.2-0.4 s where SciPy is installed). kmpress's kernels use no
    BLAS, so SciPy's BLAS module is hidden during that one import and put back at once (SciPy
    itself stays importable). Other numba code in the same process would then find no BLAS for
    ``np.dot``, which is why library users never get this.
    """
    global _skip_blas_probe
    _skip_blas_probe = True
    for name, value in OPENMP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if "numba" in sys.modules:
        _import_numba_without_blas_probe()


def _import_numba_without_blas_probe() -> None:
    key = "scipy.linalg.cython_blas"
    if "numba.np.arraymath" in sys.modules or key in sys.modules:
        return
    # None in sys.modules makes "import scipy.linalg.cython_blas" raise ImportError
    sys.modules[key] = None  # type: ignore[assignment]
    try:
        with deferred():
            import numba.np.arraymath  # noqa: F401
    finally:
        del sys.modules[key]


def prepare_numba_cache() -> None:
    """Make sure numba's compiled kernels can be cached, so that only the first run compiles.

    numba caches beside the sources (``kmpress/kernels_numba/__pycache__``) when that is
    writable, else in the user's cache folder (``~/.cache/numba``). When neither is writable (a
    read-only install run by a user without a writable home), point NUMBA_CACHE_DIR at a per-user
    temporary folder. Must run before numba is imported; a NUMBA_CACHE_DIR set by the user is
    left alone.
    """
    if os.environ.get("NUMBA_CACHE_DIR") or "numba" in sys.modules:
        return
    pkg = Path(__file__).resolve().parent / "kernels_numba"
    if _writable(pkg / "__pycache__") or _writable(pkg):
        return
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if _creatable(Path(xdg, "numba")):
        return  # numba's own user-wide fallback works
    import tempfile

    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"kmpress-numba-cache-{uid}")


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def _creatable(folder: Path) -> bool:
    """The folder exists and is writable, or its nearest existing ancestor is (numba makes it)."""
    for p in (folder, *folder.parents):
        if p.exists():
            return _writable(p)
    return False
