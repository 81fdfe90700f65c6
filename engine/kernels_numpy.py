"""Backend "numpy": the kernels of :mod:`kmpress.kernels_numba`, with NumPy. Never imports numba.

Same names, arguments and buffers, so the Lloyd loop, the seeding and the remap run unchanged on
either backend. The nearest-centroid search is the good NumPy way (distances by one float32
matrix product per chunk, ``‖c‖² − 2x·c``, as scikit-learn does), over chunks of
:data:`CHUNK` points so that no N×K matrix of the whole input is ever built. Sums are float64
via ``np.bincount``. Results agree with the numba kernels up to float rounding of distances:
labels can differ only for points almost exactly between two centroids.
"""

from __future__ import annotations

import numpy as np

from .histogram import spread_table

CHUNK = 65536
#: Pixels per chunk of :func:`pixel_stats` (as the numba kernel).
STATS_CHUNK = 1 << 16
NAME = "numpy"


def n_chunks(n: int) -> int:
    """Number of :data:`CHUNK`-sized chunks covering ``n`` points."""
    return (n + CHUNK - 1) // CHUNK


def _bounds(n: int):
    for c in range(n_chunks(n)):
        yield c, c * CHUNK, min(n, (c + 1) * CHUNK)


_SPREAD = {3: spread_table(3), 4: spread_table(4)}


def histogram(px):
    """Distinct colours (as Morton codes) with counts and each pixel's colour index (see the numba twin)."""
    n, nch = px.shape
    lut = _SPREAD[nch]
    codes = np.zeros(n, np.uint32)
    for j in range(nch):
        codes |= lut[px[:, j]] << np.uint32(nch - 1 - j)
    ucodes, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    return ucodes.astype(np.uint32), counts.astype(np.int64), inverse.astype(np.int32).ravel()


def unpack_codes(codes, nch):
    """See :func:`kmpress.kernels_numba.unpack_codes`."""
    out = np.zeros((codes.shape[0], nch), np.uint8)
    for j in range(nch):
        v = np.zeros(codes.shape[0], np.uint32)
        for b in range(8):
            v |= ((codes >> np.uint32(nch * b + nch - 1 - j)) & np.uint32(1)) << np.uint32(b)
        out[:, j] = v
    return out


def _nearest_chunk(xb, m2c, cc):
    d = xb @ m2c
    d += cc
    return d.argmin(axis=1).astype(np.int32)


def _gemm_operands(C32):
    return np.ascontiguousarray((-2.0 * C32).T.astype(np.float32)), (C32 * C32).sum(axis=1, dtype=np.float32)


def assign_accumulate(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, boxes=None):
    """See :func:`kmpress.kernels_numba.assign_accumulate` (the baseline sums every chunk afresh)."""
    D, N = X.shape
    K = C32.shape[0]
    m2c, cc = _gemm_operands(C32)
    for c, s, e in _bounds(N):
        xb = X[:, s:e].T
        lab = _nearest_chunk(xb, m2c, cc)
        changed_c[c] = np.count_nonzero(labels[s:e] != lab)
        labels[s:e] = lab
        wb = w[s:e] if weighted else None
        wsum_c[c] = np.bincount(lab, weights=wb, minlength=K) if weighted else np.bincount(lab, minlength=K)
        for j in range(D):
            col = X[j, s:e].astype(np.float64)
            sums_c[c, :, j] = np.bincount(lab, weights=col * wb if weighted else col, minlength=K)


def nearest(X, C32, labels, boxes=None):
    """See :func:`kmpress.kernels_numba.nearest`."""
    m2c, cc = _gemm_operands(C32)
    for _, s, e in _bounds(X.shape[1]):
        labels[s:e] = _nearest_chunk(X[:, s:e].T, m2c, cc)


def dist_to_assigned(X, C, labels, out):
    """See :func:`kmpress.kernels_numba.dist_to_assigned` (the same sums in the same order)."""
    D = X.shape[0]
    for _, s, e in _bounds(X.shape[1]):
        lab = labels[s:e]
        d2 = np.zeros(e - s)
        for j in range(D):
            t = X[j, s:e].astype(np.float64) - C[lab, j]
            d2 += t * t
        out[s:e] = d2


def block_boxes(X):
    """The NumPy baseline does not prune: no boxes (returns None)."""
    return None


