"""The last assignment of a fit on the NumPy backend, searched only among the centroids that may
beat each point's label (bounds kept by the pass before it): the same labels as a full search
by either backend, on near ties, exact ties, moved labels, tiny inputs and 3-D and 4-D points;
and whole fits through it equal to the numba backend's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import kmpress
from kmpress import clustering
from kmpress import kernels_numba as kn
from kmpress import kernels_numpy as kp
from kmpress.kernels_numpy import _search

EMPTY = np.empty(0, np.float64)


def kept_pass(X, C0):
    """A NumPy workspace whose bounds were kept by one search of every point against ``C0``."""
    N = X.shape[1]
    ws = kp.block_boxes(X)
    ws.centroids(C0)
    ws.record(True)
    labels = np.empty(N, np.int32)
    for s in range(0, N, kp.CHUNK):
        labels[s : s + kp.CHUNK] = ws.search(X, s, min(N, s + kp.CHUNK))
    ws.kept()
    assert ws.bounds is not None
    return ws, labels


def full_labels(X, C):
    a, b = np.empty(X.shape[1], np.int32), np.empty(X.shape[1], np.int32)
    kn.nearest(X, C, a, kn.block_boxes(X))
    kp.nearest(X, C, b, kp.block_boxes(X))
    assert np.array_equal(a, b)
    return a


@pytest.fixture(autouse=True)
def always_narrowed(monkeypatch):
    # the narrowed searches whatever they cost (the sample would turn large moves to full searches)
    monkeypatch.setattr(_search, "WORTH", np.inf)


def bounded_labels(X, C0, C, labels_edit=None):
    ws, labels = kept_pass(X, C0)
    if labels_edit is not None:
        labels_edit(labels)
    assert _search.nearest_from_bounds(ws, X, C, labels)
    return labels


def near_tie_data(k, d, n, offset, seed):
    """Points on or a hair off the bisectors of pairs of integer centroids (exact ties among them),
    with those centroids, and centroids a small step away from them (the pass before)."""
    rng = np.random.default_rng(seed)
    C = np.round(rng.uniform(0, 255, (k, d))).astype(np.float32) + np.float32(offset)
    pairs = rng.integers(0, k, (n, 2))
    mid = ((C[pairs[:, 0]].astype(np.float64) + C[pairs[:, 1]]) / 2).astype(np.float32)
    hair = rng.normal(0, 1e-3 * (1 + abs(offset)), mid.shape).astype(np.float32)
    hair[: n // 2] = 0
    X = np.ascontiguousarray((mid + hair).T)
    step = rng.normal(0, 1.0, C.shape) * (rng.random((k, 1)) < 0.5)
    C0 = (C + step).astype(np.float32)
    return X, C0, C


@pytest.mark.parametrize("k", [1, 2, 5, 16, 48, 64, 65, 100, 256])
@pytest.mark.parametrize("d", [3, 4])
@pytest.mark.parametrize("offset", [0.0, 3000.5])
def test_bounded_search_equals_the_full_search_on_near_ties(k, d, offset):
    X, C0, C = near_tie_data(k, d, 20_011, offset, k * 7 + d)
    want = full_labels(X, C)
    if k >= 16:
        # not vacuous: exact ties, and labels that the moves changed
        d2 = ((X.T[:, None, :].astype(np.float64) - C[None].astype(np.float64)) ** 2).sum(-1)
        assert np.count_nonzero((d2 == d2.min(axis=1, keepdims=True)).sum(axis=1) > 1) > 100
        assert np.count_nonzero(full_labels(X, C0) != want) > 100
    assert np.array_equal(bounded_labels(X, C0, C), want)


@pytest.mark.parametrize("k", [3, 16, 64, 256])
@pytest.mark.parametrize("scale", [0.0, 0.05, 2.0, 40.0, 1e4])
def test_bounded_search_equals_the_full_search_for_small_and_large_moves(k, scale):
    rng = np.random.default_rng(k)
    X = np.ascontiguousarray(rng.integers(0, 256, (3, 30_000)).astype(np.float32))
    C0 = X[:, rng.choice(30_000, k, replace=False)].T.copy()
    C = (C0 + rng.normal(0, scale, C0.shape) * (rng.random((k, 1)) < 0.7)).astype(np.float32)
    assert np.array_equal(bounded_labels(X, C0, C), full_labels(X, C))


@pytest.mark.parametrize("k", [4, 64, 256])
def test_a_point_whose_label_moved_since_is_searched_again(k):
    # an empty cluster's new point: its label is not the one the kept pass found
    rng = np.random.default_rng(k + 1)
    X = np.ascontiguousarray(rng.integers(0, 256, (3, 10_000)).astype(np.float32))
    C0 = X[:, :k].T.copy()
    C = C0.copy()  # nothing moved: every other point keeps its label

    def move(labels):
        labels[::97] = (labels[::97] + 1) % k

    assert np.array_equal(bounded_labels(X, C0, C, move), full_labels(X, C))


@pytest.mark.parametrize("n", [1, 2, 3, 8])
@pytest.mark.parametrize("k", [1, 2, 8])
def test_tiny_inputs(n, k):
    if k > n:
        return
    rng = np.random.default_rng(n * 10 + k)
    X = np.ascontiguousarray(rng.integers(0, 4, (4, n)).astype(np.float32))  # duplicates, ties
    C0 = X[:, :k].T.copy()
    C = (C0 + rng.integers(-1, 2, C0.shape)).astype(np.float32)
    assert np.array_equal(bounded_labels(X, C0, C), full_labels(X, C))


def _fit(points, k, weights, max_iter, backend, tol=1e-4):
    r = kmpress.kmeans(points, k, weights=weights, max_iter=max_iter, tol=tol, seed=3, backend=backend)
    return r.labels.tobytes(), r.centroids.tobytes(), r.inertia, r.inertia_history, r.n_iter, r.converged


def _fits(monkeypatch, points, k, weights, max_iter, tol=1e-4):
    """The fit of the NumPy backend, the same with every last pass a full search, and numba's."""
    got = _fit(points, k, weights, max_iter, "numpy", tol)
    with monkeypatch.context() as m:
        m.setattr(kp, "nearest_from_bounds", lambda *args: False)
        plain = _fit(points, k, weights, max_iter, "numpy", tol)
    return got, plain, _fit(points, k, weights, max_iter, "numba", tol)


