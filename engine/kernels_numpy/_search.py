"""The NumPy backend's nearest-centroid search, and the last search of a fit narrowed by bounds.

:class:`Workspace` searches every point; :func:`nearest_from_bounds` searches the points of the
last pass of a fit only among the centroids that may beat the labels the pass before it found.
"""

from __future__ import annotations

import math

import numpy as np

#: Points per chunk of the partial sums, as the numba kernels (so the seeding's sums match theirs).
CHUNK = 8192
#: Most entries of one slab's float32 distance matrix, (K, slab) up to :data:`COLUMNS_MAX_K`,
#: else (slab, K): it stays in the cache between the matrix product and the reductions that read
#: it, which is worth up to 2x at K = 256 over slabs of a whole chunk (measured; and no N x K
#: matrix of the whole input is ever built).
SLAB_ENTRIES = {True: 1 << 16, False: 1 << 18}
#: Points per block of the norm bounds (:func:`block_boxes`): slabs are whole blocks.
NORM_BLOCK = 256
#: Up to this K the search runs on the transposed (K, slab) matrix, whose reductions over K run
#: along whole rows (see :meth:`Workspace._search_columns`); above it, ``argmin`` along rows wins.
COLUMNS_MAX_K = 64
#: A nearest centroid is decided again exactly when another one is within this fraction of
#: ``reach^2`` (reach = the slab's largest point norm + the largest centroid norm). The matrix
#: product's value of ``||c||^2 - 2 x.c`` errs by at most (2D + 1) 2^-24 reach^2, the numba
#: kernels' direct ``sum (x - c)^2`` by (D + 2) 2^-24 reach^2; both ends of a gap, D <= 4: 30
#: 2^-24 reach^2, and 2^-18 leaves room for the float32 rounding of the test itself.
TIE_MARGIN = 2.0**-18


def _exact_labels(xb: np.ndarray, C32: np.ndarray) -> np.ndarray:
    """Return the labels of a few points (n, D) by the numba search's arithmetic.

    Float32 ``(x - c)^2`` summed over the channels in order, the first minimum winning.
    """
    t = xb[:, 0, None] - C32[None, :, 0]
    d = t * t
    for j in range(1, xb.shape[1]):
        t = xb[:, j, None] - C32[None, :, j]
        d = d + t * t
    return d.argmin(axis=1)


