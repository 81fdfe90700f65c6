"""Numba kernels: the compiled hot paths of every stage.

Contract shared with :mod:`engine.kernels_numpy` (same names, same arguments, same meaning):

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

#: Points per chunk of work. Fixed (never derived from the thread count) so that partial sums,
#: and hence results, do not depend on how many threads run.
CHUNK = 8192
#: Points per block inside a chunk: the block's best distances stay in L1 while all K centroids
#: stream past them.
BLOCK = 256
#: Below this many pixels a dense 2^24 histogram costs more (zeroing and faulting 64 MB) than a sort.
DENSE_MIN_PIXELS = 1 << 19

NAME = "numba"


def n_chunks(n: int) -> int:
    """Number of :data:`CHUNK`-sized chunks covering ``n`` points."""
    return (n + CHUNK - 1) // CHUNK


# --------------------------------------------------------------------------------------------
# histogram
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def _key(px, i, nch):
    k = np.uint32(px[i, 0]) << 16 | np.uint32(px[i, 1]) << 8 | np.uint32(px[i, 2])
    if nch == 4:
        k = k << 8 | np.uint32(px[i, 3])
    return k


@njit(parallel=True, cache=True)
def _dense_count(px, table, nparts):
    # Each part owns a contiguous range of keys and scans every pixel: no two threads ever
    # increment the same counter, so there is no race and no per-thread 64 MB copy.
    n = px.shape[0]
    shift = 24
    while (1 << (24 - shift)) < nparts:
        shift -= 1
    for p in prange(nparts):
        for i in range(n):
            k = _key(px, i, 3)
            if (k >> shift) % nparts == p:
                table[k] += 1


@njit(parallel=True, cache=True)
def _dense_extract(table, nblocks):
    # Two passes over the 2^24 table: count the colours per block, then write them in key order.
    # The table is rewritten in place to hold each present key's unique index.
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
    keys = np.empty(u, np.uint32)
    counts = np.empty(u, np.int64)
    for b in prange(nblocks):
        o = per[b]
        for j in range(b * bs, min(size, (b + 1) * bs)):
            c = table[j]
            if c != 0:
                keys[o] = j
                counts[o] = c
                table[j] = o
                o += 1
    return keys, counts


@njit(parallel=True, cache=True)
def _dense_inverse(px, table, inverse):
    n = px.shape[0]
    for c in prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            inverse[i] = table[_key(px, i, 3)]


@njit(cache=True)
def _radix_histogram(px, nch):
    # LSD radix sort of the packed keys (stable counting sort per byte), then one scan that
    # numbers the distinct keys. Bytes on which all keys agree (e.g. an opaque alpha) are skipped.
    n = px.shape[0]
    keys = np.empty(n, np.uint32)
    for i in range(n):
        keys[i] = _key(px, i, nch)
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


def histogram(px: np.ndarray):
    """Distinct colours of ``px`` with their counts.

    Parameters
    ----------
    px : (N, C) uint8, C-contiguous, C = 3 or 4

    Returns
    -------
    keys : (U,) uint32, sorted packed colours (RGB or RGBA, big-endian)
    counts : (U,) int64
    inverse : (N,) int32, index of each pixel's colour in ``keys``
    """
    n, nch = px.shape
    if nch == 3 and n >= DENSE_MIN_PIXELS:
        from numba import get_num_threads

        table = np.zeros(1 << 24, np.int32)
        _dense_count(px, table, get_num_threads())
        keys, counts = _dense_extract(table, 256)
        inverse = np.empty(n, np.int32)
        _dense_inverse(px, table, inverse)
        return keys, counts, inverse
    return _radix_histogram(px, nch)


# --------------------------------------------------------------------------------------------
# nearest centroid: the inner block loop shared by Lloyd, the remap and the distance queries
# --------------------------------------------------------------------------------------------


@njit(inline="always")
def _block_nearest(X, b0, nb, C32, bd, bk):
    # For B points (planar, unit stride) keep the best squared distance and its centroid while
    # all K centroids stream past: the i-loop has no dependence across i and vectorises.
    K = C32.shape[0]
    D = X.shape[0]
    for i in range(nb):
        bd[i] = np.inf
        bk[i] = 0
    if D == 3:
        x0 = X[0, b0 : b0 + nb]
        x1 = X[1, b0 : b0 + nb]
        x2 = X[2, b0 : b0 + nb]
        for k in range(K):
            c0 = C32[k, 0]
            c1 = C32[k, 1]
            c2 = C32[k, 2]
            for i in range(nb):
                t0 = x0[i] - c0
                t1 = x1[i] - c1
                t2 = x2[i] - c2
                d = t0 * t0 + t1 * t1 + t2 * t2
                # selects, not a branch: stores are unconditional and the loop vectorises (5x)
                o = bd[i]
                lt = d < o
                bk[i] = k if lt else bk[i]
                bd[i] = d if lt else o
    else:
        x0 = X[0, b0 : b0 + nb]
        x1 = X[1, b0 : b0 + nb]
        x2 = X[2, b0 : b0 + nb]
        x3 = X[3, b0 : b0 + nb]
        for k in range(K):
            c0 = C32[k, 0]
            c1 = C32[k, 1]
            c2 = C32[k, 2]
            c3 = C32[k, 3]
            for i in range(nb):
                t0 = x0[i] - c0
                t1 = x1[i] - c1
                t2 = x2[i] - c2
                t3 = x3[i] - c3
                d = t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3
                o = bd[i]
                lt = d < o
                bk[i] = k if lt else bk[i]
                bd[i] = d if lt else o


@njit(inline="always")
def _block_weights(w, weighted, b0, nb, wb):
    for i in range(nb):
        wb[i] = w[b0 + i] if weighted else 1.0


@njit(parallel=True, cache=True)
def assign_accumulate(X, w, weighted, C, C32, labels, sums_c, wsum_c, inertia_c, changed_c):
    """Assign every point to its nearest centroid and accumulate the weighted sums per chunk.

    Parameters
    ----------
    X : (D, N) float32, IN
    w : (N,) float64, IN (ignored unless ``weighted``)
    weighted : bool
    C : (K, D) float64, IN; exact inertia is computed against it
    C32 : (K, D) float32, IN; ``C`` rounded, used for the nearest-centroid search
    labels : (N,) int32, IN/OUT; previous labels in, new labels out
    sums_c : (n_chunks, K, D) float64, OUT; weighted coordinate sums per chunk and cluster
    wsum_c : (n_chunks, K) float64, OUT; weight per chunk and cluster
    inertia_c : (n_chunks,) float64, OUT; weighted squared distance (float64) per chunk
    changed_c : (n_chunks,) int64, OUT; labels that changed per chunk
    """
    D, N = X.shape
    nc = (N + CHUNK - 1) // CHUNK
    K = C.shape[0]
    for c in prange(nc):
        bd = np.empty(BLOCK, np.float32)
        bk = np.empty(BLOCK, np.int32)
        wb = np.empty(BLOCK, np.float64)
        # chunk-local sums (K x 4, float64): private to this iteration, so no race, and small
        # enough to stay in L1 while the chunk's points are scattered into them
        acc = np.zeros((K, 5), np.float64)
        inert = 0.0
        changed = 0
        end = min(N, (c + 1) * CHUNK)
        for b0 in range(c * CHUNK, end, BLOCK):
            nb = min(BLOCK, end - b0)
            _block_nearest(X, b0, nb, C32, bd, bk)
            _block_weights(w, weighted, b0, nb, wb)
            for i in range(nb):
                p = b0 + i
                k = bk[i]
                changed += labels[p] != k
                labels[p] = k
                wi = wb[i]
                d2 = 0.0
                for j in range(D):
                    xv = np.float64(X[j, p])
                    acc[k, j] += wi * xv
                    t = xv - C[k, j]
                    d2 += t * t
                acc[k, 4] += wi
                inert += wi * d2
        for k in range(K):
            for j in range(D):
                sums_c[c, k, j] = acc[k, j]
            wsum_c[c, k] = acc[k, 4]
        inertia_c[c] = inert
        changed_c[c] = changed


@njit(parallel=True, cache=True)
def nearest(X, C32, labels):
    """Nearest-centroid labels only (the final remap onto the uint8 palette).

    Parameters
    ----------
    X : (D, N) float32, IN
    C32 : (K, D) float32, IN
    labels : (N,) int32, OUT
    """
    D, N = X.shape
    nc = (N + CHUNK - 1) // CHUNK
    for c in prange(nc):
        bd = np.empty(BLOCK, np.float32)
        bk = np.empty(BLOCK, np.int32)
        end = min(N, (c + 1) * CHUNK)
        for b0 in range(c * CHUNK, end, BLOCK):
            nb = min(BLOCK, end - b0)
            _block_nearest(X, b0, nb, C32, bd, bk)
            for i in range(nb):
                labels[b0 + i] = bk[i]


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


@njit(parallel=True, cache=True)
def pp_update(X, w, weighted, c, closest, pot_c):
    """Fold one new centre into the closest squared distances and refresh the chunk potentials.

    Parameters
    ----------
    X : (D, N) float32, IN
    w : (N,) float64, IN
    weighted : bool
    c : (D,) float32, IN; the new centre
    closest : (N,) float32, IN/OUT; squared distance to the nearest centre so far
    pot_c : (n_chunks,) float64, OUT; sum of ``w * closest`` per chunk
    """
    D, N = X.shape
    for ch in prange((N + CHUNK - 1) // CHUNK):
        # per-lane partial sums, added up in lane order at the end: the loop vectorises without
        # fastmath and the summation order is fixed, whatever the SIMD width or thread count
        acc = np.zeros(BLOCK, np.float64)
        wb = np.empty(BLOCK, np.float64)
        end = min(N, (ch + 1) * CHUNK)
        for b0 in range(ch * CHUNK, end, BLOCK):
            nb = min(BLOCK, end - b0)
            _block_weights(w, weighted, b0, nb, wb)
            cl = closest[b0 : b0 + nb]
            x0 = X[0, b0 : b0 + nb]
            x1 = X[1, b0 : b0 + nb]
            x2 = X[2, b0 : b0 + nb]
            x3 = X[D - 1, b0 : b0 + nb]
            c3 = c[D - 1]
            for i in range(nb):
                t0 = x0[i] - c[0]
                t1 = x1[i] - c[1]
                t2 = x2[i] - c[2]
                d = t0 * t0 + t1 * t1 + t2 * t2
                if D == 4:
                    t3 = x3[i] - c3
                    d += t3 * t3
                m = min(cl[i], d)
                cl[i] = m
                acc[i] += wb[i] * m
        s = 0.0
        for i in range(BLOCK):
            s += acc[i]
        pot_c[ch] = s


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


@njit(parallel=True, cache=True)
def pp_trials(X, w, weighted, closest, cands, pot_tc):
    """Potential (sum of ``w * min(closest, d(x, cand))``) of each candidate centre, per chunk.

    Parameters
    ----------
    X : (D, N) float32, IN
    w : (N,) float64, IN
    weighted : bool
    closest : (N,) float32, IN
    cands : (T, D) float32, IN
    pot_tc : (n_chunks, T) float64, OUT
    """
    D, N = X.shape
    T = cands.shape[0]
    for ch in prange((N + CHUNK - 1) // CHUNK):
        acc = np.zeros((T, BLOCK), np.float64)
        # float32 lanes within a block keep the loop at full SIMD width; each block's lanes are
        # folded into float64 in a fixed order (only candidate choice depends on these sums)
        a32 = np.empty(BLOCK, np.float32)
        wb = np.empty(BLOCK, np.float32)
        end = min(N, (ch + 1) * CHUNK)
        for b0 in range(ch * CHUNK, end, BLOCK):
            nb = min(BLOCK, end - b0)
            for i in range(nb):
                wb[i] = w[b0 + i] if weighted else 1.0
            cl = closest[b0 : b0 + nb]
            x0 = X[0, b0 : b0 + nb]
            x1 = X[1, b0 : b0 + nb]
            x2 = X[2, b0 : b0 + nb]
            x3 = X[D - 1, b0 : b0 + nb]
            for t in range(T):
                c0 = cands[t, 0]
                c1 = cands[t, 1]
                c2 = cands[t, 2]
                c3 = cands[t, D - 1]
                if D == 3:
                    for i in range(nb):
                        t0 = x0[i] - c0
                        t1 = x1[i] - c1
                        t2 = x2[i] - c2
                        a32[i] = wb[i] * min(cl[i], t0 * t0 + t1 * t1 + t2 * t2)
                else:
                    for i in range(nb):
                        t0 = x0[i] - c0
                        t1 = x1[i] - c1
                        t2 = x2[i] - c2
                        t3 = x3[i] - c3
                        a32[i] = wb[i] * min(cl[i], t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3)
                for i in range(nb):
                    acc[t, i] += a32[i]
        for t in range(T):
            s = 0.0
            for i in range(BLOCK):
                s += acc[t, i]
            pot_tc[ch, t] = s


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
