"""The public API and the only place that validates and converts.

Everything below this module (histogram, init, lloyd, remap, the kernels) trusts its inputs:
C-contiguous arrays of fixed dtypes, K in range, a seeded Generator.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

from . import kernels_numpy
from .errors import ImageWriteError, InvalidParameterError
from .histogram import build_histogram
from .init import kmeans_plusplus, random_init
from .io import DEFAULT_MAX_PIXELS, load_image, write_png
from .clustering import lloyd
from .colorspace import COLORSPACES, colors_to_space, delta_e_histogram
from .kernels_numba.remap import DITHERS, floyd_steinberg, pixel_errors, smooth_remap
from .metrics import Bits, bit_accounting, png_bit_depth, psnr_from_mse, squared_error_sum
from .palette import ORDERS, finish_palette, spawn_seeds
from .remap import gather_indices

Backend = Literal["numba", "numpy"]

#: Most palette entries a PNG can hold.
MAX_K = 256
#: Default relative tolerance on the centroid shift (see :func:`kmeans`). Chosen by measurement:
#: see the README ("Convergence").
DEFAULT_TOL = 3e-5
#: Fraction of the quantization error Floyd-Steinberg diffuses by default (see kmpress.kernels_numba.remap).
DEFAULT_DITHER_STRENGTH = 0.75
#: Default cap on Lloyd iterations.
DEFAULT_MAX_ITER = 300


def _describe(value: Any) -> str:
    """A short one-line description of a bad parameter value for an error message (the repr of
    an array would span many lines)."""
    if isinstance(value, (str, bool, int, float, np.generic)) or value is None:
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    shape = getattr(value, "shape", None)
    return f"a {type(value).__name__} of shape {shape}" if shape is not None else f"a {type(value).__name__}"


def _kernels(backend: str) -> ModuleType:
    # compare strings only: ``array == "numba"`` is an array whose truth value raises
    name = backend if isinstance(backend, str) else None
    if name == "numba":
        from . import kernels_numba

        return kernels_numba
    if name == "numpy":
        return kernels_numpy
    raise InvalidParameterError(f"backend must be 'numba' or 'numpy', not {_describe(backend)}")


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameterError(f"{name} must be an integer, not {type(value).__name__}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        rng = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
        raise InvalidParameterError(f"{name} must be {rng}, got {v}")
    return v


def _check_tol(tol: Any) -> float:
    try:
        t = float(tol)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"tol must be a number, not {_describe(tol)}") from None
    if not math.isfinite(t) or t < 0:
        raise InvalidParameterError(f"tol must be a finite number >= 0, got {_describe(tol)}")
    return t


def _rng(seed: Any) -> np.random.Generator:
    return np.random.default_rng(_check_int("seed", seed, 0))


# --------------------------------------------------------------------------------------------
# kmeans
# --------------------------------------------------------------------------------------------


@dataclass
class KMeansResult:
    """Result of :func:`kmeans`.

    Attributes
    ----------
    centroids : (k, D) float64
    labels : (N,) int32; index of each point's nearest centroid in ``centroids``
    inertia : float; weighted sum of squared distances of the points to their centroids
    n_iter : int; centroid updates made
    converged : bool; False when ``max_iter`` was reached first
    inertia_history : list of float; inertia at each assignment pass, in order (never increases)
    """

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    inertia_history: list[float] = field(default_factory=list, repr=False)


def _as_points(points: Any) -> np.ndarray:
    a = np.asarray(points)
    if a.ndim != 2 or a.shape[1] not in (3, 4):
        raise InvalidParameterError(f"points must have shape (N, 3) or (N, 4), got {a.shape}")
    if a.shape[0] == 0:
        raise InvalidParameterError("points is empty")
    if a.dtype.kind not in "iuf":
        raise InvalidParameterError(f"points must be integers or floats, not {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise InvalidParameterError("points contain NaN or infinity")
    # planar float32 copy: the caller's array is never touched
    return np.ascontiguousarray(a.T, dtype=np.float32)


def _as_weights(weights: Any, n: int) -> np.ndarray:
    w = np.asarray(weights)
    if w.shape != (n,):
        raise InvalidParameterError(f"weights must have shape ({n},), got {w.shape}")
    if w.dtype.kind not in "iuf" and w.dtype.kind != "b":
        raise InvalidParameterError(f"weights must be numbers, not {w.dtype}")
    w = np.array(w, dtype=np.float64, order="C", copy=True)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InvalidParameterError("weights must be finite and non-negative")
    if not w.sum() > 0:
        raise InvalidParameterError("weights sum to zero")
    return w


def _initial_centroids(init: Any, X, w, weighted, k, rng, kern) -> np.ndarray:
    D, N = X.shape
    if isinstance(init, str):
        if init == "k-means++":
            return kmeans_plusplus(X, w, weighted, k, rng, kern)
        if init == "random":
            positive = int(np.count_nonzero(w > 0)) if weighted else N
            if positive < k:
                raise InvalidParameterError(f"init='random' needs k={k} points of positive weight, found {positive}")
            return random_init(X, w, weighted, k, rng)
        raise InvalidParameterError(f"init must be 'k-means++', 'random' or an array, not {_describe(init)}")
    c = np.asarray(init)
    if c.shape != (k, D):
        raise InvalidParameterError(f"init array must have shape ({k}, {D}), got {c.shape}")
    if c.dtype.kind not in "iuf" or not np.all(np.isfinite(c)):
        raise InvalidParameterError("init array must hold finite numbers")
    return np.array(c, dtype=np.float64, order="C", copy=True)


def kmeans(
    points: Any,
    k: int,
    *,
    weights: Any = None,
    init: str | np.ndarray = "k-means++",
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    seed: int = 0,
    backend: Backend = "numba",
) -> KMeansResult:
    """Weighted k-means (Lloyd's algorithm) on 3- or 4-D points.

    Parameters
    ----------
    points : (N, D) array_like, D = 3 or 4, any integer or float dtype
        Converted once to float32 (exact for 8-bit colours); never modified.
    k : int, 1 <= k <= N
    weights : (N,) array_like of non-negative numbers, optional
        A point of weight m counts as m copies of it.
    init : "k-means++", "random" or (k, D) array_like
        Greedy weighted k-means++, k distinct points drawn by weight, or explicit centroids.
    max_iter : int >= 0
        Most centroid updates.
    tol : float >= 0
        Stop when the sum of squared centroid shifts of an update is at most
        ``tol * mean per-channel (weighted) variance`` of the points; the loop always stops when
        no label changes. ``tol=0`` runs to a fixed point or ``max_iter``.
    seed : int >= 0
        Seeds the initialisation; the same seed gives the same result at any thread count.
    backend : "numba" or "numpy"

    Returns
    -------
    KMeansResult
        The final labels always belong to the final centroids. An empty cluster is re-seeded with
        the point farthest from its centroid; with fewer distinct points than k some centroids
        can coincide.
    """
    kern = _kernels(backend)
    X = _as_points(points)
    D, N = X.shape
    k = _check_int("k", k, 1, N)
    max_iter = _check_int("max_iter", max_iter, 0)
    tol = _check_tol(tol)
    rng = _rng(seed)
    weighted = weights is not None
    w = _as_weights(weights, N) if weighted else np.empty(0, np.float64)
    C0 = _initial_centroids(init, X, w, weighted, k, rng, kern)
    r = lloyd(X, w, weighted, C0, max_iter, tol, kern, final_assign=True)
    return KMeansResult(r.centroids, r.labels, r.inertia, r.n_iter, r.converged, r.inertia_history)


# --------------------------------------------------------------------------------------------
# quantize
# --------------------------------------------------------------------------------------------


@dataclass
class Quantized:
    """An image reduced to a palette.

    Attributes
    ----------
    palette : (k', C) uint8; k' <= k distinct entries (fewer when the image has fewer colours)
    indices : (H, W) uint8; palette index of every pixel
    mse : float; mean squared error per channel against the input
    psnr : float; dB, ``inf`` when lossless
    n_iter : int; Lloyd iterations run (0 when the image has at most k colours)
    converged : bool
    bits : Bits; raw vs indexed bit accounting
    n_colors_in : int; distinct colours of the input
    timings : dict of stage name -> seconds
    delta_e : float; mean OKLab distance (plain OKLab units, L from 0 to 1) between each input
        pixel's colour and its output colour, alpha ignored; 0 when lossless
    colorspace : "rgb" or "oklab"; the space the palette was clustered and matched in
    dither : None or "floyd-steinberg"
    target_psnr : float or None; the quality target (dB) when K was searched for (``target_psnr=``)
    target_reached : bool or None; whether the result reaches ``target_psnr`` (False: even
        ``max_colors`` colours do not, and this is the ``max_colors`` result)
    search : list of kmpress.quality.Trial; the K values fitted by the search, in order
    """

    palette: np.ndarray
    indices: np.ndarray
    mse: float
    psnr: float
    n_iter: int
    converged: bool
    bits: Bits
    n_colors_in: int
    timings: dict[str, float] = field(default_factory=dict, repr=False)
    delta_e: float = math.nan
    colorspace: str = "rgb"
    dither: str | None = None
    target_psnr: float | None = None
    target_reached: bool | None = None
    search: list = field(default_factory=list, repr=False)

    @property
    def k(self) -> int:
        """Palette entries stored."""
        return int(self.palette.shape[0])

    @property
    def png_bit_depth(self) -> int:
        """Bits per pixel of the PNG this result writes: 1, 2, 4 or 8."""
        return png_bit_depth(self.k)

    def to_array(self) -> np.ndarray:
        """The reconstructed image, (H, W, C) uint8: exactly what the PNG decodes to."""
        return self.palette[self.indices]


def _as_image(image: Any) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise InvalidParameterError(f"image must be uint8, not {a.dtype}")
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InvalidParameterError(f"image must have shape (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InvalidParameterError(f"image is empty: shape {a.shape}")
    # a read-only view (e.g. np.asarray of a Pillow image) would compile the kernels anew as
    # another type; a C-contiguous writable array is what they are cached for
    if not a.flags.c_contiguous or not a.flags.writeable:
        a = np.array(a, order="C", copy=True)
    return a


def _check_choice(name: str, value: Any, choices: tuple) -> Any:
    if not any(value is c or (isinstance(value, str) and value == c) for c in choices):
        shown = ", ".join("None" if c is None else repr(c) for c in choices)
        raise InvalidParameterError(f"{name} must be one of {shown}, not {_describe(value)}")
    return value


def _check_smooth(smooth: Any) -> float:
    try:
        s = float(smooth)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"smooth must be a number, not {_describe(smooth)}") from None
    if not math.isfinite(s) or s < 0:
        raise InvalidParameterError(f"smooth must be a finite number >= 0, got {_describe(smooth)}")
    return s


def _check_strength(strength: Any) -> float:
    try:
        s = float(strength)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"dither_strength must be a number, not {_describe(strength)}") from None
    if not (0.0 < s <= 1.0):
        raise InvalidParameterError(f"dither_strength must be in (0, 1], got {_describe(strength)}")
    return s


def quantize(
    image: Any,
    k: int | None = None,
    *,
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    init: str = "k-means++",
    backend: Backend = "numba",
    colorspace: str = "rgb",
    dither: str | None = None,
    n_init: int = 1,
    palette_order: str = "luma",
    smooth: float = 0.0,
    dither_strength: float = DEFAULT_DITHER_STRENGTH,
    target_psnr: float | None = None,
    max_colors: int = MAX_K,
    strict: bool = False,
) -> Quantized:
    """Reduce an image to at most ``k`` colours with k-means, or to the fewest colours that
    reach a quality target.

    Parameters
    ----------
    image : (H, W, 3) or (H, W, 4) uint8 array_like
        RGB or RGBA (clustered in 4-D, so transparency is kept). Never modified.
    k : int, 1 <= k <= 256; or None with ``target_psnr``
    seed, max_iter, tol, init, backend
        As for :func:`kmeans`; ``init`` is "k-means++" or "random".
    target_psnr : float > 0, optional
        A quality target in dB instead of ``k``: the smallest K (1..``max_colors``) whose result
        reaches it, found by a warm-started search (:func:`kmpress.quality.quantize_to_quality`,
        which also returns the search's details). The result's ``target_psnr``,
        ``target_reached`` and ``search`` fields are set.
    max_colors : int, 1..256; the largest K the search may use
    strict : with ``target_psnr``: raise :class:`kmpress.quality.TargetNotReachedError` when
        ``max_colors`` colours cannot reach the target (default: return that result, with
        ``target_reached`` False)
    colorspace : "rgb" or "oklab"
        Space in which colours are clustered and matched to the palette: sRGB values as stored,
        or OKLab (perceptual; see :mod:`kmpress.colorspace`). The palette is stored as sRGB uint8
        either way. With alpha, the alpha channel is a 4th coordinate in both spaces.
    dither : None or "floyd-steinberg"
        Remap with serpentine Floyd-Steinberg error diffusion (see :mod:`kmpress.kernels_numba.remap`): fewer
        visible bands on gradients, at some cost in PSNR and file size. ``mse``, ``psnr`` and
        ``delta_e`` are then computed from the dithered pixels.
    dither_strength : float in (0, 1]
        Fraction of the error diffused (1 = textbook Floyd-Steinberg); used only with ``dither``.
    n_init : int, 1..32
        Independent starts (k-means++ or random, each run to convergence); the lowest inertia
        wins. Start 1 uses ``seed`` exactly, so ``n_init=1`` is the plain single run.
    palette_order : "luma" or "path"
        Order of the stored entries (see :func:`kmpress.palette.order_palette`); it permutes the
        indices and nothing else.
    smooth : float >= 0
        Rate-aware remap (see :func:`kmpress.kernels_numba.remap.smooth_remap`): a pixel may take its left or
        upper neighbour's entry when that costs at most ``smooth`` x the mean squared error more,
        giving smaller PNGs for a little PSNR (0.3: about 2-4 % smaller for under 0.05 dB, see
        the README). 0 (the default) is the exact nearest-entry remap. Not with ``dither``.

    Returns
    -------
    Quantized
        An image with at most ``k`` distinct colours comes back losslessly with exactly its
        colours. The indices are computed against the stored uint8 palette: without dithering
        each colour gets its nearest entry (in ``colorspace``).
    """
    options = dict(
        max_iter=max_iter,
        tol=tol,
        init=init,
        backend=backend,
        colorspace=colorspace,
        dither=dither,
        n_init=n_init,
        palette_order=palette_order,
        smooth=smooth,
        dither_strength=dither_strength,
    )
    if target_psnr is not None:
        if k is not None:
            raise InvalidParameterError("give either k or target_psnr, not both")
        from .quality import quantize_to_quality

        return quantize_to_quality(image, target_psnr, max_colors=max_colors, strict=strict, seed=seed, **options).quantized
    if k is None:
        raise InvalidParameterError("k is required (or give target_psnr for a quality target)")
    if strict or max_colors != MAX_K:
        raise InvalidParameterError("max_colors and strict go with target_psnr")
    _kernels(backend)
    img = _as_image(image)
    k = _check_int("k", k, 1, MAX_K)
    rng = _rng(seed)
    pipe = Pipeline(img, **options)
    return pipe.finish(pipe.fit(k, rng))


@dataclass
class Fit:
    """Centroids fitted for one K and their stored palette: a step of :class:`Pipeline`.

    Attributes
    ----------
    k : int; colours asked for
    centroids : (k', D) float64 in the clustering space (k' = k, or the image's own colours)
    lossless : bool; the image has at most k colours (centroids are then those colours, sRGB)
    n_iter, converged, inertia : from Lloyd (0, True, 0.0 when lossless); inertia is the k-means
        cost at Lloyd's last assignment pass, in the clustering space
    palette : (P, C) uint8; labels : (U,) int32 entry of each distinct colour;
    entries : (P, C) float32, the palette in the clustering space
    timings : dict of stage -> seconds
    score : float; PSNR once :meth:`Pipeline.score` has run
    indices, sse, delta_e : the remap, filled by :meth:`Pipeline.finish` (or by ``score`` when
        the error needs the pixels)
    """

    k: int
    centroids: np.ndarray
    lossless: bool
    n_iter: int
    converged: bool
    inertia: float
    palette: np.ndarray
    labels: np.ndarray
    entries: np.ndarray
    timings: dict = field(default_factory=dict)
    score: float = math.nan
    indices: np.ndarray | None = None
    sse: int | None = None
    delta_e: float | None = None

    @property
    def colors(self) -> int:
        return int(self.palette.shape[0])


class Pipeline:
    """:func:`quantize` in reusable steps: prepare an image once (histogram, points of the
    clustering space), then :meth:`fit` any K (cold, or warm-started from the centroids of a
    smaller K), :meth:`score` it and :meth:`finish` it into a :class:`Quantized`.

    ``quantize(image, k)`` is exactly ``Pipeline(image, ...).finish(fit(k, rng))``; the quality
    search (:mod:`kmpress.quality`) and the K sweep (:mod:`kmpress.ksweep`) reuse one prepared image
    for many K.

    Parameters
    ----------
    image, max_iter, tol, init, backend, colorspace, dither, n_init, palette_order, smooth,
    dither_strength : as for :func:`quantize` (validated here)
    """

    def __init__(
        self,
        image: Any,
        *,
        max_iter: int = DEFAULT_MAX_ITER,
        tol: float = DEFAULT_TOL,
        init: str = "k-means++",
        backend: Backend = "numba",
        colorspace: str = "rgb",
        dither: str | None = None,
        n_init: int = 1,
        palette_order: str = "luma",
        smooth: float = 0.0,
        dither_strength: float = DEFAULT_DITHER_STRENGTH,
    ) -> None:
        self.kern = _kernels(backend)
        self.img = _as_image(image)
        self.max_iter = _check_int("max_iter", max_iter, 0)
        self.tol = _check_tol(tol)
        if not (isinstance(init, str) and init in ("k-means++", "random")):
            raise InvalidParameterError(f"init must be 'k-means++' or 'random', not {_describe(init)}")
        self.init = init
        self.colorspace = _check_choice("colorspace", colorspace, COLORSPACES)
        self.dither = _check_choice("dither", dither, (None, *DITHERS))
        self.n_init = _check_int("n_init", n_init, 1, 32)
        self.palette_order = _check_choice("palette_order", palette_order, ORDERS)
        self.smooth = _check_smooth(smooth)
        self.dither_strength = _check_strength(dither_strength)
        if self.smooth > 0 and self.dither is not None:
            raise InvalidParameterError("smooth and dither cannot be combined: choose one")
        self.timings: dict[str, float] = {}
        t = time.perf_counter()
        self.hist = build_histogram(self.img, self.kern)
        self.timings["histogram"] = time.perf_counter() - t
        t = time.perf_counter()
        self.X = colors_to_space(self.hist.colors, self.colorspace)
        if self.colorspace != "rgb":
            self.timings["colorspace"] = time.perf_counter() - t
        self.weights = self.hist.counts.astype(np.float64)

    @property
    def n_colors(self) -> int:
        """Distinct colours of the image."""
        return self.hist.n_colors

    def fit(self, k: int, rng: np.random.Generator, start: np.ndarray | None = None, tol: float | None = None) -> Fit:
        """Centroids for ``k`` colours (1 <= k <= 256, trusted) and their stored palette.

        Parameters
        ----------
        rng : the seeding randomness (``n_init`` starts are spawned from it)
        start : (m, D) float64 centroids of a smaller K (0 < m < k) to continue from: the k - m
            new centres are seeded by k-means++ against them (whatever ``init``), then Lloyd
            runs from all k. Ignored for a lossless fit.
        tol : overrides the pipeline's tolerance for this fit
        """
        timings: dict[str, float] = {}
        hist, X, kern = self.hist, self.X, self.kern
        n_iter, converged, inertia = 0, True, 0.0
        lossless = hist.n_colors <= k
        t = time.perf_counter()
        if lossless:
            # exactly the image's colours (as sRGB, whatever the space): lossless
            centroids = hist.colors.astype(np.float64)
            timings["lloyd"] = time.perf_counter() - t
        else:
            best = None
            t_init = t_lloyd = 0.0
            for g in spawn_seeds(rng, self.n_init):
                t = time.perf_counter()
                if start is not None and 0 < start.shape[0] < k:
                    C0 = kmeans_plusplus(X, self.weights, True, k, g, kern, start=start)
                else:
                    C0 = _initial_centroids(self.init, X, self.weights, True, k, g, kern)
                t_init += time.perf_counter() - t
                t = time.perf_counter()
                r = lloyd(X, self.weights, True, C0, self.max_iter, self.tol if tol is None else tol, kern, final_assign=False)
                t_lloyd += time.perf_counter() - t
                # the lowest final inertia wins; ties: the earliest start
                if best is None or r.inertia < best.inertia:
                    best = r
            timings["init"], timings["lloyd"] = t_init, t_lloyd
            centroids, n_iter, converged, inertia = best.centroids, best.n_iter, best.converged, best.inertia
        t = time.perf_counter()
        palette, labels, entries = finish_palette(centroids, X, self.colorspace, kern, self.palette_order, srgb=lossless)
        timings["remap"] = time.perf_counter() - t
        return Fit(k, centroids, lossless, n_iter, converged, float(inertia), palette, labels, entries, timings)

    def polish(self, f: Fit) -> Fit:
        """Continue Lloyd from a fit's centroids at the pipeline's tolerance (after a fit at a
        looser one): the k-means cost can only go down. A lossless fit comes back as it is."""
        if f.lossless:
            return f
        timings = dict(f.timings)
        t = time.perf_counter()
        r = lloyd(self.X, self.weights, True, f.centroids, self.max_iter, self.tol, self.kern, final_assign=False)
        timings["lloyd"] = timings.get("lloyd", 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        palette, labels, entries = finish_palette(r.centroids, self.X, self.colorspace, self.kern, self.palette_order)
        timings["remap"] = time.perf_counter() - t
        return Fit(f.k, r.centroids, False, f.n_iter + r.n_iter, r.converged, float(r.inertia), palette, labels, entries, timings)

    def _remap(self, f: Fit) -> None:
        """Pixel indices, exact squared error and mean delta E of a fit (kept on it)."""
        if f.indices is not None:
            return
        hist = self.hist
        h, w, c = self.img.shape
        t = time.perf_counter()
        if self.smooth > 0 and not f.lossless:
            f.indices = smooth_remap(self.X, hist.counts, hist.inverse, f.labels, f.entries, (h, w), self.smooth)
            f.timings["remap"] = f.timings.get("remap", 0.0) + time.perf_counter() - t
            t = time.perf_counter()
            f.sse, f.delta_e = pixel_errors(hist.colors, hist.inverse, f.indices, f.palette)
        elif self.dither is None or f.lossless:
            f.indices = gather_indices(hist, f.labels, (h, w), self.kern)
            if f.sse is None:
                f.sse = squared_error_sum(hist.colors, hist.counts, f.palette, f.labels)
            f.timings["remap"] = f.timings.get("remap", 0.0) + time.perf_counter() - t
            t = time.perf_counter()
            f.delta_e = delta_e_histogram(hist.colors, hist.counts, f.palette, f.labels)
        else:
            alpha = hist.colors[:, 3] if c == 4 else None
            f.indices = floyd_steinberg(self.X, hist.inverse, alpha, f.entries, (h, w), self.dither_strength)
            f.timings["remap"] = f.timings.get("remap", 0.0) + time.perf_counter() - t
            t = time.perf_counter()
            f.sse, f.delta_e = pixel_errors(hist.colors, hist.inverse, f.indices, f.palette)
        f.timings["delta_e"] = time.perf_counter() - t

    def score(self, f: Fit) -> float:
        """PSNR (dB) of what :meth:`finish` returns for ``f``: on the histogram for the plain
        nearest-entry remap (no per-pixel pass), on the pixels with dithering or ``smooth``."""
        h, w, c = self.img.shape
        if f.sse is None:
            if f.lossless or (self.dither is None and self.smooth == 0):
                f.sse = squared_error_sum(self.hist.colors, self.hist.counts, f.palette, f.labels)
            else:
                self._remap(f)
        f.score = psnr_from_mse(f.sse / (h * w * c))
        return f.score

    def finish(self, f: Fit) -> Quantized:
        """The :class:`Quantized` of a fit (remaps the pixels if not done yet)."""
        self._remap(f)
        h, w, c = self.img.shape
        mse = f.sse / (h * w * c)
        timings = dict(self.timings)
        timings.update(f.timings)
        return Quantized(
            palette=f.palette,
            indices=f.indices,
            mse=mse,
            psnr=psnr_from_mse(mse),
            n_iter=f.n_iter,
            converged=f.converged,
            bits=bit_accounting(h, w, c, f.palette.shape[0]),
            n_colors_in=self.hist.n_colors,
            timings=timings,
            delta_e=f.delta_e,
            colorspace=self.colorspace,
            dither=self.dither,
        )


# --------------------------------------------------------------------------------------------
# compress
# --------------------------------------------------------------------------------------------


@dataclass
class CompressReport:
    """What :func:`compress` did to one file.

    Attributes
    ----------
    src, dst : str
    width, height : int
    k : int; colours asked for
    colors : int; palette entries written (<= k)
    input_bytes, output_bytes : int; file sizes
    bits : Bits; raw vs indexed bit accounting
    bit_depth : int; PNG bits per pixel (1, 2, 4 or 8)
    mse, psnr : float
    n_iter : int
    converged : bool
    timings : dict of stage -> seconds (read, histogram, init, lloyd, remap, write, total)
    delta_e : float; mean OKLab distance of the output colours (see :class:`Quantized`)
    colorspace : "rgb" or "oklab"
    dither : None or "floyd-steinberg"
    target_psnr : float or None; the quality target when K was searched for (``k`` is then the
        K chosen)
    target_reached : bool or None; False when ``max_colors`` colours could not reach it
    search : list of kmpress.quality.Trial; the K values the search fitted
    """

    src: str
    dst: str
    width: int
    height: int
    k: int
    colors: int
    input_bytes: int
    output_bytes: int
    bits: Bits
    bit_depth: int
    mse: float
    psnr: float
    n_iter: int
    converged: bool
    timings: dict[str, float]
    delta_e: float = math.nan
    colorspace: str = "rgb"
    dither: str | None = None
    target_psnr: float | None = None
    target_reached: bool | None = None
    search: list = field(default_factory=list, repr=False)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def file_ratio(self) -> float:
        """output bytes / input bytes."""
        return self.output_bytes / self.input_bytes if self.input_bytes else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (``psnr`` is None when lossless)."""
        return {
            "src": self.src,
            "dst": self.dst,
            "width": self.width,
            "height": self.height,
            "pixels": self.pixels,
            "k": self.k,
            "colors": self.colors,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "file_ratio": self.file_ratio,
            "bits": self.bits.as_dict(),
            "bit_depth": self.bit_depth,
            "mse": self.mse,
            "psnr": None if math.isinf(self.psnr) else self.psnr,
            "n_iter": self.n_iter,
            "converged": self.converged,
            "delta_e": None if math.isnan(self.delta_e) else self.delta_e,
            "colorspace": self.colorspace,
            "dither": self.dither,
            "target_psnr": self.target_psnr,
            "target_reached": self.target_reached,
            "search": [t.as_dict() for t in self.search],
            "timings": dict(self.timings),
        }


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def compress(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    k: int | None = None,
    *,
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    init: str = "k-means++",
    backend: Backend = "numba",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    compress_level: int = 6,
    colorspace: str = "rgb",
    dither: str | None = None,
    n_init: int = 1,
    smooth: float = 0.0,
    palette_order: str = "luma",
    dither_strength: float = DEFAULT_DITHER_STRENGTH,
    target_psnr: float | None = None,
    max_colors: int = MAX_K,
    strict: bool = False,
) -> CompressReport:
    """Read an image, quantize it to at most ``k`` colours, write an indexed PNG atomically.

    Parameters
    ----------
    src : path of any image Pillow reads
    dst : path of the PNG to write; replaced atomically if it exists; never the input itself
    k : int, 1 <= k <= 256; or None with ``target_psnr``
    target_psnr, max_colors, strict : a quality target instead of ``k``, as for :func:`quantize`;
        with ``strict``, a target out of reach raises :class:`kmpress.quality.TargetNotReachedError`
        (naming ``src``) and nothing is written
    max_pixels : int or None
        Refuse images with more pixels (decompression-bomb guard); default Pillow's limit.
    compress_level : int, 0-9
        zlib level of the PNG (9 is ~10x slower than 6 for 1-4 % smaller files).
    seed, max_iter, tol, init, backend, colorspace, dither, n_init, smooth, palette_order,
    dither_strength : as for :func:`quantize` (checked before the file is read)

    Raises
    ------
    KmpressError
        (a subclass of) for every bad input; nothing is written then.
    """
    t0 = time.perf_counter()
    src_p, dst_p = Path(src), Path(dst)
    if target_psnr is not None:
        from .quality import check_target

        if k is not None:
            raise InvalidParameterError("give either k or target_psnr, not both")
        target_psnr = check_target(target_psnr)
        max_colors = _check_int("max_colors", max_colors, 1, MAX_K)
    elif k is None:
        raise InvalidParameterError("k is required (or give target_psnr for a quality target)")
    else:
        k = _check_int("k", k, 1, MAX_K)
        if strict or max_colors != MAX_K:
            raise InvalidParameterError("max_colors and strict go with target_psnr")
    compress_level = _check_int("compress_level", compress_level, 0, 9)
    # the quantize options, checked before any work (quantize checks them again, cheaply)
    _check_choice("colorspace", colorspace, COLORSPACES)
    _check_choice("dither", dither, (None, *DITHERS))
    _check_int("n_init", n_init, 1, 32)
    _check_choice("palette_order", palette_order, ORDERS)
    if _check_smooth(smooth) > 0 and dither is not None:
        raise InvalidParameterError("smooth and dither cannot be combined: choose one")
    _check_strength(dither_strength)
    if max_pixels is not None:
        max_pixels = _check_int("max_pixels", max_pixels, 1)
    if src_p.resolve() == dst_p.resolve() or _same_file(src_p, dst_p):
        raise ImageWriteError("output would overwrite the input", str(dst_p))
    if dst_p.is_dir():
        raise ImageWriteError("output path is a folder", str(dst_p))

    t = time.perf_counter()
    loaded = load_image(src_p, max_pixels=max_pixels)
    input_bytes = src_p.stat().st_size
    t_read = time.perf_counter() - t

    options = dict(
        seed=seed,
        max_iter=max_iter,
        tol=tol,
        init=init,
        backend=backend,
        colorspace=colorspace,
        dither=dither,
        n_init=n_init,
        smooth=smooth,
        palette_order=palette_order,
        dither_strength=dither_strength,
    )
    if target_psnr is not None:
        from .quality import TargetNotReachedError, quantize_to_quality

        try:
            found = quantize_to_quality(loaded.pixels, target_psnr, max_colors=max_colors, strict=strict, **options)
        except TargetNotReachedError as e:
            raise TargetNotReachedError(e.message, str(src_p), e.result) from None
        q, k = found.quantized, found.k
    else:
        q = quantize(loaded.pixels, k, **options)

    t = time.perf_counter()
    out_bytes = write_png(dst_p, q.palette, q.indices, icc_profile=loaded.icc_profile, compress_level=compress_level)
    t_write = time.perf_counter() - t

    timings = {"read": t_read, **q.timings, "write": t_write, "total": time.perf_counter() - t0}
    h, w = q.indices.shape
    return CompressReport(
        src=str(src_p),
        dst=str(dst_p),
        width=w,
        height=h,
        k=k,
        colors=q.k,
        input_bytes=input_bytes,
        output_bytes=out_bytes,
        bits=q.bits,
        bit_depth=q.png_bit_depth,
        mse=q.mse,
        psnr=q.psnr,
        n_iter=q.n_iter,
        converged=q.converged,
        timings=timings,
        delta_e=q.delta_e,
        colorspace=q.colorspace,
        dither=q.dither,
        target_psnr=q.target_psnr,
        target_reached=q.target_reached,
        search=list(q.search),
    )
