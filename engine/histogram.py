"""Stage 1: reduce an image to its distinct colours and their counts.

Identical pixels always land in the same cluster, so k-means on the distinct colours weighted by
their counts has exactly the iterates of k-means on every pixel, at a fraction of the work
(a 24 MP photo has about 0.5-2 M distinct colours).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np


def spread_table(stride: int) -> np.ndarray:
    """(256,) uint32: bit b of a byte moved to bit ``stride * b``.

    OR-ing a colour's C spread channels (channel 0 shifted most) gives its Morton (Z-order) code,
    the histogram key of both backends.
    """
    v = np.arange(256, dtype=np.uint32)
    out = np.zeros(256, np.uint32)
    for b in range(8):
        out |= ((v >> b) & 1) << (stride * b)
    return out


@dataclass(frozen=True)
class Histogram:
    """The distinct colours of an image.

    Attributes
    ----------
    colors : (U, C) uint8
        Distinct colours in Z-order (Morton order of their channels, R most significant):
        neighbours in this order are neighbours in colour space, so blocks of consecutive colours
        have small bounding boxes, which the seeding kernels use to skip work.
    counts : (U,) int64
        How many pixels have each colour; sums to H*W.
    codes : (U,) uint32
        The colours' Morton codes, sorted: the keys of a table of every code (see
        :func:`kmpress.remap.gather_indices`).
    inverse : (H*W,) int32 or None
        Index into ``colors`` of every pixel, in raster order; None when the backend spared it
        (large RGB images: 4 bytes per pixel), see :meth:`pixel_colors`.
    """

    colors: np.ndarray
    counts: np.ndarray
    codes: np.ndarray
    inverse: np.ndarray | None

    @property
    def n_colors(self) -> int:
        return int(self.counts.shape[0])

    def pixel_colors(self, image: np.ndarray, kernels: ModuleType) -> np.ndarray:
        """(H*W,) int32 index into ``colors`` of every pixel of ``image`` (the image it was built
        from): the stored inverse, or one made now (for the remaps that need it per pixel)."""
        if self.inverse is not None:
            return self.inverse
        return kernels.color_index(image.reshape(-1, image.shape[2]), self.codes)


def build_histogram(image: np.ndarray, kernels: ModuleType) -> Histogram:
    """Histogram of an image.

    Parameters
    ----------
    image : (H, W, C) uint8, C-contiguous (read-only is fine), C = 3 or 4
    kernels : the backend module (:mod:`kmpress.kernels_numba` or :mod:`kmpress.kernels_numpy`)
    """
    channels = image.shape[2]
    codes, counts, inverse = kernels.histogram(image.reshape(-1, channels))
    return Histogram(kernels.unpack_codes(codes, channels), counts, codes, inverse)
