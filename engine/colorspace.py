"""Colour spaces for clustering: sRGB as stored, or OKLab (Björn Ottosson, 2020).

OKLab is computed from *linearised* sRGB (the piecewise IEC 61966-2-1 transfer function), then
Ottosson's two matrices with a cube root between them (https://bottosson.github.io/posts/oklab/).
Euclidean distance in OKLab follows perceived colour difference far better than distance in sRGB,
so k-means there spends its palette where the eye sees differences.

Scale: inside the engine OKLab coordinates are multiplied by :data:`LAB_SCALE` (255), so that
L runs over 0..255 like an sRGB channel. The kernels' float32 distances, the pruning slack of the
nearest-centroid search and the relative Lloyd tolerance then behave as they do for RGB. An alpha
channel is carried unchanged (0..255). :func:`kmpress.metrics.delta_e` and the ``delta_e`` figures reported by
:func:`kmpress.quantize` are in plain OKLab units (L from 0 to 1; a just-noticeable difference is
about 0.02).

The conversion of the histogram colours (up to a few million) is a backend kernel
(``colors_to_lab``: parallel in numba); each colour is converted on its own, so the result does
not depend on the number of threads. The float64 functions here are the plain NumPy formulas, for
palettes, centroids and tests.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

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


def colors_to_space(colors: np.ndarray, space: str, kernels: ModuleType) -> np.ndarray:
    """Distinct colours as planar points of a clustering space.

    Parameters
    ----------
    colors : (U, C) uint8, C = 3 or 4, C-contiguous
    space : "rgb" or "oklab"
    kernels : the backend module

    Returns
    -------
    (C, U) float32, C-contiguous: the sRGB values themselves, or OKLab x :data:`LAB_SCALE`
    (alpha, if any, unchanged).
    """
    colors = np.ascontiguousarray(colors, dtype=np.uint8)
    if space == "rgb":
        return np.ascontiguousarray(colors.T, dtype=np.float32)
    out = np.empty((colors.shape[1], colors.shape[0]), np.float32)
    kernels.colors_to_lab(colors, LINEAR_LUT, M1, M2, LAB_SCALE, out)
    return out


def palette_to_space(palette: np.ndarray, space: str, kernels: ModuleType) -> np.ndarray:
    """uint8 palette entries as (K, C) float32 points of the clustering space (see
    :func:`colors_to_space`), for the nearest-entry search."""
    return np.ascontiguousarray(colors_to_space(palette, space, kernels).T)


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


def oklab_of_colors(colors: np.ndarray, kernels: ModuleType) -> np.ndarray:
    """OKLab (plain units, float64) of uint8 colours, (U, C) -> (U, 3); alpha ignored.

    The backend twin of :func:`srgb_to_oklab` for many colours (same formulas, same LUT)."""
    colors = np.ascontiguousarray(colors, dtype=np.uint8)
    out = np.empty((colors.shape[0], 3), np.float64)
    kernels.colors_to_lab64(colors, LINEAR_LUT, M1, M2, out)
    return out
