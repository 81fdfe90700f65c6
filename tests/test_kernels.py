"""The two backends' kernels (kmpress.kernels_numba, kmpress.kernels_numpy): one contract, the
compiled kernels against the NumPy baseline and against their own unpruned form, serial and
parallel twins, signatures, compilation on first use.

The pruning (block bounding boxes) must be exact: same labels as scanning every centroid, and the
same k-means++ centres as the NumPy baseline, which never prunes.

tests/e2e/test_nojit.py runs this module again with NUMBA_DISABLE_JIT=1 (the kernels as plain
Python, which bounds-checks every index) on a small crop; tests marked ``needs_jit`` are about
compilation itself and are left out of that run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import planar

from kmpress import kernels_numba as kn
from kmpress import kernels_numpy as kp
from kmpress.clustering import kmeans_plusplus
from kmpress.histogram import build_histogram

EMPTY = np.empty(0, np.float64)
#: the kernels run as plain Python (tests/e2e/test_nojit.py): small data only
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
ROOT = Path(__file__).resolve().parent.parent


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

    img = read_image(Path(__file__).parent / "data" / "coffee.png")
    return np.ascontiguousarray(img[100:124, 200:240]) if NO_JIT else img


@pytest.mark.parametrize("k", [1, 2, 16, 64, 256])
@pytest.mark.parametrize("kind", ["float", "int"])
def test_pruned_nearest_equals_full_scan(photo_hist, k, kind):
    X = planar(photo_hist)
    rng = np.random.default_rng(k)
    C = rng.uniform(0, 255, (k, 3)) if kind == "float" else rng.integers(0, 256, (k, 3)).astype(float)
    C32 = C.astype(np.float32)
    pruned = np.empty(X.shape[1], np.int32)
    full = np.empty(X.shape[1], np.int32)
    kn.nearest(X, C32, pruned, kn.block_boxes(X))
    kn.nearest(X, C32, full, _no_pruning_boxes(X))
    assert np.array_equal(pruned, full)
    # brute force in float64 on a sample: the label is a nearest centroid (ties allowed)
    sample = rng.choice(X.shape[1], min(2000, X.shape[1]), replace=False)
    P = X[:, sample].T.astype(np.float64)
    d = ((P[:, None, :] - C32[None].astype(np.float64)) ** 2).sum(-1)
    chosen = d[np.arange(sample.size), pruned[sample]]
    assert np.all(chosen <= d.min(axis=1) * (1 + 1e-6) + 1e-6)


def test_nearest_integer_palette_equals_numpy_exactly(photo_hist):
    # integer colours and palette: every distance is exact in float32, so the backends agree exactly
    X = planar(photo_hist)
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


@pytest.mark.skipif(NO_JIT, reason="needs many chunks of points: too slow as plain Python")
def test_pruning_by_chunk_then_block_keeps_every_nearest_centroid():
    # each chunk a few tight clusters near each other, so its list is short and its blocks'
    # boxes differ; duplicated and integer centroids, so ties are everywhere: the labels must
    # still be the full scan's
    rng = np.random.default_rng(11)
    n_chunks = 6
    centres = rng.integers(20, 236, (n_chunks, 3))
    per = kn.CHUNK // 4
    subs = [c + rng.integers(-20, 21, 3) for c in centres for _ in range(4)]
    pts = [np.clip(s + rng.integers(-4, 5, (per, 3)), 0, 255) for s in subs]
    X = np.ascontiguousarray(np.concatenate(pts).T.astype(np.float32))
    C = rng.integers(0, 256, (128, 3))
    C = np.concatenate([C, C, centres + 1, centres - 1])[:256].astype(np.float32)
    a = np.empty(X.shape[1], np.int32)
    b = np.empty(X.shape[1], np.int32)
    kn.nearest(X, C, a, kn.block_boxes(X))
    kn.nearest(X, C, b, _no_pruning_boxes(X))
    assert np.array_equal(a, b)
    assert not np.any((a >= 128) & (a < 256 - 2 * n_chunks)), "a duplicate never wins a tie"


@pytest.mark.parametrize("weighted", [True, False])
def test_assign_accumulate_matches_numpy(photo_hist, weighted):
    X = planar(photo_hist)
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


def _near_tie_points(k, d, n, offset):
    """(d, n) float32 points on or within a hair of the bisector of two centroids, and (k, d)
    float32 centroids: k - 2 random ones, then the two tied ones, the farther-from-index-0 first."""
    rng = np.random.default_rng(k * 10 + d)
    C = rng.uniform(0, 255, (k, d)).astype(np.float32) + np.float32(offset)
    pairs = rng.integers(0, k, (n, 2))
    mid = ((C[pairs[:, 0]].astype(np.float64) + C[pairs[:, 1]]) / 2).astype(np.float32)
    # half the points exactly on a midpoint (integer centroids below make them exact ties),
    # the others a few float32 steps off it
    hair = rng.normal(0, 1e-4 * (1 + abs(offset)), mid.shape).astype(np.float32)
    hair[: n // 2] = 0
    return np.ascontiguousarray((mid + hair).T), C


@pytest.mark.parametrize("k", [1, 2, 16, 64, 65, 256])
@pytest.mark.parametrize("d", [3, 4])
@pytest.mark.parametrize("offset", [0.0, 3000.5])
def test_numpy_labels_equal_numba_on_near_ties(k, d, offset):
    # the NumPy search ranks centroids by a matrix product, whose rounding differs from the numba
    # kernels' direct (x - c)^2: points close to a tie are decided again with numba's arithmetic
    X, C32 = _near_tie_points(k, d, 30_001, offset)  # several slabs and chunks, a ragged end
    N = X.shape[1]
    ref, got = np.empty(N, np.int32), np.empty(N, np.int32)
    kn.nearest(X, C32, ref, kn.block_boxes(X))
    kp.nearest(X, C32, got, kp.block_boxes(X))
    assert np.array_equal(ref, got)
    out = {}
    for mod in (kn, kp):
        nc = mod.n_chunks(N)
        labels, sums_c, wsum_c, changed_c = (
            np.full(N, -1, np.int32),
            np.zeros((nc, k, d)),
            np.zeros((nc, k)),
            np.empty(nc, np.int64),
        )
        mod.assign_accumulate(X, EMPTY, False, C32, labels, sums_c, wsum_c, changed_c, mod.block_boxes(X))
        out[mod.NAME] = labels, wsum_c, changed_c
    for a, b in zip(out["numba"], out["numpy"], strict=True):
        assert np.array_equal(a, b)
    if k >= 16:
        # not vacuous: the plain product's argmin disagrees with numba on some of these points,
        # and exact ties (integer centroids, points on a midpoint) go to the lower index
        plain = (X.T @ (-2 * C32.T) + (C32 * C32).sum(1)).argmin(axis=1)
        assert np.count_nonzero(plain != ref) > 0
        Ci = np.round(C32).astype(np.float32)
        Xi = np.ascontiguousarray(((Ci[:, None, :] + Ci[None, :, :]) / 2).reshape(-1, d).T)
        d2 = ((Xi.T[:, None, :].astype(np.float64) - Ci[None]) ** 2).sum(-1)
        assert np.count_nonzero((d2 == d2.min(axis=1, keepdims=True)).sum(axis=1) > 1) > k
        a, b = np.empty(Xi.shape[1], np.int32), np.empty(Xi.shape[1], np.int32)
        kn.nearest(Xi, Ci, a, kn.block_boxes(Xi))
        kp.nearest(Xi, Ci, b, kp.block_boxes(Xi))
        assert np.array_equal(a, b)


def test_incremental_sums_equal_fresh_sums(photo_hist):
    # iterate with moving centroids: the running (incremental) per-chunk sums of the numba kernel
    # must equal the NumPy baseline's sums computed afresh, exactly (integer colours and counts)
    X = planar(photo_hist)
    N = X.shape[1]
    w = photo_hist.counts.astype(np.float64)
    rng = np.random.default_rng(4)
    K = 12
    state = {}
    for mod in (kn, kp):
        nc = mod.n_chunks(N)
        state[mod.NAME] = (np.full(N, -1, np.int32), np.zeros((nc, K, 3)), np.zeros((nc, K)), np.empty(nc, np.int64))
    for _step in range(5):
        C32 = rng.integers(0, 256, (K, 3)).astype(np.float32)
        sums = {}
        for mod in (kn, kp):
            labels, sums_c, wsum_c, changed_c = state[mod.NAME]
            mod.assign_accumulate(X, w, True, C32, labels, sums_c, wsum_c, changed_c, mod.block_boxes(X))
            sums[mod.NAME] = (labels.copy(), sums_c.sum(0), wsum_c.sum(0), int(changed_c.sum()))
        for a, b in zip(sums["numba"], sums["numpy"], strict=True):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("k", [1, 5, 32])
def test_kmeanspp_numba_equals_numpy(photo_hist, k):
    X = planar(photo_hist)
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
    bmin, bmax = kn.block_boxes(planar(photo_hist))
    assert np.median((bmax - bmin).max(axis=1)) < 64


# --------------------------------------------------------------------------------------------
# the contract itself
# --------------------------------------------------------------------------------------------


def test_both_backends_have_the_same_kernels():
    for name in kn.CONTRACT:
        assert hasattr(kn, name) and hasattr(kp, name), name
    assert (kn.NAME, kp.NAME) == ("numba", "numpy")
    # the chunking both backends' sums follow: a copy that drifted would change NumPy's results
    for name in ("CHUNK", "STATS_CHUNK", "BLOCK"):
        assert getattr(kn, name) == getattr(kp, name), name


def _assign_inputs(photo_hist, K=24):
    X = planar(photo_hist)
    N = X.shape[1]
    w = photo_hist.counts.astype(np.float64)
    C32 = np.random.default_rng(1).uniform(0, 255, (K, 3)).astype(np.float32)
    nc = kn.n_chunks(N)
    return X, w, C32, (np.full(N, -1, np.int32), np.zeros((nc, K, 3)), np.zeros((nc, K)), np.empty(nc, np.int64))


def test_serial_and_parallel_twins_give_identical_results(photo_hist):
    X, w, C32, bufs = _assign_inputs(photo_hist)
    boxes = kn.block_boxes(X)
    outs = []
    for variant in (kn.assign_accumulate.serial, kn.assign_accumulate.parallel):
        b = tuple(a.copy() for a in bufs)
        variant(X, w, True, C32, *b, boxes)
        lab = np.empty(X.shape[1], np.int32)
        (kn.nearest.serial if variant is kn.assign_accumulate.serial else kn.nearest.parallel)(X, C32, lab, boxes)
        outs.append((*b, lab))
    for a, b in zip(*outs, strict=True):
        assert np.array_equal(a, b)
    closest = np.full(X.shape[1], np.finfo(np.float32).max, np.float32)
    pots = []
    for state_k, update_k, trials_k in (
        (kn.pp_state.serial, kn.pp_update.serial, kn.pp_trials.serial),
        (kn.pp_state.parallel, kn.pp_update.parallel, kn.pp_trials.parallel),
    ):
        cl = closest.copy()
        pot_c = np.empty(kn.n_chunks(X.shape[1]))
        state = state_k(X, w, True, cl, pot_c)
        update_k(X, w, True, np.ascontiguousarray(C32[0]), cl, pot_c, state)
        pot_tc = np.empty((kn.n_chunks(X.shape[1]), 3))
        trials_k(X, w, True, cl, np.ascontiguousarray(C32[1:4]), pot_tc, state)
        pots.append((cl, pot_c, pot_tc))
    for a, b in zip(*pots, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.needs_jit
def test_signatures_refuse_other_dtypes_and_layouts(photo_hist):
    X, w, C32, (labels, sums_c, wsum_c, changed_c) = _assign_inputs(photo_hist)
    boxes = kn.block_boxes(X)
    lab = np.empty(X.shape[1], np.int32)
    ro = X.copy()
    ro.flags.writeable = False
    for bad in (X.astype(np.float64), np.asfortranarray(X), ro, X[:, ::2]):
        with pytest.raises(TypeError):
            kn.nearest(bad, C32, lab[: bad.shape[1]], boxes)
    with pytest.raises(TypeError):
        kn.nearest(X, C32, lab.astype(np.int64), boxes)
    with pytest.raises(TypeError):
        kn.assign_accumulate(X, w.astype(np.float32), True, C32, labels, sums_c, wsum_c, changed_c, boxes)


@pytest.mark.needs_jit
def test_kernels_compile_on_first_use_only():
    code = (
        "import numpy as np\n"
        "from kmpress import kernels_numba as kn\n"
        "from kmpress.kernels_numba import _jit\n"
        "import kmpress.kernels_numba._histogram, kmpress.kernels_numba._nearest, kmpress.kernels_numba._seeding\n"
        "import kmpress.kernels_numba._remap, kmpress.kernels_numba._color, sys\n"
        "mods = [m for m in list(sys.modules.values())\n"
        "        if getattr(m, '__name__', '').startswith('kmpress.kernels_numba.')]\n"
        "ks = [v for m in mods for v in vars(m).values() if isinstance(v, _jit.Kernel)]\n"
        "ks += [t for m in mods\n"
        "       for v in vars(m).values() if isinstance(v, _jit.Twin) for t in (v.serial, v.parallel)]\n"
        "before = sum(k._dispatcher is not None for k in ks)\n"
        "out = np.empty(3, np.uint8)\n"
        "kn.gather(np.arange(3, dtype=np.uint8), np.array([2, 1, 0], np.int32), out)\n"
        "print(len(ks), before, sum(k._dispatcher is not None for k in ks), out.tolist())"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    n, before, after, out = r.stdout.split(maxsplit=3)
    assert int(n) >= 20 and int(before) == 0 and int(after) == 1 and out.strip() == "[2, 1, 0]"


def test_error_figures_equal_numba_bit_for_bit():
    # the ΔE sums run in the numba kernels' order, so backend="auto" reports the same figures
    # whichever backend an image's size picks
    from kmpress.colorspace import LINEAR_LUT, M1, M2
    from kmpress.metrics import oklab_of_colors

    rng = np.random.default_rng(3)
    U, P, N = (9_000, 37, 70_000) if NO_JIT else (20_000, 37, 150_000)  # several chunks either way
    colors = rng.integers(0, 256, (U, 3), dtype=np.uint8)
    counts = rng.integers(1, 500, U).astype(np.int64)
    palette = rng.integers(0, 256, (P, 3), dtype=np.uint8)
    labels = rng.integers(0, P, U).astype(np.int32)
    parts = []
    for kern in (kn, kp):
        part = np.empty(kern.n_chunks(U), np.float64)
        kern.delta_e_colors(colors, counts, palette, labels, LINEAR_LUT, M1, M2, part)
        parts.append(part)
    np.testing.assert_array_equal(parts[0], parts[1])

    inverse = rng.integers(0, U, N).astype(np.int32)
    idx = rng.integers(0, P, N).astype(np.uint8)
    stats = []
    for kern in (kn, kp):
        nc = (N + kern.STATS_CHUNK - 1) // kern.STATS_CHUNK
        sse_c, de_c = np.empty(nc, np.int64), np.empty(nc, np.float64)
        kern.pixel_stats(
            colors, inverse, idx, palette, oklab_of_colors(colors, kern), oklab_of_colors(palette, kern), sse_c, de_c
        )
        stats.append((sse_c, de_c))
    np.testing.assert_array_equal(stats[0][0], stats[1][0])
    np.testing.assert_array_equal(stats[0][1], stats[1][1])


def test_the_servers_kernel_lists_cover_every_kernel_of_every_module():
    # kmpress serve loads kernels(False) and kernels(True) ahead of its commands: every Kernel of
    # every module file of the package (each twin's two variants included) is in one of them,
    # each once, in the list of its own kind
    import importlib

    from kmpress.kernels_numba._jit import Kernel, Twin

    folder = Path(kn.__file__).parent
    modules = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
    assert {"_dither", "_ssim2", "_remap"} <= set(modules)
    every: dict[int, Kernel] = {}
    for name in ["__init__", *modules]:
        mod = kn if name == "__init__" else importlib.import_module(f"kmpress.kernels_numba.{name}")
        for v in vars(mod).values():
            for k in (v.serial, v.parallel) if isinstance(v, Twin) else (v,):
                if isinstance(k, Kernel):
                    every[id(k)] = k
    serial, parallel = kn.kernels(False), kn.kernels(True)
    assert all(not k.parallel for k in serial) and all(k.parallel for k in parallel)
    listed = [id(k) for k in serial + parallel]
    assert len(listed) == len(set(listed))
    missing = sorted(f"{k.py_func.__module__}.{k.__name__}" for i, k in every.items() if i not in set(listed))
    assert missing == []
    assert {k.py_func.__module__.rsplit(".", 1)[1] for k in every.values()} <= set(modules)
    assert {"adaptive_dither", "ssim2_rows"} <= {k.__name__ for k in serial + parallel}
