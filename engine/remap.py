"""Stage 5: every pixel to its palette index, by one of three strategies, and the choice among them.

- plain (the default): each distinct colour's nearest entry, searched once per colour against the
  stored uint8 palette (so the file is exactly what the report describes), then given to every
  pixel in one pass: through the histogram's inverse index, or, for large RGB images, through a
  table of all 2^24 colour codes (16 MB, where an inverse would cost 4 bytes per pixel);
- Floyd-Steinberg (``dither="floyd-steinberg"``): serpentine error diffusion in the clustering
  space, clamped to the palette's bounding box;
- rate-aware (``smooth > 0``): a pixel may keep its left or upper neighbour's entry when that
  costs little extra error, which makes longer runs for DEFLATE.

The two sequential strategies are deterministic at any thread count. Prior validation is assumed.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .histogram import Histogram
from .options import Options

#: Grid cells per axis of Floyd-Steinberg's candidate lists (3 channels: 32^3 cells; 4: 12^4).
GRID3 = 32
GRID4 = 12


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
    """
    shape = image.shape[:2]
    if is_plain(options, lossless):
        return gather_indices(hist, labels, image, kernels)
    assert inverse is not None, "the remaps that are not plain need each pixel's colour index"
    assert X is not None, "the remaps that are not plain need the clustering points"
    if options.smooth > 0:
        return smooth_remap(X, hist.counts, inverse, labels, entries, shape, options.smooth, kernels)
    alpha = hist.colors[:, 3] if hist.colors.shape[1] == 4 else None
    return floyd_steinberg(X, inverse, alpha, entries, shape, options.dither_strength, kernels)


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
    D, U = X.shape
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
    cand = np.empty((ncells, K), np.int16)
    ncand = np.full(ncells, -1, np.int32)
    out = np.empty(h * w, np.uint8)
    kernels.floyd_steinberg(
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
        cand,
        ncand,
        float(strength),
    )
    return out.reshape(h, w)


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
