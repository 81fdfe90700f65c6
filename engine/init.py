"""Stage 2: starting centroids, from a seeded numpy Generator.

Greedy weighted k-means++ (Arthur & Vassilvitskii 2007, with the local trials of scikit-learn):
each new centre is the best of ``2 + ln k`` candidates drawn with probability proportional to
``weight * D(x)^2``, where best means the lowest resulting potential.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np


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
