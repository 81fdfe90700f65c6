"""Stage 4: every pixel to its palette index.

The nearest entry is searched once per distinct colour (against the stored uint8 palette, so the
file is exactly what the report describes) and then gathered to every pixel through the
histogram's inverse index: one memory pass over the image instead of H*W*K distances.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .histogram import Histogram


def nearest_entries(points: np.ndarray, palette: np.ndarray, kernels: ModuleType) -> np.ndarray:
    """Index of the nearest palette entry for each planar point.

    Parameters
    ----------
    points : (C, U) float32 planar colours
    palette : (P, C) uint8

    Returns
    -------
    (U,) int32; ties go to the lowest index. Distances between integer colours are exact in
    float32 (at most 4 * 255^2 < 2^24), so both backends agree exactly here.
    """
    labels = np.empty(points.shape[1], np.int32)
    kernels.nearest(points, np.ascontiguousarray(palette, dtype=np.float32), labels, kernels.block_boxes(points))
    return labels


def gather_indices(hist: Histogram, colour_labels: np.ndarray, shape: tuple[int, int], kernels: ModuleType) -> np.ndarray:
    """Palette index of every pixel, (H, W) uint8, from the palette index of every colour."""
    out = np.empty(shape[0] * shape[1], np.uint8)
    kernels.gather(colour_labels.astype(np.uint8), hist.inverse, out)
    return out.reshape(shape)
