"""Every option of a kmpress job, its default and its rules, in one place.

:class:`Options` is the one object that carries a job's settings from the edge (the API's
keyword arguments, the CLI's flags) down to the stages and across processes: frozen, picklable,
checked once when it is made. Below the edge nothing validates again.

Pure Python (no numpy, numba or Pillow), so the CLI can show these defaults in ``--help``
without loading anything heavy.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, TypedDict

from .errors import InvalidParameterError

#: Most palette entries a PNG can hold.
MAX_K = 256
#: Colours when neither ``k`` nor a quality target is given.
DEFAULT_K = 16
#: Default relative tolerance on the centroid shift (see :func:`kmpress.kmeans`). Chosen by
#: measurement: see docs/how-it-works.md ("Convergence") and bench/convergence.py.
DEFAULT_TOL = 3e-5
#: Default cap on Lloyd iterations.
DEFAULT_MAX_ITER = 300
#: The default ``dither_strength`` of Floyd-Steinberg: 75 % of the error everywhere, half plain
#: Floyd-Steinberg's loss of PSNR (see kmpress.remap).
FS_DITHER_STRENGTH = 0.75
#: The default ``dither_strength`` of the adaptive dither, (at most 64 colours, 256 colours),
#: linear in K between: every pixel takes at least half the carried error at small K, where a
#: stronger dither made files larger than pngquant's; 0.7 at K = 256, where entries lie close
#: together and runs keep the files small, and the palette's reach keeps hue (docs/quality.md,
#: "Dithering").
ADAPTIVE_DITHER_STRENGTHS = (0.5, 0.7)
#: The default of ``max_pixels``: refuse only decompression bombs and what the machine's memory
#: cannot take (see :mod:`kmpress.limits`), so real photos of any size pass.
DEFAULT_MAX_PIXELS = "auto"
#: zlib level of the PNG (9 is ~10x slower than 6 for 1-4 % smaller files).
DEFAULT_COMPRESS_LEVEL = 6
#: Most independent k-means starts.
MAX_N_INIT = 32

#: "auto" picks numpy for small work (no numba start-up at all) and numba otherwise; the two give
#: the same results (see kmpress.kernels_numpy), so the pick only changes the speed.
BACKENDS = ("auto", "numba", "numpy")
INITS = ("k-means++", "random")
COLORSPACES = ("rgb", "oklab")
#: Error-diffusion methods; no dithering is ``None`` (the one spelling, everywhere). "adaptive"
#: (the default) also weights the palette by the image's contrast (see kmpress.contrast).
DITHERS = ("adaptive", "floyd-steinberg")
#: The default remap: the adaptive dither (see kmpress.remap).
DEFAULT_DITHER = "adaptive"
PALETTE_ORDERS = ("luma", "path")
#: Output file formats: the indexed PNG (default) or lossless WebP holding exactly the same
#: colours (10-17 % smaller on the test photos, 5-9x the encoding time; see docs/quality.md).
OUTPUT_FORMATS = ("png", "webp")
#: File extension of each output format.
FORMAT_EXTENSIONS = {"png": ".png", "webp": ".webp"}


# --------------------------------------------------------------------------------------------
# checks: each returns the normalised value or raises InvalidParameterError with one line
# --------------------------------------------------------------------------------------------


def describe(value: Any) -> str:
    """A short one-line description of a bad value for an error message (the repr of an array
    would span many lines)."""
    if isinstance(value, (str, numbers.Number)) or value is None:
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    shape = getattr(value, "shape", None)
    return f"a {type(value).__name__} of shape {shape}" if shape is not None else f"a {type(value).__name__}"


def check_max_pixels(value: Any) -> int | str | None:
    """``max_pixels``: "auto", an integer >= 1 or None (no limit)."""
    if value is None or value == "auto":
        return value
    if isinstance(value, str):
        raise InvalidParameterError(
            f"max_pixels must be 'auto', an integer or None, not {describe(value)}", fields=("max_pixels",)
        )
    return check_int("max_pixels", value, 1)


def check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """An integer (Python or NumPy, not bool) in ``lo..hi``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"{name} must be an integer, not {type(value).__name__}", fields=(name,))
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        span = f"from {lo} to {hi}" if hi is not None else f"at least {lo}"
        raise InvalidParameterError(f"{name} must be {span}, got {v}", fields=(name,))
    return v


