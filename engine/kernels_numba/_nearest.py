"""Stage 3 kernels: nearest-centroid search, with the Lloyd accumulation, and distances.

The nearest-centroid search runs on blocks of :data:`BLOCK` consecutive points: a block skips the
centroids that cannot be nearest to any of its points (exact pruning by the block's bounding box),
then keeps each point's best distance while the remaining centroids stream past, a loop over the
points that vectorises. The histogram lists colours in Z-order, so blocks are compact.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._jit import BLOCK, CHUNK, kernel, twins


@kernel("UniTuple(f4[:, ::1], 2)(f4[:, ::1])", parallel=True)
def block_boxes(X):
    """Bounding box of every block of :data:`BLOCK` consecutive points.

    Parameters
    ----------
    X : (D, N) float32, IN

    Returns
    -------
    bmin, bmax : (n_blocks, D) float32
    """
    D, N = X.shape
    nbk = (N + BLOCK - 1) // BLOCK
    bmin = np.empty((nbk, D), np.float32)
    bmax = np.empty((nbk, D), np.float32)
    for b in prange(nbk):
        b0 = b * BLOCK
        nb = min(BLOCK, N - b0)
        u0 = np.uint64(b0)  # unsigned indices: see ._jit
        for j in range(D):
            lo = X[j, b0]
            hi = X[j, b0]
            for i in range(1, nb):
                v = X[j, u0 + np.uint64(i)]
                lo = min(lo, v)
                hi = max(hi, v)
            bmin[b, j] = lo
            bmax[b, j] = hi
    return bmin, bmax


#: Relative and absolute slack on the pruning bound: a centroid is dropped for a block only when
#: it is farther than this margin beyond the bound, so float32 rounding can never drop the
#: nearest one (or one tied with it).
_PRUNE_REL = np.float32(1.0 / 4096)
_PRUNE_ABS = np.float32(1e-3)


@njit
def _block_candidates(bmin, bmax, b, C32, src, nsrc, cand):
    # The centroids among src[:nsrc] (in increasing k) that can be nearest to some point of box
    # b: the bound ub is the smallest largest-distance from one of them to the box; a centroid
    # whose smallest distance to the box exceeds ub is farther than that one from every point of
    # the box. Exact when src holds every centroid that can be nearest in the box (all of them,
    # or the list of a box that holds this one): ub can only be larger than over all centroids.
    # Kept in increasing k, so ties still go to the lowest index. Returns how many were kept.
    D = C32.shape[1]
    ub = np.float32(np.inf)
    for q in range(nsrc):
        k = src[q]
        far = np.float32(0.0)
        for j in range(D):
            t = max(C32[k, j] - bmin[b, j], bmax[b, j] - C32[k, j])
            far += t * t
        ub = min(ub, far)
    ub = ub + ub * _PRUNE_REL + _PRUNE_ABS
    n = 0
    for q in range(nsrc):
        k = src[q]
        near = np.float32(0.0)
        for j in range(D):
            t = max(np.float32(0.0), bmin[b, j] - C32[k, j], C32[k, j] - bmax[b, j])
            near += t * t
        if near <= ub:
            cand[n] = k
            n += 1
    return n


@njit
def _chunk_candidates(bmin, bmax, c, N, C32, ccand):
    # _block_candidates of the box around the blocks of chunk c (of N points), from every
    # centroid, into ccand: the chunk's blocks then search only its list (a few dozen of 256
    # centroids), not all of them. Once a chunk, so its few small arrays cost nothing.
    K, D = C32.shape
    cmin = np.empty((1, D), np.float32)
    cmax = np.empty((1, D), np.float32)
    b0 = c * (CHUNK // BLOCK)
    b1 = (min(N, (c + 1) * CHUNK) + BLOCK - 1) // BLOCK
    for j in range(D):
        lo = bmin[b0, j]
        hi = bmax[b0, j]
        for b in range(b0 + 1, b1):
            lo = min(lo, bmin[b, j])
            hi = max(hi, bmax[b, j])
        cmin[0, j] = lo
        cmax[0, j] = hi
    return _block_candidates(cmin, cmax, 0, C32, np.arange(K), K, ccand)


@njit
def _block_nearest(X, b0, nb, C32, bd, bk, cand, ncand):
    # For B points (planar, unit stride) keep the best squared distance and its centroid while
    # the candidate centroids stream past: the i-loop has no dependence across i and vectorises.
    # Plain indexing rather than slices: slices are arrays whose reference counts both threads
    # would update atomically. The point index is unsigned (see ._jit): signed, the loads of X
    # were gathers and the loop ran 3x slower.
    D = X.shape[0]
    u0 = np.uint64(b0)
    for i in range(nb):
        bd[i] = np.inf
        bk[i] = 0
    for q in range(ncand):
        k = cand[q]
        c0 = C32[k, 0]
        c1 = C32[k, 1]
        c2 = C32[k, 2]
        c3 = C32[k, D - 1]
        if D == 3:
            for i in range(nb):
                p = u0 + np.uint64(i)
                t0 = X[0, p] - c0
                t1 = X[1, p] - c1
                t2 = X[2, p] - c2
                d = t0 * t0 + t1 * t1 + t2 * t2
                # selects, not a branch: stores are unconditional and the loop vectorises (5x)
                o = bd[i]
                lt = d < o
                bk[i] = k if lt else bk[i]
                bd[i] = d if lt else o
        else:
            for i in range(nb):
                p = u0 + np.uint64(i)
                t0 = X[0, p] - c0
                t1 = X[1, p] - c1
                t2 = X[2, p] - c2
                t3 = X[3, p] - c3
                d = t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3
                o = bd[i]
                lt = d < o
                bk[i] = k if lt else bk[i]
                bd[i] = d if lt else o


@twins(
    "void(f4[:, ::1], f8[::1], b1, f4[:, ::1], i4[::1], f8[:, :, ::1], f8[:, ::1], i8[::1], UniTuple(f4[:, ::1], 2))",
    work=lambda X, w, weighted, C32, *rest: X.shape[1] * C32.shape[0],
)
def assign_accumulate(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, boxes):
    """Assign every point to its nearest centroid and keep the weighted sums per chunk.

    Parameters
    ----------
    X : (D, N) float32, IN
    w : (N,) float64, IN (ignored unless ``weighted``)
    weighted : bool
    C32 : (K, D) float32, IN; the centroids, for the nearest-centroid search
    labels : (N,) int32, IN/OUT; previous labels in (-1: none yet), new labels out
    sums_c : (n_chunks, K, D) float64, IN/OUT; weighted coordinate sums per chunk and cluster
        of the previous labels in (zeros with labels of -1), of the new labels out
    wsum_c : (n_chunks, K) float64, IN/OUT; weight per chunk and cluster, likewise
    changed_c : (n_chunks,) int64, OUT; labels that changed per chunk
    boxes : (bmin, bmax) from :func:`block_boxes` of ``X``, IN; lets each block skip the
        centroids that cannot be nearest to any of its points (exact: same labels)

    The sums are updated only for the points whose label changed (subtracted from the old cluster,
    added to the new one): after the first iterations few points move, so an iteration costs
    little more than the nearest-centroid search. Sums of 8-bit colours times integer counts are
    exact in float64, so this equals summing afresh. The inertia is not computed here: the caller
    gets it from the sums (see kmpress.clustering).
    """
    bmin, bmax = boxes
    D, N = X.shape
    K = C32.shape[0]
    nc = (N + CHUNK - 1) // CHUNK
    for c in prange(nc):
        bd = np.empty(BLOCK, np.float32)
        bk = np.empty(BLOCK, np.int32)
        cand = np.empty(K, np.int64)
        ccand = np.empty(K, np.int64)
        # chunk-local copy of this chunk's sums: private to this iteration of the prange, so no
        # race, and small enough to stay in L1
        acc = np.empty((K, 5), np.float64)
        for k in range(K):
            for j in range(D):
                acc[k, j] = sums_c[c, k, j]
            acc[k, 4] = wsum_c[c, k]
        changed = 0
        end = min(N, (c + 1) * CHUNK)
        nc_c = _chunk_candidates(bmin, bmax, c, N, C32, ccand)
        for b0 in range(c * CHUNK, end, BLOCK):
            nb = min(BLOCK, end - b0)
            ncand = _block_candidates(bmin, bmax, b0 // BLOCK, C32, ccand, nc_c, cand)
            _block_nearest(X, b0, nb, C32, bd, bk, cand, ncand)
            for i in range(nb):
                p = b0 + i
                k = bk[i]
                old = labels[p]
                if old != k:
                    changed += 1
                    labels[p] = k
                    wi = w[p] if weighted else 1.0
                    for j in range(D):
                        v = wi * np.float64(X[j, p])
                        acc[k, j] += v
                        if old >= 0:
                            acc[old, j] -= v
                    acc[k, 4] += wi
                    if old >= 0:
                        acc[old, 4] -= wi
        for k in range(K):
            for j in range(D):
                sums_c[c, k, j] = acc[k, j]
            wsum_c[c, k] = acc[k, 4]
        changed_c[c] = changed


@twins(
    "void(f4[:, ::1], f4[:, ::1], i4[::1], UniTuple(f4[:, ::1], 2))",
    work=lambda X, C32, *rest: X.shape[1] * C32.shape[0],
)
def nearest(X, C32, labels, boxes):
    """Nearest-centroid labels only (the final remap onto the uint8 palette).

    Parameters
    ----------
    X : (D, N) float32, IN
    C32 : (K, D) float32, IN
    labels : (N,) int32, OUT
    boxes : (bmin, bmax) from :func:`block_boxes` of ``X``, IN
    """
    bmin, bmax = boxes
    D, N = X.shape
    K = C32.shape[0]
    nc = (N + CHUNK - 1) // CHUNK
    for c in prange(nc):
        bd = np.empty(BLOCK, np.float32)
        bk = np.empty(BLOCK, np.int32)
        cand = np.empty(K, np.int64)
        ccand = np.empty(K, np.int64)
        end = min(N, (c + 1) * CHUNK)
        nc_c = _chunk_candidates(bmin, bmax, c, N, C32, ccand)
        for b0 in range(c * CHUNK, end, BLOCK):
            nb = min(BLOCK, end - b0)
            ncand = _block_candidates(bmin, bmax, b0 // BLOCK, C32, ccand, nc_c, cand)
            _block_nearest(X, b0, nb, C32, bd, bk, cand, ncand)
            u0 = np.uint64(b0)  # unsigned indices: see ._jit
            for i in range(nb):
                labels[u0 + np.uint64(i)] = bk[i]


@kernel("void(f4[:, ::1], f8[:, ::1], i4[::1], f8[::1])", parallel=True)
def dist_to_assigned(X, C, labels, out):
    """Squared float64 distance of each point to its assigned centroid (empty-cluster relocation).

    Parameters
    ----------
    X : (D, N) float32, IN
    C : (K, D) float64, IN
    labels : (N,) int32, IN
    out : (N,) float64, OUT
    """
    D, N = X.shape
    for c in prange((N + CHUNK - 1) // CHUNK):
        for p in range(c * CHUNK, min(N, (c + 1) * CHUNK)):
            k = labels[p]
            d2 = 0.0
            for j in range(D):
                t = np.float64(X[j, p]) - C[k, j]
                d2 += t * t
            out[p] = d2


@kernel("void(f4[:, ::1], i8[::1], f8[:, ::1], i8, i8[:, ::1], i8[::1])", parallel=True)
def reach_sums(X, counts, C, stride, acc, den):
    """Sum, per centroid, what a mix of its two nearest centroids leaves of every ``stride``-th point.

    For a point x with nearest centroid e1 and second nearest e2 (ties: the lowest index), its
    place along the segment is ``t = clip((x - e1).(e2 - e1) / |e2 - e1|^2, 0, 1)`` (0 where
    they coincide) and its residual ``r = x - (e1 + t (e2 - e1))``: the part of x that no
    dithering between e1 and e2 can reach. The sums take both in steps of 1/256, ``tq = round(256
    t)`` and ``rq = round(256 r)``: integers, so the sums are exact in any order, the same at any
    thread count and on both backends.

    Parameters
    ----------
    X : (D, N) float32, IN
    counts : (N,) int64, IN; the points' pixel counts
    C : (K, D) float64, IN, K >= 2
    stride : the points taken, ``0, stride, 2 stride, ...`` (>= 1)
    acc : (K, D) int64, OUT; per centroid the sum of ``count * share * rq`` over the points that
        have it as nearest (``share = 256 - tq``) or second nearest (``share = tq``)
    den : (K,) int64, OUT; per centroid the sum of ``count * share``
    """
    D, N = X.shape
    K = C.shape[0]
    n = (N + stride - 1) // stride
    nc = (n + CHUNK - 1) // CHUNK
    part_acc = np.zeros((nc, K, D), np.int64)
    part_den = np.zeros((nc, K), np.int64)
    for c in prange(nc):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            p = i * stride
            b1 = np.inf
            b2 = np.inf
            k1 = 0
            k2 = 0
            for k in range(K):
                d2 = 0.0
                for j in range(D):
                    t = np.float64(X[j, p]) - C[k, j]
                    d2 += t * t
                if d2 < b1:
                    b2 = b1
                    k2 = k1
                    b1 = d2
                    k1 = k
                elif d2 < b2:
                    b2 = d2
                    k2 = k
            vv = 0.0
            xv = 0.0
            for j in range(D):
                v = C[k2, j] - C[k1, j]
                vv += v * v
                xv += (np.float64(X[j, p]) - C[k1, j]) * v
            t = 0.0
            if vv > 0.0:
                t = min(1.0, max(0.0, xv / vv))
            tq = int(np.rint(t * 256.0))
            w = counts[p]
            for j in range(D):
                r = np.float64(X[j, p]) - (C[k1, j] + t * (C[k2, j] - C[k1, j]))
                rq = int(np.rint(r * 256.0))
                part_acc[c, k1, j] += w * (256 - tq) * rq
                part_acc[c, k2, j] += w * tq * rq
            part_den[c, k1] += w * (256 - tq)
            part_den[c, k2] += w * tq
    acc[:] = 0
    den[:] = 0
    for c in range(nc):
        for k in range(K):
            den[k] += part_den[c, k]
            for j in range(D):
                acc[k, j] += part_acc[c, k, j]