def pp_state(X, w, weighted, closest, pot_c):
    """Chunk potentials of ``closest``; the NumPy baseline keeps no pruning state (returns None)."""
    for ch, s, e in _bounds(X.shape[1]):
        v = closest[s:e].astype(np.float64)
        pot_c[ch] = float(v @ w[s:e]) if weighted else float(v.sum())
    return None


def pp_update(X, w, weighted, c, closest, pot_c, state=None):
    """See :func:`kmpress.kernels_numba.pp_update`."""
    for ch, s, e in _bounds(X.shape[1]):
        diff = X[:, s:e] - c[:, None]
        np.minimum(closest[s:e], np.einsum("ji,ji->i", diff, diff), out=closest[s:e])
        v = closest[s:e].astype(np.float64)
        pot_c[ch] = float(v @ w[s:e]) if weighted else float(v.sum())


def pp_sample(w, weighted, closest, pot_c, u):
    """See :func:`kmpress.kernels_numba.pp_sample`."""
    csum = np.cumsum(pot_c)
    if not csum[-1] > 0.0:
        positive = np.flatnonzero(w > 0) if weighted else np.arange(1)
        return int(positive[0]) if positive.size else 0
    target = u * csum[-1]
    ch = min(int(np.searchsorted(csum, target, side="right")), len(pot_c) - 1)
    s, e = ch * CHUNK, min(len(closest), (ch + 1) * CHUNK)
    v = closest[s:e].astype(np.float64)
    if weighted:
        v *= w[s:e]
    cs = np.cumsum(v) + (csum[ch - 1] if ch > 0 else 0.0)
    p = int(np.searchsorted(cs, target, side="right"))
    p = min(p, e - s - 1)
    positive = np.flatnonzero(v > 0)
    if positive.size == 0:
        positive = np.flatnonzero(closest > 0)
        return int(positive[-1]) if positive.size else 0
    # never pick a point that already sits on a centre (zero potential)
    q = positive[np.searchsorted(positive, p)] if p <= positive[-1] else positive[-1]
    return s + int(q)


def pp_trials(X, w, weighted, closest, cands, pot_tc, state=None):
    """See :func:`kmpress.kernels_numba.pp_trials`."""
    for ch, s, e in _bounds(X.shape[1]):
        diff = X[:, s:e].T[:, None, :] - cands[None, :, :]
        d = np.einsum("itj,itj->it", diff, diff)
        np.minimum(d, closest[s:e, None], out=d)
        d64 = d.astype(np.float64)
        pot_tc[ch] = w[s:e] @ d64 if weighted else d64.sum(axis=0)


def gather(lut, inverse, out):
    """See :func:`kmpress.kernels_numba.gather`."""
    np.take(lut, inverse, out=out)


# --------------------------------------------------------------------------------------------
# remap: sequential kernels as plain loops, and the error figures
# --------------------------------------------------------------------------------------------


def floyd_steinberg(Xt, inverse, transparent, has_alpha, entries, lo, hi, G, h, w, out, cand, ncand, strength):
    """See :func:`kmpress.kernels_numba.floyd_steinberg` (a full nearest-entry search per pixel
    instead of the cell lists: the same entry, ties to the lowest index)."""
    D = Xt.shape[1]
    ent = [list(map(float, row)) for row in entries]
    lo_, hi_ = list(map(float, lo)), list(map(float, hi))
    cols = Xt.astype(np.float64).tolist()
    inv = inverse.tolist()
    clear = [not (has_alpha and bool(transparent[u])) for u in range(len(cols))]
    weights = (7.0 / 16.0, 3.0 / 16.0, 5.0 / 16.0, 1.0 / 16.0)

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

    cur = [[0.0] * D for _ in range(w + 2)]
    nxt = [[0.0] * D for _ in range(w + 2)]
    for y in range(h):
        d = 1 if (y & 1) == 0 else -1
        for i in range(w):
            x = i if d == 1 else w - 1 - i
            p = y * w + x
            u = inv[p]
            if not clear[u]:
                out[p] = nearest_entry(cols[u])
                continue
            v = [min(hi_[j], max(lo_[j], cols[u][j] + cur[x + 1][j])) for j in range(D)]
            k = nearest_entry(v)
            out[p] = k
            xa, xb = x + d, x - d
            below = y + 1 < h
            ok_a = 0 <= xa < w and clear[inv[p + d]]
            ok_ba = below and 0 <= xa < w and clear[inv[p + w + d]]
            ok_b = below and clear[inv[p + w]]
            ok_bb = below and 0 <= xb < w and clear[inv[p + w - d]]
            for j in range(D):
                e = (v[j] - ent[k][j]) * strength
                if ok_a:
                    cur[xa + 1][j] += e * weights[0]
                if ok_bb:
                    nxt[xb + 1][j] += e * weights[1]
                if ok_b:
                    nxt[x + 1][j] += e * weights[2]
                if ok_ba:
                    nxt[xa + 1][j] += e * weights[3]
        cur, nxt = nxt, [[0.0] * D for _ in range(w + 2)]


