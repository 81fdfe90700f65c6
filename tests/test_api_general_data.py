"""``kmeans`` on general float and integer data, not only colours: far from the origin, in a tiny
range around 1, and large integers. The labels must be the nearest centroids (within the float32
rounding of the centred points), the inertia must be the float64 recomputation, and neither may
depend on the thread count of numba or of the BLAS library."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from reference import reference_lloyd

import kmpress
from kmpress.points import centre

BACKENDS = ["numba", "numpy"]
N = 6000


def _blobs(seed: int = 0, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (5, 3))
    return centres[rng.integers(0, 5, n)] + rng.normal(0, 3, (n, 3))


#: name -> points. The offsets make float32 useless without centring: at 1e6 its spacing is
#: 0.06 (the blobs' spread is ~3), around 1 with a spread of 1e-6 it is 1.2e-7, near 3e7 it is 2.
DATASETS = {
    "offset 1e6": lambda: _blobs() + 1e6,
    "offset 1e3": lambda: _blobs() + 1e3,
    "1 +- 1e-6": lambda: 1.0 + _blobs() * 1e-7,
    "int64 near 3e7": lambda: (3e7 + _blobs() * 100).astype(np.int64),
}


def _float64_centroids(x: np.ndarray, k: int = 8, iters: int = 25) -> np.ndarray:
    """Plain float64 Lloyd (the answer scikit-learn's float64 KMeans converges to)."""
    rng = np.random.default_rng(1)
    C = x[rng.choice(len(x), k, replace=False)]
    for _ in range(iters):
        lab = ((x[:, None] - C[None]) ** 2).sum(-1).argmin(1)
        C = np.array([x[lab == j].mean(0) if np.any(lab == j) else C[j] for j in range(k)])
    return C


def _assert_nearest(x: np.ndarray, C: np.ndarray, labels: np.ndarray) -> None:
    """Every label is the nearest centroid in float64, up to what rounding the centred points
    to float32 can change: |d(x', c)^2 - d(x, c)^2| <= 2 |x - c| |x' - x| + |x' - x|^2."""
    d = ((x[:, None] - C[None]) ** 2).sum(-1)
    chosen = d[np.arange(len(x)), labels]
    best = d.min(axis=1)
    err = np.spacing(np.abs(x - x.mean(axis=0)).astype(np.float32)).astype(np.float64).max(axis=1) * np.sqrt(3)
    slack = 2 * (2 * np.sqrt(chosen) * err + err * err) + 1e-12 * best
    bad = np.flatnonzero(chosen - best > slack)
    assert bad.size == 0, (
        f"{bad.size} of {len(x)} labels are not the nearest centroid (worst excess {(chosen - best).max():.3g})"
    )


def _inertia64(x: np.ndarray, C: np.ndarray, labels: np.ndarray, w: np.ndarray | None = None) -> float:
    sq = ((x - C[labels]) ** 2).sum(axis=1)
    return float(sq.sum() if w is None else (sq * w).sum())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", DATASETS)
def test_labels_from_given_centroids_are_the_nearest(name, backend):
    X = DATASETS[name]()
    x = X.astype(np.float64)
    C = _float64_centroids(x)
    r = kmpress.kmeans(X, 8, init=C, max_iter=0, backend=backend)
    _assert_nearest(x, C, r.labels)
    assert r.inertia == pytest.approx(_inertia64(x, C, r.labels), rel=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", DATASETS)
def test_a_full_run_is_exact_off_the_origin(name, backend):
    X = DATASETS[name]()
    x = X.astype(np.float64)
    w = np.random.default_rng(2).random(len(X)) + 0.5
    for weights in (None, w):
        r = kmpress.kmeans(X, 8, weights=weights, seed=3, backend=backend)
        _assert_nearest(x, r.centroids, r.labels)
        assert r.inertia == pytest.approx(_inertia64(x, r.centroids, r.labels, weights), rel=1e-9)
        assert r.inertia_history[-1] == r.inertia
        # as good a fit as float64 Lloyd from a k-means++ start (the same blobs, any offset)
        ref = _float64_centroids(x)
        ref_lab = ((x[:, None] - ref[None]) ** 2).sum(-1).argmin(1)
        assert r.inertia <= 1.0001 * _inertia64(x, ref, ref_lab, weights) or r.converged


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_integer_offset_changes_nothing_but_the_centroids(backend):
    # integer points are centred on an integer: the centred values, hence the whole run, are the same
    rng = np.random.default_rng(4)
    X = rng.integers(0, 1000, (N, 3))
    w = rng.random(N)
    a = kmpress.kmeans(X, 12, weights=w, seed=1, backend=backend)
    b = kmpress.kmeans(X + 30_000_000, 12, weights=w, seed=1, backend=backend)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(b.centroids - 30_000_000, a.centroids, rtol=0, atol=1e-6)
    assert b.inertia == pytest.approx(a.inertia, rel=1e-12)
    assert a.n_iter == b.n_iter


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_offsets_find_the_same_clustering(backend):
    base = _blobs(5)
    labels = {off: kmpress.kmeans(base + off, 8, seed=2, backend=backend).labels for off in (0.0, 1e3, 1e6)}
    agree = [float(np.mean(labels[off] == labels[0.0])) for off in (1e3, 1e6)]
    assert min(agree) > 0.999, agree


_THREADS_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    import numpy as np
    import kmpress
    rng = np.random.default_rng(0)
    # 300,000 weighted points off the origin: long float64 sums, many chunks of the kernels
    X = rng.normal(0, 3, (300_000, 3)) + 1e6
    w = rng.random(300_000)
    out = {}
    for backend in ("numba", "numpy"):
        r = kmpress.kmeans(X, 16, weights=w, seed=0, max_iter=20, backend=backend)
        out[backend] = [hashlib.sha256(r.centroids.tobytes() + r.labels.tobytes()).hexdigest(),
                        repr(r.inertia), [repr(v) for v in r.inertia_history]]
    print(json.dumps(out))
    """
)


def test_thread_counts_of_numba_and_blas_change_no_bit(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_THREADS_SCRIPT)
    results = {}
    for numba_threads, blas_threads in ((1, 1), (2, 2), (2, 1), (1, 2)):
        env = dict(
            os.environ,
            NUMBA_NUM_THREADS=str(numba_threads),
            OPENBLAS_NUM_THREADS=str(blas_threads),
            OMP_NUM_THREADS=str(blas_threads),
            MKL_NUM_THREADS=str(blas_threads),
        )
        p = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        results[numba_threads, blas_threads] = json.loads(p.stdout.strip().splitlines()[-1])
    first = results[1, 1]
    # both backends give the same centroids, labels and inertia to the bit (the history's running
    # sums of float weights are kept incrementally by numba, afresh by numpy: last bits differ)
    assert first["numba"][:2] == first["numpy"][:2]
    for key, res in results.items():
        assert res == first, key


# --------------------------------------------------------------------------------------------
# magnitudes float32 cannot hold as given: scaled by a power of two, or refused
# --------------------------------------------------------------------------------------------


def _three_blobs(n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated blobs (spread 0.1, 8+ apart) and which blob each point is from."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0], [10.0, 0.0, 10.0]])
    truth = np.repeat(np.arange(3), n)
    return centres[truth] + rng.normal(0, 0.1, (3 * n, 3)), truth


def _same_partition(labels: np.ndarray, truth: np.ndarray) -> bool:
    pairs = set(zip(labels.tolist(), truth.tolist(), strict=True))
    return len(pairs) == len(set(truth.tolist())) == len({a for a, _ in pairs})


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "scale, dtype",
    [
        (1e20, np.float64),
        (1e-25, np.float64),
        (1e37, np.float64),
        (3e37, np.float32),
        (1e150, np.float64),
        (1e-300, np.float64),
    ],
)
def test_blobs_of_any_magnitude_are_found(scale, dtype, backend):
    # beyond ~1e19 float32's squared distances overflow, below ~1e-19 they vanish
    x, truth = _three_blobs()
    X = (x * scale).astype(dtype)
    ref = kmpress.kmeans(x, 3, seed=0, backend=backend)
    r = kmpress.kmeans(X, 3, seed=0, backend=backend)
    assert _same_partition(r.labels, truth)
    assert np.all(np.isfinite(r.centroids)) and r.converged
    # in the caller's units: centroids as the unscaled ones times the scale, inertia times its square
    np.testing.assert_allclose(
        r.centroids, ref.centroids[_perm(ref.labels, r.labels)] * scale, rtol=1e-6, atol=1e-6 * scale
    )
    assert r.inertia == pytest.approx(_inertia64(X.astype(np.float64), r.centroids, r.labels), rel=1e-9)
    if scale > 1e-150:  # (1e-300 squared is below float64's range: 0)
        assert r.inertia == pytest.approx(ref.inertia * scale * scale, rel=1e-4)


def _perm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each cluster of labelling ``b``, the cluster of ``a`` holding the same points."""
    return np.array([np.bincount(a[b == j]).argmax() for j in range(b.max() + 1)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("exponent", [70, -90, 40, -40])
def test_a_power_of_two_scale_changes_nothing_but_the_units(exponent, backend):
    # scaling by 2^e is exact in float32 and float64: the same run to the bit, in other units
    X = _blobs(7) + 1e3
    w = np.random.default_rng(8).random(len(X)) + 0.25
    for weights in (None, w):
        a = kmpress.kmeans(X, 8, weights=weights, seed=4, backend=backend)
        b = kmpress.kmeans(np.ldexp(X, exponent), 8, weights=weights, seed=4, backend=backend)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(np.ldexp(a.centroids, exponent), b.centroids)
        assert b.inertia_history == [math.ldexp(v, 2 * exponent) for v in a.inertia_history]
        assert (a.n_iter, a.converged) == (b.n_iter, b.converged)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("exponent", [900, -900, 40, -40])
def test_weights_times_a_power_of_two_change_nothing_but_the_inertia(exponent, backend):
    X = _blobs(9)
    w = np.random.default_rng(10).random(len(X)) + 0.25
    a = kmpress.kmeans(X, 8, weights=w, seed=5, backend=backend)
    b = kmpress.kmeans(X, 8, weights=np.ldexp(w, exponent), seed=5, backend=backend)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    assert b.inertia_history == [math.ldexp(v, exponent) for v in a.inertia_history]
    assert (a.n_iter, a.converged) == (b.n_iter, b.converged)


@pytest.mark.parametrize("backend", BACKENDS)
def test_weights_whose_sum_overflows_are_clustered(backend):
    x, truth = _three_blobs(333)  # 999 points of weight 1e306: the weights sum to 1e309
    x *= 1e-3  # (inertia ~0.03 x 1e306, within float64)
    w = np.full(len(x), 1e306)
    ref = kmpress.kmeans(x, 3, seed=0, backend=backend)
    r = kmpress.kmeans(x, 3, weights=w, seed=0, backend=backend)
    assert _same_partition(r.labels, truth)
    np.testing.assert_array_equal(r.labels, ref.labels)
    np.testing.assert_allclose(r.centroids, ref.centroids, rtol=1e-12, atol=1e-15)
    assert r.inertia == pytest.approx(ref.inertia * 1e306, rel=1e-9)
    assert (r.n_iter, r.converged) == (ref.n_iter, ref.converged)
    assert not np.array_equal(
        r.centroids, kmpress.kmeans(x, 3, weights=w, seed=0, max_iter=0, backend=backend).centroids
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_inertia_beyond_float64_is_refused(backend):
    x, _ = _three_blobs()
    with pytest.raises(kmpress.InvalidParameterError, match="inertia overflows float64"):
        kmpress.kmeans(x * 1e200, 3, seed=0, backend=backend)
    with pytest.raises(kmpress.InvalidParameterError, match="weights up to 1e[+]306"):
        kmpress.kmeans(x * 10, 3, weights=np.full(len(x), 1e306), seed=0, backend=backend)  # inertia ~8e308


def test_coordinates_of_ranges_too_far_apart_are_refused():
    x, _ = _three_blobs()
    x[:, 0] *= 1e28
    x[:, 1] *= 1e-1
    kmpress.kmeans(x, 3, seed=0, backend="numpy")  # 2^100 apart at most: taken
    x[:, 1] *= 1e-30
    with pytest.raises(kmpress.InvalidParameterError, match="coordinate 1 varies within .*coordinate 0 within"):
        kmpress.kmeans(x, 3, seed=0, backend="numpy")
    x[:, 1] = 7.0  # a constant coordinate does not vary: fine
    kmpress.kmeans(x, 3, seed=0, backend="numpy")


def test_an_init_array_float32_cannot_compare_is_refused():
    x, _ = _three_blobs()
    init = np.array([[0.0, 0, 0], [5, 5, 5], [1e300, 0, 0]])
    with pytest.raises(kmpress.InvalidParameterError, match="init array"):
        kmpress.kmeans(x, 3, init=init, backend="numpy")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cluster_of_tiny_weight_is_not_empty(backend):
    # one point of weight 1e12 and the rest 1: a one-point cluster is 1e-12 of the total weight
    rng = np.random.default_rng(0)
    X = np.concatenate([[[0.0, 0.0, 0.0]], rng.normal(10, 0.5, (100, 3)), [[20.0, 0.0, 0.0]]])
    w = np.ones(len(X))
    w[0] = 1e12
    init = np.array([[0.0, 0, 0], [10, 10, 10], [19, 0, 0]])
    r = kmpress.kmeans(X, 3, weights=w, init=init, backend=backend)
    ref = reference_lloyd(X, init, weights=w)
    np.testing.assert_array_equal(r.centroids[2], [20.0, 0.0, 0.0])  # moved onto its point
    np.testing.assert_array_equal(r.labels, ref.labels)
    np.testing.assert_allclose(r.centroids, ref.centroids, rtol=1e-6)  # float32 points
    assert (r.n_iter, r.converged) == (ref.n_iter, ref.converged)
    # with non-integer weights around it too (their running sums round)
    w2 = w * (1 + np.random.default_rng(1).random(len(X)) / 3)
    r = kmpress.kmeans(X, 3, weights=w2, init=init, backend=backend)
    ref = reference_lloyd(X, init, weights=w2)
    np.testing.assert_array_equal(r.labels, ref.labels)
    np.testing.assert_allclose(r.centroids, ref.centroids, rtol=1e-6)  # float32 points


def test_a_coordinate_is_centred_when_more_than_16_times_its_spread():
    w = np.empty(0)
    # values 14 and 16: mean 15, spread 1, largest 16 = 16 x spread exactly: kept as given
    a = np.array([[14.0, 0, 0], [16.0, 0, 0]])
    assert centre(a, w, False)[0][0] == 0.0
    # 15 and 17: largest 17 > 16 x 1: centred on 16
    assert centre(a + [1.0, 0, 0], w, False)[0][0] == 16.0
