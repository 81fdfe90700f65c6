"""SSIMULACRA 2's kernels with NumPy, whole planes at once.

The twins of :mod:`kmpress.kernels_numba._ssim2`: the same float32 and float64 operations in the
same order, so both backends give the same bits.
"""

from __future__ import annotations

import numpy as np

from ..fixedmath import cbrt_unit

_F1 = np.float32(1.0)
_F2 = np.float32(2.0)
_QUARTER = np.float32(0.25)
_C2 = np.float32(0.0009)


def _half(planes):
    # planes (3, H, W) float32 -> the 2x2 box average, the last row and column repeated when odd
    H, W = planes.shape[1], planes.shape[2]
    y0, x0 = np.arange(0, H, 2), np.arange(0, W, 2)
    y1, x1 = np.minimum(y0 + 1, H - 1), np.minimum(x0 + 1, W - 1)
    s = planes[:, y0][:, :, x0] + planes[:, y0][:, :, x1]
    s = s + planes[:, y1][:, :, x0]
    s = s + planes[:, y1][:, :, x1]
    return s * _QUARTER


def _planes_u8(img, lut32):
    return np.ascontiguousarray(lut32[np.moveaxis(img[:, :, :3], 2, 0)])


def ssim2_half_u8(img, lut32, out):
    """See :func:`kmpress.kernels_numba.ssim2_half_u8`."""
    out[...] = _half(_planes_u8(img, lut32))


def ssim2_half(lin, out):
    """See :func:`kmpress.kernels_numba.ssim2_half`."""
    out[...] = _half(lin)


def _xyb(lin, opsin, cbias):
    r, g, b = (lin[c].astype(np.float64) for c in range(3))
    m = [((opsin[j, 0] * r + opsin[j, 1] * g) + opsin[j, 2] * b) + opsin[j, 3] for j in range(3)]
    lc, mc, sc = (cbrt_unit(np.maximum(v, 0.0)) - cbias for v in m)
    yv = 0.5 * (lc + mc)
    return np.stack([(0.5 * (lc - mc)) * 14.0 + 0.42, yv + 0.01, (sc - yv) + 0.55]).astype(np.float32)


def _blur(a, taps, axis):
    # the 9-tap Gaussian along an axis of a (H, W) float32 plane, zero outside
    n = a.shape[axis]
    p = np.pad(a, [(4, 4) if ax == axis else (0, 0) for ax in range(2)])

    def at(k):
        return p[4 + k : 4 + k + n] if axis == 0 else p[:, 4 + k : 4 + k + n]

    acc = taps[4] * (at(-4) + at(4))
    for k in (3, 2, 1):
        acc = acc + taps[k] * (at(-k) + at(k))
    return acc + taps[0] * at(0)


def _rowsum(v):
    # each row summed from x = 0 up (np.add.accumulate adds in order; sum would pair them)
    return np.add.accumulate(v, axis=1)[:, -1]


def ssim2_rows(lin1, lin2, opsin, cbias, taps, sums):
    """See :func:`kmpress.kernels_numba.ssim2_rows`."""
    x1, x2 = _xyb(lin1, opsin, cbias), _xyb(lin2, opsin, cbias)
    for c in range(3):
        a, b = x1[c], x2[c]
        mu1, mu2, s11, s22, s12 = (_blur(_blur(m, taps, 1), taps, 0) for m in (a, b, a * a, b * b, a * b))
        dm = mu1 - mu2
        num_m = _F1 - dm * dm
        num_s = _F2 * (s12 - mu1 * mu2) + _C2
        den_s = (s11 - mu1 * mu1) + (s22 - mu2 * mu2) + _C2
        d = np.maximum(1.0 - ((num_m * num_s) / den_s).astype(np.float64), 0.0)
        d1 = (1.0 + np.abs(b - mu2).astype(np.float64)) / (1.0 + np.abs(a - mu1).astype(np.float64)) - 1.0
        art, det = np.maximum(d1, 0.0), np.maximum(-d1, 0.0)
        for k, v in enumerate((d, art, det)):
            sums[c, :, 2 * k] = _rowsum(v)
            v2 = v * v
            sums[c, :, 2 * k + 1] = _rowsum(v2 * v2)


def ssim2_rows_u8(img1, img2, lut32, opsin, cbias, taps, sums):
    """See :func:`kmpress.kernels_numba.ssim2_rows_u8`."""
    ssim2_rows(_planes_u8(img1, lut32), _planes_u8(img2, lut32), opsin, cbias, taps, sums)