def smooth(Xt, inverse, labels, best_d, entries, lam, h, w, out):
    """See :func:`kmpress.kernels_numba.smooth`."""
    D = Xt.shape[1]
    cols = Xt.astype(np.float64).tolist()
    ent = entries.tolist()
    inv, lab, bd = inverse.tolist(), labels.tolist(), best_d.tolist()
    res = [0] * (h * w)
    for y in range(h):
        for x in range(w):
            p = y * w + x
            u = inv[p]
            k = lab[u]
            limit = bd[u] + lam
            pick, pick_d = k, np.inf
            for nb in (0, 1):
                if nb == 0:
                    if x == 0:
                        continue
                    e = res[p - 1]
                else:
                    if y == 0:
                        continue
                    e = res[p - w]
                if e == k:
                    pick = k
                    break
                d = 0.0
                for j in range(D):
                    t = cols[u][j] - ent[e][j]
                    d += t * t
                if d < limit and d < pick_d:
                    pick, pick_d = e, d
            res[p] = pick
    out[:] = res


def pixel_stats(colors, inverse, idx, palette, lab_c, lab_p, sse_c, de_c):
    """See :func:`kmpress.kernels_numba.pixel_stats`."""
    N = inverse.shape[0]
    for c in range((N + STATS_CHUNK - 1) // STATS_CHUNK):
        s, e = c * STATS_CHUNK, min(N, (c + 1) * STATS_CHUNK)
        u, k = inverse[s:e], idx[s:e]
        err = colors[u].astype(np.int64) - palette[k].astype(np.int64)
        sse_c[c] = int((err * err).sum())
        t = lab_c[u] - lab_p[k]
        de_c[c] = float(np.sqrt((t * t).sum(axis=1)).sum())


def _lab(colors, lut, m1, m2):
    # the numba kernel's arithmetic, in its order, on whole columns
    lr, lg, lb = lut[colors[:, 0]], lut[colors[:, 1]], lut[colors[:, 2]]
    l_ = np.cbrt(m1[0, 0] * lr + m1[0, 1] * lg + m1[0, 2] * lb)
    m_ = np.cbrt(m1[1, 0] * lr + m1[1, 1] * lg + m1[1, 2] * lb)
    s_ = np.cbrt(m1[2, 0] * lr + m1[2, 1] * lg + m1[2, 2] * lb)
    return [m2[j, 0] * l_ + m2[j, 1] * m_ + m2[j, 2] * s_ for j in range(3)]


def colors_to_lab(colors, lut, m1, m2, scale, out):
    """See :func:`kmpress.kernels_numba.colors_to_lab`."""
    for j, v in enumerate(_lab(colors, lut, m1, m2)):
        out[j] = (v * scale).astype(np.float32)
    if colors.shape[1] == 4:
        out[3] = colors[:, 3]


def colors_to_lab64(colors, lut, m1, m2, out):
    """See :func:`kmpress.kernels_numba.colors_to_lab64`."""
    for j, v in enumerate(_lab(colors, lut, m1, m2)):
        out[:, j] = v


def delta_e_colours(colors, counts, palette, labels, lut, m1, m2, part):
    """See :func:`kmpress.kernels_numba.delta_e_colours`."""
    lab_c = np.stack(_lab(colors, lut, m1, m2), axis=1)
    lab_p = np.stack(_lab(palette, lut, m1, m2), axis=1)
    t = lab_c - lab_p[labels]
    v = counts * np.sqrt((t * t).sum(axis=1))
    chunk = 8192
    for c in range(part.shape[0]):
        part[c] = float(v[c * chunk : (c + 1) * chunk].sum())
