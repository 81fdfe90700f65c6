"""Stage 5: every pixel to its palette index, by one of four strategies, and the choice among them.

- adaptive (the default, ``dither="adaptive"``): error diffusion in OKLab whose strength follows
  a per-pixel level: full in the long runs of one entry that the undithered remap leaves in
  smooth areas (where banding shows), at least ``dither_strength`` (by default half up to 64
  colours, 0.7 at 256) in texture and at edges, none where the offset would hardly change the
  colour; a pixel keeps its row's run, or else the entry above it, where that costs next to
  nothing (:func:`adaptive_dither`);
- plain (``dither=None``): each distinct colour's nearest entry, searched once per colour against the
  stored uint8 palette (so the file is exactly what the report describes), then given to every
  pixel in one pass: through the histogram's inverse index, or, for large RGB images, through a
  table of all 2^24 colour codes (16 MB, where an inverse would cost 4 bytes per pixel);
- Floyd-Steinberg (``dither="floyd-steinberg"``): uniform serpentine error diffusion in the
  clustering space, clamped to the palette's bounding box;
- rate-aware (``smooth > 0``): a pixel may keep its left or upper neighbour's entry when that
  costs little extra error, which makes longer runs for DEFLATE.

The error diffusions are deterministic at any thread count: Floyd-Steinberg is one sequential
pass, and the adaptive one's parallel bands depend on the image's size alone. Prior validation
is assumed.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .colorspace import palette_to_space
from .histogram import Histogram
from .options import Options
from .palette import nearest_in_space

#: Grid cells per axis of Floyd-Steinberg's candidate lists (3 channels: 32^3 cells; 4: 12^4).
GRID3 = 32
GRID4 = 12

# The adaptive dither's constants (libimagequant's, kept after measuring alternatives on 14
# photos at K = 16, 64 and 256: docs/quality.md, "Dithering"). Squared lengths are in OKLab x 255.
#: The caps apply above this multiple of the undithered remap's mean squared error.
CAP_FACTOR = 2.4
#: Offsets of squared length below this (|offset| < 0.004 OKLab) are dropped at the default
#: strength: no grain where it would hardly change the colour, and longer runs for DEFLATE (3-8 %
#: smaller files at K = 256). It scales with ``2 x (1 - strength)``: gone at strength 1.
DEAD_ZONE = 1.0
#: A pixel keeps the entry of the pixel before it on its row when that one is at most this much
#: further (squared, OKLab x 255: |d| ~ 0.006 OKLab, well under a just-noticeable difference) than
#: its nearest: longer runs for DEFLATE where entries lie close together, the extra error carried
#: on to the next pixels like any other. On 14 photos at K = 256 (strength 0.8): files 98.5 ->
#: 90.9 % of pngquant's, blurred CIEDE2000 0.568 -> 0.573 (docs/quality.md, "Dithering"). Where
#: the run breaks, the entry of the pixel above, on the same terms: a repeat of the row before.
#: Tried first, it cut the runs of smooth skies (a dusk sky's file at K = 256 grew by 40 %).
RUN_TIE = 2.0
#: An offset beyond the cap is scaled by this, an error diffused beyond it by ERROR_CAP.
OFFSET_CAP = 0.8
ERROR_CAP = 0.75
#: Pixels per band of the adaptive dither: bands are diffused in parallel (each from two rows
#: above its own, as libimagequant does), so a large photo's diffusion, the longest stage of the
#: remap, runs on every core; a photo under 1.5 MP stays one band, a serial diffusion. (Each band
#: lists its own nearest-entry candidates: half-megapixel bands cost 15 % more time at K = 256.)
BAND_PIXELS = 1 << 20
#: Fewest rows of a band: a band's first rows carry less error than a serial diffusion's would.
BAND_MIN_ROWS = 64


def is_plain(options: Options, lossless: bool) -> bool:
    """Whether a fit is remapped by its colours' nearest entries (so its error is known from the
    histogram alone, without a pass over the pixels)."""
    return lossless or (options.dither is None and options.smooth == 0)


def remap(
    hist: Histogram,
    X: np.ndarray | None,
    labels: np.ndarray,
    entries: np.ndarray,
    image: np.ndarray,
    inverse: np.ndarray | None,
    options: Options,
    lossless: bool,
    kernels: ModuleType,
    palette: np.ndarray | None = None,
    edges: np.ndarray | None = None,
    lab: np.ndarray | None = None,
) -> np.ndarray:
    """Palette indices of every pixel, (H, W) uint8, by the strategy ``options`` asks for.

    Parameters
    ----------
    hist : the image's histogram; X : (C, U) float32 its colours in the clustering space (None
        if plain: the plain remap does not use them)
    labels : (U,) int32 nearest entry of each colour; entries : (P, C) float32 the palette in
        the clustering space
    image : (H, W, C) uint8, the image the histogram is of
    inverse : (H*W,) int32 each pixel's colour index (``hist.pixel_colors``), needed by the
        remaps that are not plain (the caller keeps it for their error figures); None if plain
    lossless : the palette holds every colour of the image (then always plain)
    palette, edges, lab : for the adaptive dither only: the stored palette, (P, C) uint8; the
        image's edges map, (H, W) uint8 (:func:`kmpress.contrast.contrast_maps`); the distinct
        colours in OKLab x 255, (C, U) float32
    """
    shape = image.shape[:2]
    if is_plain(options, lossless):
        return gather_indices(hist, labels, image, kernels)
    assert inverse is not None, "the remaps that are not plain need each pixel's colour index"
    assert X is not None, "the remaps that are not plain need the clustering points"
    if options.smooth > 0:
        return smooth_remap(X, hist.counts, inverse, labels, entries, shape, options.smooth, kernels)
    alpha = hist.colors[:, 3] if hist.colors.shape[1] == 4 else None
    if options.dither == "adaptive":
        assert lab is not None and palette is not None and edges is not None, "the adaptive dither needs its maps"
        strength = options.diffusion_strength(palette.shape[0])
        return adaptive_dither(hist.counts, lab, inverse, alpha, palette, edges, strength, kernels)
    return floyd_steinberg(X, inverse, alpha, entries, shape, options.diffusion_strength(entries.shape[0]), kernels)


def gather_indices(hist: Histogram, color_labels: np.ndarray, image: np.ndarray, kernels: ModuleType) -> np.ndarray:
    """Palette index of every pixel of ``image``, (H, W) uint8, from the palette index of every
    colour of its histogram."""
    h, w, c = image.shape
    out = np.empty(h * w, np.uint8)
    lab8 = color_labels.astype(np.uint8)
    if hist.inverse is not None:
        kernels.gather(lab8, hist.inverse, out)
    else:
        lut = np.zeros(1 << 24, np.uint8)
        lut[hist.codes] = lab8
        kernels.remap_codes(image.reshape(-1, c), lut, out)
    return out.reshape(h, w)


def indexed_pixels(palette: np.ndarray, indices: np.ndarray, kernels: ModuleType) -> np.ndarray:
    """Return the pixels of an indexed image, ``palette[indices]``, (H, W, C) uint8, made in
    parallel by the backend (NumPy's fancy indexing takes a third of a second at 24 MP).

    palette : (K, C) uint8; indices : (H, W) uint8, each below K
    """
    h, w = indices.shape
    out = np.empty((h, w, palette.shape[1]), np.uint8)
    kernels.expand(
        np.ascontiguousarray(palette, dtype=np.uint8), np.ascontiguousarray(indices).reshape(-1), out.reshape(h * w, -1)
    )
    return out


def floyd_steinberg(
    X: np.ndarray,
    inverse: np.ndarray,
    alpha: np.ndarray | None,
    entries: np.ndarray,
    shape: tuple[int, int],
    strength: float,
    kernels: ModuleType,
) -> np.ndarray:
    """Serpentine Floyd-Steinberg remap of every pixel onto the palette.

    Parameters
    ----------
    X : (C, U) float32, the distinct colours in the clustering space
    inverse : (H*W,) int32, each pixel's colour index (raster order)
    alpha : (U,) uint8 alpha of each colour, or None for an opaque image; fully transparent
        pixels take their own nearest entry and neither receive nor pass on error
    entries : (P, C) float32, the stored palette entries in the clustering space
    shape : (H, W)
    strength : float in (0, 1]
        Fraction of each pixel's error that is diffused. Plain Floyd-Steinberg (1.0) cost 3-5 dB
        PSNR on the test photos against no dithering and made speckle in noisy areas; 0.75
        halves that loss and keeps gradients smooth (docs/quality.md, "Dithering").

    Returns
    -------
    (H, W) uint8 palette indices.
    """
    h, w = shape
    out = np.empty(h * w, np.uint8)
    kernels.floyd_steinberg(*_diffusion_args(X, inverse, alpha, entries, h, w, out), float(strength))
    return out.reshape(h, w)


def _diffusion_args(
    X: np.ndarray, inverse: np.ndarray, alpha: np.ndarray | None, entries: np.ndarray, h: int, w: int, out: np.ndarray
) -> tuple:
    """Return the arguments the error-diffusion kernels share, ``Xt`` to ``ncand``."""
    D = X.shape[0]
    K = entries.shape[0]
    has_alpha = alpha is not None
    transparent = (alpha == 0) if has_alpha else np.zeros(1, np.bool_)
    # clamp box: the palette's bounding box. Error that pushes a value beyond every entry can
    # never be paid back; letting it accumulate only smears streaks of the extreme entries
    # (measured: 1-5 dB worse PSNR than clamping here, for no visible gain)
    lo = entries.min(axis=0).astype(np.float64)
    hi = entries.max(axis=0).astype(np.float64)
    G = GRID3 if D == 3 else GRID4
    ncells = G**D
    return (
        np.ascontiguousarray(X.T, dtype=np.float32),
        np.ascontiguousarray(inverse, dtype=np.int32),
        np.ascontiguousarray(transparent, dtype=np.bool_),
        has_alpha,
        np.ascontiguousarray(entries, dtype=np.float64),
        lo,
        hi,
        G,
        h,
        w,
        out,
        np.empty((ncells, K), np.int16),
        np.full(ncells, -1, np.int32),
    )


def adaptive_dither(
    counts: np.ndarray,
    lab: np.ndarray,
    inverse: np.ndarray,
    alpha: np.ndarray | None,
    palette: np.ndarray,
    edges: np.ndarray,
    strength: float,
    kernels: ModuleType,
) -> np.ndarray:
    """Remap every pixel to its palette index, (H, W) uint8, by the adaptive error diffusion.

    libimagequant's recipe, in OKLab:

    1. The undithered remap in OKLab x 255: each colour's nearest entry; its mean squared error
       ``err`` sets the caps at ``CAP_FACTOR x err``.
    2. The dither map of that remap (``kernels.dither_map``): each pixel's level, high in long
       runs of one entry repeated in the rows above and below, scaled by the edges map, and
       at least ``strength`` (:func:`least_level`).
    3. Serpentine Floyd-Steinberg in OKLab x 255, clamped to the palette's box: each pixel takes
       ``level / 255`` of the error carried to it, and keeps the entry of the pixel before it
       when that is within :data:`RUN_TIE` of the nearest, else the entry of the pixel above it
       on the same terms; an offset under
       ``dead_zone(strength)`` is dropped, one over the cap scaled by :data:`OFFSET_CAP`, a
       residual error over it by :data:`ERROR_CAP`. In bands of rows (:func:`dither_bands`),
       each sequential, in float64: the same bits on any CPU and thread count.

    Parameters
    ----------
    counts : (U,) int64 pixels of each distinct colour
    lab : (C, U) float32 the distinct colours in OKLab x 255 (alpha, if any, carried)
    inverse : (H*W,) int32 each pixel's colour; alpha : (U,) uint8 or None
    palette : (P, C) uint8 the stored palette; edges : (H, W) uint8 the edges map
    strength : float in (0, 1], the least share of the carried error a pixel takes
    """
    h, w = edges.shape
    entries32 = palette_to_space(palette, "oklab", kernels)
    entries = entries32.astype(np.float64)
    labels = nearest_in_space(lab, entries32, kernels)
    dist = np.empty(labels.shape[0], np.float64)
    kernels.dist_to_assigned(lab, entries, labels, dist)
    # summed one after the other (np.sum adds pairwise): the same bits on both backends
    err = float(np.cumsum(dist * counts)[-1]) / (h * w)
    cap = max(CAP_FACTOR * err, 1e-9)
    plain = np.empty(h * w, np.uint8)
    kernels.gather(labels.astype(np.uint8), inverse, plain)
    level = np.empty(h * w, np.uint8)
    kernels.dither_map(plain, np.ascontiguousarray(edges).reshape(-1), h, w, level)
    np.maximum(level, least_level(strength), out=level)
    out = plain  # the undithered remap is not needed any more
    kernels.adaptive_dither(
        *_diffusion_args(lab, inverse, alpha, entries, h, w, out),
        level,
        dead_zone(strength),
        RUN_TIE,
        cap,
        OFFSET_CAP,
        ERROR_CAP,
        dither_bands(h, w),
    )
    return out.reshape(h, w)


def least_level(strength: float) -> int:
    """Return the least dither level (of 255) of any pixel at ``strength``: 128 at the default 0.5.

    libimagequant's dither map gives texture and edges as little as 28: texture hides grain, but
    not a shift of its mean colour, which a pixel left undithered keeps; at 16 colours a path of
    orange soil turned green. With half the error everywhere, on 14 photos (docs/quality.md,
    "Dithering"), blurred CIEDE2000, SSIMULACRA 2 and butteraugli all improved at K = 16, 64 and
    256.
    """
    return min(255, int(255.0 * strength + 0.5))


def dead_zone(strength: float) -> float:
    """Return the squared length (OKLab x 255) under which an offset is dropped at ``strength``:
    :data:`DEAD_ZONE` at 0.5, none at 1 (every bit of error carried on, the local mean colour
    kept best), twice as much near 0."""
    return DEAD_ZONE * 2.0 * (1.0 - strength)


def dither_bands(h: int, w: int) -> np.ndarray:
    """Return the bands of rows the adaptive dither diffuses on their own (in parallel): their
    first rows, then ``h``, (B + 1,) int64.

    One band per :data:`BAND_PIXELS` pixels (rounded), each at least :data:`BAND_MIN_ROWS` rows,
    the rows shared out evenly: from the image's size alone, so the same bands (and bytes) at any
    thread count. An image under 1.5 x :data:`BAND_PIXELS` is one band.
    """
    n = max(1, min((h * w + BAND_PIXELS // 2) // BAND_PIXELS, h // BAND_MIN_ROWS))
    return np.array([(h * i) // n for i in range(n + 1)], np.int64)


def smooth_remap(
    X: np.ndarray,
    counts: np.ndarray,
    inverse: np.ndarray,
    labels: np.ndarray,
    entries: np.ndarray,
    shape: tuple[int, int],
    strength: float,
    kernels: ModuleType,
) -> np.ndarray:
    """Rate-aware remap: a pixel keeps its left or upper neighbour's palette entry instead of its
    nearest one when that costs little extra error, which makes longer runs for DEFLATE.

    The allowance is ``strength`` times the mean squared distance of the pixels to their nearest
    entries (in the clustering space), so it scales with how coarse the palette is: a pixel
    switches only when the neighbour's entry is closer than ``d_nearest + allowance`` to it.

    Parameters
    ----------
    X : (C, U) float32 distinct colours in the clustering space; counts : (U,) pixels of each
    inverse : (H*W,) int32; labels : (U,) int32 nearest entry of each colour
    entries : (P, C) float32 palette in the clustering space; shape : (H, W)
    strength : float >= 0; 0 gives exactly the nearest-entry remap

    Returns
    -------
    (H, W) uint8.
    """
    h, w = shape
    X = np.ascontiguousarray(X, dtype=np.float32)
    ent = np.ascontiguousarray(entries, dtype=np.float64)
    lab = np.ascontiguousarray(labels, dtype=np.int32)
    best_d = np.empty(X.shape[1], np.float64)
    kernels.dist_to_assigned(X, ent, lab, best_d)
    lam = (
        float(strength) * float(np.einsum("n,n->", best_d, counts.astype(np.float64))) / float(counts.sum())
    )  # no BLAS
    out = np.empty(h * w, np.uint8)
    kernels.smooth(
        np.ascontiguousarray(X.T), np.ascontiguousarray(inverse, dtype=np.int32), lab, best_d, ent, lam, h, w, out
    )
    return out.reshape(h, w)
