"""The peers of the Lloyd benchmarks: the plain NumPy iteration (the yardstick of the NumPy
backend) and scikit-learn, optional (never a dependency of kmpress).

``numpy-plain``: :func:`numpy_plain_iteration`, one Lloyd iteration as a competent engineer
writes it in NumPy, without kmpress's guarantees (labels exactly numba's, per-chunk sums):
chunks of 8192 points, distances by one float32 matrix product per chunk
(``x @ (-2 C^T) + ||c||^2``), ``argmin``, sums by ``np.bincount``. The ``numpy`` backend's
iteration is measured beside it.

Two ways of timing scikit-learn:

- ``sklearn``: the public ``KMeans(init=C0, n_init=1, algorithm="lloyd").fit``, what a user
  would call. Every fit validates and copies its input, centres the data and, after the last
  iteration, assigns the labels once more; at 24 MP that set-up costs seconds, so for one
  iteration it dominates.
- ``sklearn-iter``: scikit-learn's own one-iteration kernel (``lloyd_iter_chunked_dense``, a
  private function, used only if it imports): the iteration alone, comparable with one call of
  ``kmpress.clustering.lloyd(max_iter=1)``.
"""

from __future__ import annotations

import numpy as np

try:
    from sklearn.cluster import KMeans

    HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_SKLEARN = False

try:  # private API: may move between scikit-learn versions, then the peer is left out
    from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_dense
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    from threadpoolctl import threadpool_limits

    HAVE_SKLEARN_ITER = HAVE_SKLEARN
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_SKLEARN_ITER = False


def sklearn_fit(rows: np.ndarray, weights: np.ndarray | None, c0: np.ndarray, *, max_iter: int, tol: float):
    """Fit scikit-learn's Lloyd k-means from ``c0``.

    Parameters
    ----------
    rows : (N, 3) float32 points (scikit-learn keeps float32 input in float32)
    weights : (N,) float64 sample weights, or None
    c0 : (K, 3) float64 starting centroids

    Returns
    -------
    The fitted ``KMeans``.
    """
    km = KMeans(n_clusters=c0.shape[0], init=c0, n_init=1, max_iter=max_iter, tol=tol, algorithm="lloyd")
    return km.fit(rows, sample_weight=weights)


def sklearn_weights(rows: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Sample weights as scikit-learn's kernel wants them: (N,) in the dtype of ``rows`` (ones if None).
    Made once, outside the timing."""
    if weights is None:
        return np.ones(rows.shape[0], rows.dtype)
    return np.ascontiguousarray(weights, dtype=rows.dtype)


def sklearn_one_iteration(rows: np.ndarray, sw: np.ndarray, c0: np.ndarray) -> np.ndarray:
    """One Lloyd iteration with scikit-learn's kernel: assign every point, then update the centres.

    Parameters
    ----------
    rows : (N, 3) float32 points
    sw : (N,) sample weights from :func:`sklearn_weights`
    c0 : (K, 3) float64 starting centroids

    Buffers are allocated per call, as ``kmpress.clustering.lloyd`` does. BLAS is limited to one
    thread as in scikit-learn's own loop (its kernel parallelises over chunks with OpenMP).

    Returns
    -------
    (K, 3) new centres, in the dtype of ``rows``.
    """
    dtype = rows.dtype
    n, k = rows.shape[0], c0.shape[0]
    centers = np.ascontiguousarray(c0, dtype=dtype)
    centers_new = np.zeros_like(centers)
    weight_in_clusters = np.zeros(k, dtype)
    labels = np.full(n, -1, np.int32)
    center_shift = np.zeros(k, dtype)
    with threadpool_limits(limits=1, user_api="blas"):
        lloyd_iter_chunked_dense(
            rows, sw, centers, centers_new, weight_in_clusters, labels, center_shift, _openmp_effective_n_threads()
        )
    return centers_new


#: Points per chunk of :func:`numpy_plain_iteration` (8192 and 65536 take the same time at K=16;
#: 8192 is the faster at K=256).
PLAIN_CHUNK = 8192


def numpy_plain_iteration(X: np.ndarray, w: np.ndarray | None, c0: np.ndarray) -> np.ndarray:
    """One plain NumPy Lloyd iteration: assign every point, then move every centre to its mean.

    Parameters
    ----------
    X : (D, N) float32 planar points
    w : (N,) float64 weights, or None
    c0 : (K, D) float64 centroids

    Returns
    -------
    (K, D) float64 new centres (an empty cluster keeps its centre).
    """
    D, N = X.shape
    K = c0.shape[0]
    m2c = np.ascontiguousarray(-2.0 * c0.T, dtype=np.float32)
    cc = (c0 * c0).sum(axis=1).astype(np.float32)
    sums = np.zeros((K, D))
    wsum = np.zeros(K)
    for s in range(0, N, PLAIN_CHUNK):
        e = min(N, s + PLAIN_CHUNK)
        g = X[:, s:e].T @ m2c
        g += cc
        lab = g.argmin(axis=1)
        ww = None if w is None else w[s:e]
        wsum += np.bincount(lab, weights=ww, minlength=K)
        for j in range(D):
            sums[:, j] += np.bincount(lab, weights=X[j, s:e] if ww is None else X[j, s:e] * ww, minlength=K)
    out = c0.copy()
    filled = wsum > 0
    out[filled] = sums[filled] / wsum[filled, None]
    return out
