"""Contrast kernels: the noise and edge maps of an image, and the palette weights they give.

The maps steer the adaptive default (see :mod:`kmpress.contrast`): libimagequant's contrast
maps, in integers from end to end (uint8 values, integer filters, tables made once in NumPy), so
they are exact whatever the order and run in parallel by rows.

Every square filter is separable, and a square window applied twice is the window twice as wide
(the border replicated either way): each is a window along the row, in a padded copy of the row,
then a window down the columns, row by row. The inner loops are then plain element-wise
minima, maxima and sums over contiguous rows, which LLVM vectorizes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._jit import kernel

#: The image, read only (a decoded image may be a read-only view).
IMG = "Array(uint8, 3, 'C', readonly=True)"
#: Rows each parallel step of the filters takes: its row buffers are made once per block.
ROWS = 32
#: Most pixels a row window reaches on either side (a 7-wide window).
REACH = 3


@njit
def _second_differences(up, row, dn, xa, x, xb, w0, w1, w2):
    # the largest weighted |a + c - 2 b| over the RGB channels along the row (a b c = row[xa],
    # row[x], row[xb]) and down the column (up[x], row[x], dn[x]); int32: at most 4 x 255 x 20
    b0, b1, b2 = np.int32(row[x, 0]), np.int32(row[x, 1]), np.int32(row[x, 2])
    h0 = abs(np.int32(row[xa, 0]) + np.int32(row[xb, 0]) - 2 * b0) * w0
    h1 = abs(np.int32(row[xa, 1]) + np.int32(row[xb, 1]) - 2 * b1) * w1
    h2 = abs(np.int32(row[xa, 2]) + np.int32(row[xb, 2]) - 2 * b2) * w2
    v0 = abs(np.int32(up[x, 0]) + np.int32(dn[x, 0]) - 2 * b0) * w0
    v1 = abs(np.int32(up[x, 1]) + np.int32(dn[x, 1]) - 2 * b1) * w1
    v2 = abs(np.int32(up[x, 2]) + np.int32(dn[x, 2]) - 2 * b2) * w2
    return max(max(h0, h1), h2), max(max(v0, v1), v2)


@njit
def _pad(row, pad, r):
    # pad[r : r + w] = row, its end values repeated r times on either side
    w = row.shape[0]
    for x in range(w):
        pad[r + x] = row[x]
    for j in range(r):
        pad[j] = row[0]
        pad[r + w + j] = row[w - 1]


@njit
def _row_window(pad, out, n, op):
    # out[x] = the minimum (op 0), maximum (1) or sum (2) of pad[x : x + n]
    w = out.shape[0]
    for x in range(w):
        out[x] = pad[x]
    for j in range(1, n):
        if op == 0:
            for x in range(w):
                out[x] = min(out[x], pad[x + j])
        elif op == 1:
            for x in range(w):
                out[x] = max(out[x], pad[x + j])
        else:
            for x in range(w):
                out[x] += pad[x + j]


@njit
def _column_window(src, y, r, out, op):
    # out[x] = the minimum (op 0), maximum (1) or sum (2) of src[y - r .. y + r, x], the rows
    # clamped to the image
    h = src.shape[0]
    w = out.shape[0]
    first = src[max(y - r, 0)]
    for x in range(w):
        out[x] = first[x]
    for j in range(1 - r, r + 1):
        row = src[min(max(y + j, 0), h - 1)]
        if op == 0:
            for x in range(w):
                out[x] = min(out[x], row[x])
        elif op == 1:
            for x in range(w):
                out[x] = max(out[x], row[x])
        else:
            for x in range(w):
                out[x] += row[x]


@njit
def _windows(src, dst, b, col_r, col_op, row_r, row_op, line, pad):
    # the rows of block b: dst[y] = the row window (half-width row_r, op row_op) of the column
    # window (half-width col_r, op col_op; none for 0) of src around row y
    for y in range(b * ROWS, min(src.shape[0], (b + 1) * ROWS)):
        if col_r > 0:
            _column_window(src, y, col_r, line, col_op)
            _pad(line, pad, row_r)
        else:
            _pad(src[y], pad, row_r)
        _row_window(pad, dst[y], 2 * row_r + 1, row_op)


@kernel(f"void({IMG}, i8[::1], u1[::1], u1[::1], u1[:, ::1], u1[:, ::1], u1[:, ::1], u2[:, ::1])", parallel=True)
def contrast_maps(img, wts, noise_lut, edge_lut, noise, edges, tmp, sums):
    """Make the noise and edge maps of an image (libimagequant's contrast maps, in integers).

    Parameters
    ----------
    img : (H, W, C) uint8, IN; channels 0-2 are used
    wts : (3,) int64, IN; integer channel weights of the second differences
    noise_lut : (2 * E + 1,) uint8, IN; noise of each combined contrast (see kmpress.contrast)
    edge_lut : (E + 1,) uint8, IN; edge value of each largest contrast
    noise, edges : (H, W) uint8, OUT
    tmp : (H, W) uint8, scratch; sums : (H, W) uint16, scratch
    """
    h, w = noise.shape
    w0, w1, w2 = np.int32(wts[0]), np.int32(wts[1]), np.int32(wts[2])
    for y in prange(h):
        up, row, dn = img[max(y - 1, 0)], img[y], img[min(y + 1, h - 1)]
        for x in range(w):
            hz, vt = _second_differences(up, row, dn, max(x - 1, 0), x, min(x + 1, w - 1), w0, w1, w2)
            edge = max(hz, vt)
            noise[y, x] = noise_lut[max(2 * edge - abs(hz - vt), 2 * min(hz, vt))]
            edges[y, x] = edge_lut[edge]
    blocks = (h + ROWS - 1) // ROWS
    # edges, opened: a 3x3 minimum, then a 3x3 maximum
    for b in prange(blocks):
        _windows(edges, tmp, b, 0, 0, 1, 0, np.empty(w, np.uint8), np.empty(w + 2 * REACH, np.uint8))
    for b in prange(blocks):
        _windows(tmp, edges, b, 1, 0, 1, 1, np.empty(w, np.uint8), np.empty(w + 2 * REACH, np.uint8))
    for y in prange(h):
        _column_window(edges, y, 1, tmp[y], 1)  # tmp holds the opened edges from here on
    # noise: a 5x5 maximum (3x3 twice), a 7x7 mean (rounded), a 3x3 maximum, a 7x7 minimum (3x3
    # three times); edges is scratch meanwhile
    for b in prange(blocks):
        _windows(noise, edges, b, 0, 0, 2, 1, np.empty(w, np.uint8), np.empty(w + 2 * REACH, np.uint8))
    for b in prange(blocks):
        # row sums at most 7 x 255
        _windows(edges, sums, b, 2, 1, 3, 2, np.empty(w, np.uint8), np.empty(w + 2 * REACH, np.uint16))
    for b in prange(blocks):
        pad = np.empty(w + 2 * REACH, np.uint8)
        total = np.empty(w, np.uint16)  # at most 49 x 255
        line = np.empty(w, np.uint8)
        for y in range(b * ROWS, min(h, (b + 1) * ROWS)):
            _column_window(sums, y, 3, total, 2)
            for x in range(w):
                line[x] = (total[x] + 24) // 49
            _pad(line, pad, 1)
            _row_window(pad, noise[y], 3, 1)
    for b in prange(blocks):
        _windows(noise, edges, b, 1, 1, 3, 0, np.empty(w, np.uint8), np.empty(w + 2 * REACH, np.uint8))
    for y in prange(h):
        _column_window(edges, y, 3, noise[y], 0)
        n, t = noise[y], tmp[y]
        for x in range(w):
            t[x] = min(t[x], n[x])  # the edges, capped by the noise
    for y in prange(h):
        e, t = edges[y], tmp[y]
        for x in range(w):
            e[x] = t[x]


@kernel("void(i4[::1], u1[::1], f8[::1])")
def color_weights(inverse, noise, out):
    """``out[u] += noise[p]`` for every pixel p of colour ``u = inverse[p]`` (integers: exact).

    inverse : (N,) int32, IN; noise : (N,) uint8, IN; out : (U,) float64, IN/OUT (zeroed)
    """
    for p in range(inverse.shape[0]):
        out[inverse[p]] += np.float64(noise[p])
