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
from .histogram import Histogram, build_histogram
from .init import kmeans_plusplus, random_init
from .io import DEFAULT_MAX_PIXELS, load_image, write_png
from .lloyd import lloyd
from .metrics import Bits, bit_accounting, png_bit_depth, psnr_from_mse, squared_error_sum
from .remap import gather_indices, nearest_entries

Backend = Literal["numba", "numpy"]

#: Most palette entries a PNG can hold.
MAX_K = 256
#: Default relative tolerance on the centroid shift (see :func:`kmeans`). Chosen by measurement:
#: see the README ("Convergence").
DEFAULT_TOL = 3e-5
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


def _order_palette(palette: np.ndarray) -> np.ndarray:
    """Permutation putting palette entries in order of luma (then R, G, B, A): neighbouring indices
    then hold similar colours, which DEFLATE rewards a little, and the order is deterministic."""
    p = palette.astype(np.int64)
    luma = 299 * p[:, 0] + 587 * p[:, 1] + 114 * p[:, 2]
    keys = [p[:, j] for j in range(p.shape[1] - 1, -1, -1)] + [luma]
    if p.shape[1] == 4:
        keys.append(p[:, 3])
    return np.lexsort(keys)


def _finish_palette(centroids: np.ndarray, X: np.ndarray, hist: Histogram, kern) -> tuple[np.ndarray, np.ndarray]:
    """Round the centroids to uint8, drop duplicates and unused entries, order, and label every
    distinct colour with its nearest stored entry."""
    pal = np.clip(np.rint(centroids), 0, 255).astype(np.uint8)
    _, first = np.unique(pal, axis=0, return_index=True)
    pal = pal[np.sort(first)]
    labels = nearest_entries(X, pal, kern)
    used = np.bincount(labels, minlength=pal.shape[0]) > 0
    if not used.all():
        pal = pal[used]
        labels = nearest_entries(X, pal, kern)
    order = _order_palette(pal)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return np.ascontiguousarray(pal[order]), rank[labels].astype(np.int32)


def quantize(
    image: Any,
    k: int,
    *,
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    init: str = "k-means++",
    backend: Backend = "numba",
) -> Quantized:
    """Reduce an image to at most ``k`` colours with k-means.

    Parameters
    ----------
    image : (H, W, 3) or (H, W, 4) uint8 array_like
        RGB or RGBA (clustered in 4-D, so transparency is kept). Never modified.
    k : int, 1 <= k <= 256
    seed, max_iter, tol, init, backend
        As for :func:`kmeans`; ``init`` is "k-means++" or "random".

    Returns
    -------
    Quantized
        An image with at most ``k`` distinct colours comes back losslessly with exactly its
        colours. The indices are computed against the stored uint8 palette.
    """
    kern = _kernels(backend)
    img = _as_image(image)
    k = _check_int("k", k, 1, MAX_K)
    max_iter = _check_int("max_iter", max_iter, 0)
    tol = _check_tol(tol)
    rng = _rng(seed)
    if not (isinstance(init, str) and init in ("k-means++", "random")):
        raise InvalidParameterError(f"init must be 'k-means++' or 'random', not {_describe(init)}")
    h, w, c = img.shape
    timings: dict[str, float] = {}

    t = time.perf_counter()
    hist = build_histogram(img, kern)
    X = hist.planar()
    timings["histogram"] = time.perf_counter() - t

    n_iter, converged = 0, True
    t = time.perf_counter()
    if hist.n_colors <= k:
        centroids = hist.colors.astype(np.float64)
    else:
        weights = hist.counts.astype(np.float64)
        C0 = _initial_centroids(init, X, weights, True, k, rng, kern)
        timings["init"] = time.perf_counter() - t
        t = time.perf_counter()
        r = lloyd(X, weights, True, C0, max_iter, tol, kern, final_assign=False)
        centroids, n_iter, converged = r.centroids, r.n_iter, r.converged
    timings["lloyd"] = time.perf_counter() - t

    t = time.perf_counter()
    palette, colour_labels = _finish_palette(centroids, X, hist, kern)
    indices = gather_indices(hist, colour_labels, (h, w), kern)
    mse = squared_error_sum(hist.colors, hist.counts, palette, colour_labels) / (h * w * c)
    timings["remap"] = time.perf_counter() - t

    return Quantized(
        palette=palette,
        indices=indices,
        mse=mse,
        psnr=psnr_from_mse(mse),
        n_iter=n_iter,
        converged=converged,
        bits=bit_accounting(h, w, c, palette.shape[0]),
        n_colors_in=hist.n_colors,
        timings=timings,
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
    k: int,
    *,
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = DEFAULT_TOL,
    init: str = "k-means++",
    backend: Backend = "numba",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    compress_level: int = 6,
) -> CompressReport:
    """Read an image, quantize it to at most ``k`` colours, write an indexed PNG atomically.

    Parameters
    ----------
    src : path of any image Pillow reads
    dst : path of the PNG to write; replaced atomically if it exists; never the input itself
    k : int, 1 <= k <= 256
    max_pixels : int or None
        Refuse images with more pixels (decompression-bomb guard); default Pillow's limit.
    compress_level : int, 0-9
        zlib level of the PNG (9 is ~10x slower than 6 for 1-4 % smaller files).
    seed, max_iter, tol, init, backend : as for :func:`quantize`

    Raises
    ------
    KmpressError
        (a subclass of) for every bad input; nothing is written then.
    """
    t0 = time.perf_counter()
    src_p, dst_p = Path(src), Path(dst)
    k = _check_int("k", k, 1, MAX_K)
    compress_level = _check_int("compress_level", compress_level, 0, 9)
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

    q = quantize(loaded.pixels, k, seed=seed, max_iter=max_iter, tol=tol, init=init, backend=backend)

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
    )
