"""Invariances: pixel order, weights vs repeated points, thread count, seeds, monotone inertia."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from reference import reference_lloyd

import kmpress

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["numba", "numpy"]


# --------------------------------------------------------------------------------------------
# pixel order
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [5, 32])
def test_shuffled_pixels_same_palette_permuted_indices(photos, backend, k):
    img = np.ascontiguousarray(photos["chelsea"][60:160, 100:220])
    h, w, c = img.shape
    perm = np.random.default_rng(k).permutation(h * w)
    shuffled = np.ascontiguousarray(img.reshape(-1, c)[perm].reshape(h, w, c))
    # the plain remap: the adaptive default looks at each pixel's neighbours
    a = kmpress.quantize(img, k, seed=1, backend=backend, dither=None)
    b = kmpress.quantize(shuffled, k, seed=1, backend=backend, dither=None)
    np.testing.assert_array_equal(b.palette, a.palette)
    np.testing.assert_array_equal(b.indices.ravel(), a.indices.ravel()[perm])
    assert (a.mse, a.n_iter) == (b.mse, b.n_iter)


@pytest.mark.parametrize("backend", BACKENDS)
def test_shuffled_points_same_kmeans(photos, backend):
    # integer colours: every weighted sum is exact, so the order of the points cannot matter at all
    px = np.ascontiguousarray(photos["coffee"][::5, ::5]).reshape(-1, 3)
    perm = np.random.default_rng(0).permutation(len(px))
    init = px[np.linspace(0, len(px) - 1, 12).astype(int)].astype(np.float64) + 0.25
    a = kmpress.kmeans(px, 12, init=init, tol=0, max_iter=100, backend=backend)
    b = kmpress.kmeans(px[perm], 12, init=init, tol=0, max_iter=100, backend=backend)
    assert a.n_iter > 3
    np.testing.assert_allclose(b.centroids, a.centroids, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(b.labels, a.labels[perm])


@pytest.mark.parametrize("backend", BACKENDS)
def test_shuffled_float_points_same_kmeans(make_blobs, backend):
    # float points: sums in another order differ in the last bits only
    X, w, init = make_blobs(4, 2000, 3, 8)
    perm = np.random.default_rng(1).permutation(len(X))
    a = kmpress.kmeans(X, 8, weights=w, init=init, tol=0, backend=backend)
    b = kmpress.kmeans(X[perm], 8, weights=w[perm], init=init, tol=0, backend=backend)
    np.testing.assert_allclose(b.centroids, a.centroids, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(b.labels, a.labels[perm])


# --------------------------------------------------------------------------------------------
# weights vs repeated points
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d,zeros", [(3, False), (4, False), (3, True)])
def test_integer_weights_equal_repeated_points(photos, backend, d, zeros):
    px = np.ascontiguousarray(photos["astronaut"][::8, ::8]).reshape(-1, 3)
    if d == 4:
        px = np.concatenate([px, (px[:, :1] // 2 + 60)], axis=1)
    rng = np.random.default_rng(d)
    # zero weights: such points vanish from the sums (but still get a label)
    counts = rng.integers(0 if zeros else 1, 6, len(px))
    # start from colours spread along the luma axis, off the integer grid
    luma = px[:, :3].astype(np.int64) @ np.array([299, 587, 114])
    init = px[np.argsort(luma, kind="stable")[np.linspace(0, len(px) - 1, 10).astype(int)]].astype(np.float64) + 0.3
    # an empty cluster would be re-seeded with one copy of a point on one side and with all its
    # weight on the other: that legitimately differs, so the data must not empty any cluster
    assert reference_lloyd(px, init, weights=counts, max_iter=100).relocations == 0
    a = kmpress.kmeans(px, 10, weights=counts, init=init, tol=0, max_iter=100, backend=backend)
    rep = np.repeat(px, counts, axis=0)
    b = kmpress.kmeans(rep, 10, init=init, tol=0, max_iter=100, backend=backend)
    assert a.n_iter > 3
    np.testing.assert_allclose(b.centroids, a.centroids, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(b.labels, np.repeat(a.labels, counts))
    assert b.inertia == pytest.approx(a.inertia, rel=1e-12)
    if not zeros:
        # (a weight-0 point switching label counts as a change: one more, idle, update)
        assert a.n_iter == b.n_iter


@pytest.mark.parametrize("backend", BACKENDS)
def test_scaling_all_weights_changes_nothing_but_inertia(make_blobs, backend):
    X, w, init = make_blobs(7, 1000, 4, 8)
    a = kmpress.kmeans(X, 8, weights=w, init=init, tol=0, backend=backend)
    b = kmpress.kmeans(X, 8, weights=w * 4.0, init=init, tol=0, backend=backend)
    np.testing.assert_allclose(b.centroids, a.centroids, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert b.inertia == pytest.approx(4 * a.inertia, rel=1e-12)


# --------------------------------------------------------------------------------------------
# thread count
# --------------------------------------------------------------------------------------------

_THREAD_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    import numpy as np
    import numba
    import kmpress
    import kmpress.remap
    from kmpress import kernels_numba

    src, out = sys.argv[1], sys.argv[2]
    img = kmpress.read_image(src)
    res = {"threads": numba.get_num_threads()}
    q = kmpress.quantize(img, 24, seed=3)
    res["palette"] = q.palette.tobytes().hex()
    res["indices"] = hashlib.sha256(q.indices.tobytes()).hexdigest()
    kmpress.compress(src, out, 24, seed=3)
    res["png"] = hashlib.sha256(open(out, "rb").read()).hexdigest()
    # per-pixel k-means on float points: many chunks, float sums, k-means++ seeding
    px = img.reshape(-1, 3).astype(np.float32) + np.float32(0.37)
    r = kmpress.kmeans(px, 16, seed=5, max_iter=15)
    res["centroids"] = r.centroids.tobytes().hex()
    res["labels"] = hashlib.sha256(r.labels.tobytes()).hexdigest()
    res["inertia"] = r.inertia_history
    # the dense histogram, whose counting is split by thread
    big = np.ascontiguousarray(np.tile(img[:256, :256], (4, 8, 1)))
    assert big.shape[0] * big.shape[1] >= kernels_numba.DENSE_MIN_PIXELS
    keys, counts, inverse = kernels_numba.histogram(big.reshape(-1, 3))
    assert inverse is None  # spared: a table of codes remaps the pixels
    lut = (np.arange(1 << 24) % 251).astype(np.uint8)
    idx = np.empty(big.shape[0] * big.shape[1], np.uint8)
    kernels_numba.remap_codes(big.reshape(-1, 3), lut, idx)
    res["hist"] = hashlib.sha256(keys.tobytes() + counts.tobytes() + idx.tobytes()).hexdigest()
    # the adaptive dither of a 2 MP image: bands diffused in parallel
    assert len(kmpress.remap.dither_bands(*big.shape[:2])) - 1 >= 2
    res["bands"] = hashlib.sha256(kmpress.quantize(big, 16, seed=3).indices.tobytes()).hexdigest()
    print(json.dumps(res))
    """
)


