"""Stage 3: seeding and the Lloyd loop, the same for every backend.

Seeding: greedy weighted k-means++ (Arthur & Vassilvitskii 2007, with the local trials of
scikit-learn): each new centre is the best of ``2 + ln k`` candidates drawn with probability
proportional to ``weight * D(x)^2``, where best means the lowest resulting potential. The only
source of randomness is a seeded numpy Generator.

Lloyd: a pure-Python loop over compiled kernels (as scikit-learn does): assign every point to its
nearest centroid while accumulating the weighted sums per chunk, merge the chunks in order, move
every centroid to the weighted mean of its points, and stop when no label changes or when the
centroids have stopped moving (``sum ||shift||^2 <= tol * mean per-channel variance``). Buffers
are allocated once. The final labels always belong to the final centroids.

Prior validation is assumed: points are (D, N) float32 C-contiguous, weights (N,) float64, K in
range, ``rng`` a Generator (see :mod:`kmpress.options` and :mod:`kmpress.api`). No float64 sum
here goes through BLAS (``einsum``, not ``@``): BLAS splits long dot products by its own thread
count, which would change the last bits with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

import numpy as np

# --------------------------------------------------------------------------------------------
# seeding
# --------------------------------------------------------------------------------------------


def kmeans_plusplus(
    X: np.ndarray,
    w: np.ndarray,
    weighted: bool,
    k: int,
    rng: np.random.Generator,
    kernels: ModuleType,
    n_local_trials: int | None = None,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy weighted k-means++ seeding.

    Parameters
    ----------
    X : (D, N) float32, planar points
    w : (N,) float64 weights (used only when ``weighted``)
    k : number of centres, 1 <= k
    rng : the only source of randomness; the same state gives the same centres
    start : (m, D) float64 centres to continue from, m < k (a warm start, e.g. the centroids
        found for a smaller K); they are returned first, and the k - m new centres are seeded
        against them

    Returns
    -------
    (k, D) float64 centres; the new ones are each one of the points.
    """
    D, N = X.shape
    trials = n_local_trials if n_local_trials is not None else 2 + int(np.log(k))
    closest = np.ones(N, np.float32)
    pot_c = np.empty(kernels.n_chunks(N), np.float64)
    pot_tc = np.empty((kernels.n_chunks(N), trials), np.float64)

    centres = np.empty((k, D), np.float32)
    m = 0 if start is None else int(start.shape[0])
    if m == 0:
        # closest is 1 everywhere here, so the first draw is proportional to the weights alone
        kernels.pp_state(X, w, weighted, closest, pot_c)
        first = kernels.pp_sample(w, weighted, closest, pot_c, rng.random())
        centres[0] = X[:, first]
        m = 1
    else:
        centres[:m] = start
    # from here on closest is the distance to the nearest centre: start it above any distance
    # (the largest float32, not inf, so that a zero weight times it is 0, not NaN)
    closest[:] = np.finfo(np.float32).max
    state = kernels.pp_state(X, w, weighted, closest, pot_c)
    for i in range(m):
        kernels.pp_update(X, w, weighted, np.ascontiguousarray(centres[i]), closest, pot_c, state)
    for i in range(m, k):
        draws = rng.random(trials)
        idx = [kernels.pp_sample(w, weighted, closest, pot_c, float(u)) for u in draws]
        cands = np.ascontiguousarray(X[:, idx].T)
        kernels.pp_trials(X, w, weighted, closest, cands, pot_tc, state)
        best = int(np.argmin(pot_tc.sum(axis=0)))
        centres[i] = cands[best]
        kernels.pp_update(X, w, weighted, cands[best], closest, pot_c, state)
    out = centres.astype(np.float64)
    if start is not None:
        out[: start.shape[0]] = start  # exact, not rounded through float32
    return out


