"""``kmeans`` on general float and integer data, not only colours: far from the origin, in a tiny
range around 1, and large integers. The labels must be the nearest centroids (within the float32
rounding of the centred points), the inertia must be the float64 recomputation, and neither may
depend on the thread count of numba or of the BLAS library."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kmpress

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
    assert bad.size == 0, f"{bad.size} of {len(x)} labels are not the nearest centroid (worst excess {(chosen - best).max():.3g})"


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
        env = dict(os.environ, NUMBA_NUM_THREADS=str(numba_threads), OPENBLAS_NUM_THREADS=str(blas_threads),
                   OMP_NUM_THREADS=str(blas_threads), MKL_NUM_THREADS=str(blas_threads))
        p = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        results[numba_threads, blas_threads] = json.loads(p.stdout.strip().splitlines()[-1])
    first = results[1, 1]
    # both backends give the same centroids, labels and inertia to the bit (the history's running
    # sums of float weights are kept incrementally by numba, afresh by numpy: last bits differ)
    assert first["numba"][:2] == first["numpy"][:2]
    for key, res in results.items():
        assert res == first, key
