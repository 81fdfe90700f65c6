"""Stage 1 kernels: the colour histogram (distinct colours, counts, each pixel's colour index).

Colours are keyed by their Morton (Z-order) code. Large RGB images are counted in a dense 2^24
table (parallel without atomics: each thread owns a range of keys); small images and RGBA by an
LSD radix sort.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from ..histogram import spread_table
from ._jit import CHUNK, kernel, twins

#: The pixels, read only (a decoded image may be a read-only view; writable arrays match too).
PX = "Array(uint8, 2, 'C', readonly=True)"

#: Below this many pixels a dense 2^24 histogram costs more (zeroing and faulting 64 MB) than a sort.
DENSE_MIN_PIXELS = 1 << 19


SPREAD3 = spread_table(3)
SPREAD4 = spread_table(4)


@njit
def _code(px, i, nch):
    # Morton (Z-order) code of a colour, channel 0's bit most significant at each level. It is a
    # bijection, so it serves as the histogram key; and sorting by it puts colours that are near
    # in colour space next to each other, which is what lets k-means++ skip whole blocks.
    if nch == 3:
        return SPREAD3[px[i, 0]] << 2 | SPREAD3[px[i, 1]] << 1 | SPREAD3[px[i, 2]]
    return SPREAD4[px[i, 0]] << 3 | SPREAD4[px[i, 1]] << 2 | SPREAD4[px[i, 2]] << 1 | SPREAD4[px[i, 3]]


@kernel(f"void({PX}, i4[::1], i8)", parallel=True)
def _dense_count(px, table, nparts):
    # Each part owns a contiguous range of codes and scans every pixel: no two threads ever
    # increment the same counter, so there is no race and no per-thread 64 MB copy.
    n = px.shape[0]
    shift = 24
    while (1 << (24 - shift)) < nparts:
        shift -= 1
    for p in prange(nparts):
        for i in range(n):
            k = _code(px, i, 3)
            if (k >> shift) % nparts == p:
                table[k] += 1


@kernel("Tuple((u4[::1], i8[::1]))(i4[::1], i8)", parallel=True)
def _dense_extract(table, nblocks):
    # Two passes over the 2^24 table: count the colours per block, then write them in code order.
    size = table.shape[0]
    bs = (size + nblocks - 1) // nblocks
    per = np.zeros(nblocks + 1, np.int64)
    for b in prange(nblocks):
        c = 0
        for j in range(b * bs, min(size, (b + 1) * bs)):
            if table[j] != 0:
                c += 1
        per[b + 1] = c
    for b in range(nblocks):
        per[b + 1] += per[b]
    u = per[nblocks]
    codes = np.empty(u, np.uint32)
    counts = np.empty(u, np.int64)
    for b in prange(nblocks):
        o = per[b]
        for j in range(b * bs, min(size, (b + 1) * bs)):
            c = table[j]
            if c != 0:
                codes[o] = j
                counts[o] = c
                o += 1
    return codes, counts


@kernel(f"void({PX}, i4[::1], i4[::1])", parallel=True)
def _dense_inverse(px, table, inverse):
    n = px.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        a = np.uint64(c * CHUNK)  # unsigned indices: see ._jit
        for i in range(min(n, (c + 1) * CHUNK) - c * CHUNK):
            p = a + np.uint64(i)
            inverse[p] = table[_code(px, p, 3)]


@kernel(f"Tuple((u4[::1], i8[::1], i4[::1]))({PX}, i8)")
def _radix_histogram(px, nch):
    # LSD radix sort of the codes (stable counting sort per byte), then one scan that numbers
    # the distinct codes. Bytes on which all codes agree are skipped. Three arrays of 4 bytes a
    # pixel: the codes, the order and its scratch, which becomes the inverse once the order is
    # sorted; the order is made as int32 (np.arange would make int64 first: 8 bytes a pixel more
    # for a moment). Making the codes anew from the pixels instead of keeping them saves 4 bytes
    # a pixel but costs 50 % more time (measured on 24 MP RGBA), so they are kept.
    n = px.shape[0]
    keys = np.empty(n, np.uint32)
    order = np.empty(n, np.int32)
    for i in range(n):
        keys[i] = _code(px, i, nch)
        order[i] = i
    tmp = np.empty(n, np.int32)
    cnt = np.empty(257, np.int64)
    for byte in range(nch):
        shift = 8 * byte
        cnt[:] = 0
        for i in range(n):
            cnt[((keys[i] >> shift) & 255) + 1] += 1
        if cnt.max() == n:
            continue
        for j in range(256):
            cnt[j + 1] += cnt[j]
        for i in range(n):
            o = order[i]
            d = (keys[o] >> shift) & 255
            tmp[cnt[d]] = o
            cnt[d] += 1
        order, tmp = tmp, order
    inverse = tmp
    u = 0
    prev = np.uint32(0)
    for j in range(n):
        k = keys[order[j]]
        if j == 0 or k != prev:
            u += 1
            prev = k
    ukeys = np.empty(u, np.uint32)
    counts = np.zeros(u, np.int64)
    u = -1
    for j in range(n):
        o = order[j]
        k = keys[o]
        if j == 0 or k != prev:
            u += 1
            ukeys[u] = k
            prev = k
        counts[u] += 1
        inverse[o] = u
    return ukeys, counts, inverse


@kernel("u1[:, ::1](u4[::1], i8)", parallel=True)
def unpack_codes(codes, nch):
    """Morton codes (U,) uint32 back to colours (U, nch) uint8."""
    n = codes.shape[0]
    out = np.empty((n, nch), np.uint8)
    for c in prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            k = codes[i]
            for j in range(nch):
                v = np.uint32(0)
                for b in range(8):
                    v |= ((k >> np.uint32(nch * b + nch - 1 - j)) & np.uint32(1)) << np.uint32(b)
                out[i, j] = v
    return out


def histogram(px: np.ndarray):
    """Distinct colours of ``px`` with their counts, in Morton order.

    Parameters
    ----------
    px : (N, C) uint8, C-contiguous (read-only is fine), C = 3 or 4

    Returns
    -------
    codes : (U,) uint32, sorted Morton codes of the distinct colours (see :func:`unpack_codes`)
    counts : (U,) int64
    inverse : (N,) int32 index of each pixel's colour in ``codes``, or None for large RGB images:
        those are counted in a dense table of every code and remapped later through a table of
        codes (:func:`remap_codes`), which spares 4 bytes per pixel
    """
    n, nch = px.shape
    if nch == 3 and n >= DENSE_MIN_PIXELS:
        table = np.zeros(1 << 24, np.int32)
        _dense_count(px, table, get_num_threads())
        codes, counts = _dense_extract(table, 256)
        return codes, counts, None
    return _radix_histogram(px, nch)


def color_index(px: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(N,) int32 index in ``codes`` (sorted Morton codes of RGB colours) of every pixel's colour:
    the per-pixel inverse that :func:`histogram` spares, made when a remap needs it."""
    table = np.zeros(1 << 24, np.int32)
    table[codes] = np.arange(codes.shape[0], dtype=np.int32)
    out = np.empty(px.shape[0], np.int32)
    _dense_inverse(px, table, out)
    return out


@twins(f"void({PX}, u1[::1], u1[::1])", work=lambda px, lut, out: px.shape[0])
def remap_codes(px, lut, out):
    """``out[i] = lut[code(px[i])]``: every RGB pixel's palette index from a table of all 2^24
    Morton codes (one pass over the pixels, no per-pixel inverse).

    Parameters
    ----------
    px : (N, 3) uint8, IN; lut : (2^24,) uint8, IN; out : (N,) uint8, OUT
    """
    n = px.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        a = np.uint64(c * CHUNK)  # unsigned indices: see ._jit
        for i in range(min(n, (c + 1) * CHUNK) - c * CHUNK):
            p = a + np.uint64(i)
            out[p] = lut[_code(px, p, 3)]