def test_thread_count_gives_identical_results(photo_paths, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_THREAD_SCRIPT)
    results = {}
    for n in (1, 2):
        env = dict(
            os.environ, NUMBA_NUM_THREADS=str(n), PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
        )
        out = tmp_path / f"out{n}.png"
        p = subprocess.run(
            [sys.executable, str(script), str(photo_paths["astronaut"]), str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert p.returncode == 0, p.stderr
        results[n] = json.loads(p.stdout.strip().splitlines()[-1])
        assert results[n]["threads"] == n
    one, two = results[1], results[2]
    for key in ("palette", "indices", "png", "centroids", "labels", "inertia", "hist", "bands"):
        assert one[key] == two[key], key
    assert (tmp_path / "out1.png").read_bytes() == (tmp_path / "out2.png").read_bytes()


# --------------------------------------------------------------------------------------------
# seeds
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_result_other_seeds_used(photos, backend):
    img = np.ascontiguousarray(photos["astronaut"][::4, ::4])
    a = kmpress.quantize(img, 16, seed=9, backend=backend)
    b = kmpress.quantize(img, 16, seed=9, backend=backend)
    np.testing.assert_array_equal(a.palette, b.palette)
    np.testing.assert_array_equal(a.indices, b.indices)
    others = [kmpress.quantize(img, 16, seed=s, backend=backend).palette for s in (1, 2, 3)]
    assert any(o.shape != a.palette.shape or not np.array_equal(o, a.palette) for o in others)


def test_same_seed_byte_identical_png_any_backend(photos, tmp_path):
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray(np.ascontiguousarray(photos["coffee"][100:300, 150:450])).save(src)
    digests = {}
    for backend in BACKENDS:
        for run in range(2):
            out = tmp_path / f"{backend}{run}.png"
            kmpress.compress(src, out, 8, seed=2, backend=backend)
            digests[backend, run] = hashlib.sha256(out.read_bytes()).hexdigest()
        assert digests[backend, 0] == digests[backend, 1]


# --------------------------------------------------------------------------------------------
# inertia never increases
# --------------------------------------------------------------------------------------------


def _assert_monotone(history):
    h = np.asarray(history)
    assert len(h) >= 2
    assert np.all(h[1:] <= h[:-1] * (1 + 1e-9) + 1e-9), np.diff(h).max()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_inertia_never_increases_on_photo(photos, backend, init):
    px = np.ascontiguousarray(photos["chelsea"][::3, ::3]).reshape(-1, 3)
    r = kmpress.kmeans(px, 32, init=init, seed=4, tol=0, max_iter=200, backend=backend)
    _assert_monotone(r.inertia_history)
    assert r.inertia == r.inertia_history[-1]
    # a real descent, not a flat line
    assert r.inertia_history[0] > r.inertia_history[-1] * 1.05


@pytest.mark.parametrize("backend", BACKENDS)
def test_inertia_never_increases_with_weights_and_empty_clusters(make_blobs, backend):
    X, w, init = make_blobs(3, 3000, 4, 9)
    init = init.copy()
    init[2] = 400.0  # empty at first: re-seeded, and the descent must still hold
    r = kmpress.kmeans(X, 9, weights=w, init=init, tol=0, backend=backend)
    _assert_monotone(r.inertia_history)
    assert np.all(np.isfinite(r.centroids))


def test_monotone_check_can_fail():
    with pytest.raises(AssertionError):
        _assert_monotone([10.0, 9.0, 9.5])
