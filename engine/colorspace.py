"""Colour spaces for clustering: sRGB as stored, or OKLab (Björn Ottosson, 2020).

OKLab is computed from *linearised* sRGB (the piecewise IEC 61966-2-1 transfer function), then
Ottosson's two matrices with a cube root between them (https://bottosson.github.io/posts/oklab/).
Euclidean distance in OKLab follows perceived colour difference far better than distance in sRGB,
so k-means there spends its palette where the eye sees differences.

Scale: inside the engine OKLab coordinates are multiplied by :data:`LAB_SCALE` (255), so that
L runs over 0..255 like an sRGB channel. The kernels' float32 distances, the pruning slack of the
nearest-centroid search and the relative Lloyd tolerance then behave as they do for RGB. An alpha
channel is carried unchanged (0..255). :func:`delta_e` and the ``delta_e`` figures reported by
:func:`kmpress.quantize` are in plain OKLab units (L from 0 to 1; a just-noticeable difference is
about 0.02).

The conversion of the histogram colours (up to a few million) is a parallel numba kernel; each
colour is converted on its own, so the result does not depend on the number of threads.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numba import njit, prange

ColorSpace = Literal["rgb", "oklab"]
COLORSPACES = ("rgb", "oklab")

#: OKLab coordinates are stored multiplied by this inside the engine (see the module docstring).
LAB_SCALE = 255.0

# Ottosson's matrices: linear sRGB -> LMS ("M1" folded with sRGB->XYZ), and LMS^(1/3) -> Lab.
M1 = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ]
)
M2 = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]
)
M2_INV = np.array(
    [
        [1.0, 0.3963377774, 0.2158037573],
        [1.0, -0.1055613458, -0.0638541728],
        [1.0, -0.0894841775, -1.2914855480],
    ]
)
M1_INV = np.array(
    [
        [4.0767416621, -3.3077115913, 0.2309699292],
        [-1.2684380046, 2.6097574011, -0.3413193965],
        [-0.0041960863, -0.7034186147, 1.7076147010],
    ]
)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB transfer function, decoded: values in [0, 1] -> linear light in [0, 1] (float64)."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Inverse of :func:`srgb_to_linear` (negative inputs are clipped to 0 first)."""
    c = np.maximum(np.asarray(c, dtype=np.float64), 0.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1.0 / 2.4) - 0.055)


#: Linear light of each 8-bit sRGB code value: the kernel looks values up instead of calling pow.
LINEAR_LUT = srgb_to_linear(np.arange(256) / 255.0)


def srgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    """sRGB to OKLab in float64 (plain units), the straightforward way; for palettes and tests.

    Parameters
    ----------
    rgb : (..., 3) array of sRGB values in [0, 255] (any real dtype; not necessarily integers)

    Returns
    -------
    (..., 3) float64 (L, a, b), L in [0, 1]
    """
    lin = srgb_to_linear(np.asarray(rgb, dtype=np.float64) / 255.0)
    lms = lin @ M1.T
    return np.cbrt(lms) @ M2.T


def oklab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """OKLab (plain units) to sRGB in [0, 255], float64, clipped to the sRGB gamut.

    Parameters
    ----------
    lab : (..., 3) array

    Returns
    -------
    (..., 3) float64 in [0, 255]; round it to store it as uint8
    """
    lms_ = np.asarray(lab, dtype=np.float64) @ M2_INV.T
    lin = (lms_**3) @ M1_INV.T
    return np.clip(linear_to_srgb(np.clip(lin, 0.0, 1.0)) * 255.0, 0.0, 255.0)


@njit(inline="always")
def _lab_of(lut, r, g, b, m1, m2, out3):
    lr = lut[r]
    lg = lut[g]
    lb = lut[b]
    l_ = np.cbrt(m1[0, 0] * lr + m1[0, 1] * lg + m1[0, 2] * lb)
    m_ = np.cbrt(m1[1, 0] * lr + m1[1, 1] * lg + m1[1, 2] * lb)
    s_ = np.cbrt(m1[2, 0] * lr + m1[2, 1] * lg + m1[2, 2] * lb)
    for j in range(3):
        out3[j] = m2[j, 0] * l_ + m2[j, 1] * m_ + m2[j, 2] * s_


