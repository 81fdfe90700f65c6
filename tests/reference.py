"""A slow, obviously-correct weighted Lloyd k-means, the yardstick for the engine's kernels.

Everything is float64 NumPy on small data, one iteration written out step by step as in the
textbook: assign every point to its nearest centroid (ties to the lowest index), then move every
centroid to the weighted mean of its points. It follows the loop rules that the engine documents
(:func:`kmpress.clustering.lloyd`), which are part of its contract, not an implementation detail:

- stop when an assignment pass changes no label (the centroids are then already the means of
  their points), or after ``max_iter`` updates, or - only when ``tol > 0`` - when the sum of
  squared centroid shifts is at most ``tol`` times the mean per-channel weighted variance; with
  ``tol == 0`` a zero shift also stops (the next pass could not change a label);
- after stopping on a shift or on ``max_iter``, one last assignment pass, so the labels always
  belong to the returned centroids;
- an empty cluster (total weight 0 after an assignment) is re-seeded with the point farthest from
  its own centroid (float64 distance, ties to the lowest point index), taken out of its old
  cluster; clusters are filled in increasing index order, a point is never taken from a cluster
  it would leave empty nor one of zero weight (it cannot fill a cluster), and the search gives
  up as soon as the farthest remaining point lies on its centroid. A cluster left empty keeps
  its old centroid.

The reference also records, for every assignment pass, the smallest gap between a point's best
and second-best squared distance. Tests use it to prove that their data has no near-ties, so that
float32 distance rounding in the kernels cannot legitimately pick another centroid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RefResult:
    """What :func:`reference_lloyd` computed.

    Attributes
    ----------
    centroids : (K, D) float64
    labels : (N,) int64
    inertia : float; weighted sum of squared distances to the assigned centroids (last pass)
    n_iter : int; centroid updates made
    converged : bool; stopped before ``max_iter`` ran out
    inertia_history : list of float; inertia of every assignment pass
    min_gap : float; smallest (second-best - best) squared distance seen over all passes
    min_gap_rel : float; ``min_gap`` divided by the largest squared norm of any point or centroid
        (the scale of float32 rounding errors in a ``|x|^2 - 2 x.c + |c|^2`` distance)
    relocations : int; empty clusters re-seeded over the whole run
    """

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    inertia_history: list[float] = field(default_factory=list)
    min_gap: float = np.inf
    min_gap_rel: float = np.inf
    relocations: int = 0


def _sqdist(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """(N, K) squared distances, by plain differences (no cancellation-prone expansion)."""
    diff = X[:, None, :] - C[None, :, :]
    return (diff * diff).sum(axis=2)


def _assign(X: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Nearest centroid (argmin picks the lowest index on exact ties), distances, smallest gap."""
    d = _sqdist(X, C)
    labels = d.argmin(axis=1)
    best = d[np.arange(len(X)), labels]
    if C.shape[0] > 1:
        part = np.partition(d, 1, axis=1)
        gap = float((part[:, 1] - part[:, 0]).min())
    else:
        gap = np.inf
    return labels, best, gap


def _weighted_sums(X: np.ndarray, w: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster weighted coordinate sums (K, D) and weights (K,): ``np.add.at`` adds point by
    point (unbuffered), the plain scatter-add."""
    sums = np.zeros((k, X.shape[1]))
    wsum = np.zeros(k)
    np.add.at(sums, labels, w[:, None] * X)
    np.add.at(wsum, labels, w)
    return sums, wsum


def _relocate_empty(X, w, C, labels, dist, sums, wsum) -> int:
    """Fill the empty clusters with the farthest points (in place); see the module docstring.

    Returns the number of clusters filled.
    """
    order = sorted(range(len(X)), key=lambda p: (-dist[p], p))
    pos = 0
    filled = 0
    for j in range(C.shape[0]):
        if wsum[j] > 0:
            continue
        while pos < len(order):
            p = order[pos]
            pos += 1
            if dist[p] <= 0:
                return filled  # every remaining point sits on its centroid
            if w[p] <= 0:
                continue  # a weightless point cannot make a cluster non-empty
            old = labels[p]
            if wsum[old] - w[p] <= 0:
                continue
            sums[old] -= w[p] * X[p]
            wsum[old] -= w[p]
            sums[j] = w[p] * X[p]
            wsum[j] = w[p]
            labels[p] = j
            filled += 1
            break
    return filled


def weighted_mean_variance(X: np.ndarray, w: np.ndarray) -> float:
    """Mean over channels of the weighted variance of the points."""
    mean = (w[:, None] * X).sum(axis=0) / w.sum()
    return float(((w[:, None] * (X - mean) ** 2).sum(axis=0) / w.sum()).mean())


def reference_lloyd(
    points: np.ndarray,
    init: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    max_iter: int = 300,
    tol: float = 0.0,
) -> RefResult:
    """Weighted Lloyd k-means from explicit starting centroids.

    Parameters
    ----------
    points : (N, D) array_like, converted to float64
    init : (K, D) array_like, starting centroids
    weights : (N,) non-negative, optional (default: all ones)
    max_iter : most centroid updates
    tol : relative shift threshold (see the module docstring)
    """
    X = np.asarray(points, dtype=np.float64)
    C = np.array(init, dtype=np.float64)
    n, k = len(X), C.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    threshold = tol * weighted_mean_variance(X, w) if tol > 0 else 0.0
    scale = float(max((X * X).sum(axis=1).max(), (C * C).sum(axis=1).max(), 1e-300))

    labels = np.full(n, -1)
    history: list[float] = []
    min_gap = np.inf
    n_iter = 0
    relocations = 0
    converged = False
    stable = False
    for _ in range(max_iter):
        new_labels, dist, gap = _assign(X, C)
        min_gap = min(min_gap, gap)
        history.append(float((w * dist).sum()))
        if np.array_equal(new_labels, labels):
            converged = stable = True
            break
        labels = new_labels
        sums, wsum = _weighted_sums(X, w, labels, k)
        if np.any(wsum <= 0):
            relocations += _relocate_empty(X, w, C, labels, dist, sums, wsum)
        new_C = C.copy()
        for j in range(k):
            if wsum[j] > 0:
                new_C[j] = sums[j] / wsum[j]
        shift = float(((new_C - C) ** 2).sum())
        C = new_C
        n_iter += 1
        if shift <= threshold:
            converged = True
            break
    if not stable:
        labels, dist, gap = _assign(X, C)
        min_gap = min(min_gap, gap)
        history.append(float((w * dist).sum()))
    return RefResult(
        centroids=C,
        labels=labels,
        inertia=history[-1],
        n_iter=n_iter,
        converged=converged,
        inertia_history=history,
        min_gap=min_gap,
        min_gap_rel=min_gap / scale,
        relocations=relocations,
    )
