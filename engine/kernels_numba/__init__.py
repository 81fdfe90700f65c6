"""Numba kernels: the compiled hot paths of every stage.

Contract shared with :mod:`kmpress.kernels_numpy` (same names, same arguments, same meaning):

- points are stored channel-planar, ``X`` of shape (D, N) float32, C-contiguous, so the inner
  loop over pixels is unit-stride and vectorises; D is 3 or 4;
- weights ``w`` are (N,) float64, used only when ``weighted`` is true (otherwise pass an empty array:
  a 24 MP image would need 192 MB of ones);
- labels are int32, centroids (K, D) float64 and their float32 copy ``C32`` for distances;
- OUT arguments are buffers the caller owns; kernels allocate nothing per pixel.

Determinism: work is split in chunks of :data:`CHUNK` points whatever the thread count, every chunk
writes its own partial sums, and the caller merges them in chunk order. The result is therefore
bitwise identical with 1 or 2 (or 64) threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..histogram import spread_table

#: Points per chunk of work. Fixed (never derived from the thread count) so that partial sums,
#: and hence results, do not depend on how many threads run.
CHUNK = 8192
#: Points per block inside a chunk: the block's best distances stay in L1 while all K centroids
#: stream past them.
BLOCK = 256
#: Below this many pixel-centroid pairs a kernel runs in the calling thread: starting the thread
#: pool costs more than the work, and on a busy machine a parallel region waits for every thread.
SERIAL_WORK = 1 << 22
#: Below this many pixels a dense 2^24 histogram costs more (zeroing and faulting 64 MB) than a sort.
DENSE_MIN_PIXELS = 1 << 19

NAME = "numba"


def n_chunks(n: int) -> int:
    """Number of :data:`CHUNK`-sized chunks covering ``n`` points."""
    return (n + CHUNK - 1) // CHUNK


# --------------------------------------------------------------------------------------------
# histogram
# --------------------------------------------------------------------------------------------


SPREAD3 = spread_table(3)
SPREAD4 = spread_table(4)


@njit(inline="always")
def _code(px, i, nch):
    # Morton (Z-order) code of a colour, channel 0's bit most significant at each level. It is a
    # bijection, so it serves as the histogram key; and sorting by it puts colours that are near
    # in colour space next to each other, which is what lets k-means++ skip whole blocks.
    if nch == 3:
        return SPREAD3[px[i, 0]] << 2 | SPREAD3[px[i, 1]] << 1 | SPREAD3[px[i, 2]]
    return SPREAD4[px[i, 0]] << 3 | SPREAD4[px[i, 1]] << 2 | SPREAD4[px[i, 2]] << 1 | SPREAD4[px[i, 3]]


@njit(parallel=True, cache=True)
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


@njit(parallel=True, cache=True)
def _dense_extract(table, nblocks):
    # Two passes over the 2^24 table: count the colours per block, then write them in code order.
    # The table is rewritten in place to hold each present code's index among the colours.
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
                table[j] = o
                o += 1
    return codes, counts


@njit(parallel=True, cache=True)
def _dense_inverse(px, table, inverse):
    n = px.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            inverse[i] = table[_code(px, i, 3)]


@njit(cache=True)
def _radix_histogram(px, nch):
    # LSD radix sort of the codes (stable counting sort per byte), then one scan that numbers
    # the distinct codes. Bytes on which all codes agree are skipped.
    n = px.shape[0]
    keys = np.empty(n, np.uint32)
    for i in range(n):
        keys[i] = _code(px, i, nch)
    order = np.arange(n).astype(np.int32)
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
    inverse = np.empty(n, np.int32)
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


@njit(parallel=True, cache=True)
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
    px : (N, C) uint8, C-contiguous, C = 3 or 4

    Returns
    -------
    codes : (U,) uint32, sorted Morton codes of the distinct colours (see :func:`unpack_codes`)
    counts : (U,) int64
    inverse : (N,) int32, index of each pixel's colour in ``codes``
    """
    n, nch = px.shape
    if nch == 3 and n >= DENSE_MIN_PIXELS:
        from numba import get_num_threads

        table = np.zeros(1 << 24, np.int32)
        _dense_count(px, table, get_num_threads())
        codes, counts = _dense_extract(table, 256)
        inverse = np.empty(n, np.int32)
        _dense_inverse(px, table, inverse)
        return codes, counts, inverse
    return _radix_histogram(px, nch)


