"""The compiled kernels against the NumPy baseline and against their own unpruned form.

The pruning (block bounding boxes) must be exact: same labels as scanning every centroid, and the
same k-means++ centres as the NumPy baseline, which never prunes.
"""

from __future__ import annotations

import numpy as np
import pytest

from kmpress import kernels_numba as kn
from kmpress import kernels_numpy as kp
from kmpress.histogram import build_histogram
from kmpress.clustering import kmeans_plusplus


def _no_pruning_boxes(X):
    nbk = (X.shape[1] + kn.BLOCK - 1) // kn.BLOCK
    d = X.shape[0]
    return np.full((nbk, d), -np.inf, np.float32), np.full((nbk, d), np.inf, np.float32)


@pytest.fixture(scope="module")
def photo_hist(photo):
    return build_histogram(photo, kn)


@pytest.fixture(scope="module")
def photo():
    from kmpress import read_image
    from pathlib import Path

    return read_image(Path(__file__).parent / "data" / "coffee.png")


@pytest.mark.parametrize("k", [1, 2, 16, 64, 256])
@pytest.mark.parametrize("kind", ["float", "int"])
def test_pruned_nearest_equals_full_scan(photo_hist, k, kind):
    X = photo_hist.planar()
    rng = np.random.default_rng(k)
    C = rng.uniform(0, 255, (k, 3)) if kind == "float" else rng.integers(0, 256, (k, 3)).astype(float)
    C32 = C.astype(np.float32)
    pruned = np.empty(X.shape[1], np.int32)
    full = np.empty(X.shape[1], np.int32)
    kn.nearest(X, C32, pruned, kn.block_boxes(X))
    kn.nearest(X, C32, full, _no_pruning_boxes(X))
    assert np.array_equal(pruned, full)
    # brute force in float64 on a sample: the label is a nearest centroid (ties allowed)
    sample = rng.choice(X.shape[1], 2000, replace=False)
    P = X[:, sample].T.astype(np.float64)
    d = ((P[:, None, :] - C32[None].astype(np.float64)) ** 2).sum(-1)
    chosen = d[np.arange(sample.size), pruned[sample]]
    assert np.all(chosen <= d.min(axis=1) * (1 + 1e-6) + 1e-6)


def test_nearest_integer_palette_equals_numpy_exactly(photo_hist):
    # integer colours and palette: every distance is exact in float32, so the backends agree exactly
    X = photo_hist.planar()
    pal = np.random.default_rng(3).integers(0, 256, (48, 3)).astype(np.float32)
    a = np.empty(X.shape[1], np.int32)
    b = np.empty(X.shape[1], np.int32)
    kn.nearest(X, pal, a, kn.block_boxes(X))
    kp.nearest(X, pal, b, kp.block_boxes(X))
    assert np.array_equal(a, b)


def test_pruning_on_unsorted_points_and_4d():
    rng = np.random.default_rng(7)
    X = np.ascontiguousarray(rng.uniform(0, 255, (4, 5000)).astype(np.float32))
    C32 = rng.uniform(0, 255, (37, 4)).astype(np.float32)
    a = np.empty(5000, np.int32)
    b = np.empty(5000, np.int32)
    kn.nearest(X, C32, a, kn.block_boxes(X))
    kn.nearest(X, C32, b, _no_pruning_boxes(X))
    assert np.array_equal(a, b)


