"""Adaptive-dither kernels: the dither map and the error diffusion it steers.

The dither map of an undithered remap, and the error diffusion (see
:func:`kmpress.remap.adaptive_dither`); the contrast maps that scale the dither map are
:mod:`._contrast`'s. The dither map is integers, made in parallel by rows. The error diffusion
is sequential by nature within a band of rows; its float64 arithmetic is IEEE-754 ``+ - * /``
in a fixed order, so it gives the same bits on any CPU.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._jit import kernel
from ._remap import COARSE, FINE_GRID, _list_cell, _nearest, _receives, _room


@kernel("void(u1[::1], u1[::1], i8, i8, u1[::1])", parallel=True)
def dither_map(idx, edges, h, w, out):
    """Set how much of the carried error each pixel takes (0..255), from the undithered remap.

    Long runs of one entry, also repeated in the rows above and below, are where banding shows, and
    get the most; the edges map scales it (libimagequant's update_dither_map).

    idx : (H*W,) uint8, IN, the undithered remap; edges : (H*W,) uint8, IN; out : (H*W,) uint8, OUT
    """
    for y in prange(h):
        row = y * w
        if w == 1:
            out[row] = edges[row]
            continue
        last = idx[row]
        lastcol = 0
        for col in range(1, w):
            px = idx[row + col]
            if px != last or col == w - 1:
                n = 10 * (col - lastcol)
                for i in range(lastcol, col):
                    if y > 0 and idx[row - w + i] == last:
                        n += 15
                    if y + 1 < h and idx[row + w + i] == last:
                        n += 15
                f = 1.0 - 20.0 / (20.0 + n)
                while lastcol <= col:
                    out[row + lastcol] = np.uint8(np.floor((edges[row + lastcol] + 128.0) * (255.0 / 383.0) * f))
                    lastcol += 1
                last = px


#: unsigned index offsets (see ._jit)
_1 = np.uint64(1)
_2 = np.uint64(2)
_3 = np.uint64(3)


@njit
def _offset3(v0, v1, v2, entries, k):
    # (v0, v1, v2) minus entry k, and its squared length summed in a fixed order
    t0 = v0 - entries[k, 0]
    t1 = v1 - entries[k, 1]
    t2 = v2 - entries[k, 2]
    e2 = 0.0 + t0 * t0
    e2 += t1 * t1
    e2 += t2 * t2
    return t0, t1, t2, e2


@njit(cache=True)
def _adaptive_opaque3(Xt, inverse, entries, lo, hi, h, w, out, level, dead, tie, maxerr, s_cap, e_cap, y_first, y0, y1):
    # adaptive_dither of an opaque three-channel image, the same operations in the same order
    # written out on scalars: the loops over a channel count known only at run time kept every
    # value in memory and ran 3-4x slower. The error rows are planar (x, channel) in one vector,
    # with a margin pixel on either side that takes the shares falling outside the row (never
    # read), so no neighbour needs a test: every pixel of an opaque image receives. Rows y_first
    # to y0 only warm the error rows up (their indices are another band's).
    K = entries.shape[0]
    G = FINE_GRID if K > 64 else 32
    step = np.empty(3, np.float64)
    for j in range(3):
        step[j] = max(hi[j] - lo[j], 1e-6) / G
    is0 = G / max(hi[0] - lo[0], 1e-6)
    is1 = G / max(hi[1] - lo[1], 1e-6)
    is2 = G / max(hi[2] - lo[2], 1e-6)
    lo0, lo1, lo2 = lo[0], lo[1], lo[2]
    hi0, hi1, hi2 = hi[0], hi[1], hi[2]
    # each cell's candidates: pool[start[cell] : start[cell] + count[cell]], listed on first use
    start = np.full(G * G * G, -1, np.int32)
    count = np.zeros(G * G * G, np.int32)
    pool = np.empty(0, np.int16)  # made room in row by row
    used = 0
    # the coarse grid's lists, the same way, from the whole palette
    GC = G // COARSE
    cstep = np.empty(3, np.float64)
    for j in range(3):
        cstep[j] = max(hi[j] - lo[j], 1e-6) / GC
    cstart = np.full(GC * GC * GC, -1, np.int32)
    ccount = np.zeros(GC * GC * GC, np.int32)
    cpool = np.empty(GC * GC * GC * K, np.int16)  # room for every coarse list
    cused = 0
    every = np.arange(K).astype(np.int16)
    cur = np.zeros(3 * (w + 2), np.float64)
    nxt = np.zeros(3 * (w + 2), np.float64)
    above = np.full(w, -1, np.int32)  # each column's entry on the row before (-1: none yet)
    # the row's colours, gathered before the row is diffused: loads independent of each other,
    # which the CPU overlaps, rather than one on the error's path at every pixel
    colors = np.empty(3 * w, np.float64)
    for y in range(y_first, y1):
        # room for the lists of the cells the row may list (at most one a pixel), made before the
        # row: an array replaced within the pixel loop would be reference-counted at every pixel
        pool = _room(pool, used, min(w, G * G * G) * K)
        for x in range(w):
            u = inverse[y * w + x]
            colors[3 * x] = Xt[u, 0]
            colors[3 * x + 1] = Xt[u, 1]
            colors[3 * x + 2] = Xt[u, 2]
        left_to_right = (y & 1) == 0
        d = 1 if left_to_right else -1
        prev = -1
        # the 7/16 share for the next pixel stays in registers (e0, e1, e2n): the pixel after
        # needs it at once, and a store and reload would sit on the error's path. It is added to
        # that pixel's share from the row before as the += into the row did (the same sum).
        e0 = e1 = e2n = 0.0
        for i in range(w):
            x = i if left_to_right else w - 1 - i
            # unsigned indices (see ._jit): with signed ones the kernel ran 10-15 % slower
            p = np.uint64(y * w + x)
            ux = np.uint64(x)
            q = np.uint64(3) * (ux + _1)
            lv = level[p] / 255.0
            s0 = (cur[q] + e0) * lv
            s1 = (cur[q + _1] + e1) * lv
            s2 = (cur[q + _2] + e2n) * lv
            n2 = 0.0 + s0 * s0
            n2 += s1 * s1
            n2 += s2 * s2
            o0 = colors[q - _3]
            o1 = colors[q - _2]
            o2 = colors[q - _1]
            # the offset taken whole, scaled by s_cap or dropped (x 0.0, which keeps the sum's
            # rounding): all three are ready when the test on n2 is
            if n2 < dead:
                v0 = o0 + s0 * 0.0
                v1 = o1 + s1 * 0.0
                v2 = o2 + s2 * 0.0
            elif n2 > maxerr:
                v0 = o0 + s0 * s_cap
                v1 = o1 + s1 * s_cap
                v2 = o2 + s2 * s_cap
            else:
                v0 = o0 + s0
                v1 = o1 + s1
                v2 = o2 + s2
            v0 = min(hi0, max(lo0, v0))
            v1 = min(hi1, max(lo1, v1))
            v2 = min(hi2, max(lo2, v2))
            # _nearest on scalars: the cell, its candidates (listed on first use), the nearest of
            # them (the lowest index on a tie: the lists are in index order)
            c0 = min(G - 1, max(0, int((v0 - lo0) * is0)))
            c1 = min(G - 1, max(0, int((v1 - lo1) * is1)))
            c2 = min(G - 1, max(0, int((v2 - lo2) * is2)))
            cell = np.uint64((c0 * G + c1) * G + c2)
            if start[cell] < 0:
                parent = ((c0 // COARSE) * GC + c1 // COARSE) * GC + c2 // COARSE
                if cstart[parent] < 0:
                    cstart[parent] = cused
                    ccount[parent] = _list_cell(entries, lo, cstep, GC, parent, every, 0, K, cpool, cused)
                    cused += ccount[parent]
                start[cell] = used
                count[cell] = _list_cell(entries, lo, step, G, cell, cpool, cstart[parent], ccount[parent], pool, used)
                used += count[cell]
            k = 0
            bd = np.inf
            a = np.uint64(start[cell])
            for c in range(a, a + np.uint64(count[cell])):
                kc = pool[c]
                ku = np.uint64(kc)
                t = v0 - entries[ku, 0]
                dd = 0.0 + t * t
                t = v1 - entries[ku, 1]
                dd += t * t
                t = v2 - entries[ku, 2]
                dd += t * t
                if dd < bd:
                    bd = dd
                    k = kc
            # the offset from the nearest entry; its squared length is bd (_offset3's sum)
            t0 = v0 - entries[k, 0]
            t1 = v1 - entries[k, 1]
            t2 = v2 - entries[k, 2]
            e2 = bd
            if prev >= 0 and prev != k:
                # the run's entry when it is nearly as near (the error carried on pays for it)
                r0, r1, r2, p2 = _offset3(v0, v1, v2, entries, prev)
                if p2 <= e2 + tie:
                    k = prev
                    t0, t1, t2, e2 = r0, r1, r2, p2
            ab = above[ux]
            if k != prev and ab >= 0 and ab != k:
                # where the run breaks, the entry above when it is nearly as near: a repeat of
                # the row before for DEFLATE (after the run, which a smooth area's rows keep best)
                r0, r1, r2, p2 = _offset3(v0, v1, v2, entries, ab)
                if p2 <= e2 + tie:
                    k = ab
                    t0, t1, t2, e2 = r0, r1, r2, p2
            above[ux] = k
            prev = k
            if y >= y0:
                out[p] = k
            f = e_cap if e2 > maxerr else 1.0
            t0 = t0 * f
            t1 = t1 * f
            t2 = t2 * f
            qa = np.uint64(3 * (x + d + 1))
            qb = np.uint64(3 * (x - d + 1))
            e0 = t0 * (7.0 / 16.0)
            e1 = t1 * (7.0 / 16.0)
            e2n = t2 * (7.0 / 16.0)
            nxt[qb] += t0 * (3.0 / 16.0)
            nxt[qb + _1] += t1 * (3.0 / 16.0)
            nxt[qb + _2] += t2 * (3.0 / 16.0)
            nxt[q] += t0 * (5.0 / 16.0)
            nxt[q + _1] += t1 * (5.0 / 16.0)
            nxt[q + _2] += t2 * (5.0 / 16.0)
            nxt[qa] += t0 * (1.0 / 16.0)
            nxt[qa + _1] += t1 * (1.0 / 16.0)
            nxt[qa + _2] += t2 * (1.0 / 16.0)
        cur, nxt = nxt, cur
        nxt[:] = 0.0


#: Rows each band diffuses before its own, to carry in an error close to the one the band above
#: leaves (libimagequant's two): without them a band's first row starts with no error, a seam.
WARM_ROWS = 2


@kernel(
    "void(f4[:, ::1], i4[::1], b1[::1], b1, f8[:, ::1], f8[::1], f8[::1], i8, i8, i8, u1[::1], i2[:, ::1], i4[::1],"
    " u1[::1], f8, f8, f8, f8, f8, i8[::1])",
    parallel=True,
)
def adaptive_dither(
    Xt,
    inverse,
    transparent,
    has_alpha,
    entries,
    lo,
    hi,
    G,
    h,
    w,
    out,
    cand,
    ncand,
    level,
    dead,
    tie,
    maxerr,
    s_cap,
    e_cap,
    bands,
):
    """Diffuse the error serpentine, its strength following a per-pixel level, band by band.

    Floyd-Steinberg with a dead zone and caps (libimagequant's remap_to_palette_floyd). The rows
    are cut into bands (``bands``: their first rows, then ``h``), each diffused from
    :data:`WARM_ROWS` rows above its first with no error; an opaque three-channel image's bands
    run in parallel. The bands depend on the image
    alone, and each is sequential in float64 ``+ - * /``: the same bits at any thread count and
    on any CPU.

    Parameters
    ----------
    Xt, inverse, transparent, has_alpha, entries, lo, hi, G, h, w, out, cand, ncand : as
        :func:`floyd_steinberg` (``cand`` and ``ncand`` unused by opaque three-channel images,
        whose bands list their own candidates)
    level : (H*W,) uint8, IN; the carried error is taken at ``level / 255``
    dead : an offset of squared length below ``dead`` is dropped (no dither where it would
        hardly change the colour: runs stay unbroken)
    tie : a pixel keeps the entry of the pixel before it on its row (in the serpentine order)
        when its squared distance is at most ``tie`` above the nearest entry's, else, on the
        same terms, the entry of the pixel above it (diffused in this band, warm rows included):
        longer runs and repeated rows for DEFLATE, the extra error carried on like any other
    maxerr : squared length above which the offset is scaled by ``s_cap`` and the diffused
        error by ``e_cap``
    bands : (B + 1,) int64, IN; the first row of each band, then ``h``
    """
    D = Xt.shape[1]
    step = np.empty(D, np.float64)
    inv_step = np.empty(D, np.float64)
    for j in range(D):
        span = max(hi[j] - lo[j], 1e-6)
        step[j] = span / G
        inv_step[j] = G / span
    nb = bands.shape[0] - 1
    if D == 3 and not has_alpha:
        for b in prange(nb):
            y0 = bands[b]
            _adaptive_opaque3(
                Xt,
                inverse,
                entries,
                lo,
                hi,
                h,
                w,
                out,
                level,
                dead,
                tie,
                maxerr,
                s_cap,
                e_cap,
                max(0, y0 - WARM_ROWS),
                y0,
                bands[b + 1],
            )
        return
    for b in range(nb):
        y0 = bands[b]
        _adaptive_rows(
            Xt,
            inverse,
            transparent,
            has_alpha,
            entries,
            lo,
            hi,
            G,
            h,
            w,
            out,
            cand,
            ncand,
            level,
            dead,
            tie,
            maxerr,
            s_cap,
            e_cap,
            step,
            inv_step,
            max(0, y0 - WARM_ROWS),
            y0,
            bands[b + 1],
        )


@njit
def _tie_to(v, entries, D, other, k, e2, tie):
    # entry ``other`` and its squared distance to v when that is at most ``tie`` above ``e2``
    # (entry k's), else k and e2
    p2 = 0.0
    for j in range(D):
        t = v[j] - entries[other, j]
        p2 += t * t
    if p2 <= e2 + tie:
        return other, p2
    return k, e2


@njit(cache=True)
def _adaptive_rows(
    Xt,
    inverse,
    transparent,
    has_alpha,
    entries,
    lo,
    hi,
    G,
    h,
    w,
    out,
    cand,
    ncand,
    level,
    dead,
    tie,
    maxerr,
    s_cap,
    e_cap,
    step,
    inv_step,
    y_first,
    y0,
    y1,
):
    # adaptive_dither of rows y_first to y1 of any image (alpha, four channels), writing rows y0
    # on. Its bands run one after the other: they share _nearest's candidate lists, which it
    # fills on first use.
    D = Xt.shape[1]
    cur = np.zeros((w + 2, D), np.float64)
    nxt = np.zeros((w + 2, D), np.float64)
    v = np.empty(D, np.float64)
    s = np.empty(D, np.float64)
    above = np.full(w, -1, np.int32)
    for y in range(y_first, y1):
        left_to_right = (y & 1) == 0
        d = 1 if left_to_right else -1
        prev = -1
        for i in range(w):
            x = i if left_to_right else w - 1 - i
            p = y * w + x
            u = inverse[p]
            if has_alpha and transparent[u]:
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
                prev = best
                above[x] = best
                if y >= y0:
                    out[p] = best
                continue
            lv = level[p] / 255.0
            s2 = 0.0
            for j in range(D):
                s[j] = cur[x + 1, j] * lv
                s2 += s[j] * s[j]
            ratio = 1.0
            if s2 < dead:
                ratio = 0.0
            elif s2 > maxerr:
                ratio = s_cap
            for j in range(D):
                v[j] = min(hi[j], max(lo[j], np.float64(Xt[u, j]) + s[j] * ratio))
            k = _nearest(v, entries, lo, inv_step, G, D, cand, ncand, step)
            e2 = 0.0
            for j in range(D):
                t = v[j] - entries[k, j]
                e2 += t * t
            if prev >= 0 and prev != k:
                k, e2 = _tie_to(v, entries, D, prev, k, e2, tie)
            ab = above[x]
            if k != prev and ab >= 0 and ab != k:
                k, e2 = _tie_to(v, entries, D, ab, k, e2, tie)
            above[x] = k
            prev = k
            if y >= y0:
                out[p] = k
            f = e_cap if e2 > maxerr else 1.0
            xa = x + d
            xb = x - d
            below = y + 1 < h
            ok_a = _receives(xa, w, has_alpha, transparent, inverse, p + d)
            ok_ba = below and _receives(xa, w, has_alpha, transparent, inverse, p + w + d)
            ok_b = below and _receives(x, w, has_alpha, transparent, inverse, p + w)
            ok_bb = below and _receives(xb, w, has_alpha, transparent, inverse, p + w - d)
            for j in range(D):
                e = (v[j] - entries[k, j]) * f
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