# --------------------------------------------------------------------------------------------
# nearest centroid: the inner block loop shared by Lloyd, the remap and the distance queries
# --------------------------------------------------------------------------------------------


@njit(parallel=True, cache=True)
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
        for j in range(D):
            lo = X[j, b0]
            hi = X[j, b0]
            for i in range(1, nb):
                v = X[j, b0 + i]
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


@njit(inline="always")
def _block_candidates(bmin, bmax, b, C32, cand):
    # Centroids that can be nearest to some point of block b: the bound ub is the smallest
    # largest-distance from a centroid to the box; a centroid whose smallest distance to the box
    # exceeds ub is farther than that centroid from every point of the block. Kept in increasing
    # k, so ties still go to the lowest index. Returns how many were kept.
    K, D = C32.shape
    ub = np.float32(np.inf)
    for k in range(K):
        far = np.float32(0.0)
        for j in range(D):
            t = max(C32[k, j] - bmin[b, j], bmax[b, j] - C32[k, j])
            far += t * t
        ub = min(ub, far)
    ub = ub + ub * _PRUNE_REL + _PRUNE_ABS
    n = 0
    for k in range(K):
        near = np.float32(0.0)
        for j in range(D):
            t = max(np.float32(0.0), bmin[b, j] - C32[k, j], C32[k, j] - bmax[b, j])
            near += t * t
        if near <= ub:
            cand[n] = k
            n += 1
    return n


@njit(inline="always")
def _block_nearest(X, b0, nb, C32, bd, bk, cand, ncand):
    # For B points (planar, unit stride) keep the best squared distance and its centroid while
    # the candidate centroids stream past: the i-loop has no dependence across i and vectorises.
    # Plain indexing rather than slices: slices are arrays whose reference counts both threads
    # would update atomically.
    D = X.shape[0]
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
                t0 = X[0, b0 + i] - c0
                t1 = X[1, b0 + i] - c1
                t2 = X[2, b0 + i] - c2
                d = t0 * t0 + t1 * t1 + t2 * t2
                # selects, not a branch: stores are unconditional and the loop vectorises (5x)
                o = bd[i]
                lt = d < o
                bk[i] = k if lt else bk[i]
                bd[i] = d if lt else o
        else:
            for i in range(nb):
                t0 = X[0, b0 + i] - c0
                t1 = X[1, b0 + i] - c1
                t2 = X[2, b0 + i] - c2
                t3 = X[3, b0 + i] - c3
                d = t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3
                o = bd[i]
                lt = d < o
                bk[i] = k if lt else bk[i]
                bd[i] = d if lt else o


