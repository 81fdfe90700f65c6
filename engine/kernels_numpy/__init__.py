"""Backend "numpy": the kernels of :mod:`kmpress.kernels_numba`, with NumPy. Never imports numba.

Same names, arguments and buffers, so the Lloyd loop, the seeding and the remap run unchanged on
either backend. The nearest-centroid search is the good NumPy way (distances by one float32
matrix product per chunk, ``‖c‖² − 2x·c``, as scikit-learn does), over chunks of
:data:`CHUNK` points so that no N×K matrix of the whole input is ever built; the points whose
best and second-best products are closer than their rounding could explain are decided again
with the numba kernels' arithmetic, so the labels equal numba's exactly. Sums are float64 via
``np.bincount``; k-means++ reproduces numba's float32 products and summation order. The results
are those of the numba backend (the Lloyd history's running sums of float weights aside, which
differ in the last bits).
"""

from __future__ import annotations

import numpy as np

from ..fixedmath import cbrt
from ..histogram import spread_table

# the twins that live in their own modules, re-exported: every backend module has the same names
from ._dither import adaptive_dither as adaptive_dither
from ._dither import color_weights as color_weights
from ._dither import contrast_maps as contrast_maps
from ._dither import dither_map as dither_map
from ._search import CHUNK as CHUNK
from ._search import Workspace as Workspace
from ._search import nearest_from_bounds
from ._ssim2 import ssim2_half as ssim2_half
from ._ssim2 import ssim2_half_u8 as ssim2_half_u8
from ._ssim2 import ssim2_rows as ssim2_rows
from ._ssim2 import ssim2_rows_u8 as ssim2_rows_u8

#: Pixels per chunk of :func:`pixel_stats` (as the numba kernel).
STATS_CHUNK = 1 << 16
NAME = "numpy"


def n_chunks(n: int) -> int:
    """Number of :data:`CHUNK`-sized chunks covering ``n`` points."""
    return (n + CHUNK - 1) // CHUNK


_SPREAD = {3: spread_table(3), 4: spread_table(4)}


def _morton(px):
    n, nch = px.shape
    lut = _SPREAD[nch]
    codes = np.zeros(n, np.uint32)
    for j in range(nch):
        codes |= lut[px[:, j]] << np.uint32(nch - 1 - j)
    return codes


def histogram(px):
    """Distinct colours (as Morton codes) with counts and each pixel's colour index (see the
    numba twin; the baseline always returns the per-pixel inverse).
    """
    ucodes, inverse, counts = np.unique(_morton(px), return_inverse=True, return_counts=True)
    return ucodes.astype(np.uint32), counts.astype(np.int64), inverse.astype(np.int32).ravel()


def color_index(px, codes):
    """See :func:`kmpress.kernels_numba.color_index`."""
    return np.searchsorted(codes, _morton(px)).astype(np.int32)


def remap_codes(px, lut, out):
    """See :func:`kmpress.kernels_numba.remap_codes`."""
    np.take(lut, _morton(px), out=out)


def unpack_codes(codes, nch):
    """See :func:`kmpress.kernels_numba.unpack_codes`."""
    out = np.zeros((codes.shape[0], nch), np.uint8)
    for j in range(nch):
        v = np.zeros(codes.shape[0], np.uint32)
        for b in range(8):
            v |= ((codes >> np.uint32(nch * b + nch - 1 - j)) & np.uint32(1)) << np.uint32(b)
        out[:, j] = v
    return out


def block_boxes(X, reach=None) -> Workspace:
    """The NumPy backend's search state for ``X`` (no pruning boxes): a :class:`Workspace`,
    made once per fit and passed to every :func:`assign_accumulate` and :func:`nearest`.
    ``reach``: the largest magnitudes of ``X``'s blocks, when already measured (see
    :class:`Workspace`)."""
    return Workspace(X, reach)


def assign_accumulate(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, boxes=None):
    """See :func:`kmpress.kernels_numba.assign_accumulate` (NumPy sums every chunk afresh, in
    the order of its points; for integer colours and counts, the same sums exactly).
    ``boxes``: the :class:`Workspace` of ``X`` from :func:`block_boxes` (made here if None)."""
    ws = boxes if isinstance(boxes, Workspace) else Workspace(X)
    D, N = X.shape
    K = C32.shape[0]
    ws.centroids(C32)
    # bounds cost next to nothing in the (n, K) search, which finds the runner-up anyway
    keep = ws.keep_bounds and not ws.columns
    ws.keep_bounds = False
    ws.record(keep)
    for c in range(n_chunks(N)):
        s, e = c * CHUNK, min(N, (c + 1) * CHUNK)
        lab = ws.search(X, s, e)
        old = labels[s:e]
        moved = ws.moved[: e - s]
        np.not_equal(old, lab, out=moved)
        changed_c[c] = np.count_nonzero(moved)
        old[:] = lab
        if weighted:
            ww = w[s:e]
            wsum_c[c] = np.bincount(lab, weights=ww, minlength=K)
            for j in range(D):
                sums_c[c, :, j] = np.bincount(lab, weights=X[j, s:e] * ww, minlength=K)
        else:
            wsum_c[c] = np.bincount(lab, minlength=K)
            for j in range(D):
                sums_c[c, :, j] = np.bincount(lab, weights=X[j, s:e], minlength=K)
    if keep:
        ws.kept()


