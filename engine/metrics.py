"""Quality and size accounting. Pure arithmetic: no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
    return max(0, math.ceil(math.log2(k))) if k > 0 else 0


def bit_accounting(height: int, width: int, channels: int, k: int) -> Bits:
    """Bits of the raw image and of its indexed form with a ``k``-entry palette."""
    per_colour = 32 if channels == 4 else 24
    n = height * width
    return Bits(raw=n * per_colour, index=n * index_bits(k), palette=k * per_colour)


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
    """
    err = colors.astype(np.int64) - palette[labels].astype(np.int64)
    return int((np.einsum("ij,ij->i", err, err) * counts).sum())


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for 8-bit data; ``inf`` when the result is lossless."""
    return math.inf if mse <= 0 else 10.0 * math.log10(255.0**2 / mse)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 arrays of the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    d = a.astype(np.int64) - b.astype(np.int64)
    return psnr_from_mse(float(np.mean(d * d)) if d.size else 0.0)