@pytest.mark.parametrize("weighted", [True, False])
def test_assign_accumulate_matches_numpy(photo_hist, weighted):
    X = photo_hist.planar()
    N = X.shape[1]
    w = photo_hist.counts.astype(np.float64) if weighted else np.empty(0)
    C32 = photo_hist.colors[:: max(1, N // 20)][:20].astype(np.float32)
    K = C32.shape[0]
    out = {}
    for mod in (kn, kp):
        nc = mod.n_chunks(N)
        labels = np.full(N, -1, np.int32)
        # running sums: zero before the first assignment (labels -1)
        sums_c = np.zeros((nc, K, 3))
        wsum_c = np.zeros((nc, K))
        changed_c = np.empty(nc, np.int64)
        mod.assign_accumulate(X, w, weighted, C32, labels, sums_c, wsum_c, changed_c, mod.block_boxes(X))
        out[mod.NAME] = (labels, sums_c.sum(0), wsum_c.sum(0), changed_c.sum())
    # integer palette and points: labels exact; sums of integers in float64 exact
    assert np.array_equal(out["numba"][0], out["numpy"][0])
    assert np.array_equal(out["numba"][1], out["numpy"][1])
    assert np.array_equal(out["numba"][2], out["numpy"][2])
    assert out["numba"][3] == out["numpy"][3] == N


def test_incremental_sums_equal_fresh_sums(photo_hist):
    # iterate with moving centroids: the running (incremental) per-chunk sums of the numba kernel
    # must equal the NumPy baseline's sums computed afresh, exactly (integer colours and counts)
    X = photo_hist.planar()
    N = X.shape[1]
    w = photo_hist.counts.astype(np.float64)
    rng = np.random.default_rng(4)
    K = 12
    state = {}
    for mod in (kn, kp):
        nc = mod.n_chunks(N)
        state[mod.NAME] = (np.full(N, -1, np.int32), np.zeros((nc, K, 3)), np.zeros((nc, K)), np.empty(nc, np.int64))
    for step in range(5):
        C32 = rng.integers(0, 256, (K, 3)).astype(np.float32)
        sums = {}
        for mod in (kn, kp):
            labels, sums_c, wsum_c, changed_c = state[mod.NAME]
            mod.assign_accumulate(X, w, True, C32, labels, sums_c, wsum_c, changed_c, mod.block_boxes(X))
            sums[mod.NAME] = (labels.copy(), sums_c.sum(0), wsum_c.sum(0), int(changed_c.sum()))
        for a, b in zip(sums["numba"], sums["numpy"]):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("k", [1, 5, 32])
def test_kmeanspp_numba_equals_numpy(photo_hist, k):
    X = photo_hist.planar()
    w = photo_hist.counts.astype(np.float64)
    a = kmeans_plusplus(X, w, True, k, np.random.default_rng(11), kn)
    b = kmeans_plusplus(X, w, True, k, np.random.default_rng(11), kp)
    assert np.array_equal(a, b)
    assert len(np.unique(a, axis=0)) == k


def test_kmeanspp_picks_are_points_and_far_apart():
    # two tight, far-apart clusters: the two seeds must land one in each
    rng = np.random.default_rng(0)
    P = np.concatenate([rng.normal(20, 1, (500, 3)), rng.normal(220, 1, (500, 3))]).astype(np.float32)
    X = np.ascontiguousarray(P.T)
    for seed in range(5):
        C = kmeans_plusplus(X, np.empty(0), False, 2, np.random.default_rng(seed), kn)
        assert sorted(C[:, 0] > 120) == [False, True]
        assert all(np.any(np.all(P == c.astype(np.float32), axis=1)) for c in C)


def test_kmeanspp_weights_equal_repetition():
    rng = np.random.default_rng(5)
    P = rng.integers(0, 256, (300, 3)).astype(np.float32)
    counts = rng.integers(1, 5, 300)
    Xw = np.ascontiguousarray(P.T)
    Xr = np.ascontiguousarray(np.repeat(P, counts, axis=0).T)
    a = kmeans_plusplus(Xw, counts.astype(np.float64), True, 12, np.random.default_rng(2), kn)
    b = kmeans_plusplus(Xr, np.empty(0), False, 12, np.random.default_rng(2), kn)
    assert np.array_equal(a, b)


def test_histogram_morton_order_is_compact(photo_hist):
    # consecutive colours are near in colour space: the median block extent is far below 255
    bmin, bmax = kn.block_boxes(photo_hist.planar())
    assert np.median((bmax - bmin).max(axis=1)) < 64
