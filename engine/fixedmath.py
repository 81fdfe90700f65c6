"""Elementary functions whose results do not depend on the CPU: cube root, cube, x^(5/12), logs, 2^x.

NumPy picks the code of ``np.cbrt``, ``np.power``, ``np.exp`` and ``np.log`` at run time by the
CPU's SIMD level (on AVX-512 its own vector routines, which differ from the C library's in the
last bit for some inputs), BLAS products (``@``, ``np.dot``) use FMA and their own summation
orders on the CPUs that have them, and the C library itself picks FMA variants of ``log`` and
``pow``. Any of these in the colour conversion or in a reported figure would make the same image
give different figures, or even different OKLab palettes, on different machines.

So the engine computes them here with IEEE-754 operations only, each correctly rounded by
definition (``+ - * /``, ``sqrt``, and the exact ``frexp`` / ``ldexp``), in a fixed order: the
same bits on every CPU. The numba kernels repeat the same operations in the same order (numba
does not contract ``a * b + c`` into an FMA without ``fastmath``), so both backends agree bit
for bit; ``tests/test_fixedmath.py`` checks them against exact rational arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

#: Dekker's splitting constant 2^27 + 1: ``a * SPLIT`` cuts a double into two 26-bit halves.
SPLIT = 134217729.0

# Initial guess of the cube root of m in [0.5, 4): a least-squares quadratic (relative error
# under 4 %, which Newton's steps square: 1e-3, 2e-6, 3e-12, then an ulp or so).
CBRT_G0, CBRT_G1, CBRT_G2 = 0.6363, 0.3933, -0.0404


def _two_prod(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a * b as p + e exactly (Dekker; no FMA needed, no overflow for the values used here)."""
    p = a * b
    t = a * SPLIT
    ah = t - (t - a)
    al = a - ah
    t = b * SPLIT
    bh = t - (t - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def cbrt(x: np.ndarray) -> np.ndarray:
    """Cube root, correctly rounded (up to cases closer than ~1e-28 relative to a tie, which
    are still decided the same way on every CPU); float64 in, float64 out, any shape.

    ``x = m 2^(3q)`` with ``m`` in [0.5, 4) (exact, by ``frexp``); four Newton steps from a
    quadratic guess give the root of ``m`` to an ulp or so; then one correction
    ``y + (m - y^3) / (3 y^2)`` with the residual computed exactly in double-double rounds to
    the nearest double. 0, inf and nan are returned as they are, the sign is kept.
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.abs(x)
    special = ~np.isfinite(a) | (a == 0.0)
    a = np.where(special, 1.0, a)
    m, e = np.frexp(a)
    q = np.floor_divide(e, 3)
    m = np.ldexp(m, e - 3 * q)
    y = CBRT_G0 + (CBRT_G1 + CBRT_G2 * m) * m
    for _ in range(4):
        y = y - (y * y * y - m) / (3.0 * (y * y))
    p, pe = _two_prod(y, y)
    c, ce = _two_prod(p, y)
    r = ((m - c) - ce) - pe * y
    y = y + r / (3.0 * p)
    return np.where(special, x, np.copysign(np.ldexp(y, q), x))


def cube(x: np.ndarray) -> np.ndarray:
    """x^3 rounded once (the exact product in double-double, then one rounding), float64."""
    x = np.asarray(x, dtype=np.float64)
    p, pe = _two_prod(x, x)
    c, ce = _two_prod(p, x)
    return c + (ce + pe * x)


def pow_5_12(x: np.ndarray) -> np.ndarray:
    """x^(5/12) (the sRGB encoding's x^(1/2.4)) for x >= 0, as ``cbrt(x sqrt(sqrt(x)))``: within
    about an ulp, float64."""
    x = np.asarray(x, dtype=np.float64)
    return cbrt(x * np.sqrt(np.sqrt(x)))


# log10(2) in two parts, the first with 32 bits (k * _LOG10_2_HI is exact for any exponent k)
_LOG10_2_HI = 0.3010299955494702
_LOG10_2_LO = 1.1451100898021838e-10
_INV_LN10 = 0.4342944819032518
_INV_LN2 = 1.4426950408889634
_LN2 = 0.6931471805599453


def _log_parts(x: float) -> tuple[int, float]:
    """(k, ln m) with ``x = m 2^k``, ``m`` in [sqrt(1/2), sqrt(2)); ``ln m = 2 atanh(s)``,
    ``s = (m-1)/(m+1)``, by its series (|s| < 0.172: 14 terms reach 1e-22)."""
    m, k = math.frexp(float(x))
    if m < 0.7071067811865476:
        m, k = m * 2.0, k - 1
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    acc = 1.0 / 29.0
    for n in range(27, 0, -2):
        acc = 1.0 / n + z * acc
    return k, 2.0 * s * acc


def log10(x: float) -> float:
    """log10 of a positive finite float, within an ulp or so, the same on every machine:
    ``k log10(2) + ln(m) / ln(10)`` (see :func:`_log_parts`), the exact ``k log10(2)_hi`` last."""
    k, ln_m = _log_parts(x)
    return k * _LOG10_2_HI + (k * _LOG10_2_LO + ln_m * _INV_LN10)


def log2(x: float) -> float:
    """log2 of a positive finite float, within an ulp or so, the same on every machine."""
    k, ln_m = _log_parts(x)
    return k + ln_m * _INV_LN2


def exp2(x: float) -> float:
    """2^x for a finite float (|x| < 1000), within a few ulps, the same on every machine:
    ``2^n e^(f ln 2)`` with ``n = floor(x)``, the exponential by its Taylor series (21 terms)."""
    n = math.floor(x)
    t = (x - n) * _LN2
    acc = 1.0
    for i in range(21, 0, -1):
        acc = 1.0 + t * acc / i
    return math.ldexp(acc, n)