@njit(inline="always")
def _assign_accumulate_body(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, boxes):
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
    gets it exactly from the sums (see lloyd.py).
    """
    bmin, bmax = boxes
    D, N = X.shape
    K = C32.shape[0]
    nc = (N + CHUNK - 1) // CHUNK
    for c in prange(nc):
        bd = np.empty(BLOCK, np.float32)
        bk = np.empty(BLOCK, np.int32)
        cand = np.empty(K, np.int64)
        # chunk-local copy of this chunk's sums: private to this iteration of the prange, so no
        # race, and small enough to stay in L1
        acc = np.empty((K, 5), np.float64)
        for k in range(K):
            for j in range(D):
                acc[k, j] = sums_c[c, k, j]
            acc[k, 4] = wsum_c[c, k]
        changed = 0
        end = min(N, (c + 1) * CHUNK)
        for b0 in range(c * CHUNK, end, BLOCK):
            nb = min(BLOCK, end - b0)
            ncand = _block_candidates(bmin, bmax, b0 // BLOCK, C32, cand)
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


@njit(parallel=True, cache=True)
def _assign_accumulate_parallel(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, boxes):
    _assign_accumulate_body(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, boxes)


@njit(cache=True)
def _assign_accumulate_serial(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, boxes):
    _assign_accumulate_body(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, boxes)


def assign_accumulate(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, boxes):
    """See :func:`_assign_accumulate_body`; runs serially when the work is small (see :data:`SERIAL_WORK`)."""
    if X.shape[1] * C32.shape[0] < SERIAL_WORK:
        _assign_accumulate_serial(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, boxes)
    else:
        _assign_accumulate_parallel(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, boxes)


@njit(inline="always")
def _nearest_body(X, C32, labels, boxes):
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
        end = min(N, (c + 1) * CHUNK)
        for b0 in range(c * CHUNK, end, BLOCK):
            nb = min(BLOCK, end - b0)
            ncand = _block_candidates(bmin, bmax, b0 // BLOCK, C32, cand)
            _block_nearest(X, b0, nb, C32, bd, bk, cand, ncand)
            for i in range(nb):
                labels[b0 + i] = bk[i]


@njit(parallel=True, cache=True)
def _nearest_parallel(X, C32, labels, boxes):
    _nearest_body(X, C32, labels, boxes)


@njit(cache=True)
def _nearest_serial(X, C32, labels, boxes):
    _nearest_body(X, C32, labels, boxes)


def nearest(X, C32, labels, boxes):
    """See :func:`_nearest_body`; runs serially when the work is small (see :data:`SERIAL_WORK`)."""
    if X.shape[1] * C32.shape[0] < SERIAL_WORK:
        _nearest_serial(X, C32, labels, boxes)
    else:
        _nearest_parallel(X, C32, labels, boxes)


@njit(parallel=True, cache=True)
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


# --------------------------------------------------------------------------------------------
# k-means++ seeding
# --------------------------------------------------------------------------------------------


@njit(inline="always")
def _lane_sum(a32, nb):
    # Fixed-order sum of a block's float32 lanes in float64: eight interleaved partial sums,
    # combined pairwise. The same arithmetic in pp_state, pp_update and pp_trials, so a block
    # skipped by pruning contributes exactly what computing it would have.
    for i in range(nb, BLOCK):
        a32[i] = 0.0
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
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


@njit(inline="always")
def _lane_sum_max(a32, closest, b0, nb, bpot, b):
    # bpot[b] = lane sum of a32; returns the largest closest of the block (8 lanes, no branch)
    bpot[b] = _lane_sum(a32, nb)
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = np.float32(0.0)
    g = 0
    while g + 8 <= nb:
        m0 = max(m0, closest[b0 + g])
        m1 = max(m1, closest[b0 + g + 1])
        m2 = max(m2, closest[b0 + g + 2])
        m3 = max(m3, closest[b0 + g + 3])
        m4 = max(m4, closest[b0 + g + 4])
        m5 = max(m5, closest[b0 + g + 5])
        m6 = max(m6, closest[b0 + g + 6])
        m7 = max(m7, closest[b0 + g + 7])
        g += 8
    for i in range(g, nb):
        m0 = max(m0, closest[b0 + i])
    return max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))


@njit(inline="always")
def _box_lower_bound(bmin, bmax, b, c):
    # squared distance from c to the block's bounding box: no point of the block is nearer
    lb = np.float32(0.0)
    for j in range(c.shape[0]):
        t = max(np.float32(0.0), bmin[b, j] - c[j], c[j] - bmax[b, j])
        lb += t * t
    return lb


@njit(inline="always")
def _pp_state_body(X, w, weighted, closest, pot_c):
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
            for j in range(D):
                lo = X[j, b0]
                hi = X[j, b0]
                for i in range(nb):
                    v = X[j, b0 + i]
                    lo = min(lo, v)
                    hi = max(hi, v)
                bmin[b, j] = lo
                bmax[b, j] = hi
            for i in range(nb):
                cl = closest[b0 + i]
                mx = max(mx, cl)
                a32[i] = np.float32(w[b0 + i] if weighted else 1.0) * cl
            bmaxcl[b] = mx
            bpot[b] = _lane_sum(a32, nb)
            tot += bpot[b]
        pot_c[ch] = tot
    return bmin, bmax, bmaxcl, bpot


@njit(parallel=True, cache=True)
def _pp_state_parallel(X, w, weighted, closest, pot_c):
    return _pp_state_body(X, w, weighted, closest, pot_c)


@njit(cache=True)
def _pp_state_serial(X, w, weighted, closest, pot_c):
    return _pp_state_body(X, w, weighted, closest, pot_c)


def pp_state(X, w, weighted, closest, pot_c):
    """See :func:`_pp_state_body`; runs serially when the work is small (see :data:`SERIAL_WORK`)."""
    if X.shape[1] * 8 < SERIAL_WORK:
        return _pp_state_serial(X, w, weighted, closest, pot_c)
    return _pp_state_parallel(X, w, weighted, closest, pot_c)


@njit(inline="always")
def _pp_update_body(X, w, weighted, c, closest, pot_c, state):
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
                # threads would update atomically on every block
                for i in range(nb):
                    p = b0 + i
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


@njit(parallel=True, cache=True)
def _pp_update_parallel(X, w, weighted, c, closest, pot_c, state):
    _pp_update_body(X, w, weighted, c, closest, pot_c, state)


@njit(cache=True)
def _pp_update_serial(X, w, weighted, c, closest, pot_c, state):
    _pp_update_body(X, w, weighted, c, closest, pot_c, state)


def pp_update(X, w, weighted, c, closest, pot_c, state):
    """See :func:`_pp_update_body`; runs serially when the work is small (see :data:`SERIAL_WORK`)."""
    if X.shape[1] * 8 < SERIAL_WORK:
        _pp_update_serial(X, w, weighted, c, closest, pot_c, state)
    else:
        _pp_update_parallel(X, w, weighted, c, closest, pot_c, state)


@njit(cache=True)
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


@njit(inline="always")
def _pp_trials_body(X, w, weighted, closest, cands, pot_tc, state):
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
                if not loaded:
                    for i in range(nb):
                        wb[i] = w[b0 + i] if weighted else 1.0
                    loaded = True
                if D == 3:
                    for i in range(nb):
                        p = b0 + i
                        t0 = X[0, p] - c0
                        t1 = X[1, p] - c1
                        t2 = X[2, p] - c2
                        a32[i] = wb[i] * min(closest[p], t0 * t0 + t1 * t1 + t2 * t2)
                else:
                    for i in range(nb):
                        p = b0 + i
                        t0 = X[0, p] - c0
                        t1 = X[1, p] - c1
                        t2 = X[2, p] - c2
                        t3 = X[3, p] - c3
                        a32[i] = wb[i] * min(closest[p], t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3)
                tot[t] += _lane_sum(a32, nb)
        for t in range(T):
            pot_tc[ch, t] = tot[t]


@njit(parallel=True, cache=True)
def _pp_trials_parallel(X, w, weighted, closest, cands, pot_tc, state):
    _pp_trials_body(X, w, weighted, closest, cands, pot_tc, state)


@njit(cache=True)
def _pp_trials_serial(X, w, weighted, closest, cands, pot_tc, state):
    _pp_trials_body(X, w, weighted, closest, cands, pot_tc, state)


def pp_trials(X, w, weighted, closest, cands, pot_tc, state):
    """See :func:`_pp_trials_body`; runs serially when the work is small (see :data:`SERIAL_WORK`)."""
    if X.shape[1] * cands.shape[0] < SERIAL_WORK:
        _pp_trials_serial(X, w, weighted, closest, cands, pot_tc, state)
    else:
        _pp_trials_parallel(X, w, weighted, closest, cands, pot_tc, state)


# --------------------------------------------------------------------------------------------
# remap
# --------------------------------------------------------------------------------------------


@njit(parallel=True, cache=True)
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
        for i in range(c * CHUNK, min(N, (c + 1) * CHUNK)):
            out[i] = lut[inverse[i]]
