"""The backend ``"auto"`` picks for a job: NumPy where numba's start-up would cost more than the work.

The pick is a function of the job's numbers (pixels, K, distinct colours, whether the remap works
pixel by pixel) and of what the process has loaded already; both backends give the same results
bit for bit, so it changes only the speed. :func:`choose` is also ``kmpress.backends.choose``.
"""

from __future__ import annotations

import sys

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
    """Tell whether numba's serial kernels are all loaded in this process already.

    As in a warm ``kmpress serve``: numba then has no start-up left to pay and runs every job
    faster than NumPy.
    """
    # a warm-up thread may be importing the module right now: sys.modules holds it from the start
    # of its body, before REGISTRY exists, and the dict grows as the kernel modules load
    registry = getattr(sys.modules.get("kmpress.kernels_numba._jit"), "REGISTRY", None)
    if not registry:
        return False
    kernels = [k for k in tuple(registry.values()) if not k.parallel]
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
    """Return the backend that runs a job: ``name`` itself, or for "auto" the faster one for its work.

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
