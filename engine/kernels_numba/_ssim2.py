"""SSIMULACRA 2 kernels: linear light, 2x2 downsampling, XYB, the Gaussian, per-row map sums.

The 9-tap Gaussian and the per-row sums of the SSIM and edge-difference maps are those of
:mod:`kmpress.perceptual`.

Images are channel-planar float32 ``(3, H, W)`` in linear light; the scale-0 kernels read the
uint8 ``(H, W, C)`` pixels through the linear-light table instead, so the full-size linear image
is never stored. :func:`ssim2_rows` works in bands of :data:`BAND` rows (in parallel): each band
converts its rows and a halo of :data:`RADIUS` rows on either side to XYB, blurs them and writes
each row's six sums of every channel, so its memory is a few rows and its result does not depend
on the number of threads. Every value is made by the operations of
:mod:`kmpress.kernels_numpy`'s twins in the same order (float32 where they are float32, no FMA),
so both backends agree bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..fixedmath import CBRT_UNIT_G0, CBRT_UNIT_G1, CBRT_UNIT_G2
from ._jit import kernel

#: The pixels: uint8 (H, W, C), read-only accepted.
IMG = "Array(uint8, 3, 'C', readonly=True)"
#: Rows per band of :func:`ssim2_rows` (fixed: a band's rows are summed on their own).
BAND = 64
#: Half-width of the Gaussian (9 taps).
RADIUS = 4

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_F2 = np.float32(2.0)
_QUARTER = np.float32(0.25)
_C2 = np.float32(0.0009)


@kernel(f"void({IMG}, f4[::1], f4[:, :, ::1])", parallel=True)
def ssim2_half_u8(img, lut32, out):
    """Average 2x2 boxes of the linear-light pixels.

    img (H, W, C) uint8, lut32 (256,) float32 ->
    out (3, ceil(H/2), ceil(W/2)) float32, OUT (the last row and column repeated when odd).
    """
    H, W, _ = img.shape
    h, w = out.shape[1], out.shape[2]
    for oy in prange(h):
        y0 = 2 * oy
        y1 = min(y0 + 1, H - 1)
        for c in range(3):
            for ox in range(w):
                x0 = 2 * ox
                x1 = min(x0 + 1, W - 1)
                s = lut32[img[y0, x0, c]] + lut32[img[y0, x1, c]]
                s = s + lut32[img[y1, x0, c]]
                s = s + lut32[img[y1, x1, c]]
                out[c, oy, ox] = s * _QUARTER


@kernel("void(f4[:, :, ::1], f4[:, :, ::1])", parallel=True)
def ssim2_half(lin, out):
    """2x2 box average: lin (3, H, W) float32 -> out (3, ceil(H/2), ceil(W/2)) float32, OUT."""
    H, W = lin.shape[1], lin.shape[2]
    h, w = out.shape[1], out.shape[2]
    for oy in prange(h):
        y0 = 2 * oy
        y1 = min(y0 + 1, H - 1)
        for c in range(3):
            for ox in range(w):
                x0 = 2 * ox
                x1 = min(x0 + 1, W - 1)
                s = lin[c, y0, x0] + lin[c, y0, x1]
                s = s + lin[c, y1, x0]
                s = s + lin[c, y1, x1]
                out[c, oy, ox] = s * _QUARTER


@njit(inline="always")
def _cbrt(x):
    # kmpress.fixedmath.cbrt_unit for one value, the same operations in the same order; the
    # range reduction by selects, not branches, so a row's roots run in SIMD lanes
    m = x
    s = 1.0
    for _ in range(3):
        low = m < 0.125
        m = m * 8.0 if low else m
        s = s * 0.5 if low else s
    y = CBRT_UNIT_G0 + (CBRT_UNIT_G1 + CBRT_UNIT_G2 * m) * m
    for _ in range(3):
        y = y - (y * y * y - m) / (3.0 * (y * y))
    return y * s


@njit
def _xyb_row(r, g, b, opsin, cbias, d0, d1, d2):
    # a row of linear light r, g, b (W,) float32 or float64 -> XYB made positive, d0, d1, d2 (W,)
    # float32 OUT; the arithmetic in float64. One plain loop over contiguous rows (max(v, 0) as a
    # select: the same value for the positive sums here) so that LLVM vectorizes it
    o00, o01, o02, o03 = opsin[0, 0], opsin[0, 1], opsin[0, 2], opsin[0, 3]
    o10, o11, o12, o13 = opsin[1, 0], opsin[1, 1], opsin[1, 2], opsin[1, 3]
    o20, o21, o22, o23 = opsin[2, 0], opsin[2, 1], opsin[2, 2], opsin[2, 3]
    for x in range(d0.shape[0]):
        rx = np.float64(r[x])
        gx = np.float64(g[x])
        bx = np.float64(b[x])
        m0 = ((o00 * rx + o01 * gx) + o02 * bx) + o03
        m1 = ((o10 * rx + o11 * gx) + o12 * bx) + o13
        m2 = ((o20 * rx + o21 * gx) + o22 * bx) + o23
        lc = _cbrt(m0 if m0 > 0.0 else 0.0) - cbias
        mc = _cbrt(m1 if m1 > 0.0 else 0.0) - cbias
        sc = _cbrt(m2 if m2 > 0.0 else 0.0) - cbias
        yv = 0.5 * (lc + mc)
        d0[x] = np.float32((0.5 * (lc - mc)) * 14.0 + 0.42)
        d1[x] = np.float32(yv + 0.01)
        d2[x] = np.float32((sc - yv) + 0.55)


@njit
def _band_xyb_u8(img, lut32, opsin, cbias, y0, n, dst, rgb):
    # rgb: (3, W) float32 scratch, a row's linear light (gathered apart: the table lookups do
    # not vectorize, the conversion does)
    H, W, _ = img.shape
    for i in range(n):
        y = y0 + i
        if y < 0 or y >= H:
            continue
        for x in range(W):
            rgb[0, x] = lut32[img[y, x, 0]]
            rgb[1, x] = lut32[img[y, x, 1]]
            rgb[2, x] = lut32[img[y, x, 2]]
        _xyb_row(rgb[0], rgb[1], rgb[2], opsin, cbias, dst[0, i], dst[1, i], dst[2, i])


@njit
def _band_xyb_f4(lin, opsin, cbias, y0, n, dst):
    H = lin.shape[1]
    for i in range(n):
        y = y0 + i
        if y < 0 or y >= H:
            continue
        _xyb_row(lin[0, y], lin[1, y], lin[2, y], opsin, cbias, dst[0, i], dst[1, i], dst[2, i])


@njit
def _hblur(pad, k, W, t0, t1, t2, t3, t4, out, i):
    # pad[k]: (W + 8,) zero-padded float32 row; out[k, i, :W] OUT
    for x in range(W):
        j = x + 4
        a = t4 * (pad[k, j - 4] + pad[k, j + 4])
        a = a + t3 * (pad[k, j - 3] + pad[k, j + 3])
        a = a + t2 * (pad[k, j - 2] + pad[k, j + 2])
        a = a + t1 * (pad[k, j - 1] + pad[k, j + 1])
        out[k, i, x] = a + t0 * pad[k, j]


@njit
def _vblur(m, k, i, x, t0, t1, t2, t3, t4):
    # m[k]: (rows, W) horizontally blurred band; the vertical blur at band row i (halo rows zero)
    a = t4 * (m[k, i - 4, x] + m[k, i + 4, x])
    a = a + t3 * (m[k, i - 3, x] + m[k, i + 3, x])
    a = a + t2 * (m[k, i - 2, x] + m[k, i + 2, x])
    a = a + t1 * (m[k, i - 1, x] + m[k, i + 1, x])
    return a + t0 * m[k, i, x]


@njit
def _band_sums(x1, x2, y0, n, H, taps, sums):
    # x1, x2: (3, n, W) XYB of band rows y0 - 4 .. y0 + n - 5 (rows outside the image zero);
    # the rows y0 + 4 - 4 .. of the band proper are i = 4 .. n - 5
    W = x1.shape[2]
    t0, t1, t2, t3, t4 = taps[0], taps[1], taps[2], taps[3], taps[4]
    pad = np.zeros((5, W + 8), np.float32)
    hb = np.zeros((5, n, W), np.float32)
    vb = np.empty((5, W), np.float32)
    st0 = np.empty(W, np.float64)
    st1 = np.empty(W, np.float64)
    st2 = np.empty(W, np.float64)
    for c in range(3):
        for i in range(n):
            y = y0 + i
            if y < 0 or y >= H:
                for k in range(5):
                    for x in range(W):
                        hb[k, i, x] = _F0
                continue
            for x in range(W):
                a = x1[c, i, x]
                b = x2[c, i, x]
                pad[0, x + 4] = a
                pad[1, x + 4] = b
                pad[2, x + 4] = a * a
                pad[3, x + 4] = b * b
                pad[4, x + 4] = a * b
            for k in range(5):
                _hblur(pad, k, W, t0, t1, t2, t3, t4, hb, i)
        for i in range(4, n - 4):
            y = y0 + i
            for k in range(5):
                for x in range(W):
                    vb[k, x] = _vblur(hb, k, i, x, t0, t1, t2, t3, t4)
            for x in range(W):
                mu1 = vb[0, x]
                mu2 = vb[1, x]
                dm = mu1 - mu2
                num_m = _F1 - dm * dm
                num_s = _F2 * (vb[4, x] - mu1 * mu2) + _C2
                den_s = (vb[2, x] - mu1 * mu1) + (vb[3, x] - mu2 * mu2) + _C2
                d = 1.0 - np.float64((num_m * num_s) / den_s)
                d = d if d > 0.0 else np.float64(0.0)
                e1 = abs(x1[c, i, x] - mu1)
                e2 = abs(x2[c, i, x] - mu2)
                d1 = (1.0 + np.float64(e2)) / (1.0 + np.float64(e1)) - 1.0
                st0[x] = d
                st1[x] = d1 if d1 > 0.0 else 0.0
                st2[x] = -d1 if -d1 > 0.0 else 0.0
            s0 = s1 = s2 = s3 = s4 = s5 = 0.0
            for x in range(W):
                d = st0[x]
                s0 += d
                d2 = d * d
                s1 += d2 * d2
                d = st1[x]
                s2 += d
                d2 = d * d
                s3 += d2 * d2
                d = st2[x]
                s4 += d
                d2 = d * d
                s5 += d2 * d2
            sums[c, y, 0] = s0
            sums[c, y, 1] = s1
            sums[c, y, 2] = s2
            sums[c, y, 3] = s3
            sums[c, y, 4] = s4
            sums[c, y, 5] = s5


@kernel(f"void({IMG}, {IMG}, f4[::1], f8[:, ::1], f8, f4[::1], f8[:, :, ::1])", parallel=True, error_model="numpy")
def ssim2_rows_u8(img1, img2, lut32, opsin, cbias, taps, sums):
    """Sum the rows of scale 0 straight from the pixels.

    As :func:`ssim2_rows`, with img1, img2 (H, W, C) uint8 read through lut32 (256,) float32.
    """
    H, W, _ = img1.shape
    nb = (H + BAND - 1) // BAND
    for bi in prange(nb):
        y0 = bi * BAND - RADIUS
        n = min(BAND, H - bi * BAND) + 2 * RADIUS
        x1 = np.zeros((3, n, W), np.float32)
        x2 = np.zeros((3, n, W), np.float32)
        rgb = np.empty((3, W), np.float32)
        _band_xyb_u8(img1, lut32, opsin, cbias, y0, n, x1, rgb)
        _band_xyb_u8(img2, lut32, opsin, cbias, y0, n, x2, rgb)
        _band_sums(x1, x2, y0, n, H, taps, sums)


@kernel(
    "void(f4[:, :, ::1], f4[:, :, ::1], f8[:, ::1], f8, f4[::1], f8[:, :, ::1])", parallel=True, error_model="numpy"
)
def ssim2_rows(lin1, lin2, opsin, cbias, taps, sums):
    """Sum the SSIM, artefact and detail-lost maps of each row.

    Per row y and channel c (X, Y, B) of the two images in linear light, lin1 and lin2
    (3, H, W) float32, the row's sums (sums (3, H, 6) float64, OUT) of the SSIM error map and
    its 4th power, of the artefact map and its 4th power, of the detail-lost map and its 4th
    power, each summed from x = 0 up in float64.

    opsin : (3, 4) float64; the opsin absorbance matrix and its bias column
    cbias : float64; the cube root of the bias
    taps : (5,) float32; the Gaussian's taps at distance 0..4
    """
    H, W = lin1.shape[1], lin1.shape[2]
    nb = (H + BAND - 1) // BAND
    for bi in prange(nb):
        y0 = bi * BAND - RADIUS
        n = min(BAND, H - bi * BAND) + 2 * RADIUS
        x1 = np.zeros((3, n, W), np.float32)
        x2 = np.zeros((3, n, W), np.float32)
        _band_xyb_f4(lin1, opsin, cbias, y0, n, x1)
        _band_xyb_f4(lin2, opsin, cbias, y0, n, x2)
        _band_sums(x1, x2, y0, n, H, taps, sums)
