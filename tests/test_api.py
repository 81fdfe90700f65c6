"""kmpress.api: kmeans and quantize (results' integrity, small palettes, K limits, RGBA, backends),
and bad arrays and parameters: the right KmpressError subclass, one line, and the caller's arrays
untouched (on failure and on success). compress is tested with the files, in test_io.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import small_jpeg

import kmpress
from kmpress import InvalidParameterError, KmpressError
from kmpress.metrics import bit_accounting, png_bit_depth


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
    for a, b in zip((points, weights, init), copies, strict=True):
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
    assert kmpress.quantize(img, np.uint16(256)).colors <= 256
    assert kmpress.MAX_K == 256


# --------------------------------------------------------------------------------------------
# quantize results
# --------------------------------------------------------------------------------------------


def _distinct(a: np.ndarray) -> int:
    return len(np.unique(a.reshape(-1, a.shape[-1]), axis=0))


def _check_integrity(img: np.ndarray, q) -> None:
    """Everything a Quantized promises about itself, recomputed from scratch."""
    h, w, c = img.shape
    assert q.palette.dtype == np.uint8 and q.palette.ndim == 2 and q.palette.shape[1] == c
    assert q.indices.dtype == np.uint8 and q.indices.shape == (h, w)
    assert 1 <= q.colors <= q.k <= 256 and q.colors == q.palette.shape[0]
    assert int(q.indices.max()) < q.colors
    assert len(np.unique(q.palette, axis=0)) == q.colors, "duplicate palette entries"
    assert len(np.unique(q.indices)) == q.colors, "unused palette entries"
    out = q.to_array()
    assert out.shape == img.shape and out.dtype == np.uint8
    err = out.astype(np.int64) - img.astype(np.int64)
    mse = float((err * err).mean())
    assert q.mse == pytest.approx(mse, rel=1e-12, abs=0)
    assert q.psnr == kmpress.psnr(img, out) or (math.isinf(q.psnr) and math.isinf(kmpress.psnr(img, out)))
    assert q.n_colors_in == _distinct(img)
    assert q.bits == bit_accounting(h, w, c, q.colors)
    assert q.bit_depth == png_bit_depth(q.colors)


# --------------------------------------------------------------------------------------------
# bit accounting on real results
# --------------------------------------------------------------------------------------------


def test_bits_128x128_rgb_k16(photos):
    img = np.ascontiguousarray(photos["astronaut"][100:228, 150:278])
    assert img.shape == (128, 128, 3) and _distinct(img) >= 16
    q = kmpress.quantize(img, 16)
    _check_integrity(img, q)
    assert q.k == q.colors == 16
    assert (q.bits.raw, q.bits.index, q.bits.palette, q.bits.total) == (393_216, 65_536, 384, 65_920)
    assert q.bits.ratio == pytest.approx(65_920 / 393_216, rel=1e-15)
    assert f"{q.bits.ratio:.4f}" == "0.1676"


def test_bits_227x303_k2(photos):
    img = np.ascontiguousarray(photos["coffee"][50:277, 100:403])
    assert img.shape == (227, 303, 3)
    q = kmpress.quantize(img, 2)
    _check_integrity(img, q)
    assert q.k == q.colors == 2
    assert (q.bits.raw, q.bits.index, q.bits.palette, q.bits.total) == (1_650_744, 68_781, 48, 68_829)


# --------------------------------------------------------------------------------------------
# fewer colours than K, K limits
# --------------------------------------------------------------------------------------------


def _few_color_image(n_colors: int, channels: int = 3, shape=(37, 53), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cols = rng.choice(256**channels if channels == 3 else 2**31, n_colors, replace=False)
    palette = ((cols[:, None] >> (8 * np.arange(channels))) & 255).astype(np.uint8)
    idx = rng.integers(0, n_colors, shape)
    idx.flat[:n_colors] = np.arange(n_colors)  # every colour present
    return np.ascontiguousarray(palette[idx])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("n_colors,k", [(1, 1), (1, 16), (5, 16), (16, 16), (100, 256), (3, 4)])
@pytest.mark.parametrize("channels", [3, 4])
def test_fewer_colors_than_k_is_lossless(backend, n_colors, k, channels):
    img = _few_color_image(n_colors, channels)
    q = kmpress.quantize(img, k, backend=backend)
    _check_integrity(img, q)
    assert q.k == k and q.colors == n_colors  # asked for, stored
    assert {tuple(r) for r in q.palette} == {tuple(r) for r in img.reshape(-1, channels)}
    np.testing.assert_array_equal(q.to_array(), img)
    assert q.mse == 0.0 and math.isinf(q.psnr)
    assert q.n_iter == 0 and q.converged


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_k1_is_the_rounded_mean(photos, backend):
    img = np.ascontiguousarray(photos["chelsea"][:60, :80])
    q = kmpress.quantize(img, 1, backend=backend)
    _check_integrity(img, q)
    assert q.k == q.colors == 1 and q.bit_depth == 1 and q.bits.index == 0
    mean = img.reshape(-1, 3).astype(np.float64).mean(axis=0)
    np.testing.assert_array_equal(q.palette[0], np.rint(mean).astype(np.uint8))
    assert np.all(q.indices == 0)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_k256(photos, backend):
    img = np.ascontiguousarray(photos["coffee"][::4, ::4])
    q = kmpress.quantize(img, 256, backend=backend)
    _check_integrity(img, q)
    assert q.k == 256 and 200 < q.colors <= 256 and q.bit_depth == 8
    q16 = kmpress.quantize(img, 16, backend=backend)
    assert q.psnr > q16.psnr + 5


def test_more_k_is_never_worse(photos):
    img = np.ascontiguousarray(photos["astronaut"][::4, ::4])
    psnrs = [kmpress.quantize(img, k).psnr for k in (2, 4, 8, 16, 32, 64)]
    assert all(b > a for a, b in zip(psnrs, psnrs[1:], strict=False)), psnrs


def test_rgba_is_clustered_in_4d(photos):
    img = np.ascontiguousarray(photos["chelsea"][:80, :120])
    alpha = np.tile(np.linspace(0, 255, 120).astype(np.uint8), (80, 1))
    rgba = np.ascontiguousarray(np.concatenate([img, alpha[:, :, None]], axis=2))
    q = kmpress.quantize(rgba, 32)
    _check_integrity(rgba, q)
    assert q.palette.shape[1] == 4
    assert len(np.unique(q.palette[:, 3])) > 3  # transparency is kept, not flattened
    assert q.bits.raw == 80 * 120 * 32


# --------------------------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [16, 64])
def test_numba_and_numpy_psnr_within_005_db(photos, k):
    img = np.ascontiguousarray(photos["chelsea"])
    a = kmpress.quantize(img, k, backend="numba")
    b = kmpress.quantize(img, k, backend="numpy")
    _check_integrity(img, a)
    _check_integrity(img, b)
    assert abs(a.psnr - b.psnr) <= 0.05, (a.psnr, b.psnr)


def test_quantize_reports_timings_and_iterations(photos):
    img = np.ascontiguousarray(photos["astronaut"][::3, ::3])
    q = kmpress.quantize(img, 8, max_iter=3, tol=0)
    assert q.n_iter == 3 and not q.converged
    assert {"histogram", "init", "lloyd", "remap"} <= set(q.timings)
    assert all(v >= 0 for v in q.timings.values())


# --------------------------------------------------------------------------------------------
# inputs are never modified, any layout is accepted
# --------------------------------------------------------------------------------------------


def test_input_array_not_modified_and_layouts_accepted(photos):
    base = np.ascontiguousarray(photos["coffee"][:90, :120])
    ref = kmpress.quantize(base, 12, seed=4)
    variants = {
        "readonly": base.copy(),
        "fortran": np.asfortranarray(base),
        "strided": np.ascontiguousarray(np.repeat(base, 2, axis=1))[:, ::2],
    }
    variants["readonly"].flags.writeable = False
    for name, v in variants.items():
        before = np.array(v, copy=True)
        q = kmpress.quantize(v, 12, seed=4)
        np.testing.assert_array_equal(np.asarray(v), before, err_msg=name)
        np.testing.assert_array_equal(q.palette, ref.palette, err_msg=name)
        np.testing.assert_array_equal(q.indices, ref.indices, err_msg=name)
    # a nested list of ints is int64 to NumPy: refused (uint8 only), not silently wrapped mod 256
    with pytest.raises(kmpress.InvalidParameterError):
        kmpress.quantize(base.tolist(), 12)


def test_compress_skip_if_larger_writes_nothing_and_reports_both_sizes(tmp_path):
    src = small_jpeg(tmp_path / "a.jpg")
    rep = kmpress.compress(src, tmp_path / "a.png", 256, skip_if_larger=True)
    assert rep.written is False and not (tmp_path / "a.png").exists()
    assert rep.output_bytes > rep.input_bytes == src.stat().st_size
    assert rep.as_dict()["written"] is False
    # the same call without the option writes exactly the size reported
    rep2 = kmpress.compress(src, tmp_path / "a.png", 256)
    assert rep2.written and (tmp_path / "a.png").stat().st_size == rep.output_bytes
    # smaller outputs are written as usual
    rep3 = kmpress.compress(src, tmp_path / "b.png", 2, skip_if_larger=True)
    assert rep3.written and (tmp_path / "b.png").stat().st_size == rep3.output_bytes < rep3.input_bytes
    # an image in memory has no input file to compare with
    with pytest.raises(InvalidParameterError, match="skip_if_larger compares the output with the input file"):
        kmpress.compress(np.zeros((4, 4, 3), np.uint8), tmp_path / "c.png", 2, skip_if_larger=True)
