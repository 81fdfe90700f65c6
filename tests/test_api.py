"""Bad arrays and parameters for kmeans and quantize: the right KmpressError subclass, one line,
and the caller's arrays untouched (on failure and on success)."""

from __future__ import annotations

import numpy as np
import pytest

import kmpress
from kmpress import InvalidParameterError, KmpressError


def _points(n=50, d=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, d))


def _raises_invalid(fn, *args, **kwargs):
    with pytest.raises(InvalidParameterError) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, KmpressError)
    msg = str(info.value)
    assert msg and "\n" not in msg
    return msg


def _with_nan():
    p = _points()
    p[7, 1] = np.nan
    return p


def _with_inf():
    p = _points()
    p[3, 0] = -np.inf
    return p


BAD_POINTS = {
    "nan": _with_nan(),
    "inf": _with_inf(),
    "1-d": np.arange(30.0),
    "2-columns": _points()[:, :2],
    "5-columns": _points(d=5),
    "3-d": _points().reshape(5, 10, 3),
    "empty": np.empty((0, 3)),
    "strings": np.array([["a", "b", "c"]] * 4),
    "complex": _points().astype(np.complex128),
    "bool": np.ones((10, 3), bool),
    "object": np.array([[1, 2, 3], [4, 5, 6]], dtype=object),
}


@pytest.mark.parametrize("points", BAD_POINTS.values(), ids=BAD_POINTS.keys())
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_kmeans_bad_points(points, backend):
    before = points.copy()
    _raises_invalid(kmpress.kmeans, points, 2, backend=backend)
    np.testing.assert_array_equal(points, before)


def _neg_weights():
    w = np.ones(50)
    w[10] = -0.5
    return w


def _nan_weights():
    w = np.ones(50)
    w[4] = np.nan
    return w


BAD_WEIGHTS = {
    "negative": _neg_weights(),
    "nan": _nan_weights(),
    "inf": np.full(50, np.inf),
    "all-zero": np.zeros(50),
    "short": np.ones(49),
    "2-d": np.ones((50, 1)),
    "strings": np.array(["1"] * 50),
}


@pytest.mark.parametrize("weights", BAD_WEIGHTS.values(), ids=BAD_WEIGHTS.keys())
def test_kmeans_bad_weights(weights):
    points = _points()
    before_p, before_w = points.copy(), weights.copy()
    _raises_invalid(kmpress.kmeans, points, 3, weights=weights)
    np.testing.assert_array_equal(points, before_p)
    np.testing.assert_array_equal(weights, before_w)


BAD_KMEANS_OPTIONS = [
    dict(k=0),
    dict(k=51),  # more clusters than points
    dict(k="3"),
    dict(k=True),
    dict(k=2.0),
    dict(k=3, init="kmeans++"),
    dict(k=3, init=np.zeros((2, 3))),
    dict(k=3, init=np.zeros((3, 4))),
    dict(k=3, init=np.full((3, 3), np.nan)),
    dict(k=3, max_iter=-1),
    dict(k=3, max_iter=2.5),
    dict(k=3, tol=-1e-3),
    dict(k=3, tol=float("inf")),
    dict(k=3, tol=None),
    dict(k=3, tol=np.zeros((3, 3))),
    dict(k=3, backend=np.array(["numba", "numpy"])),
    dict(k=3, seed=-1),
    dict(k=3, seed="0"),
    dict(k=3, backend="gpu"),
]


@pytest.mark.parametrize("opts", BAD_KMEANS_OPTIONS, ids=[repr(o)[:60] for o in BAD_KMEANS_OPTIONS])
def test_kmeans_bad_options(opts):
    points = _points()
    before = points.copy()
    opts = dict(opts)
    k = opts.pop("k")
    _raises_invalid(kmpress.kmeans, points, k, **opts)
    np.testing.assert_array_equal(points, before)


def test_kmeans_random_init_needs_k_positive_weights():
    points = _points(10)
    w = np.zeros(10)
    w[:2] = 1.0
    _raises_invalid(kmpress.kmeans, points, 3, weights=w, init="random")
    assert kmpress.kmeans(points, 2, weights=w, init="random").centroids.shape == (2, 3)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.float32, np.float64])