class Workspace:
    """The NumPy nearest-centroid search of one set of points (:func:`block_boxes`).

    Made once per fit: a bound on the norms of every :data:`NORM_BLOCK` points (from the
    per-channel extremes, exact in float32; ``reach``, when given, (n_blocks, D) float64
    C-contiguous, the blocks' largest magnitudes per channel, already measured), and, per K,
    the buffers of one slab, reused by every iteration.

    Distances come from one float32 matrix product per slab (``||c||^2 - 2 x.c``, as
    scikit-learn computes them, the ``||c||^2`` term folded into the product by a row of ones
    under the points); where another centroid's value is within :data:`TIE_MARGIN` of the
    best's, the point is decided again with the numba kernels' arithmetic
    (:func:`_exact_labels`). So the labels equal the numba backend's, whatever the BLAS and its
    thread count, and stay right far from the origin (points are then simply decided exactly).

    With :attr:`keep_bounds` set, the next :meth:`search` pass of every point (one
    ``assign_accumulate``) also keeps, per point, its label and the runner-up's value: the
    following ``nearest`` against moved centroids then searches each point only among the
    centroids that moved far enough to overtake its label (:func:`nearest_from_bounds`).
    """

    def __init__(self, X: np.ndarray, reach: np.ndarray | None = None) -> None:
        D, N = X.shape
        nb = (N + NORM_BLOCK - 1) // NORM_BLOCK
        full = N // NORM_BLOCK
        big = np.zeros((nb, D), np.float64) if reach is None else reach
        if reach is not None:
            # measured already, by kmpress.points.frame_points while it wrote X
            assert reach.shape == (nb, D) and reach.flags.c_contiguous
        elif full:
            v = X[:, : full * NORM_BLOCK].reshape(D, full, NORM_BLOCK)
            big[:full] = np.maximum(v.max(axis=2), -v.min(axis=2)).T
        if reach is None and full < nb:
            big[full] = np.maximum(X[:, full * NORM_BLOCK :].max(axis=1), -X[:, full * NORM_BLOCK :].min(axis=1))
        #: (n_blocks,) float64: no point of the block is farther than this from the origin
        self.block_norm = np.sqrt(np.einsum("bd,bd->b", big, big))
        self.D, self.N = D, N
        self._k = -1
        #: set by the caller before the pass whose bounds the next ``nearest`` may use
        self.keep_bounds = False
        #: (C32, labels, bounds of the other centroids' product values) of the last kept pass
        self.bounds: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._keeping = False
        self._runner: np.ndarray | None = None
        self._found: np.ndarray | None = None

    def _prepare(self, K: int) -> None:
        if self._k == K:
            return
        D = self.D
        self.columns = K <= COLUMNS_MAX_K
        n = min(CHUNK, max(NORM_BLOCK, SLAB_ENTRIES[self.columns] // K // NORM_BLOCK * NORM_BLOCK))
        self.slab = n
        self.xa = np.ones((D + 1, n), np.float32)  # the points of a slab, over a row of ones
        if self.columns:
            self.g = np.empty((K, n), np.float32)
            self.low = np.empty(n, np.float32)
            self.near = np.empty((K, n), np.bool_)
            self.nearf = np.empty((K, n), np.float32)
            self.count_label = np.empty((2, n), np.float32)
        else:
            self.g = np.empty((n, K), np.float32)
            self.flat = np.arange(n) * K
            self.second = np.empty(n, np.intp)
            self.idx = np.empty(n, np.intp)
            self.gb = np.empty(n, np.float32)
            self.gap = np.empty(n, np.float32)
        self.lab = np.empty(CHUNK, np.intp)
        self.moved = np.empty(CHUNK, np.bool_)
        self._k = K

    def centroids(self, C32: np.ndarray) -> None:
        """Set the centroids (K, D) float32 that :meth:`search` finds the nearest of."""
        D = C32.shape[1]
        K = C32.shape[0]
        self._prepare(K)
        M = np.empty((K, D + 1), np.float32)
        M[:, :D] = -2.0 * C32
        M[:, D] = np.einsum("kd,kd->k", C32, C32)
        C64 = C32.astype(np.float64)
        self.M, self.C32 = M, C32
        self.cmax = float(np.sqrt(np.einsum("kd,kd->k", C64, C64).max()))

    def record(self, on: bool) -> None:
        """Start (``on``) or drop keeping bounds.

        While on, :meth:`search` keeps each point's label and a lower bound of the other
        centroids' product values; :meth:`kept` then hands them over as :attr:`bounds`.
        """
        self.bounds = None
        self._keeping = on
        if on and self._runner is None:
            self._runner = np.empty(self.N, np.float32)
        # the labels in the narrowest integers that hold them: a fresh array costs its page faults
        found = np.uint8 if self._k <= 1 << 8 else np.uint16 if self._k <= 1 << 16 else np.int32
        if on and (self._found is None or self._found.dtype != found):
            self._found = np.empty(self.N, found)

    def norm_bound(self, a: int, b: int) -> float:
        """Return a bound on the norms of points ``a:b`` (``a`` on a block of :data:`NORM_BLOCK`).

        From the blocks the range covers, wherever it starts: a chunk's slabs need not line up
        with slabs counted from the first point (CHUNK is not always a multiple of the slab).
        """
        return float(self.block_norm[a // NORM_BLOCK : -(-b // NORM_BLOCK)].max(initial=0.0))

    def kept(self) -> None:
        """Close the pass started by :meth:`record`: its bounds become :attr:`bounds`."""
        if self._keeping and self._runner is not None and self._found is not None:
            self.bounds = (self.C32.copy(), self._found, self._runner)
        self._keeping = False

    def search(self, X: np.ndarray, s: int, e: int) -> np.ndarray:
        """Return the labels (e - s,) intp of points ``s:e``, a view of a buffer of the workspace.

        ``s:e`` is at most a chunk and starts on a slab.
        """
        D = X.shape[0]
        M, C32, cmax = self.M, self.C32, self.cmax
        K = C32.shape[0]
        out = self.lab[: e - s]
        n = self.slab
        for a in range(s, e, n):
            b = min(e, a + n)
            xa = self.xa[:, : b - a]
            xa[:D] = X[:, a:b]
            reach = self.norm_bound(a, b) + cmax
            thr = np.float32(reach * reach * TIE_MARGIN)
            lab = out[a - s : b - s]
            runner = self._runner[a:b] if self._keeping and self._runner is not None else None
            if self.columns:
                unsure = self._search_columns(M, xa, thr, lab, K, runner)
            else:
                unsure = self._search_rows(M, xa, thr, lab, K, runner)
            if unsure.size:
                lab[unsure] = _exact_labels(X[:, a + unsure].T, C32)
            if runner is not None:
                # the product values err by less than thr / 4 (see TIE_MARGIN): 2 thr below the
                # runner-up's value, rounded in float32 (off by under 2^-22 reach^2), bounds every
                # other centroid's exact value from below
                runner -= 2 * thr
                # decided exactly: no runner-up known, the next search looks at every centroid
                runner[unsure] = -np.inf
                if self._found is not None:
                    self._found[a:b] = lab
        return out

    def _search_columns(self, M, xa, thr, lab, K, runner=None):
        # (K, n): the minimum over K is an elementwise minimum of whole rows; the centroids
        # within thr of it are counted, and for the points with exactly one, its index is read
        # by a product with (1, k) (exact: small integers in float32)
        n = xa.shape[1]
        g = self.g[:, :n]
        np.matmul(M, xa, out=g)
        low = self.low[:n]
        np.minimum.reduce(g, axis=0, out=low)
        low += thr
        near = self.near[:, :n]
        np.less_equal(g, low, out=near)
        nearf = self.nearf[:, :n]
        np.copyto(nearf, near)
        cl = self.count_label[:, :n]
        np.matmul(_count_label_rows(K), nearf, out=cl)
        np.copyto(lab, cl[1], casting="unsafe")
        if runner is not None:
            # where one centroid alone is near the minimum, the least of the others
            np.copyto(g, np.inf, where=near)
            np.minimum.reduce(g, axis=0, out=runner)
        return np.flatnonzero(cl[0] != 1.0)

    def _search_rows(self, M, xa, thr, lab, K, runner=None):
        # (n, K): argmin along rows, then the runner-up's gap to the best
        n = xa.shape[1]
        g = self.g[:n]
        np.matmul(xa.T, M.T, out=g)
        np.argmin(g, axis=1, out=lab)
        gf = g.reshape(-1)
        idx = self.idx[:n]
        np.add(self.flat[:n], lab, out=idx)
        gb = np.take(gf, idx, out=self.gb[:n])
        gf[idx] = np.inf
        second = self.second[:n]
        np.argmin(g, axis=1, out=second)
        np.add(self.flat[:n], second, out=idx)
        gap = np.take(gf, idx, out=self.gap[:n])
        if runner is not None:
            runner[:] = gap
        gap -= gb
        return np.flatnonzero(gap <= thr)


_COUNT_LABEL: dict[int, np.ndarray] = {}


def _count_label_rows(K: int) -> np.ndarray:
    if K not in _COUNT_LABEL:
        _COUNT_LABEL[K] = np.stack([np.ones(K, np.float32), np.arange(K, dtype=np.float32)])
    return _COUNT_LABEL[K]


#: Points per chunk of the bound computations of :func:`nearest_from_bounds`.
BOUND_STEP = CHUNK
#: The centroid counts the narrowed searches of :func:`nearest_from_bounds` run with, as
#: fractions of K: a point needing m of the centroids that moved most joins the least above m.
NARROWED = (16, 8, 4, 2, 1)
#: Points of the sample that decides whether :func:`nearest_from_bounds` is worth it.
SAMPLE = 4096
#: Narrowed searches costing more than this fraction of a full search (in centroids compared)
#: are not worth their bounds and compactions: every point is then searched among all.
WORTH = 0.3


def _exact_sq(xs: np.ndarray, Cg: np.ndarray) -> np.ndarray:
    """Return the numba search's float32 squared distances of points (D, n) to centroids (n, D).

    Each point ``xs[:, i]`` against its own centroid ``Cg[i]`` (see :func:`_exact_labels`).
    """
    t = xs[0] - Cg[:, 0]
    d = t * t
    for j in range(1, xs.shape[0]):
        t = xs[j] - Cg[:, j]
        d = d + t * t
    return d


def _needs(
    x32: np.ndarray, b: np.ndarray, runner: np.ndarray, Ct: np.ndarray, edges: np.ndarray, lim: float
) -> np.ndarray:
    """Return which search decides each of the points (D, n) float32 (see :func:`nearest_from_bounds`).

    0 where the kept label ``b`` stands, else the index + 1 of the narrowed search
    (:data:`NARROWED`); ``runner``: the kept bounds.
    """
    x = x32.astype(np.float64)
    lo2 = np.einsum("dn,dn->n", x, x)
    lo2 += runner
    for j in range(x.shape[0]):
        x[j] -= Ct[j].take(b)
    u = np.sqrt(np.einsum("dn,dn->n", x, x))
    np.maximum(lo2, 0.0, out=lo2)
    slack = np.sqrt(lo2, out=lo2)
    slack *= 1.0 - 2.0**-40
    u *= 1.0 + 2.0**-18
    slack -= u
    slack -= lim
    need = (edges.size - np.searchsorted(edges[1:], slack, side="left")).astype(np.int8)
    need[slack > edges[0]] = 0
    return need


def nearest_from_bounds(ws: Workspace, X: np.ndarray, C32: np.ndarray, labels: np.ndarray) -> bool:
    """Write into ``labels`` (N,) int32 the nearest of centroids ``C32`` (K, D) float32, or return False.

    False, with ``labels`` untouched, when a sample of the points shows that the narrowed
    searches would cost more than :data:`WORTH` of a full search.

    The labels :meth:`Workspace.search` would give, from the bounds kept by the last pass
    (``ws.bounds``, against centroids ``C0``): each point is searched only among the centroids
    that may beat the one it had.

    For a point ``x`` with label ``b`` and ``r``, a lower bound of the other centroids' exact
    ``||c||^2 - 2 x.c`` (:meth:`Workspace.search`), every other centroid was at least
    ``l = sqrt(||x||^2 + r)`` from ``x``, and has come at most its shift
    ``delta_k = ||C32[k] - C0[k]||`` nearer; the new ``b`` is ``u`` away (in float64). A
    centroid with ``l - delta_k > u (1 + 2^-18) + rho`` is farther than ``b`` by more than the
    numba kernels' float32 rounding (a relative (D + 2) 2^-24 of a squared distance, below
    2^-19 of a distance for D <= 4; ``rho``, 2^-20 of the largest point and centroid norms,
    covers the float64 rounding of ``l`` and ``u`` and values near zero): it is neither the
    nearest nor tied with it. The others, the centroids that moved most, are searched exactly:
    points that need the first ``m`` of them go together (``m`` rounded up to K/16, K/8, K/4,
    K/2, K), searched by a :class:`Workspace` of theirs among those centroids in index order,
    and the winner is set against ``b`` by the numba kernels' arithmetic, ties to the lower
    index. A point decided exactly in the kept pass (no runner-up) is searched among all. The
    labels given are not read: the bounds speak of the kept labels (an empty cluster's new
    point, relabelled since, is decided like any other).
    """
    assert ws.bounds is not None
    C0, found, runner = ws.bounds
    D, N = X.shape
    K = C32.shape[0]
    new = C32.astype(np.float64)
    old = C0.astype(np.float64)
    delta = np.sqrt(np.einsum("kd,kd->k", new - old, new - old)) * (1.0 + 2.0**-40)
    order = np.argsort(-delta, kind="stable")
    caps = sorted({min(K, max(1, -(-K // f))) for f in NARROWED})
    # a point needs at most caps[i] of them when its slack exceeds the shift of the next one:
    # edges[0], the largest shift (none needed), then those after the caps, ascending
    edges = np.array([delta[order[0]], *[delta[order[c]] for c in caps[::-1] if c < K]])
    cnorm = max(float(np.sqrt(np.einsum("kd,kd->k", c, c).max())) for c in (new, old))
    rho = math.ldexp(float(ws.block_norm.max(initial=0.0)) + cnorm, -20)
    Ct = np.ascontiguousarray(new.T)
    cost = np.array([0.0, *caps]) / K
    # a sample first: when the narrowed searches would cost more than WORTH of a full one (large
    # shifts, after the first iterations), every point is searched among all, with no bounds
    step = max(1, N // SAMPLE)
    probe = _needs(X[:, ::step], found[::step], runner[::step], Ct, edges, rho)
    if float(cost[probe].mean()) > WORTH:
        return False
    need = np.empty(N, np.int8)
    for s in range(0, N, BOUND_STEP):
        e = min(N, s + BOUND_STEP)
        need[s:e] = _needs(X[:, s:e], found[s:e], runner[s:e], Ct, edges, rho)
        labels[s:e] = found[s:e]
    for i, cap in enumerate(caps):
        idx = np.flatnonzero(need == i + 1)
        if not idx.size:
            continue
        P = np.sort(order[:cap])
        xs = np.ascontiguousarray(X[:, idx])
        sub = Workspace(xs)
        sub.centroids(np.ascontiguousarray(C32[P]))
        win = np.empty(idx.size, np.intp)
        for a in range(0, idx.size, CHUNK):
            z = min(idx.size, a + CHUNK)
            win[a:z] = P[sub.search(xs, a, z)]
        if cap < K:
            b = labels[idx].astype(np.intp)
            inside = np.zeros(K, np.bool_)
            inside[P] = True
            out = np.flatnonzero(~inside[b])
            if out.size:
                xo = np.ascontiguousarray(xs[:, out])
                vb = _exact_sq(xo, C32[b[out]])
                vp = _exact_sq(xo, C32[win[out]])
                keep_b = (vb < vp) | ((vb == vp) & (b[out] < win[out]))
                win[out[keep_b]] = b[out[keep_b]]
        labels[idx] = win
    return True