def random_init(X: np.ndarray, w: np.ndarray, weighted: bool, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct points drawn without replacement, with probability proportional to weight.

    Returns
    -------
    (k, D) float64 centres. The caller guarantees at least ``k`` points of positive weight.
    """
    N = X.shape[1]
    p = None
    if weighted:
        p = w / w.sum()
    idx = np.sort(rng.choice(N, size=k, replace=False, p=p))
    return X[:, idx].T.astype(np.float64)


def spawn_seeds(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """``n`` independent generators from one: the first is ``rng`` itself, so ``n_init=1`` gives
    exactly the single-start result."""
    out = [rng]
    for s in cast(np.random.SeedSequence, rng.bit_generator.seed_seq).spawn(n - 1) if n > 1 else []:
        out.append(np.random.default_rng(s))
    return out


def initial_centroids(
    init: str | np.ndarray,
    X: np.ndarray,
    w: np.ndarray,
    weighted: bool,
    k: int,
    rng: np.random.Generator,
    kernels: ModuleType,
) -> np.ndarray:
    """(k, D) float64 starting centroids: ``init`` is "k-means++", "random" or a checked
    (k, D) float64 array (returned as it is)."""
    if isinstance(init, str):
        if init == "k-means++":
            return kmeans_plusplus(X, w, weighted, k, rng, kernels)
        return random_init(X, w, weighted, k, rng)
    return init


# --------------------------------------------------------------------------------------------
# Lloyd
# --------------------------------------------------------------------------------------------


@dataclass
class LloydResult:
    """What the loop produced; see :class:`kmpress.KMeansResult` for the meaning of the fields."""

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    inertia_history: list[float]


def moments(X: np.ndarray, w: np.ndarray, weighted: bool, variance: bool = True) -> tuple[float, float]:
    """Return the (weighted) sum of squared norms of the points, and the mean over channels of their
    (weighted) variance (0.0 unless ``variance``), in float64, chunk by chunk in a fixed order.

    Parameters
    ----------
    X : (D, N) float32, planar points
    w : (N,) float64 weights (used only when ``weighted``)

    Returns
    -------
    (sum_i w_i ||x_i||^2, mean_d sum_i w_i (x_di - mean_d)^2 / sum_i w_i)

    Each chunk of 2^20 points is converted to float64 once, into one buffer, for both sums of
    the first pass (its squares and the means); the variance takes a second pass
    (:func:`mean_variance`).
    """
    sum_sq, mean, total_w = first_moments(X, w, weighted)
    return sum_sq, mean_variance(X, w, weighted, mean, total_w) if variance else 0.0


#: Points per chunk of :func:`first_moments` and :func:`mean_variance`.
MOMENT_STEP = 1 << 20


def first_moments(X: np.ndarray, w: np.ndarray, weighted: bool) -> tuple[float, np.ndarray, float]:
    """Return the first pass of :func:`moments`: ``sum_i w_i ||x_i||^2``, the (D,) float64
    (weighted) mean of the points and the sum of the weights (N when unweighted)."""
    D, N = X.shape
    step = MOMENT_STEP
    buf = np.empty(D * min(N, step))
    total_w = float(w.sum()) if weighted else float(N)
    mean = np.zeros(D)
    sum_sq = 0.0
    for s in range(0, N, step):
        n = min(N - s, step)
        xb = buf[: D * n].reshape(D, n)
        np.copyto(xb, X[:, s : s + n])
        mean += np.einsum("dn,n->d", xb, w[s : s + n]) if weighted else xb.sum(axis=1)
        sq = np.einsum("dn,dn->n", xb, xb)
        sum_sq += float(np.einsum("n,n->", sq, w[s : s + n])) if weighted else float(sq.sum())
    mean /= total_w
    return sum_sq, mean, total_w


def mean_variance(X: np.ndarray, w: np.ndarray, weighted: bool, mean: np.ndarray, total_w: float) -> float:
    """Return the second pass of :func:`moments`: the mean over channels of the (weighted)
    variance of (D, N) float32 points about their (D,) float64 ``mean`` (of
    :func:`first_moments`, as ``total_w``)."""
    D, N = X.shape
    step = MOMENT_STEP
    buf = np.empty(D * min(N, step))
    var = np.zeros(D)
    for s in range(0, N, step):
        n = min(N - s, step)
        xb = buf[: D * n].reshape(D, n)
        np.copyto(xb, X[:, s : s + n])
        xb -= mean[:, None]
        xb *= xb
        var += np.einsum("dn,n->d", xb, w[s : s + n]) if weighted else xb.sum(axis=1)
    return float(var.mean() / total_w)


def variance_bounds(sum_sq: float, mean: np.ndarray, total_w: float) -> tuple[float, float]:
    """Return bounds ``lo <= mean_variance(...) <= hi`` from the first moments alone.

    ``sum_i w_i ||x_i - m||^2 = sum_i w_i ||x_i||^2 - W ||m||^2`` for the mean ``m``: both
    sides are formed in float64 from sums of at most 2^40 terms, each within a relative
    2^-30 of its exact value together with the mean's own rounding (``W ||m||^2 <=
    sum w ||x||^2``), so a margin of 2^-20 ``sum_sq`` holds both with room to spare. Only a
    variance that is small against ``||m||^2`` leaves the bounds wide apart.
    """
    D = mean.shape[0]
    scale = D * total_w
    mid = (sum_sq - total_w * float(np.dot(mean, mean))) / scale
    margin = math.ldexp(sum_sq, -20) / scale
    return mid - margin, mid + margin


class _Workspace:
    """Per-chunk partial sums, allocated once per fit and reused by every iteration."""

    def __init__(
        self,
        kernels: ModuleType,
        X: np.ndarray,
        w: np.ndarray,
        weighted: bool,
        k: int,
        first: tuple[float, np.ndarray, float] | None = None,
        boxes: Any = None,
    ) -> None:
        d, n = X.shape
        nc = kernels.n_chunks(n)
        # running per-chunk sums of the current labels (the kernels update them incrementally)
        self.sums_c = np.zeros((nc, k, d), np.float64)
        self.wsum_c = np.zeros((nc, k), np.float64)
        self.chunk = kernels.CHUNK
        self.changed_c = np.empty(nc, np.int64)
        self.boxes = kernels.block_boxes(X) if boxes is None else boxes
        # sum_sq gives every pass's inertia; the mean, the stopping threshold's scale (the
        # variance), measured only when a comparison needs it (see Lloyd.small_shift)
        self.sum_sq, self.mean, self.total_w = first_moments(X, w, weighted) if first is None else first
        self.mean_var: float | None = None

    def run(self, kernels, X, w, weighted, C, labels):
        """One assignment pass against ``C``: (inertia, labels changed, sums (K, D), weights (K,))."""
        kernels.assign_accumulate(
            X, w, weighted, C.astype(np.float32), labels, self.sums_c, self.wsum_c, self.changed_c, self.boxes
        )
        # merged in chunk order: the same sums whatever the number of threads
        sums = self.sums_c.sum(axis=0)
        wsum = self.wsum_c.sum(axis=0)
        # sum_i w_i |x_i - c_k(i)|^2 = sum w|x|^2 - 2 sum_k c_k . S_k + sum_k W_k |c_k|^2, exactly;
        # clipped at 0 against the rounding of the difference
        inertia = self.sum_sq - 2.0 * float(np.einsum("kd,kd->", C, sums)) + float(np.einsum("k,kd,kd->", wsum, C, C))
        return max(inertia, 0.0), int(self.changed_c.sum()), sums, wsum


def _settle_sums(ws, X, w, weighted, labels, clusters, sums, wsum) -> None:
    """Recompute the sums of ``clusters`` afresh from the labels (in place: merged and per chunk).

    The kernels keep the sums running from one iteration to the next; with weights that are not
    integers, a cluster whose points all left can keep a rounding residue instead of 0, and a
    tiny cluster next to huge weights carries the rounding of the huge ones. Summed afresh, a
    weight is 0 exactly when no point of positive weight has the label. Per chunk with
    ``np.bincount``, in point order, as the NumPy kernels sum every cluster.

    Parameters
    ----------
    clusters : (m,) int, the clusters to recompute
    sums, wsum : (K, D), (K,) float64 merged sums, IN/OUT
    """
    K, D = sums.shape
    idx = np.flatnonzero(np.isin(labels, clusters))
    key = (idx // ws.chunk) * K + labels[idx]
    size = ws.wsum_c.shape[0] * K
    wi = w[idx] if weighted else None
    ws.wsum_c[:, clusters] = np.bincount(key, weights=wi, minlength=size).reshape(-1, K)[:, clusters]
    for j in range(D):
        col = X[j, idx].astype(np.float64)
        part = np.bincount(key, weights=col * wi if weighted else col, minlength=size).reshape(-1, K)
        ws.sums_c[:, clusters, j] = part[:, clusters]
    # merged in chunk order, as every merged sum
    sums[clusters] = ws.sums_c[:, clusters].sum(axis=0)
    wsum[clusters] = ws.wsum_c[:, clusters].sum(axis=0)


def _relocate_empty(kernels, ws, X, w, weighted, C, labels, sums, wsum) -> None:
    """Give every empty cluster (weight exactly 0) the point farthest from its centroid (in place).

    The point leaves its old cluster (whose sums lose it, merged and per chunk) and alone makes
    up the empty one. Candidates are taken by decreasing distance, ties by lowest index, so the
    choice is deterministic; a point is not taken from a cluster it would leave empty (with no
    other point of positive weight).
    """
    empty = np.flatnonzero(wsum == 0.0)
    N = X.shape[1]
    # points of positive weight per cluster: whether one may leave is a count, not a weight
    # difference that rounding could blur
    members = np.bincount(labels[w > 0] if weighted else labels, minlength=wsum.shape[0])
    dist = np.empty(N, np.float64)
    kernels.dist_to_assigned(X, C, labels, dist)
    m = min(N, 4 * empty.size + 64)
    cand = np.argpartition(-dist, m - 1)[:m] if m < N else np.arange(N)
    cand = cand[np.lexsort((cand, -dist[cand]))]
    ci = 0
    for j in empty:
        while ci < cand.size:
            p = int(cand[ci])
            ci += 1
            wp = float(w[p]) if weighted else 1.0
            old = int(labels[p])
            if dist[p] <= 0.0:
                # every point left sits on its centroid: nothing to move
                ci = cand.size
                break
            if wp <= 0.0 or members[old] <= 1:
                # a weightless point cannot fill a cluster; the last point of one cannot leave it
                continue
            members[old] -= 1
            members[j] += 1
            wx = wp * X[:, p].astype(np.float64)
            sums[old] -= wx
            wsum[old] -= wp
            sums[j] = wx
            wsum[j] = wp
            c = p // ws.chunk
            ws.sums_c[c, old] -= wx
            ws.wsum_c[c, old] -= wp
            ws.sums_c[:, j] = 0.0
            ws.wsum_c[:, j] = 0.0
            ws.sums_c[c, j] = wx
            ws.wsum_c[c, j] = wp
            labels[p] = j
            break


class Lloyd:
    """The state of one Lloyd run, advanced one iteration at a time by :meth:`step`.

    Parameters
    ----------
    X : (D, N) float32, planar points
    w : (N,) float64 weights (used only when ``weighted``)
    init : (K, D) float64 starting centroids (not modified)
    kernels : the backend module
    first : :func:`first_moments` of ``X``, when already measured
    boxes : ``kernels.block_boxes(X)``, when already made

    Attributes
    ----------
    C : (K, D) float64 current centroids
    labels : (N,) int32 labels of the last assignment (-1 before the first)
    history : inertia of every assignment pass, in order
    n_iter : centroid updates made
    """

    def __init__(
        self,
        X: np.ndarray,
        w: np.ndarray,
        weighted: bool,
        init: np.ndarray,
        kernels: ModuleType,
        first: tuple[float, np.ndarray, float] | None = None,
        boxes: Any = None,
    ) -> None:
        D, N = X.shape
        self.X, self.w, self.weighted, self.kernels = X, w, weighted, kernels
        self.ws = _Workspace(kernels, X, w, weighted, init.shape[0], first, boxes)
        self.C = np.array(init, dtype=np.float64, order="C", copy=True)
        self.labels = np.full(N, -1, np.int32)
        # a cluster is empty when no point of positive weight has its label: its weight is then 0.
        # The kernels' running sums of non-integer weights can leave a rounding residue instead,
        # so a cluster under this weight has its sums recomputed afresh before it is judged
        # (integer weights, e.g. pixel counts, sum exactly: there only empty clusters are under it)
        self.suspect = 1e-12 * (float(w.sum()) if weighted else float(N))
        self.history: list[float] = []
        self.n_iter = 0

    def assign(self) -> tuple[int, np.ndarray, np.ndarray]:
        """Assign every point to its nearest current centroid: (labels changed, sums, weights)."""
        inertia, changed, sums, wsum = self.ws.run(self.kernels, self.X, self.w, self.weighted, self.C, self.labels)
        self.history.append(inertia)
        return changed, sums, wsum

    def relabel(self) -> None:
        """Assign every point to its nearest current centroid, labels only: no sums, and NaN
        for the pass's inertia in :attr:`history`, for a caller that measures it itself."""
        self.kernels.nearest(self.X, self.C.astype(np.float32), self.labels, self.ws.boxes)
        self.history.append(math.nan)

    def small_shift(self, shift: float, tol: float) -> bool:
        """Whether a sum of squared centroid shifts is at most ``tol`` times the points' mean
        variance (the loop's stopping test, :func:`moments`). The variance takes a pass over the
        points: it is measured only when its bounds from the first moments
        (:func:`variance_bounds`) leave the answer open, and then kept."""
        if tol <= 0.0:
            return shift <= 0.0
        ws = self.ws
        if ws.mean_var is None:
            lo, hi = variance_bounds(ws.sum_sq, ws.mean, ws.total_w)
            # rounding is monotonic: tol * hi (rounded) bounds tol * mean_var (rounded), as lo
            if shift > tol * hi:
                return False
            if shift <= tol * lo:
                return True
            ws.mean_var = mean_variance(self.X, self.w, self.weighted, ws.mean, ws.total_w)
        return shift <= tol * ws.mean_var

    def step(self) -> tuple[bool, float]:
        """One iteration: assign, then move every centroid to the mean of its points.

        Returns ``(stable, shift)``: ``stable`` when no label changed (the centroids are already
        the means of their points: a fixed point, nothing is moved), else the sum of squared
        centroid shifts of the update.
        """
        changed, sums, wsum = self.assign()
        if changed == 0:
            return True, 0.0
        low = np.flatnonzero(wsum <= self.suspect)
        if low.size:
            _settle_sums(self.ws, self.X, self.w, self.weighted, self.labels, low, sums, wsum)
            if np.any(wsum == 0.0):
                _relocate_empty(self.kernels, self.ws, self.X, self.w, self.weighted, self.C, self.labels, sums, wsum)
        new = self.C.copy()
        filled = wsum > 0.0
        new[filled] = sums[filled] / wsum[filled, None]
        shift = float(((new - self.C) ** 2).sum())
        self.C = new
        self.n_iter += 1
        return False, shift


