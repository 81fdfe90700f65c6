"""The public functions :func:`kmeans`, :func:`quantize` and :func:`compress`, their result
types, and the edge where arguments are checked and converted, once.

Everything below (the stages, the kernels) trusts what this module hands down: an
:class:`~kmpress.options.Options`, C-contiguous arrays of fixed dtypes, a seeded Generator.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO, TypeGuard, Unpack

import numpy as np
from PIL import Image

from . import backends
from .clustering import initial_centroids, lloyd
from .errors import ImageReadError, ImageWriteError, InvalidParameterError, TargetNotReachedError
from .figures import Figures, HasFigures
from .formats import encode
from .io import LoadedImage, load_image, load_pil, reading
from .metadata import exif_for_output
from .options import (
    BACKENDS,
    DEFAULT_MAX_ITER,
    DEFAULT_TOL,
    FORMAT_EXTENSIONS,
    INITS,
    JobFields,
    Options,
    check_choice,
    check_int,
    check_number,
    describe,
    make_options,
)
from .pipeline import Pipeline, Quantized
from .points import frame_points, weight_exponent
from .quality import search_quality
from .remap import is_plain
from .stages import Stages
from .writing import write_bytes, write_stream

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
    """The checked (N, D) array of ``points`` (not copied); whether their values are finite is
    checked by the pass that measures their frame (:func:`kmpress.points.frame_points`), which
    reads them anyway."""
    a = np.asarray(points)
    if a.ndim != 2 or a.shape[1] not in (3, 4):
        raise InvalidParameterError(f"points must have shape (N, 3) or (N, 4), got {a.shape}")
    if a.shape[0] == 0:
        raise InvalidParameterError("points is empty")
    if a.dtype.kind not in "iuf":
        raise InvalidParameterError(f"points must be integers or floats, not {a.dtype}")
    return a


def _as_weights(weights: Any, n: int) -> np.ndarray:
    w = np.asarray(weights)
    if w.shape != (n,):
        raise InvalidParameterError(f"weights must have shape ({n},), got {w.shape}")
    if w.dtype.kind not in "iuf" and w.dtype.kind != "b":
        raise InvalidParameterError(f"weights must be numbers, not {w.dtype}")
    w = np.array(w, dtype=np.float64, order="C", copy=True)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InvalidParameterError("weights must be finite and non-negative")
    if not np.any(w > 0):  # (their sum may overflow: kmeans scales them)
        raise InvalidParameterError("weights sum to zero")
    return w


def _as_init(init: Any, k: int, D: int, w: np.ndarray, weighted: bool, N: int) -> str | np.ndarray:
    """Return the checked ``init``: "k-means++", "random" or a copy of starting centroids.

    "random" is checked to have k points of positive weight; an array becomes a (k, D) float64
    copy.
    """
    if isinstance(init, str):
        name = check_choice("init", init, INITS)
        if name == "random":
            positive = int(np.count_nonzero(w > 0)) if weighted else N
            if positive < k:
                raise InvalidParameterError(f"init='random' needs k={k} points of positive weight, found {positive}")
        return name
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
    backend: str = "auto",
) -> KMeansResult:
    """Weighted k-means (Lloyd's algorithm) on 3- or 4-D points.

    Parameters
    ----------
    points : (N, D) array_like, D = 3 or 4, any integer or float dtype; never modified
        Clustered in float32 (see :mod:`kmpress.points`). A coordinate far from the origin
        compared with its spread (its largest magnitude more than 16x the largest distance from
        its mean) is first centred on its weighted mean (computed in float64; rounded to an
        integer for integer points), so that values carry float32's relative rounding (6e-8)
        of their distance from the mean, not of their magnitude; other coordinates, e.g. every
        8-bit colour, are clustered as given (integers up to 2^24 exactly). Points whose
        largest (centred) magnitude lies outside [2^-32, 2^32] are also scaled, all coordinates
        by one power of two (exact), into [0.5, 1), so that float32's squared distances
        neither overflow nor vanish. The centroids are float64 means of those float32 values,
        in the points' units; the inertia is recomputed in float64 from the original points.
        Measured figures: docs/results.md (bench/kmeans_general.py).
    k : int, 1 <= k <= N
    weights : (N,) array_like of non-negative numbers, optional
        A point of weight m counts as m copies of it. Weights whose largest lies outside
        [2^-32, 2^32] are scaled by a power of two into [0.5, 1) first: multiplying every
        weight by one positive number changes neither labels nor centroids, and this way any
        finite weights work, also those whose sum overflows float64 (the inertia is reported
        with the weights as given). A cluster is empty only when no point of positive weight
        belongs to it, however small its weight.
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
    backend : "auto", "numba" or "numpy"
        The same result from each; "auto" runs numpy on small inputs (no numba start-up).

    Returns
    -------
    KMeansResult
        The final labels always belong to the final centroids. An empty cluster is re-seeded with
        the point farthest from its centroid; with fewer distinct points than k some centroids
        can coincide.

    Raises
    ------
    InvalidParameterError
        A bad argument; points whose coordinates vary within ranges more than 2^100 apart
        (scaled together, the narrow one would sink below float32's normal numbers); an init
        array too far from the points for float32; an inertia over float64's range (1.8e308)
        in the units of the points and weights given.
    """
    backend = check_choice("backend", backend, BACKENDS)
    a = _as_points(points)
    N, D = a.shape
    k = check_int("k", k, 1, N)
    max_iter = check_int("max_iter", max_iter, 0)
    tol = check_number("tol", tol, 0.0)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    weighted = weights is not None
    w = _as_weights(weights, N) if weighted else np.empty(0, np.float64)
    # k-means is the same for weights all multiplied by one positive number (see kmpress.points)
    ew = weight_exponent(w) if weighted else 0
    if ew:
        w = np.ldexp(w, ew)
    start = _as_init(init, k, D, w, weighted, N)
    frame, X, sums = frame_points(a, w, weighted, ew)
    if not isinstance(start, str):
        start = frame.to_frame(start)
    kern = backends.load(backends.choose(backend, N, k, colors=N))
    C0 = initial_centroids(start, X, w, weighted, k, rng, kern)
    # the frame pass measured what the loop reads of X before its first pass (the NumPy search's
    # norm bounds; numba's boxes are its own)
    boxes = kern.block_boxes(X, sums.reach) if kern.NAME == "numpy" else None
    # the last inertia is measured on the original points below: the last pass needs only labels
    r = lloyd(X, w, weighted, C0, max_iter, tol, kern, True, False, sums.first, boxes)
    history = frame.inertia_back([*r.inertia_history[:-1], frame.inertia(a, w, weighted, r.centroids, r.labels, X)], w)
    centroids = frame.from_frame(r.centroids)
    return KMeansResult(centroids, r.labels, history[-1], r.n_iter, r.converged, history)


# --------------------------------------------------------------------------------------------
# quantize
# --------------------------------------------------------------------------------------------


def quantize(
    image: Any, k: int | None = None, *, options: Options | None = None, **kwargs: Unpack[JobFields]
) -> Quantized:
    """Reduce an image to at most ``k`` colours with k-means, or to the fewest colours that
    reach a quality target.

    Parameters
    ----------
    image : (H, W, 3) or (H, W, 4) uint8 array_like
        RGB or RGBA (clustered in 4-D, so transparency is kept). Never modified.
    k : int, 1 <= k <= 256, optional
        Colours of the palette (default 16); not with a quality target.
    options : Options, optional
        Every setting at once (see :class:`kmpress.Options`); keyword arguments override its
        fields.
    **kwargs
        Any field of :class:`kmpress.Options`: ``seed``, ``max_iter``, ``tol``, ``init``,
        ``backend``, ``colorspace`` ("rgb" or "oklab": where colours are clustered and matched),
        ``dither`` ("adaptive", the default: error diffusion where banding would show, the
        palette weighted by the image's contrast; "floyd-steinberg": uniform; None: none, each
        colour its nearest entry), ``dither_strength``, ``n_init`` (several starts,
        the lowest cost wins), ``palette_order``, ``smooth`` (rate-aware remap: a pixel may take
        its left or upper neighbour's entry when that costs at most ``smooth`` x the mean squared
        error more; 0.3 gives files 2-4 % smaller for under 0.05 dB, see docs/quality.md), and
        ``target_quality`` / ``min_quality`` / ``max_colors`` / ``strict`` (a SSIMULACRA 2
        target, 0-100, instead of ``k``: the smallest file reaching it, K and, with the default
        dither, dithering or none chosen; below ``min_quality`` the result is refused) or
        ``target_psnr`` (a PSNR target in dB: the smallest K reaching it), found by a
        warm-started search, :func:`kmpress.quality.quantize_to_quality`, which also returns
        the search's details; the result's ``target_quality`` or ``target_psnr``,
        ``target_reached`` and ``search`` fields are set).

    Returns
    -------
    Quantized
        An image with at most ``k`` distinct colours comes back losslessly with exactly its
        colours. The indices are computed against the stored uint8 palette: without dithering
        each colour gets its nearest entry (in ``colorspace``).

    Raises
    ------
    InvalidParameterError
        A bad image or option.
    TargetNotReachedError
        With a target and ``strict``, when ``max_colors`` colours stay below the target; with
        ``min_quality``, when the result stays below it.
    """
    opts = make_options(options, **_with_k(k, kwargs))
    return _quantize(image, opts)


def _quantize(image: Any, opts: Options, stages: Stages | None = None, last: bool = False) -> Quantized:
    """The :class:`Quantized` of ``image`` under checked options (``k`` the one found, for a
    quality target), its stages timed by ``stages``; ``last`` as :meth:`Pipeline.finish`."""
    if opts.searches_k:
        return search_quality(image, opts, Stages() if stages is None else stages).quantized
    assert opts.k is not None, "Options sets k whenever K is not searched for"
    pipe = Pipeline(image, opts, stages=stages)
    return pipe.finish(pipe.fit(opts.k, np.random.default_rng(opts.seed)), last=last)


def _with_k(k: int | None, kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    if k is not None:
        if "k" in kwargs:
            raise InvalidParameterError("k is given twice")
        kwargs = {**kwargs, "k": k}
    return kwargs


# --------------------------------------------------------------------------------------------
# compress
# --------------------------------------------------------------------------------------------


@dataclass
class CompressReport(HasFigures):
    """What :func:`compress` did to one file.

    Attributes
    ----------
    src, dst : str; the paths, or ``<stdin>`` / ``<stdout>`` (a stream's name), ``<image>``
    width, height : int
    input_bytes, output_bytes : int; file sizes (input 0 for an image given in memory; output
        the size of the file made, also when it was not written)
    figures : Figures; ``k`` (colours asked for; with a quality target the K chosen), ``colors``
        (palette entries written), ``mse``, ``psnr``, ``delta_e``, ``bits``, ``bit_depth`` (PNG
        bits per pixel), ``n_iter``, ``converged`` and ``timings`` (seconds of each stage of
        :data:`kmpress.stages.STAGES` it ran, and ``total``); each also reads as an attribute
        (``report.psnr``)
    colorspace : "rgb" or "oklab"
    dither : "adaptive", "floyd-steinberg" or None
    target_psnr : float or None; the PSNR target when K was searched for
    target_reached : bool or None; False when ``max_colors`` colours could not reach the target
    search : list of kmpress.quality.Trial; the K values the search fitted
    format : "png" or "webp"; the output's format
    target_quality : float or None; the SSIMULACRA 2 target when the file was searched for
        (``dither`` and ``k`` are then the search's choice)
    written : bool; False when ``skip_if_larger`` kept an output larger than its input unwritten
    warnings : list of str; what reading the file warned about (see
        :attr:`kmpress.io.LoadedImage.notes`), one line each
    """

    src: str
    dst: str
    width: int
    height: int
    input_bytes: int
    output_bytes: int
    figures: Figures
    colorspace: str = "rgb"
    dither: str | None = "adaptive"
    target_psnr: float | None = None
    target_reached: bool | None = None
    search: list = field(default_factory=list, repr=False)
    format: str = "png"
    written: bool = True
    warnings: list[str] = field(default_factory=list)
    target_quality: float | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def file_ratio(self) -> float:
        """output bytes / input bytes."""
        return self.output_bytes / self.input_bytes if self.input_bytes else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the report's own fields and every figure's key (:meth:`Figures.as_dict`:
        ``psnr`` None when lossless), flat."""
        return {
            "src": self.src,
            "dst": self.dst,
            "width": self.width,
            "height": self.height,
            "pixels": self.pixels,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "file_ratio": self.file_ratio,
            **self.figures.as_dict(),
            "colorspace": self.colorspace,
            "dither": self.dither,
            "target_quality": self.target_quality,
            "target_psnr": self.target_psnr,
            "target_reached": self.target_reached,
            "search": [t.as_dict() for t in self.search],
            "format": self.format,
            "written": self.written,
            "warnings": list(self.warnings),
        }


def _same_file(a: Path, b: Path) -> bool:
    # realpath, not Path.resolve: resolve raises RuntimeError on a symbolic-link loop (3.11)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _is_path(x: object) -> TypeGuard[str | os.PathLike]:
    return isinstance(x, (str, os.PathLike))


def _name(x: Any, default: str) -> str:
    """How a file, a stream or an in-memory image is named in reports and messages."""
    if _is_path(x):
        return str(Path(x))
    name = getattr(x, "name", None)
    return name if isinstance(name, str) and name else default


def warm_up_hints(opts: Options) -> dict[str, Any]:
    """What of a job's options decides which kernels it calls (see :func:`backends.warm_up`)."""
    # a quality target measures its candidates whatever ``measure`` says
    measure = opts.measure or opts.searches_k
    return {"colorspace": opts.colorspace, "dither": opts.dither, "smooth": opts.smooth > 0, "measure": measure}


def _load_source(src: Any, opts: Options, label: str) -> tuple[LoadedImage, int | None]:
    """The image of ``src`` and its size in bytes (None for an in-memory image)."""

    def warm_up(w: int, h: int) -> None:  # numba's start-up overlaps the decoding
        if backends.choose(opts.backend, w * h, opts.largest_k, per_pixel=not is_plain(opts, False)) == "numba":
            backends.warm_up(w * h, opts.largest_k, **warm_up_hints(opts))

    if _is_path(src):
        p = Path(src)
        loaded = load_image(p, max_pixels=opts.max_pixels, on_open=warm_up)
        return loaded, p.stat().st_size
    if isinstance(src, Image.Image):
        return load_pil(src), None
    if hasattr(src, "read"):
        # a stream (standard input): read it whole, so that its size is known and a bad image is
        # refused before anything is written
        with reading(label):
            data = src.read()
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidParameterError(f"src must be opened in binary mode, not {describe(src)}")
        if not data:
            raise ImageReadError("empty input: no image data", label)
        return load_image(BytesIO(data), max_pixels=opts.max_pixels, name=label, on_open=warm_up), len(data)
    if isinstance(src, np.ndarray):
        return LoadedImage(src, None, "array", None), None
    raise InvalidParameterError(
        f"src must be a path, a binary file object, a PIL image or an array, not {describe(src)}"
    )


def compress(
    src: str | os.PathLike | BinaryIO | Image.Image | np.ndarray,
    dst: str | os.PathLike | BinaryIO,
    k: int | None = None,
    *,
    options: Options | None = None,
    on_stage: Callable[[str], None] | None = None,
    **kwargs: Unpack[JobFields],
) -> CompressReport:
    """Read an image, quantize it to at most ``k`` colours, write an indexed PNG (or a lossless
    WebP) atomically.

    Parameters
    ----------
    src : path of any image Pillow reads (HEIC/HEIF too with ``kmpress[heif]``); or a binary
        file object (e.g. ``sys.stdin.buffer``: read whole first); or an image in memory, a
        ``PIL.Image.Image`` (EXIF orientation applied, ICC profile and EXIF from its ``info``)
        or an (H, W, 3|4) uint8 array
    dst : path of the file to write, replaced atomically if it exists, never the input itself;
        or a binary file object (e.g. ``sys.stdout.buffer``), which gets the whole file in one
        write once it is complete
    k : int, 1 <= k <= 256, optional; colours (default 16), not with a quality target
    options, **kwargs : as for :func:`quantize`, plus the output fields ``format`` ("png" or
        "webp"; a ``dst`` ending in the other format's extension is refused), ``strip`` (write
        no ICC profile and no EXIF; by default both are kept, the EXIF orientation reset to 1),
        ``skip_if_larger`` (write nothing when the output would be larger than the input file:
        the report then has ``written=False`` and the size it would have had; not for an
        in-memory ``src``), ``compress_level`` (zlib level 0-9) and ``max_pixels`` (refuse
        larger images before decoding: the decompression-bomb guard; default "auto", see
        :mod:`kmpress.limits`; None for none). With a quality target and ``strict``, a target
        out of reach (or a result below ``min_quality``) raises :class:`TargetNotReachedError`
        naming ``src`` and nothing is written.
    on_stage : callable(stage), optional
        Told when each stage begins (:data:`kmpress.stages.STAGES`, in that order; a quality
        target runs ``init`` to ``remap`` for each candidate K), by the name its time has in the
        report's ``timings``; for progress displays. Called in this thread, between the stages'
        kernels; what it raises stops the compression (nothing is written).

    Raises
    ------
    KmpressError
        (a subclass of) for every bad input; nothing is written then.
    """
    opts = make_options(options, **_with_k(k, kwargs))
    t0 = time.perf_counter()
    src_name, dst_name = _name(src, "<stream>" if hasattr(src, "read") else "<image>"), _name(dst, "<stream>")
    dst_p, dst_stream = (Path(dst), None) if isinstance(dst, (str, os.PathLike)) else (None, dst)
    if dst_p is None and not hasattr(dst, "write"):
        raise InvalidParameterError(f"dst must be a path or a binary file object, not {describe(dst)}")
    if opts.skip_if_larger and not (_is_path(src) or hasattr(src, "read")):
        raise InvalidParameterError(
            "skip_if_larger compares the output with the input file; src is an image in memory",
            fields=("skip_if_larger",),
        )
    if dst_p is not None:
        if _is_path(src) and _same_file(Path(src), dst_p):
            raise ImageWriteError("output would overwrite the input", str(dst_p))
        if dst_p.is_dir():
            raise ImageWriteError("output path is a folder", str(dst_p))
        other = {e: f for f, e in FORMAT_EXTENSIONS.items()}.get(dst_p.suffix.lower())
        if other is not None and other != opts.format:
            raise InvalidParameterError(
                f"{dst_p.name} names a {other.upper()} file but the format is {opts.format!r} (format={other!r})",
                fields=("format",),
            )

    stages = Stages(on_stage)
    with stages("read"):
        loaded, input_bytes = _load_source(src, opts, src_name)
    icc, exif = (None, None) if opts.strip else (loaded.icc_profile, exif_for_output(loaded.exif))
    # from here the pipeline holds the only reference to the pixels (unless the caller gave an
    # array), so they are freed as soon as the indices are made, before the file is encoded
    notes = list(loaded.notes)
    pixels = loaded.pixels
    del loaded

    try:
        q = _quantize(pixels, opts, stages, last=True)
    except TargetNotReachedError as e:
        raise TargetNotReachedError(e.message, src_name, e.result, e.fields) from None
    del pixels

    with stages("write"):
        data = encode(
            q.palette,
            q.indices,
            opts.format,
            icc_profile=icc,
            exif=exif,
            compress_level=opts.compress_level,
            label=dst_name,
        )
        # skip_if_larger is refused above for an in-memory src, the one without input_bytes
        written = not (opts.skip_if_larger and input_bytes is not None and len(data) > input_bytes)
        if written:
            if dst_stream is not None:
                write_stream(dst_stream, data, dst_name)
            elif dst_p is not None:
                write_bytes(dst_p, data)

    h, w = q.indices.shape
    return CompressReport(
        src=src_name,
        dst=dst_name,
        width=w,
        height=h,
        input_bytes=input_bytes or 0,
        output_bytes=len(data),
        figures=replace(q.figures, timings={**stages.times, "total": time.perf_counter() - t0}),
        colorspace=q.colorspace,
        dither=q.dither,
        target_quality=q.target_quality,
        target_psnr=q.target_psnr,
        target_reached=q.target_reached,
        search=list(q.search),
        format=opts.format,
        written=written,
        warnings=notes,
    )
