"""Stage 3, kmpress.clustering (through kmpress.kmeans): Lloyd against the slow reference Lloyd
and k-means++ against its oracle (tests/reference.py), on both backends.

With the same explicit init, ``tol=0`` and the same ``max_iter`` every correct Lloyd gives the same
labels and centroids. The data are chosen (and checked, via the reference's smallest
best-vs-second-best distance gap) so that no point is within float32 rounding of a tie: a label
mismatch is then a real bug, not rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import reference_kmeans_plusplus, reference_lloyd

import kmpress
from kmpress.clustering import kmeans_plusplus

BACKENDS = ["numba", "numpy"]

# (n, d, k, weighted, seed): blob data sets whose every assignment pass keeps a relative gap of
# more than MIN_GAP_REL between the best and second-best centroid (checked in the tests)
CASES = [
    (400, 3, 6, False, 7),
    (2000, 3, 8, True, 4),
    (700, 4, 5, False, 1),
    (3000, 4, 8, True, 7),
    (1000, 3, 12, True, 4),
    (1500, 4, 10, False, 7),
]
# float32 distances (in the numpy backend by ||c||^2 - 2 x.c) err by at most ~1e-6 of the
# largest squared norm; a gap 5x larger than that cannot be flipped by rounding
MIN_GAP_REL = 5e-6


def _assert_matches(res, ref, rtol=1e-6):
    np.testing.assert_array_equal(res.labels, ref.labels)
    scale = max(1.0, float(np.abs(ref.centroids).max()))
    np.testing.assert_allclose(res.centroids, ref.centroids, rtol=0, atol=rtol * scale)
    assert res.n_iter == ref.n_iter
    assert res.converged == ref.converged
    assert res.inertia == pytest.approx(ref.inertia, rel=1e-9)
    assert len(res.inertia_history) == len(ref.inertia_history)
    np.testing.assert_allclose(res.inertia_history, ref.inertia_history, rtol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[f"n{c[0]}-d{c[1]}-k{c[2]}-{'w' if c[3] else 'u'}" for c in CASES])
def test_matches_reference_to_convergence(make_blobs, backend, case):
    n, d, k, weighted, seed = case
    X, w, init = make_blobs(seed, n, d, k)
    weights = w if weighted else None
    ref = reference_lloyd(X, init, weights=weights, max_iter=60, tol=0)
    assert ref.min_gap_rel > MIN_GAP_REL, "test data has near-ties; pick another seed"
    assert ref.converged and ref.n_iter >= 3  # a real run, not a trivial one
    res = kmpress.kmeans(X, k, weights=weights, init=init, max_iter=60, tol=0, backend=backend)
    assert res.labels.dtype == np.int32 and res.centroids.dtype == np.float64
    assert res.centroids.shape == (k, d) and res.labels.shape == (n,)
    _assert_matches(res, ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("max_iter", [0, 1, 2, 4])
def test_matches_reference_with_capped_iterations(make_blobs, backend, max_iter):
    # stopped by max_iter: not converged, and the final labels belong to the final centroids
    X, w, init = make_blobs(4, 2000, 3, 8)
    ref = reference_lloyd(X, init, weights=w, max_iter=max_iter, tol=0)
    assert ref.min_gap_rel > MIN_GAP_REL
    assert not ref.converged or max_iter == 0
    res = kmpress.kmeans(X, 8, weights=w, init=init, max_iter=max_iter, tol=0, backend=backend)
    _assert_matches(res, ref)
    if max_iter == 0:
        np.testing.assert_array_equal(res.centroids, init)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d,seed", [(3, 8), (4, 4)])
def test_empty_clusters_are_reseeded_like_the_reference(make_blobs, backend, d, seed):
    # two centroids far from every point: both are empty after the first pass and must be
    # re-seeded with the farthest points, never left as NaN
    X, w, init = make_blobs(seed, 400, d, 6)
    init = init.copy()
    init[1] = 250.0
    init[4] = -250.0
    ref = reference_lloyd(X, init, weights=w, max_iter=60, tol=0)
    assert ref.min_gap_rel > MIN_GAP_REL
    assert ref.relocations >= 2  # the case under test really happens
    res = kmpress.kmeans(X, 6, weights=w, init=init, max_iter=60, tol=0, backend=backend)
    assert np.all(np.isfinite(res.centroids))
    assert np.all(np.abs(res.centroids) < 200)  # nobody stayed out at +-250
    assert len(np.unique(res.labels)) == 6
    _assert_matches(res, ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_cluster_takes_farthest_point_lowest_index_on_ties(backend):
    # integer data, exact arithmetic: points 3 and 4 are equally far (10) from centroid 0;
    # the empty centroid 1 must take point 3 (lowest index)
    X = np.array([[0, 0, 0], [0, 1, 0], [0, -1, 0], [10, 0, 0], [-10, 0, 0]], np.float32)
    init = np.array([[0, 0, 0], [500, 500, 500]], np.float64)
    ref = reference_lloyd(X, init, max_iter=1, tol=0)
    assert ref.relocations == 1
    res = kmpress.kmeans(X, 2, init=init, max_iter=1, tol=0, backend=backend)
    np.testing.assert_allclose(ref.centroids, [[-2.5, 0, 0], [10, 0, 0]])
    _assert_matches(res, ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_go_to_the_lowest_index(backend):
    # point 2 is exactly between the two centroids (exact in float32)
    X = np.array([[0, 0, 0], [4, 0, 0], [2, 0, 0], [2, 5, 0]], np.float32)
    init = np.array([[0, 0, 0], [4, 0, 0]], np.float64)
    res = kmpress.kmeans(X, 2, init=init, max_iter=0, tol=0, backend=backend)
    np.testing.assert_array_equal(res.labels, [0, 1, 0, 0])
    init_rev = init[::-1].copy()
    res = kmpress.kmeans(X, 2, init=init_rev, max_iter=0, tol=0, backend=backend)
    np.testing.assert_array_equal(res.labels, [1, 0, 0, 0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_points_and_k_equals_n(backend):
    X = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    res = kmpress.kmeans(X, 4, seed=3, backend=backend)
    assert sorted(map(tuple, res.centroids.astype(int))) == sorted(map(tuple, X.astype(int)))
    assert res.inertia == 0.0
    assert len(set(res.labels.tolist())) == 4
    np.testing.assert_array_equal(res.centroids[res.labels], X.astype(np.float64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_k1_is_the_weighted_mean(make_blobs, backend):
    X, w, _ = make_blobs(2, 500, 4, 3)
    res = kmpress.kmeans(X, 1, weights=w, backend=backend)
    mean = (w[:, None] * X.astype(np.float64)).sum(axis=0) / w.sum()
    np.testing.assert_allclose(res.centroids[0], mean, rtol=1e-9, atol=1e-9)
    assert np.all(res.labels == 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_final_labels_belong_to_final_centroids(make_blobs, backend, init):
    # whatever stopped the loop (default tol here), labels are nearest to the returned centroids
    # and the reported inertia is theirs
    X, w, _ = make_blobs(5, 3000, 3, 10)
    res = kmpress.kmeans(X, 10, weights=w, init=init, seed=1, backend=backend)
    X64 = X.astype(np.float64)
    d = ((X64[:, None, :] - res.centroids[None]) ** 2).sum(axis=2)
    best = d.min(axis=1)
    mine = d[np.arange(len(X)), res.labels]
    # equal up to float32 rounding of the distances used to choose
    assert np.all(mine <= best + 1e-5 * (1 + best))
    assert res.inertia == pytest.approx(float((w * mine).sum()), rel=1e-9)
    assert res.inertia == res.inertia_history[-1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_kmeans_plus_plus_picks_data_points_and_is_seeded(make_blobs, backend):
    X, w, _ = make_blobs(3, 1500, 3, 7)
    a = kmpress.kmeans(X, 7, weights=w, seed=11, max_iter=0, backend=backend)
    b = kmpress.kmeans(X, 7, weights=w, seed=11, max_iter=0, backend=backend)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    # with max_iter=0 the centroids are the seeds: distinct points of the data
    rows = {tuple(r) for r in X.astype(np.float64)}
    assert all(tuple(c) in rows for c in a.centroids)
    assert len({tuple(c) for c in a.centroids}) == 7
    others = [kmpress.kmeans(X, 7, weights=w, seed=s, max_iter=0, backend=backend).centroids for s in (12, 13, 14)]
    assert any(not np.array_equal(a.centroids, o) for o in others), "the seed changes nothing"


@pytest.mark.parametrize("backend", BACKENDS)
def test_tol_stops_earlier_and_is_reported(photos, backend):
    # a loose tol must stop on the centroid shift well before tol=0 reaches its fixed point
    px = photos["chelsea"][::4, ::4].reshape(-1, 3)
    loose = kmpress.kmeans(px, 16, seed=0, tol=1e-2, backend=backend)
    exact = kmpress.kmeans(px, 16, seed=0, tol=0, max_iter=500, backend=backend)
    assert loose.converged and exact.converged
    assert loose.n_iter < exact.n_iter
    assert exact.inertia <= loose.inertia * (1 + 1e-9)


def test_backends_agree_on_kmeans_plus_plus(make_blobs):
    # the seeding kernels differ (float32 vs float64 sums) but pick the same points on easy data
    X, w, _ = make_blobs(6, 1000, 4, 6)
    a = kmpress.kmeans(X, 6, weights=w, seed=5, tol=0, backend="numba")
    b = kmpress.kmeans(X, 6, weights=w, seed=5, tol=0, backend="numpy")
    np.testing.assert_allclose(a.centroids, b.centroids, rtol=0, atol=1e-6 * 300)
    np.testing.assert_array_equal(a.labels, b.labels)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_fewer_distinct_points_than_k(backend, init):
    # 3 distinct points, k=5: centroids may coincide but are finite, and every label is valid
    X = np.array([[0, 0, 0], [9, 9, 9], [0, 0, 0], [200, 10, 3], [9, 9, 9], [0, 0, 0]] * 3, np.uint8)
    r = kmpress.kmeans(X, 5, init=init, seed=0, backend=backend)
    assert np.all(np.isfinite(r.centroids))
    assert r.labels.min() >= 0 and r.labels.max() < 5
    assert r.inertia == 0.0
    np.testing.assert_array_equal(r.centroids[r.labels], X.astype(np.float64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_weight_points_are_never_seeds(make_blobs, backend):
    X, w, _ = make_blobs(1, 500, 3, 4)
    w = w.copy()
    w[::2] = 0.0
    r = kmpress.kmeans(X, 6, weights=w, seed=3, max_iter=0, backend=backend)
    seeds = {tuple(c) for c in r.centroids}
    zero_rows = {tuple(x) for x in X[::2].astype(np.float64)}
    assert not seeds & zero_rows


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_cluster_is_reseeded_past_a_weightless_outlier(backend):
    """A zero-weight point (allowed: weights are non-negative) that happens to be the farthest
    must not stop the re-seeding: it cannot fill a cluster, so the next farthest point of positive
    weight does. Otherwise the cluster stays empty for good, its centroid stranded at its init
    (see ``_relocate_empty`` in kmpress.clustering).
    """
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 5, (200, 3)), rng.normal(60, 5, (200, 3)), [[500, 500, 500]]]).astype(np.float32)
    w = np.ones(len(X))
    w[-1] = 0.0  # the outlier weighs nothing
    init = np.array([[0, 0, 0], [60, 60, 60], [-900, -900, -900]], np.float64)
    ref = reference_lloyd(X, init, weights=w, max_iter=100, tol=0)
    assert ref.relocations == 1 and np.all(np.abs(ref.centroids) < 100)
    res = kmpress.kmeans(X, 3, weights=w, init=init, max_iter=100, tol=0, backend=backend)
    assert np.all(np.abs(res.centroids) < 100), f"a centroid was left stranded: {res.centroids.tolist()}"
    assert np.all(np.bincount(res.labels, weights=w, minlength=3) > 0)
    _assert_matches(res, ref)


# --------------------------------------------------------------------------------------------
# seeding against the oracle
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 9])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_plus_plus_equals_the_oracle(kern, k, seed):
    # integer points and weights: the potentials are exact integers in both, so the same draws
    # pick the same points
    rng = np.random.default_rng(100 + seed)
    P = rng.integers(0, 64, (400, 3)).astype(np.float32)
    w = rng.integers(1, 4, 400).astype(np.float64)
    got = kmeans_plusplus(np.ascontiguousarray(P.T), w, True, k, np.random.default_rng(seed), kern)
    ref, _ = reference_kmeans_plusplus(P, w, k, np.random.default_rng(seed))
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("max_iter,tol", [(0, 0.0), (1, 0.0), (3, 0.0), (50, 1e-4)])
def test_a_last_pass_of_labels_only_gives_the_same_fit(make_blobs, backend, max_iter, tol):
    from kmpress import backends
    from kmpress.clustering import lloyd

    kern = backends.load(backend)
    pts, w, C0 = make_blobs(5, 3000, 3, 6)
    X = np.ascontiguousarray(pts.T)
    full = lloyd(X, w, True, C0, max_iter, tol, kern, final_assign=True)
    lean = lloyd(X, w, True, C0, max_iter, tol, kern, final_assign=True, final_inertia=False)
    assert np.array_equal(full.labels, lean.labels) and np.array_equal(full.centroids, lean.centroids)
    assert (full.n_iter, full.converged) == (lean.n_iter, lean.converged)
    assert full.inertia_history[:-1] == lean.inertia_history[:-1]
    stopped_on_a_shift = len(full.inertia_history) == full.n_iter + 1
    assert np.isnan(lean.inertia) if stopped_on_a_shift else lean.inertia == full.inertia
