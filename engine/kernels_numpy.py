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

from .fixedmath import cbrt, cbrt_unit
from .histogram import spread_table

#: Points per chunk of the partial sums, as the numba kernels (so the seeding's sums match theirs).
CHUNK = 8192
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
    numba twin; the baseline always returns the per-pixel inverse)."""
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


#: Points per distance slab: bounds the (slab, K) float32 matrices (no N x K matrix of the whole).
SLAB = 32768


def _exact_labels(xb: np.ndarray, C32: np.ndarray) -> np.ndarray:
    """The numba search's arithmetic on a few points: float32 ``(x - c)^2`` summed over the
    channels in order, the first minimum winning."""
    t = xb[:, 0, None] - C32[None, :, 0]
    d = t * t
    for j in range(1, xb.shape[1]):
        t = xb[:, j, None] - C32[None, :, j]
        d = d + t * t
    return d.argmin(axis=1).astype(np.int32)


def _labels(X: np.ndarray, C32: np.ndarray, out: np.ndarray) -> None:
    """Nearest centroid of every point, as the numba kernels choose it, at matrix-product speed.

    Distances come from one float32 product per slab (``||c||^2 - 2 x.c``, as scikit-learn
    computes them); where the best and second-best of those are closer than their rounding
    could explain (a bound from the points' and centroids' norms), the point is decided again
    with the numba kernels' exact arithmetic (:func:`_exact_labels`). So the labels equal the
    numba backend's, whatever the BLAS and its thread count, and stay right far from the origin
    (the point is then simply decided exactly).
    """
    D, N = X.shape
    K = C32.shape[0]
    m2c = np.ascontiguousarray((-2.0 * C32).T)
    cc = np.einsum("kd,kd->k", C32, C32)
    cmax = float(np.sqrt(np.einsum("kd,kd->k", C32.astype(np.float64), C32.astype(np.float64)).max()))
    rows = None
    for s in range(0, N, SLAB):
        e = min(N, s + SLAB)
        xb = np.ascontiguousarray(X[:, s:e].T)
        if K == 1:
            out[s:e] = 0
            continue
        g = xb @ m2c
        g += cc
        if rows is None or rows.size != e - s:
            rows = np.arange(e - s)
        best = g.argmin(axis=1)
        gb = g[rows, best]
        g[rows, best] = np.inf
        gap = g.min(axis=1).astype(np.float64) - gb
        x64 = xb.astype(np.float64)
        reach = np.sqrt(np.einsum("nd,nd->n", x64, x64)) + cmax
        # both the product's and the direct float32 sums err by at most ~(D + 3) 2^-24 reach^2
        unsure = np.flatnonzero(gap <= reach * reach * 2.0**-19)
        if unsure.size:
            best[unsure] = _exact_labels(xb[unsure], C32)
        out[s:e] = best


def _chunk_sums(X, w, weighted, lab, K, sums_c, wsum_c) -> None:
    # per CHUNK of points and per cluster, as the numba kernels keep them
    D, N = X.shape
    key = (np.arange(N) // CHUNK) * K + lab
    size = sums_c.shape[0] * K
    wsum_c[:] = (np.bincount(key, weights=w, minlength=size) if weighted else np.bincount(key, minlength=size)).reshape(
        -1, K
    )
    for j in range(D):
        col = X[j].astype(np.float64)
        sums_c[:, :, j] = np.bincount(key, weights=col * w if weighted else col, minlength=size).reshape(-1, K)


def assign_accumulate(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, boxes=None):
    """See :func:`kmpress.kernels_numba.assign_accumulate` (the baseline sums every chunk afresh;
    for integer colours and counts, the same sums exactly)."""
    N = X.shape[1]
    lab = np.empty(N, np.int32)
    _labels(X, C32, lab)
    moved = labels != lab
    changed_c[:] = np.bincount(np.arange(N)[moved] // CHUNK, minlength=changed_c.shape[0])
    labels[:] = lab
    _chunk_sums(X, w, weighted, lab, C32.shape[0], sums_c, wsum_c)


def nearest(X, C32, labels, boxes=None):
    """See :func:`kmpress.kernels_numba.nearest`."""
    _labels(X, C32, labels)


def dist_to_assigned(X, C, labels, out):
    """See :func:`kmpress.kernels_numba.dist_to_assigned` (the same sums in the same order)."""
    D = X.shape[0]
    d2 = np.zeros(X.shape[1])
    for j in range(D):
        t = X[j].astype(np.float64) - C[labels, j]
        d2 += t * t
    out[:] = d2


def block_boxes(X):
    """The NumPy baseline does not prune: no boxes (returns None)."""
    return None


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
    chunk. (``cumsum`` adds strictly in order, where ``sum`` would add pairwise.)"""
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


# --------------------------------------------------------------------------------------------
# the adaptive dither: contrast maps, palette weights, dither map, error diffusion
# --------------------------------------------------------------------------------------------


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
    Xt, inverse, transparent, has_alpha, entries, lo, hi, G, h, w, out, cand, ncand, level, dead, maxerr, s_cap, e_cap
):
    """See :func:`kmpress.kernels_numba.adaptive_dither` (a full nearest-entry search per pixel)."""
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
            lv = lev[p] / 255.0
            s = [cur[x + 1][j] * lv for j in range(D)]
            s2 = 0.0
            for j in range(D):
                s2 += s[j] * s[j]
            ratio = 0.0 if s2 < dead else (s_cap if s2 > maxerr else 1.0)
            v = [min(hi_[j], max(lo_[j], cols[u][j] + s[j] * ratio)) for j in range(D)]
            k = nearest_entry(v)
            out[p] = k
            e2 = 0.0
            for j in range(D):
                t = v[j] - ent[k][j]
                e2 += t * t
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


# SSIMULACRA 2 (see kmpress.kernels_numba._ssim2: the same operations, whole planes at once)

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
