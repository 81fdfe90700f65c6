"""numba's set-up in a process, done once and only when numba is needed; the backend pick.

``load("numpy")`` never imports numba. ``load("numba")`` imports it on first use, after making
sure its compiled kernels can be cached (see :func:`prepare_numba_cache`), choosing the cache the
kernels load from (numba's own for this CPU, or the prebuilt portable one shipped with the package
while numba's own lacks kernels: :func:`tier`, :mod:`kmpress.prebuilt`) and applying what the
process asked for beforehand (:func:`set_threads`, :func:`own_process`), so that a run whose work
never reaches numba never pays for it. The backend ``"auto"`` picks is :mod:`kmpress.autopick`'s
:func:`choose`, also found here.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from .autopick import (  # noqa: F401 - the backend pick, kmpress.backends.choose as before
    AUTO_NUMBA_PIXELS,
    AUTO_NUMPY_PIXEL_WORK,
    AUTO_NUMPY_WORK,
    AUTO_NUMPY_WORK_LOADED,
    PIXEL_OVERHEAD,
    choose,
    numba_is_warm,
)
from .interrupts import deferred

_threads: int | None = None
_skip_blas_probe = False


def load(name: str) -> ModuleType:
    """The kernel module of backend ``name`` ("numba" or "numpy", already checked)."""
    global _tier
    if name == "numpy":
        from . import kernels_numpy

        return kernels_numpy
    # deferred: numba's import and thread set-up run llvmlite's code, which C calls back
    with deferred(), _loading:  # one thread sets numba up; another (a warm-up) waits for it
        if "numba" not in sys.modules:
            prepare_numba_cache()
            if _skip_blas_probe:
                _import_numba_without_blas_probe()
        first = _tier is None and "kmpress.kernels_numba" not in sys.modules
        if first:
            from . import prebuilt

            _choose_tier(prebuilt)
        elif _tier is None:  # the kernels were imported directly: numba's own settings
            _tier = "native"
        from . import kernels_numba
        from .kernels_numba import _jit

        _jit.on_compile = _compiling_here
        _jit.before_first_load = _wait_for_plans
        if _threads is not None:
            _apply_threads(_threads)
        if first and _tier == "portable" and _behind:
            _compile_native_behind(kernels_numba)
    return kernels_numba


_loading = threading.RLock()


def warm_up(pixels: int, ks: int | Sequence[int], **hints: Any) -> threading.Thread:
    """Load numba and the kernels a compression of ``pixels`` pixels at each K of ``ks`` needs
    (with the job's ``hints``, ``colorspace``, ``dither``, ``smooth`` and ``measure``: see
    ``kmpress.kernels_numba.warm_up_kernels``), in a background thread (returned, started).

    For a run that will use numba: its start-up then overlaps the decoding of the image, which
    releases the GIL. The kernels are loaded from numba's cache; those not in it are compiled
    first, in several processes at once (:func:`compile_ahead`), and a call of one waits for it."""

    def work() -> None:
        try:
            try:
                kernels = load("numba").warm_up_kernels(pixels, ks, **hints)
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
    call = f"serve_compiles({_tier!r})"  # the workers fill the cache this process loads from
    command = [sys.executable, "-c", f"from kmpress.backends import serve_compiles; {call}"]

    def done(kernel: Any, ok: bool) -> None:
        if ok:
            _tell(done=True)

    failed = kn.compile_in_processes(missing, n, command, on_done=done)
    return [k for k in missing if k not in failed]


def serve_compiles(tier: str | None = None, background: bool = False) -> None:
    """A compiling worker of :func:`compile_ahead`: compiles the kernels named on its standard
    input, one a line, into numba's cache, answering each on its standard output.

    ``tier`` ("native" or "portable") is the cache to fill, the caller's (None: chosen as in any
    process); ``background``: at the lowest priority, behind the caller's own work."""
    import signal

    global _tier_wanted
    # Ctrl-C goes to the whole terminal's process group: the caller handles it and closes this
    # worker's input, which ends it once its kernel is compiled
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if background and hasattr(os, "nice"):
        try:
            os.nice(19)
        except OSError:
            pass
    _tier_wanted = tier
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
    a later run compiles again), ``seconds``, and from :func:`tier`: ``tier`` (the cache later
    runs load from), ``portable_dir`` and ``archive``.

    This is numba's own cache for this CPU (the native tier), also when this process already
    runs on the prebuilt kernels (it ran kmpress's work first): this CPU's are then compiled in
    worker processes.
    """
    import time

    global _tier_wanted
    t0 = time.perf_counter()
    if "kmpress.kernels_numba" not in sys.modules:
        _tier_wanted = "native"
    kn = load("numba")
    kernels = kn.all_kernels()
    if _tier == "portable":
        missing_keys = set(_facts.get("native_missing", ()))
        missing = [k for k in kernels if k.key in missing_keys]
        n = min(len(missing), processes or compile_processes())
        failed = kn.compile_in_processes(missing, max(n, 1), _native_command(False), expect=False) if missing else []
        facts = {"processes": max(n, 1) if missing else 0, "cache_dir": _facts.get("native_dir")}
        writable = not failed
        done_tier = "portable" if failed else "native"
    else:
        missing = [k for k in kernels if not k.cached()]
        n = min(len(missing), processes or compile_processes())
        writable = kn.cache_writable(kernels[0])
        ahead = compile_ahead(missing, n)
        with deferred():
            for k in kernels:
                _ = k.dispatcher  # loads it (compiles here what no worker could)
        facts = {"processes": n if ahead else 0, "cache_dir": kernels[0].cache_dir()}
        done_tier = "native"
    return {
        "kernels": len(kernels),
        "compiled": len(missing),
        **facts,
        "cache_writable": writable,
        "seconds": time.perf_counter() - t0,
        "tier": done_tier,
        "portable_dir": _facts.get("portable_dir"),
        "archive": _facts.get("archive"),
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
    is skipped when numba loads, OpenMP's threads spin less (:data:`OPENMP_DEFAULTS`, set in the
    environment unless the user set them), and a first run may load the prebuilt kernels (numba
    is then set to their CPU for the whole process: see :func:`tier`).

    Loading the first compiled kernel makes numba import its NumPy support, which probes for BLAS
    by importing ``scipy.linalg`` (0.2-0.4 s where SciPy is installed). kmpress's kernels use no
    BLAS, so SciPy's BLAS module is hidden during that one import and put back at once (SciPy
    itself stays importable). Other numba code in the same process would then find no BLAS for
    ``np.dot``, and would be compiled for the prebuilt kernels' CPU into their cache, which is
    why library users never get this.
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


# ------------------------------------------------------------------------------------------
# the cache a process loads its kernels from: numba's own, or the prebuilt portable one
# ------------------------------------------------------------------------------------------

#: The cache this process loads its kernels from, chosen as numba loads (:func:`_choose_tier`):
#: "native" (numba's own, compiled for this CPU) or "portable" (the prebuilt archive, unpacked).
_tier: str | None = None
_tier_wanted: str | None = None  # imposed: "native" by kmpress warm, either by a compiling worker
_behind = False  # the CLI's own process: the portable tier compiles the native one behind it
_facts: dict[str, Any] = {}  # what the choice found (see tier())


def compile_behind() -> None:
    """Declare that this process is the CLI's: when it runs the portable tier, the kernels numba's
    own cache lacks are compiled for this CPU behind the command, for the runs after it."""
    global _behind
    _behind = True


def tier() -> dict[str, Any]:
    """Which cache the kernels load from in this process, and where each cache lives.

    Returns
    -------
    dict with ``tier`` ("native", "portable", or None before numba loads), ``native_dir`` (numba's
    own cache folder of the kernels), ``native_missing`` (the kernels it lacks for this CPU),
    ``portable_dir`` (the unpacked prebuilt cache, None when not used) and ``archive`` (the
    prebuilt archive for this numba and Python, None when the package has none).
    """
    return {
        "tier": _tier,
        "native_dir": _facts.get("native_dir"),
        "native_missing": len(_facts.get("native_missing", ())),
        "portable_dir": _facts.get("portable_dir"),
        "archive": _facts.get("archive"),
    }


def _choose_tier(prebuilt: ModuleType) -> None:
    """Choose the cache the kernels load from, before numba's code generator exists.

    In a process that runs only kmpress (:func:`own_process`), the portable tier when numba's own
    cache does not hold every kernel for this CPU, the package ships an archive for this numba,
    Python and platform, this CPU runs its code, and the user has not chosen numba's CPU
    (NUMBA_CPU_NAME, NUMBA_CPU_FEATURES): the archive is unpacked (once) and numba is pointed at
    it and at the archive's CPU. Else, or when anything fails (a cache that cannot be written),
    the native tier: numba's own cache, compiling what it lacks.
    """
    global _tier
    _tier = "native"
    if not _skip_blas_probe:  # a library's caller: its own numba code is left as numba sets it
        return
    try:
        root = _portable_root(prebuilt, _host())
    except Exception:  # the native tier works everywhere: never fail for want of the other
        root = None
    if root is not None:
        from numba.core import config as numba_config

        config: Any = numba_config  # its settings are made at run time: no static attributes
        config.CPU_NAME, config.CPU_FEATURES, config.CACHE_DIR = prebuilt.PORTABLE_CPU, "", str(root)
        _tier = "portable"


def _host() -> dict[str, Any]:
    """What the choice of tier reads of numba, llvmlite and this CPU (nothing is compiled)."""
    import llvmlite.binding as ll
    import numba
    from numba.core import caching, codegen
    from numba.core import config as numba_config
    from numba.core.registry import cpu_target

    config: Any = numba_config

    return {
        "numba": numba.__version__,
        "triple": ll.get_process_triple(),
        "cpu_name": ll.get_host_cpu_name(),
        "cpu_features": codegen.get_host_cpu_features(),  # as numba's index keys spell them
        "features": dict(ll.get_host_cpu_features()),
        # the user's choice of CPU or cache locators; or the code generator already made
        "leave": bool(
            config.CPU_NAME is not None
            or config.CPU_FEATURES is not None
            or config.CACHE_LOCATOR_CLASSES
            or config.DISABLE_JIT
            or not config.ENABLE_AVX
            or "_toplevel_target_context" in vars(cpu_target)
        ),
        "cache_dir": config.CACHE_DIR or None,
        "folder_of": lambda source: _numba_cache_folder(caching, source),
        "subpath_of": caching._CacheLocator.get_suitable_cache_subpath,
    }


def _portable_root(prebuilt: ModuleType, host: dict[str, Any]) -> Any:
    """The cache folder of the portable tier, or None for the native tier (see :func:`_choose_tier`)."""
    if host["leave"]:
        return None
    archive = prebuilt.archive_path(host["numba"])
    manifest = prebuilt.read_manifest(archive)
    wanted = {"numba": host["numba"], "python": prebuilt.python_tag(), "triple": host["triple"]}
    if manifest is None or any(manifest.get(k) != v for k, v in wanted.items()) or not manifest["kernels"]:
        return None
    source = str(prebuilt.SOURCES / manifest["kernels"][0]["source"])
    native = host["folder_of"](source)
    magic = (host["triple"], host["cpu_name"], host["cpu_features"])
    _facts.update(archive=str(archive), native_dir=native, native_missing=prebuilt.missing(native, manifest, magic))
    if _tier_wanted == "native" or not (_facts["native_missing"] or _tier_wanted == "portable"):
        return None
    if not prebuilt.runs_here(host["features"]):
        return None
    root = prebuilt.cache_root(host["cache_dir"], native)
    subpath = host["subpath_of"](source)
    base = prebuilt.unpack(archive, manifest, root, subpath) if root is not None else None
    if base is None:
        return None
    folder = base / subpath
    if prebuilt.missing(folder, manifest, (host["triple"], prebuilt.PORTABLE_CPU, "")):
        return None  # an archive older than the sources: their kernels would compile in the foreground
    _facts["portable_dir"] = str(folder)
    return base


def _numba_cache_folder(caching: ModuleType, source: str) -> str | None:
    """The folder numba caches the kernels of module file ``source`` in (its locators, in order)."""
    stand_in = SimpleNamespace(__code__=SimpleNamespace(co_firstlineno=0))  # a locator reads the line only
    for cls in caching.CacheImpl._locator_classes:
        locator = cls.from_function(stand_in, source)
        if locator is not None:
            return str(locator.get_cache_path())
    return None


def _native_command(background: bool) -> list[str]:
    call = f"serve_compiles('native', background={background})"
    return [sys.executable, "-c", f"from kmpress.backends import serve_compiles; {call}"]


def _compile_native_behind(kn: ModuleType) -> None:
    """Compile the kernels numba's own cache lacks, for this CPU, in worker processes at the lowest
    priority, behind this process's work (which loads the portable tier); they stop when this
    process exits, and a later run goes on with what is still missing."""
    missing = set(_facts.get("native_missing", ()))
    kernels = [k for k in kn.all_kernels() if k.key in missing]
    if not kernels:
        return

    def work() -> None:
        try:
            kn.compile_in_processes(kernels, compile_processes(), _native_command(True), expect=False)
        except BaseException:  # for later runs only: this one never depends on it
            pass

    threading.Thread(target=work, name="kmpress-native-compile", daemon=True).start()