def test_kmeans_accepts_any_numeric_dtype_and_never_modifies(backend, dtype):
    rng = np.random.default_rng(1)
    points = rng.integers(0, 120, (300, 4)).astype(dtype)
    weights = rng.integers(1, 4, 300).astype(np.int32)
    init = points[:5].astype(np.float64) + 0.5
    copies = points.copy(), weights.copy(), init.copy()
    r = kmpress.kmeans(points, 5, weights=weights, init=init, backend=backend)
    for a, b in zip((points, weights, init), copies):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    ref = kmpress.kmeans(points.astype(np.float64), 5, weights=weights.astype(np.float64), init=init, backend=backend)
    np.testing.assert_array_equal(r.centroids, ref.centroids)
    np.testing.assert_array_equal(r.labels, ref.labels)


def test_kmeans_accepts_lists_and_numpy_integers():
    r = kmpress.kmeans([[0, 0, 0], [10, 10, 10], [0, 1, 0], [10, 11, 10]], np.int64(2), seed=np.uint8(1))
    assert sorted(np.bincount(r.labels).tolist()) == [2, 2]


# --------------------------------------------------------------------------------------------
# quantize
# --------------------------------------------------------------------------------------------

BAD_IMAGES = {
    "float": np.zeros((4, 4, 3), np.float64),
    "uint16": np.zeros((4, 4, 3), np.uint16),
    "int8": np.zeros((4, 4, 3), np.int8),
    "bool": np.zeros((4, 4, 3), bool),
    "2-d": np.zeros((4, 4), np.uint8),
    "2-channels": np.zeros((4, 4, 2), np.uint8),
    "5-channels": np.zeros((4, 4, 5), np.uint8),
    "4-d": np.zeros((2, 4, 4, 3), np.uint8),
    "no-rows": np.zeros((0, 4, 3), np.uint8),
    "no-cols": np.zeros((4, 0, 3), np.uint8),
    "scalar": np.uint8(3),
}


@pytest.mark.parametrize("image", BAD_IMAGES.values(), ids=BAD_IMAGES.keys())
def test_quantize_bad_image(image):
    before = np.array(image, copy=True)
    _raises_invalid(kmpress.quantize, image, 4)
    np.testing.assert_array_equal(image, before)


BAD_QUANTIZE_OPTIONS = [
    dict(k=0),
    dict(k=257),
    dict(k=-3),
    dict(k="3"),
    dict(k=True),
    dict(k=False),
    dict(k=16.0),
    dict(k=4, target_psnr=30),
    dict(k=4, strict=True),
    dict(k=4, dither="none"),
    dict(k=4, unknown_option=1),
    dict(k=4, seed=-1),
    dict(k=4, max_iter=-1),
    dict(k=4, tol=float("nan")),
    dict(k=4, init=np.zeros((4, 3))),  # quantize seeds itself: strings only
    dict(k=4, init="farthest"),
    dict(k=4, backend="Numba"),
]


@pytest.mark.parametrize("opts", BAD_QUANTIZE_OPTIONS, ids=[repr(o)[:60] for o in BAD_QUANTIZE_OPTIONS])
def test_quantize_bad_options(photos, opts):
    img = np.ascontiguousarray(photos["chelsea"][:20, :20])
    before = img.copy()
    opts = dict(opts)
    k = opts.pop("k")
    _raises_invalid(kmpress.quantize, img, k, **opts)
    np.testing.assert_array_equal(img, before)


def test_k_defaults_to_16_unless_a_target_is_given(photos):
    img = np.ascontiguousarray(photos["chelsea"][:40, :40])
    assert kmpress.quantize(img).k == kmpress.DEFAULT_K == 16
    assert kmpress.quantize(img, target_psnr=20).target_psnr == 20


def test_k_bounds_are_inclusive(photos):
    img = np.ascontiguousarray(photos["chelsea"][:40, :40])
    assert kmpress.quantize(img, 1).k == 1
    assert kmpress.quantize(img, np.uint16(256)).k <= 256
    assert kmpress.MAX_K == 256
