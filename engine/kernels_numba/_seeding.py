"""Stage 3 kernels: greedy weighted k-means++ seeding with exact block pruning.

A candidate centre whose distance to a block's bounding box is at least the block's largest
``closest`` distance cannot lower any of the block's points, so the block is skipped and
contributes its stored potential. Block sums use one fixed-order lane sum (:func:`_lane_sum`)
everywhere, so a skipped block contributes exactly what computing it would have.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._jit import BLOCK, CHUNK, kernel, twins


@njit
def _lane_sum(a32, nb):
    # Fixed-order sum of a block's float32 lanes in float64: eight interleaved partial sums,
    # combined pairwise. The same arithmetic in pp_state, pp_update and pp_trials, so a block
    # skipped by pruning contributes exactly what computing it would have.
    for i in range(nb, BLOCK):
        a32[i] = 0.0
    # float64 accumulators, explicitly: in plain Python (NUMBA_DISABLE_JIT) a 0.0 plus a
    # float32 would stay float32
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = np.float64(0.0)
    for g in range(0, BLOCK, 8):
        s0 += a32[g]
        s1 += a32[g + 1]
        s2 += a32[g + 2]
        s3 += a32[g + 3]
        s4 += a32[g + 4]
        s5 += a32[g + 5]
        s6 += a32[g + 6]
        s7 += a32[g + 7]
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit
def _lane_sum_max(a32, closest, b0, nb, bpot, b):
    # bpot[b] = lane sum of a32; returns the largest closest of the block (8 lanes, no branch)
    bpot[b] = _lane_sum(a32, nb)
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = np.float32(0.0)
    u0 = np.uint64(b0)  # unsigned indices: see ._jit
    g = 0
    while g + 8 <= nb:
        p = u0 + np.uint64(g)
        m0 = max(m0, closest[p])
        m1 = max(m1, closest[p + np.uint64(1)])
        m2 = max(m2, closest[p + np.uint64(2)])
        m3 = max(m3, closest[p + np.uint64(3)])
        m4 = max(m4, closest[p + np.uint64(4)])
        m5 = max(m5, closest[p + np.uint64(5)])
        m6 = max(m6, closest[p + np.uint64(6)])
        m7 = max(m7, closest[p + np.uint64(7)])
        g += 8
    for i in range(g, nb):
        m0 = max(m0, closest[u0 + np.uint64(i)])
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))


@njit
def _box_lower_bound(bmin, bmax, b, c):
    # squared distance from c to the block's bounding box: no point of the block is nearer
    lb = np.float32(0.0)
    for j in range(c.shape[0]):
        t = max(np.float32(0.0), bmin[b, j] - c[j], c[j] - bmax[b, j])
        lb += t * t
    return lb


@twins(
    "Tuple((f4[:, ::1], f4[:, ::1], f4[::1], f8[::1]))(f4[:, ::1], f8[::1], b1, f4[::1], f8[::1])",
    work=lambda X, *rest: X.shape[1] * 8,
)
def pp_state(X, w, weighted, closest, pot_c):
    """Per-block bookkeeping for k-means++ pruning, and the chunk potentials of ``closest``.

    Returns ``(bmin, bmax, bmaxcl, bpot)``: each block's bounding box (nb, D) float32, its largest
    ``closest`` (nb,) float32 and its potential (nb,) float64. A candidate whose distance to a
    block's box is at least the block's largest ``closest`` cannot lower any of its points, so the
    block is skipped. The histogram's colours are sorted by packed value, so blocks are compact.

    Parameters
    ----------
    X : (D, N) float32, IN
    closest : (N,) float32, IN
    pot_c : (n_chunks,) float64, OUT
    """
    D, N = X.shape
    nbk = (N + BLOCK - 1) // BLOCK
    bmin = np.empty((nbk, D), np.float32)
    bmax = np.empty((nbk, D), np.float32)
    bmaxcl = np.empty(nbk, np.float32)
    bpot = np.empty(nbk, np.float64)
    for ch in prange((N + CHUNK - 1) // CHUNK):
        a32 = np.empty(BLOCK, np.float32)
        end = min(N, (ch + 1) * CHUNK)
        tot = 0.0
        for b0 in range(ch * CHUNK, end, BLOCK):
            b = b0 // BLOCK
            nb = min(BLOCK, end - b0)
            mx = np.float32(0.0)
            u0 = np.uint64(b0)  # unsigned indices: see ._jit
            for j in range(D):
                lo = X[j, b0]
                hi = X[j, b0]
                for i in range(nb):
                    v = X[j, u0 + np.uint64(i)]
                    lo = min(lo, v)
                    hi = max(hi, v)
                bmin[b, j] = lo
                bmax[b, j] = hi
            for i in range(nb):
                p = u0 + np.uint64(i)
                cl = closest[p]
                mx = max(mx, cl)
                a32[i] = np.float32(w[p] if weighted else 1.0) * cl
            bmaxcl[b] = mx
            bpot[b] = _lane_sum(a32, nb)
            tot += bpot[b]
        pot_c[ch] = tot
    return bmin, bmax, bmaxcl, bpot


@twins(
    "void(f4[:, ::1], f8[::1], b1, f4[::1], f4[::1], f8[::1], Tuple((f4[:, ::1], f4[:, ::1], f4[::1], f8[::1])))",
    work=lambda X, *rest: X.shape[1] * 8,
)
def pp_update(X, w, weighted, c, closest, pot_c, state):
    """Fold one new centre into the closest squared distances and refresh the chunk potentials.

    Parameters
    ----------
    X : (D, N) float32, IN
    w : (N,) float64, IN
    weighted : bool
    c : (D,) float32, IN; the new centre
    closest : (N,) float32, IN/OUT; squared distance to the nearest centre so far
    pot_c : (n_chunks,) float64, OUT; sum of ``w * closest`` per chunk
    state : tuple from :func:`pp_state`, IN/OUT
    """
    bmin, bmax, bmaxcl, bpot = state
    D, N = X.shape
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    c3 = c[D - 1]
    for ch in prange((N + CHUNK - 1) // CHUNK):
        a32 = np.empty(BLOCK, np.float32)
        end = min(N, (ch + 1) * CHUNK)
        tot = 0.0
        for b0 in range(ch * CHUNK, end, BLOCK):
            b = b0 // BLOCK
            nb = min(BLOCK, end - b0)
            if _box_lower_bound(bmin, bmax, b, c) < bmaxcl[b]:
                # plain indexing, no slices: a slice is a new array whose reference count both
                # threads would update atomically on every block; unsigned indices: see ._jit
                u0 = np.uint64(b0)
                for i in range(nb):
                    p = u0 + np.uint64(i)
                    t0 = X[0, p] - c0
                    t1 = X[1, p] - c1
                    t2 = X[2, p] - c2
                    d = t0 * t0 + t1 * t1 + t2 * t2
                    if D == 4:
                        t3 = X[3, p] - c3
                        d += t3 * t3
                    m = min(closest[p], d)
                    closest[p] = m
                    a32[i] = np.float32(w[p] if weighted else 1.0) * m
                bmaxcl[b] = _lane_sum_max(a32, closest, b0, nb, bpot, b)
            tot += bpot[b]
        pot_c[ch] = tot


@kernel("i8(f8[::1], b1, f4[::1], f8[::1], f8)")
def pp_sample(w, weighted, closest, pot_c, u):
    """Index of the point where the running sum of ``w * closest`` first exceeds ``u``.

    ``u`` is drawn uniformly in [0, 1) and scaled here by the total potential (summed over the
    chunks in order), so a point is picked with probability proportional to ``w * closest``.
    """
    nc = pot_c.shape[0]
    N = closest.shape[0]
    total = 0.0
    for ch in range(nc):
        total += pot_c[ch]
    if not total > 0.0:
        # every point of positive weight already sits on a centre: the first such point
        for p in range(N):
            if not weighted or w[p] > 0.0:
                return p
        return 0
    target = u * total
    acc = 0.0
    last = 0
    for ch in range(nc):
        if ch < nc - 1 and acc + pot_c[ch] <= target:
            acc += pot_c[ch]
            continue
        # Rounding can leave the in-chunk running sum just short of the target: then the scan
        # simply goes on into the next chunk, and at the very end the last candidate wins.
        for p in range(ch * CHUNK, min(N, (ch + 1) * CHUNK)):
            v = (w[p] if weighted else 1.0) * closest[p]
            if v > 0.0:
                last = p
                acc += v
                if acc > target:
                    return p
    return last


@twins(
    "void(f4[:, ::1], f8[::1], b1, f4[::1], f4[:, ::1], f8[:, ::1], Tuple((f4[:, ::1], f4[:, ::1], f4[::1], f8[::1])))",
    work=lambda X, w, weighted, closest, cands, *rest: X.shape[1] * cands.shape[0],
)
def pp_trials(X, w, weighted, closest, cands, pot_tc, state):
    """Potential (sum of ``w * min(closest, d(x, cand))``) of each candidate centre, per chunk.

    Parameters
    ----------
    X : (D, N) float32, IN
    w : (N,) float64, IN
    weighted : bool
    closest : (N,) float32, IN
    cands : (T, D) float32, IN
    pot_tc : (n_chunks, T) float64, OUT
    state : tuple from :func:`pp_state`, IN
    """
    bmin, bmax, bmaxcl, bpot = state
    D, N = X.shape
    T = cands.shape[0]
    for ch in prange((N + CHUNK - 1) // CHUNK):
        a32 = np.empty(BLOCK, np.float32)
        wb = np.empty(BLOCK, np.float32)
        tot = np.zeros(T, np.float64)
        end = min(N, (ch + 1) * CHUNK)
        for b0 in range(ch * CHUNK, end, BLOCK):
            b = b0 // BLOCK
            nb = min(BLOCK, end - b0)
            loaded = False
            for t in range(T):
                c0 = cands[t, 0]
                c1 = cands[t, 1]
                c2 = cands[t, 2]
                c3 = cands[t, D - 1]
                lb = np.float32(0.0)
                for j in range(D):
                    cj = cands[t, j]
                    e = max(np.float32(0.0), bmin[b, j] - cj, cj - bmax[b, j])
                    lb += e * e
                if lb >= bmaxcl[b]:
                    tot[t] += bpot[b]
                    continue
                u0 = np.uint64(b0)  # unsigned indices: see ._jit
                if not loaded:
                    for i in range(nb):
                        wb[i] = w[u0 + np.uint64(i)] if weighted else 1.0
                    loaded = True
                if D == 3:
                    for i in range(nb):
                        p = u0 + np.uint64(i)
                        t0 = X[0, p] - c0
                        t1 = X[1, p] - c1
                        t2 = X[2, p] - c2
                        a32[i] = wb[i] * min(closest[p], t0 * t0 + t1 * t1 + t2 * t2)
                else:
                    for i in range(nb):
                        p = u0 + np.uint64(i)
                        t0 = X[0, p] - c0
                        t1 = X[1, p] - c1
                        t2 = X[2, p] - c2
                        t3 = X[3, p] - c3
                        a32[i] = wb[i] * min(closest[p], t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3)
                tot[t] += _lane_sum(a32, nb)
        for t in range(T):
            pot_tc[ch, t] = tot[t]