def nearest(X, C32, labels, boxes=None):
    """See :func:`kmpress.kernels_numba.nearest` (``boxes`` as in :func:`assign_accumulate`)."""
    ws = boxes if isinstance(boxes, Workspace) else Workspace(X)
    N = X.shape[1]
    if ws.bounds is not None and ws.bounds[0].shape == C32.shape and nearest_from_bounds(ws, X, C32, labels):
        ws.bounds = None
        return
    ws.bounds = None
    ws.centroids(C32)
    for s in range(0, N, CHUNK):
        e = min(N, s + CHUNK)
        labels[s:e] = ws.search(X, s, e)


def dist_to_assigned(X, C, labels, out):
    """See :func:`kmpress.kernels_numba.dist_to_assigned` (the same sums in the same order)."""
    D = X.shape[0]
    d2 = np.zeros(X.shape[1])
    for j in range(D):
        t = X[j].astype(np.float64) - C[labels, j]
        d2 += t * t
    out[:] = d2


def reach_sums(X, counts, C, stride, acc, den):
    """See :func:`kmpress.kernels_numba.reach_sums` (the same float64 operations in the same
    order, then exact integer sums)."""
    D = X.shape[0]
    K = C.shape[0]
    P = X[:, ::stride].astype(np.float64)
    w = counts[::stride]
    n = P.shape[1]
    b1 = np.full(n, np.inf)
    b2 = np.full(n, np.inf)
    k1 = np.zeros(n, np.int64)
    k2 = np.zeros(n, np.int64)
    for k in range(K):
        d2 = np.zeros(n)
        for j in range(D):
            t = P[j] - C[k, j]
            d2 = d2 + t * t
        first = d2 < b1
        second = ~first & (d2 < b2)
        b2 = np.where(first, b1, np.where(second, d2, b2))
        k2 = np.where(first, k1, np.where(second, k, k2))
        b1 = np.where(first, d2, b1)
        k1 = np.where(first, k, k1)
    vv = np.zeros(n)
    xv = np.zeros(n)
    for j in range(D):
        v = C[k2, j] - C[k1, j]
        vv = vv + v * v
        xv = xv + (P[j] - C[k1, j]) * v
    pos = vv > 0.0
    t = np.where(pos, np.minimum(1.0, np.maximum(0.0, xv / np.where(pos, vv, 1.0))), 0.0)
    tq = np.rint(t * 256.0).astype(np.int64)
    acc[:] = 0
    den[:] = 0
    for j in range(D):
        r = P[j] - (C[k1, j] + t * (C[k2, j] - C[k1, j]))
        rq = np.rint(r * 256.0).astype(np.int64)
        np.add.at(acc[:, j], k1, w * (256 - tq) * rq)
        np.add.at(acc[:, j], k2, w * tq * rq)
    np.add.at(den, k1, w * (256 - tq))
    np.add.at(den, k2, w * tq)


# --------------------------------------------------------------------------------------------
# k-means++: the numba kernels' float32 products and fixed-order float64 sums, so that the same
# draws pick the same points (the numba kernels only add block pruning, which changes no sum)
# --------------------------------------------------------------------------------------------

#: Points per block of the numba kernels' potentials (their lane sums run over blocks).
BLOCK = 256


def _sq_dist(X, c):
    t = X[0] - c[0]
    d = t * t
    for j in range(1, X.shape[0]):
        t = X[j] - c[j]
        d = d + t * t
    return d