@njit(parallel=True, cache=True)
def _colors_to_lab_planar(colors, lut, m1, m2, scale, out):
    # colors (U, C) uint8 -> out (C, U) float32: scaled OKLab, alpha copied
    U, C = colors.shape
    chunk = 8192
    for c in prange((U + chunk - 1) // chunk):
        lab = np.empty(3, np.float64)
        for i in range(c * chunk, min(U, (c + 1) * chunk)):
            _lab_of(lut, colors[i, 0], colors[i, 1], colors[i, 2], m1, m2, lab)
            for j in range(3):
                out[j, i] = np.float32(lab[j] * scale)
            if C == 4:
                out[3, i] = np.float32(colors[i, 3])


def colors_to_space(colors: np.ndarray, space: str) -> np.ndarray:
    """Distinct colours as planar points of a clustering space.

    Parameters
    ----------
    colors : (U, C) uint8, C = 3 or 4, C-contiguous
    space : "rgb" or "oklab"

    Returns
    -------
    (C, U) float32, C-contiguous: the sRGB values themselves, or OKLab x :data:`LAB_SCALE`
    (alpha, if any, unchanged).
    """
    colors = np.ascontiguousarray(colors, dtype=np.uint8)
    if space == "rgb":
        return np.ascontiguousarray(colors.T, dtype=np.float32)
    out = np.empty((colors.shape[1], colors.shape[0]), np.float32)
    _colors_to_lab_planar(colors, LINEAR_LUT, M1, M2, LAB_SCALE, out)
    return out


def palette_to_space(palette: np.ndarray, space: str) -> np.ndarray:
    """uint8 palette entries as (K, C) float32 points of the clustering space (see
    :func:`colors_to_space`), for the nearest-entry search."""
    return np.ascontiguousarray(colors_to_space(palette, space).T)


def centroids_to_srgb(centroids: np.ndarray, space: str) -> np.ndarray:
    """Centroids of the clustering space back to sRGB(A) values in [0, 255] (float64, unrounded).

    Parameters
    ----------
    centroids : (K, C) float64 in the space's scale
    """
    c = np.asarray(centroids, dtype=np.float64)
    if space == "rgb":
        return c.copy()
    out = np.empty_like(c)
    out[:, :3] = oklab_to_srgb(c[:, :3] / LAB_SCALE)
    if c.shape[1] == 4:
        out[:, 3] = c[:, 3]
    return out


@njit(parallel=True, cache=True)
def _delta_e_colours(colors, counts, palette, labels, lut, m1, m2, part):
    U = colors.shape[0]
    chunk = 8192
    nc = (U + chunk - 1) // chunk
    K = palette.shape[0]
    # OKLab of the few palette entries once (each thread its own copy: cheap, no sharing)
    for c in prange(nc):
        plab = np.empty((K, 3), np.float64)
        t = np.empty(3, np.float64)
        for k in range(K):
            _lab_of(lut, palette[k, 0], palette[k, 1], palette[k, 2], m1, m2, t)
            for j in range(3):
                plab[k, j] = t[j]
        s = 0.0
        for i in range(c * chunk, min(U, (c + 1) * chunk)):
            _lab_of(lut, colors[i, 0], colors[i, 1], colors[i, 2], m1, m2, t)
            k = labels[i]
            d = 0.0
            for j in range(3):
                e = t[j] - plab[k, j]
                d += e * e
            s += counts[i] * np.sqrt(d)
        part[c] = s


def delta_e_histogram(colors: np.ndarray, counts: np.ndarray, palette: np.ndarray, labels: np.ndarray) -> float:
    """Mean OKLab distance (plain units) between input and output colours, weighted by pixels.

    Parameters
    ----------
    colors : (U, C) uint8 distinct input colours
    counts : (U,) int64 pixels of each
    palette : (P, C) uint8
    labels : (U,) int palette entry each colour is shown as

    Returns
    -------
    float; alpha is ignored (the distance is between the colours themselves). Summed per chunk
    and merged in order, so the value does not depend on the number of threads.
    """
    U = colors.shape[0]
    part = np.empty((U + 8191) // 8192, np.float64)
    _delta_e_colours(
        np.ascontiguousarray(colors),
        counts.astype(np.int64, copy=False),
        np.ascontiguousarray(palette, dtype=np.uint8),
        labels.astype(np.int32, copy=False),
        LINEAR_LUT,
        M1,
        M2,
        part,
    )
    return float(part.sum() / counts.sum())


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean OKLab distance (plain units) between two uint8 (H, W, 3|4) images of the same shape
    (alpha ignored); a plain NumPy float64 reference, for tests and benchmarks."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    la = srgb_to_oklab(a[..., :3].reshape(-1, 3))
    lb = srgb_to_oklab(b[..., :3].reshape(-1, 3))
    return float(np.sqrt(((la - lb) ** 2).sum(axis=1)).mean())


@njit(parallel=True, cache=True)
def _colors_to_lab64(colors, lut, m1, m2, out):
    U = colors.shape[0]
    chunk = 8192
    for c in prange((U + chunk - 1) // chunk):
        t = np.empty(3, np.float64)
        for i in range(c * chunk, min(U, (c + 1) * chunk)):
            _lab_of(lut, colors[i, 0], colors[i, 1], colors[i, 2], m1, m2, t)
            for j in range(3):
                out[i, j] = t[j]


def oklab_of_colors(colors: np.ndarray) -> np.ndarray:
    """OKLab (plain units, float64) of uint8 colours, (U, C) -> (U, 3); alpha ignored.

    The numba twin of :func:`srgb_to_oklab` for many colours (same formulas, same LUT)."""
    colors = np.ascontiguousarray(colors, dtype=np.uint8)
    out = np.empty((colors.shape[0], 3), np.float64)
    _colors_to_lab64(colors, LINEAR_LUT, M1, M2, out)
    return out
