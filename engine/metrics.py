"""Every error figure (squared error, MSE, PSNR, mean OKLab ΔE) and the bit accounting.
Arithmetic only: no I/O.

The figures of a result are exact: squared errors are integer sums; ΔE sums go per fixed chunk
and are merged in order, so they do not depend on the number of threads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from .colorspace import LINEAR_LUT, M1, M2, oklab_of_colors
from .fixedmath import log10


@dataclass(frozen=True)
class Bits:
    """The bit accounting of an indexed image (as in the k-means image-compression articles).

    raw = H*W*24 (32 with alpha); index = H*W*ceil(log2 K); palette = K*24 (32 with alpha), where K
    is the number of palette entries actually stored.
    """

    raw: int
    index: int
    palette: int

    @property
    def total(self) -> int:
        return self.index + self.palette

    @property
    def ratio(self) -> float:
        """total / raw: 0.168 means the indexed form takes 16.8 % of the raw bits."""
        return self.total / self.raw if self.raw else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"raw": self.raw, "index": self.index, "palette": self.palette, "total": self.total, "ratio": self.ratio}


def index_bits(k: int) -> int:
    """ceil(log2 k): bits needed to tell k palette entries apart (0 for a single colour)."""
    return (k - 1).bit_length() if k > 0 else 0


def bit_accounting(height: int, width: int, channels: int, k: int) -> Bits:
    """Bits of the raw image and of its indexed form with a ``k``-entry palette."""
    per_color = 32 if channels == 4 else 24
    n = height * width
    return Bits(raw=n * per_color, index=n * index_bits(k), palette=k * per_color)


def png_bit_depth(k: int) -> int:
    """Smallest bit depth a PNG palette image of ``k`` entries can use: 1, 2, 4 or 8."""
    for bits in (1, 2, 4):
        if k <= 1 << bits:
            return bits
    return 8


def squared_error_sum(colors: np.ndarray, counts: np.ndarray, palette: np.ndarray, labels: np.ndarray) -> int:
    """Exact sum over all pixels of the squared error, computed on the histogram.

    Parameters
    ----------
    colors : (U, C) uint8 distinct colours
    counts : (U,) int64 pixels per colour
    palette : (P, C) uint8
    labels : (U,) palette index of each colour

    Integer arithmetic, in slices of the colours (a few MB of temporaries, not U x C x 8 bytes
    several times over).
    """
    total = 0
    pal = palette.astype(np.int32)
    step = 1 << 18
    for s in range(0, colors.shape[0], step):
        err = colors[s : s + step].astype(np.int32) - pal[labels[s : s + step]]
        total += int(np.einsum("ij,ij->i", err, err).astype(np.int64) @ counts[s : s + step])
    return total


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for 8-bit data; ``inf`` when the result is lossless. The logarithm is
    :func:`kmpress.fixedmath.log10`: the same figure on every machine (the C library's ``log10``
    picks an FMA variant on some CPUs)."""
    return math.inf if mse <= 0 else 10.0 * log10(255.0**2 / mse)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error per sample between two uint8 arrays of the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    d = (a.astype(np.int32) - b.astype(np.int32)).ravel()
    return float(np.einsum("i,i->", d, d, dtype=np.int64)) / d.size


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 arrays of the same shape."""
    return psnr_from_mse(mse(a, b))


def delta_e_histogram(
    colors: np.ndarray, counts: np.ndarray, palette: np.ndarray, labels: np.ndarray, kernels: ModuleType
) -> float:
    """Mean OKLab distance (plain units) between input and output colours, weighted by pixels.

    Parameters
    ----------
    colors : (U, C) uint8 distinct input colours
    counts : (U,) int64 pixels of each
    palette : (P, C) uint8
    labels : (U,) int palette entry each colour is shown as

    Returns
    -------
    float; alpha is ignored (the distance is between the colours themselves).
    """
    U = colors.shape[0]
    part = np.empty(kernels.n_chunks(U), np.float64)
    kernels.delta_e_colors(
        np.ascontiguousarray(colors),
        np.ascontiguousarray(counts, dtype=np.int64),
        np.ascontiguousarray(palette, dtype=np.uint8),
        np.ascontiguousarray(labels, dtype=np.int32),
        LINEAR_LUT,
        M1,
        M2,
        part,
    )
    return float(part.sum() / counts.sum())


def pixel_errors(
    colors: np.ndarray, inverse: np.ndarray, indices: np.ndarray, palette: np.ndarray, kernels: ModuleType
) -> tuple[int, float]:
    """Exact error figures of an arbitrary remap (dithered, rate-aware), pixel by pixel.

    Parameters
    ----------
    colors : (U, C) uint8 distinct input colours; inverse : (N,) int32 each pixel's colour
    indices : (N,) or (H, W) uint8 palette index of each pixel; palette : (P, C) uint8

    Returns
    -------
    sse : int, sum over pixels and channels of the squared sRGB error (exact)
    delta_e : float, mean OKLab distance (plain units) per pixel, alpha ignored
    """
    N = inverse.shape[0]
    nc = (N + kernels.STATS_CHUNK - 1) // kernels.STATS_CHUNK
    sse_c = np.empty(nc, np.int64)
    de_c = np.empty(nc, np.float64)
    kernels.pixel_stats(
        np.ascontiguousarray(colors),
        np.ascontiguousarray(inverse, dtype=np.int32),
        np.ascontiguousarray(indices).reshape(-1),
        np.ascontiguousarray(palette, dtype=np.uint8),
        oklab_of_colors(colors, kernels),
        oklab_of_colors(palette, kernels),
        sse_c,
        de_c,
    )
    return int(sse_c.sum()), float(de_c.sum() / N)
