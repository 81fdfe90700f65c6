"""Stage 5 kernels: pixels to palette indices (plain gather, Floyd-Steinberg, rate-aware) and
the exact error figures of a remap.

Error diffusion is sequential by nature (each pixel's choice depends on the errors before it), so
those kernels are single-threaded loops: their output is the same at any thread count. The
nearest-entry search per pixel goes through a grid of cells over the clamp box; the first time a
cell is hit, the entries that can be nearest to some point of it are listed (exact: an entry is
dropped only when its smallest distance to the cell exceeds the smallest largest-distance of any
entry), and later pixels in that cell search only that list. Nothing is allocated per pixel.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._jit import CHUNK, kernel

#: Pixels per chunk of :func:`pixel_stats` (its own, fixed: the order of the ΔE sums).
STATS_CHUNK = 1 << 16


@kernel("void(u1[::1], i4[::1], u1[::1])", parallel=True)
def gather(lut, inverse, out):
    """``out[i] = lut[inverse[i]]``: every pixel's palette index from its colour's.

    Parameters
    ----------
    lut : (U,) uint8, IN
    inverse : (N,) int32, IN
    out : (N,) uint8, OUT
    """
    N = inverse.shape[0]
    for c in prange((N + CHUNK - 1) // CHUNK):
        a = np.uint64(c * CHUNK)  # unsigned indices: see ._jit
        for i in range(min(N, (c + 1) * CHUNK) - c * CHUNK):
            p = a + np.uint64(i)
            out[p] = lut[np.uint64(inverse[p])]


@kernel("void(u1[:, ::1], u1[::1], u1[:, ::1])", parallel=True)
def expand(palette, idx, out):
    """``out[i] = palette[idx[i]]``: every pixel's colour from its palette index.

    Parameters
    ----------
    palette : (K, C) uint8, IN
    idx : (N,) uint8, IN; every index below K
    out : (N, C) uint8, OUT
    """
    N = idx.shape[0]
    C = palette.shape[1]
    for c in prange((N + CHUNK - 1) // CHUNK):
        a = np.uint64(c * CHUNK)  # unsigned indices: see ._jit
        n = min(N, (c + 1) * CHUNK) - c * CHUNK
        if C == 3:
            # the channels written out: a loop over a count known only at run time stays scalar
            for i in range(n):
                p = a + np.uint64(i)
                k = idx[p]
                out[p, 0] = palette[k, 0]
                out[p, 1] = palette[k, 1]
                out[p, 2] = palette[k, 2]
        else:
            for i in range(n):
                p = a + np.uint64(i)
                k = idx[p]
                for j in range(C):
                    out[p, j] = palette[k, j]


@njit(cache=True)
def _cell_candidates(entries, lo, step, G, D, cell, cand, ncand):
    # Box of this cell, widened a little so a value rounded into a neighbouring cell is covered.
    K = entries.shape[0]
    bmin = np.empty(D, np.float64)
    bmax = np.empty(D, np.float64)
    rem = cell
    for j in range(D - 1, -1, -1):
        cj = rem % G
        rem //= G
        bmin[j] = lo[j] + cj * step[j] - 1e-3 * step[j]
        bmax[j] = lo[j] + (cj + 1) * step[j] + 1e-3 * step[j]
    ub = np.inf
    for k in range(K):
        far = 0.0
        for j in range(D):
            e = entries[k, j]
            t = max(e - bmin[j], bmax[j] - e)
            far += t * t
        ub = min(ub, far)
    ub = ub * (1.0 + 1e-9) + 1e-9
    n = 0
    for k in range(K):
        near = 0.0
        for j in range(D):
            e = entries[k, j]
            t = max(0.0, bmin[j] - e, e - bmax[j])
            near += t * t
        if near <= ub:
            cand[cell, n] = k
            n += 1
    ncand[cell] = n


#: Cells per axis of the adaptive dither's candidate grid (opaque RGB) above 64 entries: finer
#: than Floyd-Steinberg's 32 (about 5 candidates a cell at K = 256 instead of 10); its lists are
#: stored one after another, so only the cells hit take memory. At 64 entries and below the finer
#: grid gains nothing and its larger index misses the cache more often: 32 there.
FINE_GRID = 64


#: The candidate lists of a cell are taken from those of the cell of a grid this many times
#: coarser that holds it, not from the whole palette: its nearest entries are among them (a
#: smaller box: no nearer entry, no farther bound), the same lists at a fraction of the cost. A
#: noisy 1 MP band hits some 60 000 cells at K = 256.
COARSE = 4


@njit(cache=True)
def _list_cell(entries, lo, step, G, cell, src, sa, sn, pool, at):
    # _cell_candidates of a 3-channel grid into pool[at:], taken from src[sa : sa + sn] (a
    # superset, in index order; kept in its order); returns how many
    rem = cell
    c2 = rem % G
    rem //= G
    c1 = rem % G
    c0 = rem // G
    lo0 = lo[0] + c0 * step[0] - 1e-3 * step[0]
    lo1 = lo[1] + c1 * step[1] - 1e-3 * step[1]
    lo2 = lo[2] + c2 * step[2] - 1e-3 * step[2]
    hi0 = lo[0] + (c0 + 1) * step[0] + 1e-3 * step[0]
    hi1 = lo[1] + (c1 + 1) * step[1] + 1e-3 * step[1]
    hi2 = lo[2] + (c2 + 1) * step[2] + 1e-3 * step[2]
    ub = np.inf
    for i in range(sa, sa + sn):
        k = src[i]
        e = entries[k, 0]
        t = max(e - lo0, hi0 - e)
        far = 0.0 + t * t
        e = entries[k, 1]
        t = max(e - lo1, hi1 - e)
        far += t * t
        e = entries[k, 2]
        t = max(e - lo2, hi2 - e)
        far += t * t
        ub = min(ub, far)
    ub = ub * (1.0 + 1e-9) + 1e-9
    n = 0
    for i in range(sa, sa + sn):
        k = src[i]
        e = entries[k, 0]
        t = max(0.0, lo0 - e, e - hi0)
        near = 0.0 + t * t
        e = entries[k, 1]
        t = max(0.0, lo1 - e, e - hi1)
        near += t * t
        e = entries[k, 2]
        t = max(0.0, lo2 - e, e - hi2)
        near += t * t
        if near <= ub:
            pool[at + n] = k
            n += 1
    return n


@njit
def _room(pool, used, need):
    # pool, or a larger copy of it (at least twice as large) when fewer than ``need`` places are
    # left after ``used``
    if used + need <= pool.shape[0]:
        return pool
    grown = np.empty(max(2 * pool.shape[0], used + need), np.int16)
    grown[:used] = pool[:used]
    return grown


@njit
def _nearest(v, entries, lo, inv_step, G, D, cand, ncand, steps):
    cell = 0
    for j in range(D):
        cj = int((v[j] - lo[j]) * inv_step[j])
        cj = min(G - 1, max(0, cj))
        cell = cell * G + cj
    if ncand[cell] < 0:
        _cell_candidates(entries, lo, steps, G, D, cell, cand, ncand)
    best = 0
    bd = np.inf
    for q in range(ncand[cell]):
        k = cand[cell, q]
        d = 0.0
        for j in range(D):
            t = v[j] - entries[k, j]
            d += t * t
        if d < bd:
            bd = d
            best = k
    return best


@njit
def _receives(x, w, has_alpha, transparent, inverse, q):
    # may pixel q (in column x) receive diffused error: inside the row and not fully transparent
    if x < 0 or x >= w:
        return False
    return not (has_alpha and transparent[inverse[q]])


@kernel(
    "void(f4[:, ::1], i4[::1], b1[::1], b1, f8[:, ::1], f8[::1], f8[::1], i8, i8, i8, u1[::1], i2[:, ::1], i4[::1], f8)"
)
def floyd_steinberg(Xt, inverse, transparent, has_alpha, entries, lo, hi, G, h, w, out, cand, ncand, strength):
    """Serpentine Floyd-Steinberg remap of every pixel onto the palette entries.

    Parameters
    ----------
    Xt : (U, D) float32, IN; the distinct colours in the clustering space (row-major: a pixel's
        colour is one cache line, not D scattered loads)
    inverse : (H*W,) int32, IN; each pixel's colour
    transparent : (U,) bool, IN; colours that are fully transparent (used with ``has_alpha``)
    entries : (P, D) float64, IN; the palette in the clustering space
    lo, hi : (D,) float64, IN; the clamp box of the diffused values
    G : cells per axis of the candidate grid
    out : (H*W,) uint8, OUT; palette indices
    cand : (G^D, P) int16, scratch; ncand : (G^D,) int32, IN/OUT, -1 for cells not listed yet
    strength : fraction of the error diffused
    """
    D = Xt.shape[1]
    step = np.empty(D, np.float64)
    inv_step = np.empty(D, np.float64)
    for j in range(D):
        span = max(hi[j] - lo[j], 1e-6)
        step[j] = span / G
        inv_step[j] = G / span
    # this row's and the next row's diffused error, indexed x + 1 (one pixel of margin each side)
    cur = np.zeros((w + 2, D), np.float64)
    nxt = np.zeros((w + 2, D), np.float64)
    v = np.empty(D, np.float64)
    for y in range(h):
        left_to_right = (y & 1) == 0
        d = 1 if left_to_right else -1
        for i in range(w):
            x = i if left_to_right else w - 1 - i
            p = y * w + x
            u = inverse[p]
            if has_alpha and transparent[u]:
                # fully transparent: its colour is invisible; take its own nearest entry (by a
                # full search: it may lie outside the clamp box) and neither receive nor pass
                # on any error
                bd = np.inf
                best = 0
                for k in range(entries.shape[0]):
                    dd = 0.0
                    for j in range(D):
                        t = np.float64(Xt[u, j]) - entries[k, j]
                        dd += t * t
                    if dd < bd:
                        bd = dd
                        best = k
                out[p] = best
                continue
            for j in range(D):
                v[j] = min(hi[j], max(lo[j], np.float64(Xt[u, j]) + cur[x + 1, j]))
            k = _nearest(v, entries, lo, inv_step, G, D, cand, ncand, step)
            out[p] = k
            # 7/16 ahead, 3/16 behind-below, 5/16 below, 1/16 ahead-below; a fully transparent
            # neighbour gets nothing (its share is dropped)
            xa = x + d
            xb = x - d
            below = y + 1 < h
            ok_a = _receives(xa, w, has_alpha, transparent, inverse, p + d)
            ok_ba = below and _receives(xa, w, has_alpha, transparent, inverse, p + w + d)
            ok_b = below and _receives(x, w, has_alpha, transparent, inverse, p + w)
            ok_bb = below and _receives(xb, w, has_alpha, transparent, inverse, p + w - d)
            for j in range(D):
                e = (v[j] - entries[k, j]) * strength
                if ok_a:
                    cur[xa + 1, j] += e * (7.0 / 16.0)
                if ok_bb:
                    nxt[xb + 1, j] += e * (3.0 / 16.0)
                if ok_b:
                    nxt[x + 1, j] += e * (5.0 / 16.0)
                if ok_ba:
                    nxt[xa + 1, j] += e * (1.0 / 16.0)
        cur, nxt = nxt, cur
        for x in range(w + 2):
            for j in range(D):
                nxt[x, j] = 0.0


@kernel("void(u1[:, ::1], i4[::1], u1[::1], u1[:, ::1], f8[:, ::1], f8[:, ::1], i8[::1], f8[::1])", parallel=True)
def pixel_stats(colors, inverse, idx, palette, lab_c, lab_p, sse_c, de_c):
    """Exact squared sRGB error and summed OKLab distance of an arbitrary remap, per chunk of
    :data:`STATS_CHUNK` pixels (sse_c, de_c OUT: (n_chunks,) each; the caller merges in order).

    colors : (U, C) uint8 distinct colours; inverse : (N,) int32; idx : (N,) uint8 entry of each
    pixel; palette : (P, C) uint8; lab_c : (U, 3), lab_p : (P, 3) float64 OKLab of both.
    """
    N = inverse.shape[0]
    C = colors.shape[1]
    for c in prange((N + STATS_CHUNK - 1) // STATS_CHUNK):
        s = np.int64(0)
        e = 0.0
        a = np.uint64(c * STATS_CHUNK)  # unsigned indices: see ._jit
        for i in range(min(N, (c + 1) * STATS_CHUNK) - c * STATS_CHUNK):
            p = a + np.uint64(i)
            u = np.uint64(inverse[p])
            k = idx[p]
            for j in range(C):
                t = np.int64(colors[u, j]) - np.int64(palette[k, j])
                s += t * t
            d = 0.0
            for j in range(3):
                t2 = lab_c[u, j] - lab_p[k, j]
                d += t2 * t2
            e += np.sqrt(d)
        sse_c[c] = s
        de_c[c] = e


@kernel("void(f4[:, ::1], i4[::1], i4[::1], f8[::1], f8[:, ::1], f8, i8, i8, u1[::1])")
def smooth(Xt, inverse, labels, best_d, entries, lam, h, w, out):
    """Rate-aware remap: a pixel takes its left or upper neighbour's entry (as already chosen)
    instead of its nearest one (``labels``) when that entry is closer than ``best_d + lam``.

    Xt : (U, D) float32; inverse : (H*W,) int32; labels : (U,) int32 nearest entry of each
    colour; best_d : (U,) float64 its squared distance; entries : (P, D) float64; out : (H*W,)
    uint8, OUT. Sequential, so deterministic.
    """
    D = Xt.shape[1]
    for y in range(h):
        for x in range(w):
            p = y * w + x
            u = inverse[p]
            k = labels[u]
            limit = best_d[u] + lam
            pick = k
            pick_d = np.inf
            # the left and the upper neighbour's entries (as already chosen), if close enough:
            # the closer of the two wins, the left one on a tie
            for nb in range(2):
                if nb == 0:
                    if x == 0:
                        continue
                    e = out[p - 1]
                else:
                    if y == 0:
                        continue
                    e = out[p - w]
                if e == k:
                    pick = k
                    break
                d = 0.0
                for j in range(D):
                    t = np.float64(Xt[u, j]) - entries[e, j]
                    d += t * t
                # strictly within the allowance: with strength 0 nothing ever switches, not even on ties
                if d < limit and d < pick_d:
                    pick = e
                    pick_d = d
            out[p] = pick