def _potentials(a32: np.ndarray, n_chunk: int) -> np.ndarray:
    """Chunk sums of float32 values (..., N) as the numba kernels form them: in each block of 256,
    eight interleaved lanes summed in float64 and combined pairwise; blocks summed in order per
    chunk. (``cumsum`` adds strictly in order, where ``sum`` would add pairwise.)
    """
    lead, n = a32.shape[:-1], a32.shape[-1]
    nb = -(-n // BLOCK)
    pad = np.zeros((*lead, nb * BLOCK), np.float64)
    pad[..., :n] = a32
    s = np.cumsum(pad.reshape(*lead, nb, BLOCK // 8, 8), axis=-2)[..., -1, :]
    block = ((s[..., 0] + s[..., 1]) + (s[..., 2] + s[..., 3])) + ((s[..., 4] + s[..., 5]) + (s[..., 6] + s[..., 7]))
    per = CHUNK // BLOCK
    padb = np.zeros((*lead, n_chunk * per))
    padb[..., :nb] = block
    return np.cumsum(padb.reshape(*lead, n_chunk, per), axis=-1)[..., -1].copy()


def _w32(w, weighted, n):
    return w.astype(np.float32) if weighted else np.ones(n, np.float32)


def pp_state(X, w, weighted, closest, pot_c):
    """See :func:`kmpress.kernels_numba.pp_state` (the baseline keeps no pruning state: None)."""
    with np.errstate(over="ignore"):  # closest starts at the largest float32: inf, as in numba
        pot_c[:] = _potentials(_w32(w, weighted, closest.shape[0]) * closest, pot_c.shape[0])
    return None


def pp_update(X, w, weighted, c, closest, pot_c, state=None):
    """See :func:`kmpress.kernels_numba.pp_update`."""
    np.minimum(closest, _sq_dist(X, c), out=closest)
    pot_c[:] = _potentials(_w32(w, weighted, closest.shape[0]) * closest, pot_c.shape[0])


def pp_sample(w, weighted, closest, pot_c, u):
    """See :func:`kmpress.kernels_numba.pp_sample` (the same sums in the same order)."""
    N = closest.shape[0]
    total = float(np.cumsum(pot_c)[-1])
    if not total > 0.0:
        if not weighted:
            return 0
        positive = np.flatnonzero(w > 0)
        return int(positive[0]) if positive.size else 0
    target = u * total
    acc, last = 0.0, 0
    nc = pot_c.shape[0]
    for ch in range(nc):
        if ch < nc - 1 and acc + pot_c[ch] <= target:
            acc += pot_c[ch]
            continue
        s, e = ch * CHUNK, min(N, (ch + 1) * CHUNK)
        v = closest[s:e].astype(np.float64)
        if weighted:
            v = w[s:e] * v
        pos = np.flatnonzero(v > 0.0)
        if not pos.size:
            continue
        run = np.cumsum(np.concatenate(([acc], v[pos])))[1:]
        hit = np.flatnonzero(run > target)
        if hit.size:
            return s + int(pos[hit[0]])
        acc, last = float(run[-1]), s + int(pos[-1])
    return last


def pp_trials(X, w, weighted, closest, cands, pot_tc, state=None):
    """See :func:`kmpress.kernels_numba.pp_trials`."""
    t = X[0][None, :] - cands[:, 0, None]
    d = t * t
    for j in range(1, X.shape[0]):
        t = X[j][None, :] - cands[:, j, None]
        d = d + t * t
    pot_tc[:] = _potentials(_w32(w, weighted, closest.shape[0]) * np.minimum(closest, d), pot_tc.shape[0]).T


def gather(lut, inverse, out):
    """See :func:`kmpress.kernels_numba.gather`."""
    np.take(lut, inverse, out=out)


def expand(palette, idx, out):
    """See :func:`kmpress.kernels_numba.expand`."""
    np.take(palette, idx, axis=0, out=out)


# --------------------------------------------------------------------------------------------
# remap: sequential kernels as plain loops, and the error figures
# --------------------------------------------------------------------------------------------


def floyd_steinberg(Xt, inverse, transparent, has_alpha, entries, lo, hi, G, h, w, out, cand, ncand, strength):
    """See :func:`kmpress.kernels_numba.floyd_steinberg` (a full nearest-entry search per pixel
    instead of the cell lists: the same entry, ties to the lowest index).
    """
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
        # added one after the other, as the numba kernel does (np.sum adds pairwise)
        de_c[c] = float(np.cumsum(np.sqrt((t * t).sum(axis=1)))[-1])


def _lab(colors, lut, m1, m2):
    # the numba kernel's arithmetic, in its order, on whole columns (fixedmath.cbrt: np.cbrt's
    # last bits depend on the CPU)
    lr, lg, lb = lut[colors[:, 0]], lut[colors[:, 1]], lut[colors[:, 2]]
    l_ = cbrt(m1[0, 0] * lr + m1[0, 1] * lg + m1[0, 2] * lb)
    m_ = cbrt(m1[1, 0] * lr + m1[1, 1] * lg + m1[1, 2] * lb)
    s_ = cbrt(m1[2, 0] * lr + m1[2, 1] * lg + m1[2, 2] * lb)
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


def delta_e_colors(colors, counts, palette, labels, lut, m1, m2, part):
    """See :func:`kmpress.kernels_numba.delta_e_colors`."""
    lab_c = np.stack(_lab(colors, lut, m1, m2), axis=1)
    lab_p = np.stack(_lab(palette, lut, m1, m2), axis=1)
    t = lab_c - lab_p[labels]
    v = counts * np.sqrt((t * t).sum(axis=1))
    for c in range(part.shape[0]):
        # added one after the other, as the numba kernel does (np.sum adds pairwise)
        part[c] = float(np.cumsum(v[c * CHUNK : (c + 1) * CHUNK])[-1])
