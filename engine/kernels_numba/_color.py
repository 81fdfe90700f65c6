"""Stage 2 kernels: sRGB to OKLab for many colours, and the mean OKLab distance of a palette.

Each colour is converted on its own (8-bit values through a linear-light table, then Ottosson's
two matrices with a cube root between them, as :mod:`kmpress.colorspace` documents), so results
do not depend on the number of threads. The cube root is :func:`kmpress.fixedmath.cbrt`, operation
for operation (numba's ``np.cbrt`` calls the C library's, whose last bits depend on the library and
the CPU); without ``fastmath`` numba keeps every rounding, so both backends agree bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..fixedmath import CBRT_G0, CBRT_G1, CBRT_G2, SPLIT
from ._jit import CHUNK, kernel


@njit(inline="always")
def _split(a):
    t = a * SPLIT
    hi = t - (t - a)
    return hi, a - hi


@njit(inline="always")
def _two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@njit(inline="always")
def _cbrt(x):
    # kmpress.fixedmath.cbrt for one value, the same operations in the same order
    a = abs(x)
    if not (a > 0.0 and a < np.inf):
        return x
    m, e = math.frexp(a)
    q = e // 3
    m = math.ldexp(m, e - 3 * q)
    y = CBRT_G0 + (CBRT_G1 + CBRT_G2 * m) * m
    for _ in range(4):
        y = y - (y * y * y - m) / (3.0 * (y * y))
    p, pe = _two_prod(y, y)
    c, ce = _two_prod(p, y)
    r = ((m - c) - ce) - pe * y
    y = y + r / (3.0 * p)
    return math.copysign(math.ldexp(y, q), x)


@njit
def _lab_of(lut, r, g, b, m1, m2, out3):
    lr = lut[r]
    lg = lut[g]
    lb = lut[b]
    l_ = _cbrt(m1[0, 0] * lr + m1[0, 1] * lg + m1[0, 2] * lb)
    m_ = _cbrt(m1[1, 0] * lr + m1[1, 1] * lg + m1[1, 2] * lb)
    s_ = _cbrt(m1[2, 0] * lr + m1[2, 1] * lg + m1[2, 2] * lb)
    for j in range(3):
        out3[j] = m2[j, 0] * l_ + m2[j, 1] * m_ + m2[j, 2] * s_


@kernel("void(u1[:, ::1], f8[::1], f8[:, ::1], f8[:, ::1], f8, f4[:, ::1])", parallel=True)
def colors_to_lab(colors, lut, m1, m2, scale, out):
    """Colors (U, C) uint8 -> out (C, U) float32, OUT: OKLab x ``scale``, alpha copied."""
    U, C = colors.shape
    for c in prange((U + CHUNK - 1) // CHUNK):
        lab = np.empty(3, np.float64)
        for i in range(c * CHUNK, min(U, (c + 1) * CHUNK)):
            _lab_of(lut, colors[i, 0], colors[i, 1], colors[i, 2], m1, m2, lab)
            for j in range(3):
                out[j, i] = np.float32(lab[j] * scale)
            if C == 4:
                out[3, i] = np.float32(colors[i, 3])


@kernel("void(u1[:, ::1], i8[::1], u1[:, ::1], i4[::1], f8[::1], f8[:, ::1], f8[:, ::1], f8[::1])", parallel=True)
def delta_e_colors(colors, counts, palette, labels, lut, m1, m2, part):
    """Sum ``counts x`` OKLab distance per chunk of :data:`CHUNK` colours (part OUT).

    The distance is between each colour and its palette entry ``palette[labels]`` (plain units,
    alpha ignored).
    """
    U = colors.shape[0]
    nc = (U + CHUNK - 1) // CHUNK
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
        for i in range(c * CHUNK, min(U, (c + 1) * CHUNK)):
            _lab_of(lut, colors[i, 0], colors[i, 1], colors[i, 2], m1, m2, t)
            k = labels[i]
            d = 0.0
            for j in range(3):
                e = t[j] - plab[k, j]
                d += e * e
            s += counts[i] * np.sqrt(d)
        part[c] = s


@kernel("void(u1[:, ::1], f8[::1], f8[:, ::1], f8[:, ::1], f8[:, ::1])", parallel=True)
def colors_to_lab64(colors, lut, m1, m2, out):
    """Colors (U, C) uint8 -> out (U, 3) float64, OUT: plain OKLab, alpha ignored."""
    U = colors.shape[0]
    for c in prange((U + CHUNK - 1) // CHUNK):
        t = np.empty(3, np.float64)
        for i in range(c * CHUNK, min(U, (c + 1) * CHUNK)):
            _lab_of(lut, colors[i, 0], colors[i, 1], colors[i, 2], m1, m2, t)
            for j in range(3):
                out[i, j] = t[j]
