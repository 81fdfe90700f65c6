"""The histogram stage: numba kernels (dense 2^24 table and radix sort) vs np.unique, and the
proof that k-means on the weighted histogram is k-means on every pixel."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import planar
from reference import reference_histogram

import kmpress
from kmpress import kernels_numba, kernels_numpy
from kmpress.clustering import kmeans_plusplus
from kmpress.histogram import build_histogram


def _check(px: np.ndarray, hist, kernels=kernels_numpy) -> None:
    """A histogram is right, whatever order it lists the colours in (the engine's order is an
    implementation choice): distinct colours, each pixel mapped back to its own colour, counts
    that count, and the same colour set and counts as plain ``np.unique`` on the rows."""
    colors, counts = hist.colors, hist.counts
    inverse = hist.pixel_colors(np.ascontiguousarray(px).reshape(-1, 1, px.shape[1]), kernels)
    n, c = px.shape
    assert colors.dtype == np.uint8 and colors.shape[1] == c
    assert counts.dtype == np.int64 and inverse.dtype == np.int32 and inverse.shape == (n,)
    assert len(np.unique(colors, axis=0)) == len(colors), "a colour is listed twice"
    np.testing.assert_array_equal(colors[inverse], px)
    np.testing.assert_array_equal(counts, np.bincount(inverse, minlength=len(colors)))
    ref_colors, ref_counts = np.unique(px, axis=0, return_counts=True)
    order = np.lexsort(colors.T[::-1])
    np.testing.assert_array_equal(colors[order], ref_colors)
    np.testing.assert_array_equal(counts[order], ref_counts)


def _hist(px: np.ndarray, kernels):
    return build_histogram(np.ascontiguousarray(px).reshape(-1, 1, px.shape[1]), kernels)


def _same(a, b, px=None) -> None:
    np.testing.assert_array_equal(a.colors, b.colors)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.codes, b.codes)
    if px is not None:
        img = np.ascontiguousarray(px).reshape(-1, 1, px.shape[1])
        np.testing.assert_array_equal(a.pixel_colors(img, kernels_numba), b.pixel_colors(img, kernels_numpy))


def _big_image(photos, channels=3) -> np.ndarray:
    """512 x 1024 (2^19 pixels): the astronaut and a channel-swapped mirror of it side by side,
    plus seeded noise (many colours, many repeats)."""
    a = photos["astronaut"].astype(np.int16)
    b = a[::-1, :, ::-1]
    img = np.concatenate([a, b], axis=1)
    rng = np.random.default_rng(0)
    img = img + rng.integers(-2, 3, img.shape, dtype=np.int16)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if channels == 4:
        alpha = np.where(rng.random(img.shape[:2]) < 0.5, 255, rng.integers(0, 256, img.shape[:2])).astype(np.uint8)
        img = np.concatenate([img, alpha[:, :, None]], axis=2)
    return np.ascontiguousarray(img)


@pytest.mark.parametrize("method", ["dense", "radix"])
def test_numba_histogram_methods_match_np_unique_on_large_image(photos, monkeypatch, method):
    img = _big_image(photos)
    px = img.reshape(-1, 3)
    assert px.shape[0] >= kernels_numba.DENSE_MIN_PIXELS
    if method == "radix":
        # same data through the sort-based path
        monkeypatch.setattr(kernels_numba._histogram, "DENSE_MIN_PIXELS", 1 << 40)
    h = _hist(px, kernels_numba)
    _check(px, h, kernels_numba)
    _same(h, _hist(px, kernels_numpy), px)


@pytest.mark.parametrize("method", ["dense", "radix"])
def test_numba_histogram_methods_match_np_unique_on_small_image(photos, monkeypatch, method):
    px = np.ascontiguousarray(photos["chelsea"][:100, :150]).reshape(-1, 3)
    assert px.shape[0] < kernels_numba.DENSE_MIN_PIXELS
    if method == "dense":
        monkeypatch.setattr(kernels_numba._histogram, "DENSE_MIN_PIXELS", 1)
    h = _hist(px, kernels_numba)
    _check(px, h, kernels_numba)
    _same(h, _hist(px, kernels_numpy), px)


@pytest.mark.parametrize("kernels", [kernels_numba, kernels_numpy], ids=["numba", "numpy"])
def test_rgba_histogram(photos, kernels):
    # 4 channels always take the radix path; alpha varies, so all four bytes are sorted
    px = np.ascontiguousarray(_big_image(photos, 4)[:256]).reshape(-1, 4)
    h = _hist(px, kernels)
    _check(px, h)
    if kernels is kernels_numba:
        _same(h, _hist(px, kernels_numpy))


@pytest.mark.parametrize("kernels", [kernels_numba, kernels_numpy], ids=["numba", "numpy"])
@pytest.mark.parametrize(
    "px",
    [
        np.zeros((1, 3), np.uint8),
        np.full((5000, 3), 7, np.uint8),
        np.full((300, 4), 200, np.uint8),
        np.array([[255, 255, 255], [0, 0, 0], [255, 255, 255], [0, 0, 1], [1, 0, 0]], np.uint8),
        np.array([[1, 2, 3, 0], [1, 2, 3, 255], [1, 2, 3, 0], [0, 0, 0, 255]], np.uint8),
    ],
    ids=["one-pixel", "one-color", "one-color-rgba", "extremes", "alpha-only-differs"],
)
def test_histogram_edge_cases(kernels, px):
    _check(px, _hist(px, kernels), kernels)


def test_dense_histogram_with_few_colors_and_extremes(monkeypatch):
    # the dense table indexed by the full 24-bit key, including 0x000000 and 0xFFFFFF
    rng = np.random.default_rng(1)
    palette = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255], [12, 34, 56]], np.uint8)
    px = palette[rng.integers(0, 5, 1 << 19)]
    assert px.shape[0] >= kernels_numba.DENSE_MIN_PIXELS
    h = _hist(px, kernels_numba)
    _check(px, h, kernels_numba)
    _same(h, _hist(px, kernels_numpy), px)


def test_build_histogram_backends_identical(photos):
    img = np.ascontiguousarray(photos["coffee"][:200, :300])
    a = build_histogram(img, kernels_numba)
    b = build_histogram(img, kernels_numpy)
    _same(a, b, img.reshape(-1, 3))
    _check(img.reshape(-1, 3), a, kernels_numba)
    assert a.counts.sum() == img.shape[0] * img.shape[1]
    np.testing.assert_array_equal(a.colors[a.pixel_colors(img, kernels_numba)], img.reshape(-1, 3))


# --------------------------------------------------------------------------------------------
# histogram path == per-pixel path
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("name,k", [("astronaut", 8), ("chelsea", 16)])
def test_histogram_path_equals_per_pixel_path(photos, backend, name, k):
    """k-means on every pixel and on the distinct colours weighted by their counts, from the same
    explicit init: the same centroids and, through the inverse index, the same label per pixel.

    Pixels and weights are integers, so every weighted sum is exact in float64 on both paths.
    """
    img = np.ascontiguousarray(photos[name][100:196, 120:248])  # 96 x 128 crop
    px = img.reshape(-1, 3)
    hist = build_histogram(img, kernels_numba)
    assert 1000 < hist.n_colors < px.shape[0]  # a real reduction, and a real problem
    init = kmpress.kmeans(hist.colors, k, weights=hist.counts, seed=2, max_iter=0).centroids
    full = kmpress.kmeans(px, k, init=init, max_iter=40, tol=0, backend=backend)
    on_hist = kmpress.kmeans(hist.colors, k, weights=hist.counts, init=init, max_iter=40, tol=0, backend=backend)
    assert full.n_iter >= 5
    np.testing.assert_allclose(on_hist.centroids, full.centroids, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(on_hist.labels[hist.pixel_colors(img, kernels_numpy)], full.labels)
    assert on_hist.n_iter == full.n_iter
    assert on_hist.inertia == pytest.approx(full.inertia, rel=1e-12)


def assert_nearest_entries(px: np.ndarray, palette: np.ndarray, indices: np.ndarray) -> None:
    """Every pixel's entry is at the smallest exact (integer) squared distance of the palette.

    Ties may go to any of the tied entries: the engine labels against the palette before
    ordering it by luma, so "lowest index" refers to that earlier order.
    """
    d = ((px[:, None, :].astype(np.int64) - palette[None].astype(np.int64)) ** 2).sum(axis=2)
    chosen = d[np.arange(len(px)), indices.astype(np.int64)]
    np.testing.assert_array_equal(chosen, d.min(axis=1))


@pytest.mark.parametrize("k", [4, 16])
def test_quantize_equals_per_pixel_kmeans(photos, k):
    """quantize (histogram path) == per-pixel weighted Lloyd from the same k-means++ seeds, then
    rounding; and every pixel's index is its exact nearest stored palette entry."""
    img = np.ascontiguousarray(photos["astronaut"][200:296, 160:288])
    px = img.reshape(-1, 3)
    seed = 5
    q = kmpress.quantize(img, k, seed=seed)
    hist = build_histogram(img, kernels_numba)
    c0 = kmeans_plusplus(
        planar(hist), hist.counts.astype(np.float64), True, k, np.random.default_rng(seed), kernels_numba
    )
    full = kmpress.kmeans(px, k, init=c0)
    assert full.n_iter == q.n_iter
    expected = {tuple(r) for r in np.clip(np.rint(full.centroids), 0, 255).astype(np.uint8)}
    assert {tuple(r) for r in q.palette} == expected
    assert_nearest_entries(px, q.palette, q.indices.ravel())


# --------------------------------------------------------------------------------------------
# against the oracle
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 4])
def test_histogram_equals_the_counting_oracle(kern, channels):
    rng = np.random.default_rng(channels)
    img = rng.integers(0, 6, (23, 31, channels), dtype=np.uint8) * 51  # few colours, many repeats
    h = build_histogram(img, kern)
    counts, colors = reference_histogram(img.reshape(-1, channels))
    got = {tuple(int(v) for v in c): int(n) for c, n in zip(h.colors, h.counts, strict=True)}
    assert got == counts
    assert [tuple(int(v) for v in h.colors[i]) for i in h.pixel_colors(img, kern)] == colors
