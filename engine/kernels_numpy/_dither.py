"""The adaptive dither's kernels with NumPy: contrast maps, palette weights, dither map, diffusion.

The twins of :mod:`kmpress.kernels_numba._contrast` and :mod:`kmpress.kernels_numba._dither`:
the maps are integers, so whole-array NumPy gives the same values; the error diffusion is
sequential and repeats the numba kernel's float64 operations in its order, pixel by pixel (slow,
but the same bits).
"""

from __future__ import annotations

import numpy as np

#: Rows each band of the error diffusion runs before its own (the numba kernel's).
WARM_ROWS = 2


def _filter3(a, fn):
    # 3x3 maximum or minimum, border replicated (separably: the same window)
    p = np.pad(a, 1, mode="edge")
    r = fn(fn(p[:, :-2], p[:, 1:-1]), p[:, 2:])
    return fn(fn(r[:-2], r[1:-1]), r[2:])


def contrast_maps(img, wts, noise_lut, edge_lut, noise, edges, tmp, sums):
    """See :func:`kmpress.kernels_numba.contrast_maps` (integers throughout: the same maps)."""
    h, w = noise.shape
    p = np.pad(img[:, :, :3].astype(np.int64), ((1, 1), (1, 1), (0, 0)), mode="edge")
    c = p[1:-1, 1:-1]
    hz = (np.abs(p[1:-1, :-2] + p[1:-1, 2:] - 2 * c) * wts).max(axis=2)
    vt = (np.abs(p[:-2, 1:-1] + p[2:, 1:-1] - 2 * c) * wts).max(axis=2)
    edge = np.maximum(hz, vt)
    n = noise_lut[np.maximum(2 * edge - np.abs(hz - vt), 2 * np.minimum(hz, vt))]
    e = _filter3(_filter3(edge_lut[edge], np.minimum), np.maximum)
    q = np.pad(_filter3(_filter3(n, np.maximum), np.maximum).astype(np.int64), 3, mode="edge")
    rows = q[:, 0:w].copy()
    for i in range(1, 7):
        rows += q[:, i : i + w]
    tot = rows[0:h].copy()
    for i in range(1, 7):
        tot += rows[i : i + h]
    n = ((tot + 24) // 49).astype(np.uint8)
    n = _filter3(_filter3(_filter3(_filter3(n, np.maximum), np.minimum), np.minimum), np.minimum)
    noise[:] = n
    edges[:] = np.minimum(e, n)


def color_weights(inverse, noise, out):
    """See :func:`kmpress.kernels_numba.color_weights`."""
    out += np.bincount(inverse, weights=noise.astype(np.float64), minlength=out.shape[0])


def dither_map(idx, edges, h, w, out):
    """See :func:`kmpress.kernels_numba.dither_map` (its runs found with NumPy, row by row)."""
    if w == 1:
        out[:] = edges
        return
    a = idx.reshape(h, w)
    same = np.zeros((h, w), np.int64)
    same[1:] += a[1:] == a[:-1]
    same[:-1] += a[:-1] == a[1:]
    score = 10 + 15 * same
    for y in range(h):
        row = a[y]
        # a run ends where the entry changes (and at the last column); the pixels of a run but
        # its last one, with the run's entry, count: the run's level lands on its pixels and the
        # one that ended it
        ends = np.flatnonzero(row[1:] != row[:-1]) + 1
        if ends.size == 0 or ends[-1] != w - 1:
            ends = np.append(ends, w - 1)
        starts = np.concatenate(([0], ends[:-1] + 1))
        cs = np.concatenate(([0], np.cumsum(score[y])))
        f = 1.0 - 20.0 / (20.0 + (cs[ends] - cs[starts]))
        run = np.repeat(np.arange(ends.size), ends - starts + 1)
        out[y * w : (y + 1) * w] = np.floor((edges[y * w : (y + 1) * w] + 128.0) * (255.0 / 383.0) * f[run])


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
    """See :func:`kmpress.kernels_numba.adaptive_dither`.

    A full nearest-entry search per pixel; the bands one after the other.
    """
    D = Xt.shape[1]
    ent = [list(map(float, row)) for row in entries]
    lo_, hi_ = list(map(float, lo)), list(map(float, hi))
    cols = Xt.astype(np.float64).tolist()
    inv, lev = inverse.tolist(), level.tolist()
    clear = [not (has_alpha and bool(transparent[u])) for u in range(len(cols))]

    def nearest_entry(v):
        best, bd = 0, np.inf
        for k, row in enumerate(ent):
            d = 0.0
            for j in range(D):
                t = v[j] - row[j]
                d += t * t
            if d < bd:
                bd, best = d, k
        return best

    for b in range(len(bands) - 1):
        y0 = int(bands[b])
        _adaptive_rows(
            cols,
            inv,
            lev,
            clear,
            ent,
            lo_,
            hi_,
            nearest_entry,
            D,
            h,
            w,
            out,
            dead,
            tie,
            maxerr,
            s_cap,
            e_cap,
            max(0, y0 - WARM_ROWS),
            y0,
            int(bands[b + 1]),
        )


def _tie_to(v, row, other, k, e2, tie):
    # the numba kernel's _tie_to: entry ``other`` (``row``) when within ``tie`` of ``e2``
    p2 = 0.0
    for j in range(len(v)):
        t = v[j] - row[j]
        p2 += t * t
    return (other, p2) if p2 <= e2 + tie else (k, e2)


def _adaptive_rows(
    cols, inv, lev, clear, ent, lo_, hi_, nearest_entry, D, h, w, out, dead, tie, maxerr, s_cap, e_cap, y_first, y0, y1
):
    # one band: rows y_first to y1, writing rows y0 on (the numba kernel's _adaptive_rows)
    cur = [[0.0] * D for _ in range(w + 2)]
    nxt = [[0.0] * D for _ in range(w + 2)]
    above = [-1] * w
    for y in range(y_first, y1):
        d = 1 if (y & 1) == 0 else -1
        prev = -1
        for i in range(w):
            x = i if d == 1 else w - 1 - i
            p = y * w + x
            u = inv[p]
            if not clear[u]:
                prev = above[x] = nearest_entry(cols[u])
                if y >= y0:
                    out[p] = prev
                continue
            lv = lev[p] / 255.0
            s = [cur[x + 1][j] * lv for j in range(D)]
            s2 = 0.0
            for j in range(D):
                s2 += s[j] * s[j]
            ratio = 0.0 if s2 < dead else (s_cap if s2 > maxerr else 1.0)
            v = [min(hi_[j], max(lo_[j], cols[u][j] + s[j] * ratio)) for j in range(D)]
            k = nearest_entry(v)
            e2 = 0.0
            for j in range(D):
                t = v[j] - ent[k][j]
                e2 += t * t
            if prev >= 0 and prev != k:
                k, e2 = _tie_to(v, ent[prev], prev, k, e2, tie)
            ab = above[x]
            if k != prev and ab >= 0 and ab != k:
                k, e2 = _tie_to(v, ent[ab], ab, k, e2, tie)
            prev = above[x] = k
            if y >= y0:
                out[p] = k
            f = e_cap if e2 > maxerr else 1.0
            xa, xb = x + d, x - d
            below = y + 1 < h
            ok = (
                0 <= xa < w and clear[inv[p + d]],
                below and 0 <= xb < w and clear[inv[p + w - d]],
                below and clear[inv[p + w]],
                below and 0 <= xa < w and clear[inv[p + w + d]],
            )
            for j in range(D):
                e = (v[j] - ent[k][j]) * f
                if ok[0]:
                    cur[xa + 1][j] += e * (7.0 / 16.0)
                if ok[1]:
                    nxt[xb + 1][j] += e * (3.0 / 16.0)
                if ok[2]:
                    nxt[x + 1][j] += e * (5.0 / 16.0)
                if ok[3]:
                    nxt[xa + 1][j] += e * (1.0 / 16.0)
        cur, nxt = nxt, [[0.0] * D for _ in range(w + 2)]