@pytest.mark.parametrize("kind", ["uint8", "float64 colours", "float32 off the origin", "int64", "float64"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("d", [3, 4])
def test_fits_through_the_bounded_search_equal_the_full_search(monkeypatch, kind, weighted, d):
    rng = np.random.default_rng(len(kind) + d)
    n = 12_000
    base = rng.integers(0, 256, (n, d))
    points = {
        "uint8": lambda: base.astype(np.uint8),
        "float64 colours": lambda: base.astype(np.float64),
        "float32 off the origin": lambda: (base / 7 + 1e4).astype(np.float32),
        "int64": lambda: base.astype(np.int64) * 1000 - 5,
        "float64": lambda: rng.normal(size=(n, d)) * 1e-3 + 0.5,
    }[kind]()
    w = rng.random(n) * 4 if weighted else None
    for k, max_iter in ((5, 1), (65, 1), (100, 3), (100, 30)):
        got, plain, numba = _fits(monkeypatch, points, k, w, max_iter)
        assert got == plain, (k, max_iter)
        if not weighted:
            # float weights: the numba kernels' running sums differ in the last bits
            assert got == numba, (k, max_iter)


@pytest.mark.parametrize("n", [1, 2, 3, 16, 17, 80])
def test_tiny_fits_equal_the_full_search(monkeypatch, n):
    rng = np.random.default_rng(n)
    points = rng.integers(0, 3, (n, 3)).astype(np.float64)  # duplicates: ties and coinciding centroids
    for k in sorted({1, min(2, n), n, min(n, 70)}):
        for max_iter in (1, 2, 10):
            got, plain, numba = _fits(monkeypatch, points, k, None, max_iter)
            assert got == plain == numba, (k, max_iter)


def test_the_last_pass_uses_the_bounds_when_they_are_worth_it(monkeypatch):
    # K above the column search's: every pass keeps bounds; the last one uses them when the
    # centroids moved little, and searches every point among all when they moved much
    monkeypatch.setattr(_search, "WORTH", 0.3)
    rng = np.random.default_rng(9)
    X = np.ascontiguousarray(rng.integers(0, 256, (3, 40_000)).astype(np.float32))
    init = X[:, :100].T.astype(np.float64)
    used = []
    original = kp.nearest_from_bounds

    def spy(*args):
        used.append(original(*args))
        return used[-1]

    monkeypatch.setattr(kp, "nearest_from_bounds", spy)
    for max_iter, narrowed in ((1, False), (40, True)):
        used.clear()
        r = clustering.lloyd(X, EMPTY, False, init, max_iter, 0.0, kp, final_assign=True, final_inertia=False)
        if r.n_iter == max_iter:
            assert used == [narrowed]
        want = clustering.lloyd(X, EMPTY, False, init, max_iter, 0.0, kn, final_assign=True, final_inertia=False)
        assert r.labels.tobytes() == want.labels.tobytes() and r.centroids.tobytes() == want.centroids.tobytes()
    used.clear()
    # the last assignment with its sums (final_inertia) is a full pass
    clustering.lloyd(X, EMPTY, False, init, 3, 0.0, kp, final_assign=True, final_inertia=True)
    assert not used


@pytest.mark.parametrize("k", [16, 48, 65, 100, 256])
def test_every_slab_of_a_chunk_is_searched_with_a_bound_on_its_own_points(k):
    # norms growing along the points: a slab that straddles two slabs counted from the first
    # point must take its bound from the blocks it covers, not from where it starts
    n = 3 * kp.CHUNK + 700
    X = np.ascontiguousarray(np.linspace(1, 1e4, n, dtype=np.float32)[None, :].repeat(3, axis=0))
    ws = kp.block_boxes(X)
    ws.centroids(np.zeros((k, 3), np.float32))
    norms = np.sqrt((X.astype(np.float64) ** 2).sum(axis=0))
    for s in range(0, n, kp.CHUNK):
        e = min(n, s + kp.CHUNK)
        for a in range(s, e, ws.slab):
            b = min(e, a + ws.slab)
            assert ws.norm_bound(a, b) >= norms[a:b].max()
    C = np.ascontiguousarray(X[:, :: max(1, n // k)].T[:k])
    full_labels(X, C)  # numba's and NumPy's labels agree