def check_number(name: str, value: Any, lo: float = 0.0, *, lo_open: bool = False, hi: float | None = None) -> float:
    """A finite real number (not bool) ``>= lo`` (``> lo`` with ``lo_open``) and ``<= hi``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a number, not {describe(value)}", fields=(name,)) from None
    low_ok = v > lo if lo_open else v >= lo
    if not math.isfinite(v) or not low_ok or (hi is not None and v > hi):
        if hi is not None:
            span = f"in ({lo:g}, {hi:g}]" if lo_open else f"in [{lo:g}, {hi:g}]"
        else:
            span = f"> {lo:g}" if lo_open else f">= {lo:g}"
        raise InvalidParameterError(f"{name} must be a finite number {span}, got {describe(value)}", fields=(name,))
    return v


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    """One of ``choices`` (compared as strings: an array compared with a string is an array)."""
    for c in choices:
        if value is c or (isinstance(value, str) and isinstance(c, str) and value == c):
            return c
    shown = ", ".join("None" if c is None else repr(c) for c in choices)
    raise InvalidParameterError(f"{name} must be one of {shown}, not {describe(value)}", fields=(name,))


def check_bool(name: str, value: Any) -> bool:
    """True or False (NumPy booleans too)."""
    if isinstance(value, numbers.Integral) or type(value).__name__ == "bool_":
        if value in (0, 1):
            return bool(value)
    raise InvalidParameterError(f"{name} must be True or False, not {describe(value)}", fields=(name,))


def check_target(value: Any) -> float:
    """A PSNR target: a finite number of dB > 0."""
    try:
        return check_number("target_psnr", value, 0.0, lo_open=True)
    except InvalidParameterError:
        raise InvalidParameterError(
            f"target_psnr must be a finite number of dB > 0, got {describe(value)}", fields=("target_psnr",)
        ) from None


def check_quality(name: str, value: Any) -> float:
    """A perceptual target: a SSIMULACRA 2 score from 0 to 100."""
    return check_number(name, value, 0.0, hi=100.0)


def parse_quality(text: str) -> tuple[float | None, float]:
    """``--quality``'s text as (minimum or None, target), in pngquant's forms.

    ``N`` (target N, no minimum), ``MIN-MAX`` (aim at MAX; below MIN the result is refused),
    ``MIN-`` (aim at 100) and ``-MAX`` (no minimum). Each number is a SSIMULACRA 2 score, 0-100.

    Raises
    ------
    InvalidParameterError
        Not one of these forms, a number outside 0-100, or MIN above MAX.
    """
    parts = text.split("-") if isinstance(text, str) else []
    try:
        numbers = [float(x) if x.strip() else None for x in parts] if len(parts) <= 2 else []
    except ValueError:
        numbers = []
    if not numbers or all(x is None for x in numbers):
        raise InvalidParameterError(
            f"quality must be N or MIN-MAX (SSIMULACRA 2 scores, 0-100), not {describe(text)}",
            fields=("target_quality",),
        )
    if len(numbers) == 1:
        return None, check_quality("target_quality", numbers[0])
    target = 100.0 if numbers[1] is None else check_quality("target_quality", numbers[1])
    low = None if numbers[0] is None else check_quality("min_quality", numbers[0])
    if low is not None and low > target:
        raise InvalidParameterError(
            f"the minimum quality {low:g} is above the target {target:g}", fields=("min_quality", "target_quality")
        )
    return low, target


def quality_text(target: float, minimum: float | None = None) -> str:
    """A perceptual target as ``--quality`` spells it (and output names show it): ``70``, ``60-80``."""
    return f"{target:g}" if minimum is None else f"{minimum:g}-{target:g}"


# --------------------------------------------------------------------------------------------
# the options object
# --------------------------------------------------------------------------------------------


class _CommonFields(TypedDict, total=False):
    """The keyword arguments that :class:`Options` takes but ``k`` and ``target_psnr``."""

    target_quality: float | None
    min_quality: float | None
    max_colors: int
    strict: bool
    seed: int
    max_iter: int
    tol: float
    init: str
    backend: str
    colorspace: str
    n_init: int
    dither: str | None
    dither_strength: float | None
    smooth: float
    palette_order: str
    compress_level: int
    max_pixels: int | str | None
    format: str
    strip: bool
    skip_if_larger: bool
    measure: bool
    scheduler_timeout: float | None


class JobFields(_CommonFields, total=False):
    """The keyword arguments that :class:`Options` takes but ``k``: for ``**kwargs`` of the
    public functions that take ``k`` as a parameter of their own."""

    target_psnr: float | None


class QualityFields(_CommonFields, total=False):
    """The keyword arguments that :class:`Options` takes but ``target_psnr``: for ``**kwargs``
    of the public functions that take the target as a parameter of their own."""

    k: int | None


class OptionFields(JobFields, total=False):
    """The keyword arguments that :class:`Options` takes (for ``**kwargs`` of the public
    functions)."""

    k: int | None


@dataclass(frozen=True)
class Options:
    """Settings of one quantization job, checked once when made; frozen and picklable.

    Colours
        k : int 1..256, or None; colours of the palette. None means :data:`DEFAULT_K`, unless
            a quality target is given (then K is searched for and ``k`` must be None).
        target_quality : float 0..100 or None; a perceptual target instead of ``k``: the
            smallest file (K, and with the default dither also no dithering) whose SSIMULACRA 2
            score reaches it (see :mod:`kmpress.quality`).
        min_quality : float 0..``target_quality`` or None; with ``target_quality``: a result
            below this score is refused (TargetNotReachedError, nothing written), as pngquant's
            ``--quality MIN-MAX``; between it and the target the ``max_colors`` result is kept.
        target_psnr : float > 0 or None; a PSNR target in dB instead of ``k``: the smallest K
            (1..``max_colors``) whose result reaches it. Not with ``target_quality``.
        max_colors : int 1..256; the largest K the search may use (only with a target).
        strict : bool; with a target, fail (TargetNotReachedError) instead of returning the
            ``max_colors`` result when the target is out of reach: the minimum is the target
            (so not with ``min_quality``).

    Clustering
        seed : int >= 0; seeds the initialisation (same seed, same result at any thread count).
        max_iter : int >= 0; most Lloyd iterations.
        tol : float >= 0; stop when the sum of squared centroid shifts is at most ``tol`` x the
            mean per-channel variance of the colours.
        init : "k-means++" or "random".
        backend : "auto" (default: numpy for small images, numba otherwise), "numba" (the
            compiled kernels) or "numpy" (the baseline); all three give the same result.
        colorspace : "rgb" or "oklab"; where colours are clustered and matched.
        n_init : int 1..32; independent starts, the lowest k-means cost wins.

    Remap
        dither : "adaptive" (default), "floyd-steinberg" or None.
            "adaptive": the palette is fitted to the colours weighted by how flat their
            surroundings are, and the error is diffused in OKLab where the undithered remap would
            band (long runs of one entry), little in texture and at edges (see
            :mod:`kmpress.remap`). "floyd-steinberg": uniform error diffusion in the clustering
            space at ``dither_strength``. None: each pixel its colour's nearest entry, the
            palette fitted to the plain pixel counts.
        dither_strength : float in (0, 1] or None (the dither's default). "adaptive": the
            least share of the carried error any pixel takes (the dither map gives more where
            banding would show), and the smaller it is the larger an offset is dropped as too
            small to see; default 0.5 up to 64 colours, rising to 0.7 at 256; 1 diffuses the
            whole error everywhere: colours kept best, a larger file. "floyd-steinberg": the
            share diffused everywhere; default 0.75.
            Only with a dither.
        smooth : float >= 0; rate-aware remap allowance (0: exact nearest entry); it replaces
            the default dither (``dither`` becomes None), and cannot go with "floyd-steinberg".
        palette_order : "luma" or "path"; order of the stored entries.

    Output (files only)
        compress_level : int 0..9; zlib level of the PNG.
        max_pixels : "auto", int >= 1 or None; the decompression-bomb guard, checked before
            decoding: "auto" refuses a file far too small for the size it declares, more than
            2^30 pixels, or more than the machine's memory can take (see :mod:`kmpress.limits`);
            an int is a plain cap; None checks nothing.
        format : "png" or "webp"; the output file format (WebP: lossless, the same colours).
        strip : bool; write no metadata (by default the input's ICC profile and EXIF are kept,
            the EXIF orientation reset to 1 since the pixels are already rotated).
        skip_if_larger : bool; do not write an output larger than its input file (the result
            says so: ``CompressReport.written`` is False).

    Figures
        measure : bool; measure the result against the input pixel by pixel (default True).
            False leaves out the figures that take a pass over every pixel (about 0.05 s per
            megapixel on 2 cores): ``ssimulacra2`` is NaN, and so are ``mse``, ``psnr`` and
            ``delta_e`` after a dithered remap (without dithering they come from the colour
            histogram, at no cost, and are kept). For callers that do not read them, as the
            CLI with ``--quiet`` and no ``--json``. The output is the same either way; a quality
            target measures its candidates whatever this says.

    Batches on a Dask cluster (see :mod:`kmpress.dask_batch`; ignored elsewhere)
        scheduler_timeout : float > 0 or None; seconds the scheduler may go without answering
            before the batch gives up on it (its files not done are reported so); None waits
            as long as it takes (a frozen scheduler, e.g. behind a network partition, then
            holds the batch for as long as it lasts).
    """

    k: int | None = None
    target_quality: float | None = None
    min_quality: float | None = None
    target_psnr: float | None = None
    max_colors: int = MAX_K
    strict: bool = False
    seed: int = 0
    max_iter: int = DEFAULT_MAX_ITER
    tol: float = DEFAULT_TOL
    init: str = "k-means++"
    backend: str = "auto"
    colorspace: str = "rgb"
    n_init: int = 1
    dither: str | None = DEFAULT_DITHER
    dither_strength: float | None = None
    smooth: float = 0.0
    palette_order: str = "luma"
    compress_level: int = DEFAULT_COMPRESS_LEVEL
    max_pixels: int | str | None = DEFAULT_MAX_PIXELS
    format: str = "png"
    strip: bool = False
    skip_if_larger: bool = False
    measure: bool = True
    scheduler_timeout: float | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.target_quality is not None:
            put("target_quality", check_quality("target_quality", self.target_quality))
            if self.target_psnr is not None:
                raise InvalidParameterError(
                    "give either target_quality or target_psnr, not both", fields=("target_quality", "target_psnr")
                )
        if self.min_quality is not None:
            if self.target_quality is None:
                raise InvalidParameterError(
                    "min_quality goes with target_quality", fields=("min_quality", "target_quality")
                )
            put("min_quality", check_quality("min_quality", self.min_quality))
            if self.min_quality > self.target_quality:
                raise InvalidParameterError(
                    f"min_quality {self.min_quality:g} is above target_quality {self.target_quality:g}",
                    fields=("min_quality", "target_quality"),
                )
        if self.target_psnr is not None:
            put("target_psnr", check_target(self.target_psnr))
        if self.searches_k:
            if self.k is not None:
                name = "target_psnr" if self.target_psnr is not None else "target_quality"
                raise InvalidParameterError(f"give either k or {name}, not both", fields=("k", name))
        else:
            put("k", DEFAULT_K if self.k is None else check_int("k", self.k, 1, MAX_K))
        put("max_colors", check_int("max_colors", self.max_colors, 1, MAX_K))
        put("strict", check_bool("strict", self.strict))
        if not self.searches_k and (self.strict or self.max_colors != MAX_K):
            raise InvalidParameterError(
                "max_colors and strict go with a quality target (target_quality or target_psnr)",
                fields=("max_colors", "strict", "target_quality", "target_psnr"),
            )
        if self.strict and self.min_quality is not None:
            raise InvalidParameterError(
                "give strict or min_quality, not both (strict makes the target the minimum)",
                fields=("strict", "min_quality"),
            )
        put("seed", check_int("seed", self.seed, 0))
        put("max_iter", check_int("max_iter", self.max_iter, 0))
        put("tol", check_number("tol", self.tol, 0.0))
        put("init", check_choice("init", self.init, INITS))
        put("backend", check_choice("backend", self.backend, BACKENDS))
        put("colorspace", check_choice("colorspace", self.colorspace, COLORSPACES))
        put("n_init", check_int("n_init", self.n_init, 1, MAX_N_INIT))
        put("dither", check_choice("dither", self.dither, (None, *DITHERS)))
        if self.dither_strength is not None:
            put("dither_strength", check_number("dither_strength", self.dither_strength, 0.0, lo_open=True, hi=1.0))
        put("smooth", check_number("smooth", self.smooth, 0.0))
        if self.smooth > 0 and self.dither == DEFAULT_DITHER:
            # the rate-aware remap is an undithered one: it takes the default's place
            put("dither", None)
        if self.smooth > 0 and self.dither is not None:
            raise InvalidParameterError("smooth and dither cannot be combined: choose one", fields=("smooth", "dither"))
        if self.dither is None and self.dither_strength is not None:
            raise InvalidParameterError(
                "dither_strength has nothing to set without dithering", fields=("dither_strength",)
            )
        put("palette_order", check_choice("palette_order", self.palette_order, PALETTE_ORDERS))
        put("compress_level", check_int("compress_level", self.compress_level, 0, 9))
        put("max_pixels", check_max_pixels(self.max_pixels))
        fmt = self.format.lower() if isinstance(self.format, str) else self.format
        put("format", check_choice("format", fmt, OUTPUT_FORMATS))
        put("strip", check_bool("strip", self.strip))
        put("skip_if_larger", check_bool("skip_if_larger", self.skip_if_larger))
        put("measure", check_bool("measure", self.measure))
        if self.scheduler_timeout is not None:
            put("scheduler_timeout", check_number("scheduler_timeout", self.scheduler_timeout, 0.0, lo_open=True))

    @property
    def searches_k(self) -> bool:
        """K is chosen by the quality search (``target_quality`` or ``target_psnr`` given), not fixed."""
        return self.target_quality is not None or self.target_psnr is not None

    def diffusion_strength(self, k: int) -> float:
        """The dither's strength with ``k`` palette entries: ``dither_strength``, or the
        dither's default (the adaptive one's grows with K: :data:`ADAPTIVE_DITHER_STRENGTHS`);
        0.0 without a dither."""
        if self.dither is None:
            return 0.0
        if self.dither_strength is not None:
            return self.dither_strength
        if self.dither != "adaptive":
            return FS_DITHER_STRENGTH
        small, large = ADAPTIVE_DITHER_STRENGTHS
        # plain arithmetic (no logarithm), so the same bits on every machine
        return small + (large - small) * min(1.0, max(0.0, (k - 64) / 192))

    @property
    def quality_floor(self) -> float | None:
        """The score below which a perceptual search's result is refused: ``min_quality``, the
        target itself with ``strict``, else None."""
        if self.target_quality is None:
            return None
        return self.target_quality if self.strict else self.min_quality

    @property
    def quality_tag(self) -> str | None:
        """The target as output names show it (``{q}``): ``70``, ``60-80`` or the PSNR ``38.5``."""
        if self.target_quality is not None:
            return quality_text(self.target_quality, self.min_quality)
        return None if self.target_psnr is None else f"{self.target_psnr:g}"

    @property
    def largest_k(self) -> int:
        """The largest K a job of these options fits: ``k``, or ``max_colors`` when K is
        searched for (what the backend pick weighs)."""
        return self.k or self.max_colors

    @property
    def extension(self) -> str:
        """File extension of the output format (``.png``, ``.webp``)."""
        return FORMAT_EXTENSIONS[self.format]

    def replace(self, **changes: Any) -> Options:
        """A copy with some fields changed, checked again. Giving a target (``target_quality``
        or ``target_psnr``) without ``k`` drops the fixed K and the other target (a target
        replaces them)."""
        unknown = set(changes) - FIELD_NAMES
        if unknown:
            raise InvalidParameterError(f"unknown option {sorted(unknown)[0]!r}", fields=tuple(sorted(unknown)))
        for name, other in (("target_psnr", "target_quality"), ("target_quality", "target_psnr")):
            if changes.get(name) is not None:
                changes.setdefault("k", None)
                if other not in changes:
                    changes[other] = None
                    if other == "target_quality":
                        changes.setdefault("min_quality", None)
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return dataclasses.asdict(self)


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Options))


def make_options(options: Options | None = None, **changes: Any) -> Options:
    """The public functions' edge: ``options`` (or the defaults) with keyword ``changes`` applied
    (see :meth:`Options.replace`), checked once."""
    base = Options() if options is None else options
    if not isinstance(base, Options):
        raise InvalidParameterError(f"options must be a kmpress Options, not {describe(base)}")
    return base.replace(**changes) if changes else base


def default(name: str) -> Any:
    """The default of one field (for ``--help`` texts)."""
    return _DEFAULTS[name]


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Options)}
