"""The NumPy baseline: the kernels of :mod:`kmpress.kernels_numba`, vectorised with NumPy.

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
    """See :func:`kmpress.kernels_numba.dist_to_assigned`."""
    for _, s, e in _bounds(X.shape[1]):
        diff = X[:, s:e].T.astype(np.float64) - C[labels[s:e]]
        out[s:e] = np.einsum("ij,ij->i", diff, diff)


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