def lloyd(
    X: np.ndarray,
    w: np.ndarray,
    weighted: bool,
    init: np.ndarray,
    max_iter: int,
    tol: float,
    kernels: ModuleType,
    final_assign: bool = True,
    final_inertia: bool = True,
    first: tuple[float, np.ndarray, float] | None = None,
    boxes: Any = None,
) -> LloydResult:
    """Run Lloyd's algorithm from ``init``.

    Parameters
    ----------
    X : (D, N) float32, planar points
    w : (N,) float64 weights (used only when ``weighted``)
    init : (K, D) float64 starting centroids (not modified)
    max_iter : most centroid updates to make (0 only assigns)
    tol : relative threshold on the sum of squared centroid shifts
    final_assign : when False, skip the last assignment pass if the loop stopped on a centroid
        shift (the caller remaps onto a rounded palette anyway); labels are then those of the
        previous centroids
    final_inertia : when False, that last assignment gives the labels alone, and the result's
        inertia (the last of its history) is NaN: for a caller that measures it itself
    first, boxes : :func:`first_moments` of ``X`` and ``kernels.block_boxes(X)``, when already
        measured (see :func:`kmpress.points.frame_points`)
    """
    run = Lloyd(X, w, weighted, init, kernels, first, boxes)
    converged = stable = False
    # a search state that can keep bounds (the NumPy backend's) keeps those of every pass, for
    # a last assignment of labels alone
    bounds = final_assign and not final_inertia and hasattr(run.ws.boxes, "keep_bounds")
    for _ in range(max_iter):
        if bounds:
            run.ws.boxes.keep_bounds = True
        stable, shift = run.step()
        if stable or run.small_shift(shift, tol):
            converged = True
            break
    if not stable and (final_assign or not run.history):
        if final_inertia:
            run.assign()
        else:
            run.relabel()
    return LloydResult(run.C, run.labels, run.history[-1], run.n_iter, converged, run.history)
