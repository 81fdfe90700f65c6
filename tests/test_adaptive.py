"""The adaptive default (kmpress.contrast, kmpress.remap.adaptive_dither): its contrast maps,
palette weights, dither map and error diffusion on both backends against the oracles of
tests/reference.py, and its place among the options (``dither=None`` is the plain remap)."""

from __future__ import annotations

import io

import numba
import numpy as np
import pytest
from reference import reference_adaptive_dither, reference_contrast_maps, reference_dither_map

import kmpress
from kmpress import backends, kernels_numpy
from kmpress import remap as remap_module
from kmpress.colorspace import colors_to_space, palette_to_space
from kmpress.contrast import EDGE_LUT, NOISE_LUT, UNIT, color_weights, contrast_maps
from kmpress.histogram import build_histogram
from kmpress.options import Options
from kmpress.remap import BAND_MIN_ROWS, DEAD_ZONE, _diffusion_args, dither_bands


def _crop(photos, name="chelsea", h=24, w=31, y=60, x=100):
    return np.ascontiguousarray(photos[name][y : y + h, x : x + w])


def _images(photos):
    rng = np.random.default_rng(3)
    flat = np.full((6, 7, 3), 90, np.uint8)
    ramp = np.ascontiguousarray(np.broadcast_to(np.arange(0, 250, 10, dtype=np.uint8)[None, :, None], (5, 25, 3)))
    return {
        "photo": _crop(photos),
        "photo-rgba": np.ascontiguousarray(
            np.dstack([_crop(photos, "coffee", 9, 13), np.full((9, 13), 200, np.uint8)])
        ),
        "noise": rng.integers(0, 256, (11, 9, 3), dtype=np.uint8),
        "flat": flat,
        "ramp": ramp,
        "1x1": rng.integers(0, 256, (1, 1, 3), dtype=np.uint8),
        "row": rng.integers(0, 256, (1, 9, 3), dtype=np.uint8),
        "column": rng.integers(0, 256, (8, 1, 3), dtype=np.uint8),
    }


def test_tables_are_the_exact_formulas():
    from fractions import Fraction
    from math import floor

    for z in range(0, 4 * UNIT + 1, 7):
        assert NOISE_LUT[z] == min(255, floor(80 + 176 * (1 - Fraction(z, 2 * UNIT)) ** 4)), z
    for e in range(0, 2 * UNIT + 1, 3):
        assert EDGE_LUT[e] == max(0, min(255, floor(256 * (1 - Fraction(e, UNIT))))), e


@pytest.mark.parametrize("name", ["photo", "photo-rgba", "noise", "flat", "ramp", "1x1", "row", "column"])
def test_contrast_maps_equal_the_oracle(photos, kern, name):
    img = _images(photos)[name]
    noise, edges = contrast_maps(img, kern)
    ref_noise, ref_edges = reference_contrast_maps(img)
    np.testing.assert_array_equal(noise, ref_noise)
    np.testing.assert_array_equal(edges, ref_edges)
    assert noise.dtype == edges.dtype == np.uint8


def test_contrast_maps_see_texture_and_flat_areas(photos):
    img = np.full((40, 40, 3), 128, np.uint8)
    img[:, 20:] = np.random.default_rng(0).integers(0, 256, (40, 20, 3), dtype=np.uint8)
    noise, edges = contrast_maps(img, kernels_numpy)
    assert (noise[:, :8] == 255).all() and (edges[:, :8] == 255).all()  # flat: full weight, no edge
    assert noise[:, 28:].max() <= 160 and edges[:, 28:].max() <= 160  # texture: little weight


def test_contrast_maps_at_any_thread_count(photos):
    img = np.ascontiguousarray(photos["astronaut"][:300, :200])
    kn = backends.load("numba")
    maps = []
    for t in (1, 2):
        with_threads = numba.get_num_threads()
        numba.set_num_threads(min(t, numba.config.NUMBA_NUM_THREADS))
        try:
            maps.append(contrast_maps(img, kn))
        finally:
            numba.set_num_threads(with_threads)
    for a, b in zip(maps[0], maps[1], strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(maps[0], contrast_maps(img, kernels_numpy), strict=True):
        np.testing.assert_array_equal(a, b)


def test_color_weights_sum_the_noise(photos, kern):
    img = _crop(photos, "coffee", 30, 40)
    hist = build_histogram(img, kern)
    inverse = hist.pixel_colors(img, kern)
    noise, _ = contrast_maps(img, kern)
    got = color_weights(noise, inverse, hist.n_colors, kern)
    want = np.zeros(hist.n_colors)
    for p, u in enumerate(inverse):
        want[u] += int(noise.reshape(-1)[p])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (6, 1), (2, 2), (9, 17), (23, 40)])
def test_dither_map_equals_the_oracle(kern, shape):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    h, w = shape
    # runs of several lengths, repeated from row to row, with some changes
    idx = np.repeat(rng.integers(0, 4, (h, (w + 2) // 3), dtype=np.uint8), 3, axis=1)[:, :w]
    idx[rng.random((h, w)) < 0.15] = 7
    idx[1::3] = idx[0::3][: idx[1::3].shape[0]]
    edges = rng.integers(0, 256, (h, w), dtype=np.uint8)
    out = np.empty(h * w, np.uint8)
    kern.dither_map(np.ascontiguousarray(idx).reshape(-1), edges.reshape(-1), h, w, out)
    np.testing.assert_array_equal(out.reshape(h, w), reference_dither_map(idx, edges))


def _adaptive_direct(img, palette, level, maxerr, kern, bands=None, tie=0.0):
    hist = build_histogram(np.ascontiguousarray(img), kern)
    lab = colors_to_space(hist.colors, "oklab", kern)
    alpha = hist.colors[:, 3] if img.shape[2] == 4 else None
    entries = palette_to_space(palette, "oklab", kern).astype(np.float64)
    h, w = img.shape[:2]
    out = np.empty(h * w, np.uint8)
    args = _diffusion_args(lab, hist.pixel_colors(img, kern), alpha, entries, h, w, out)
    bands = np.array([0, h] if bands is None else bands, np.int64)
    kern.adaptive_dither(
        *args, np.ascontiguousarray(level, np.uint8).reshape(-1), DEAD_ZONE, tie, maxerr, 0.8, 0.75, bands
    )
    return out.reshape(h, w), lab[:, hist.pixel_colors(img, kern)].T.reshape(h, w, -1), entries


#: Band plans of a 21-row image: one band; three (an odd first row: the serpentine keeps the
#: image's row parity); bands of one row, whose warm-up starts at the top.
BANDS = {"one": [0, 21], "three": [0, 7, 15, 21], "short": [0, 1, 2, 21]}


@pytest.mark.parametrize("tie", [0.0, 40.0])
@pytest.mark.parametrize("maxerr", [4.0, 60.0, 1e9])
@pytest.mark.parametrize("alpha", [False, True])
@pytest.mark.parametrize("plan", sorted(BANDS))
def test_adaptive_dither_equals_the_oracle(photos, kern, maxerr, alpha, plan, tie):
    img = _crop(photos, "coffee", 21, 26)
    if alpha:
        a = np.full(img.shape[:2], 255, np.uint8)
        a[5:9, 3:20] = 0
        a[12:, 10:12] = 128
        img = np.ascontiguousarray(np.dstack([img, a]))
    palette = kmpress.quantize(img, 7, dither=None).palette
    level = np.random.default_rng(1).integers(0, 256, img.shape[:2]).astype(np.uint8)
    level[:4] = 255
    level[4:6] = 0
    got, space_img, entries = _adaptive_direct(img, palette, level, maxerr, kern, BANDS[plan], tie)
    want = reference_adaptive_dither(space_img, entries, level, maxerr, bands=BANDS[plan], tie=tie)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(got)) > 1


@pytest.mark.parametrize(
    "h, w, n", [(1, 1, 1), (1000, 1500, 1), (1024, 1536, 2), (64, 100_000, 1), (1600, 2560, 4), (4000, 6000, 23)]
)
def test_dither_bands_depend_on_the_image_size_alone(h, w, n):
    bands = dither_bands(h, w)
    assert bands.dtype == np.int64 and len(bands) == n + 1
    assert bands[0] == 0 and bands[-1] == h
    sizes = np.diff(bands)
    assert sizes.min() >= min(h, BAND_MIN_ROWS) and sizes.max() - sizes.min() <= 1


def test_bands_give_the_same_indices_at_any_thread_count_and_on_both_backends(monkeypatch):
    # many bands over a small image, diffused in parallel on one thread and on all, and with NumPy
    monkeypatch.setattr(remap_module, "BAND_PIXELS", 5120)
    monkeypatch.setattr(remap_module, "BAND_MIN_ROWS", 8)
    ramp = np.linspace(20, 230, 160)
    rng = np.random.default_rng(4)
    img = np.clip(ramp[None, :, None] + rng.normal(0, 6, (96, 160, 3)), 0, 255).astype(np.uint8)
    assert len(dither_bands(96, 160)) - 1 == 3
    before = numba.get_num_threads()
    got = []
    try:
        for threads in (1, before):
            numba.set_num_threads(threads)
            got.append(kmpress.quantize(img, 8, backend="numba").indices)
    finally:
        numba.set_num_threads(before)
    got.append(kmpress.quantize(img, 8, backend="numpy").indices)
    for g in got[1:]:
        np.testing.assert_array_equal(g, got[0])
    monkeypatch.setattr(remap_module, "BAND_PIXELS", 1 << 20)
    assert (kmpress.quantize(img, 8, backend="numba").indices != got[0]).any()


@pytest.mark.parametrize("tie", [0.0, 20.0])
def test_opaque_rgb_path_equals_the_general_one_over_a_full_palette(tie):
    # numba runs an opaque RGB image through a path of its own (scalars, a finer candidate grid
    # whose lists grow as cells are hit); the general path (taken when alpha is possible) is the
    # oracle's equal above. 256 entries over the colour cube and full-strength diffusion over
    # noise: tens of thousands of cells listed, more candidates than the lists' first store holds
    kern = backends.load("numba")
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    hist = build_histogram(img, kern)
    lab = colors_to_space(hist.colors, "oklab", kern)
    entries = palette_to_space(palette, "oklab", kern).astype(np.float64)
    level = np.full(256 * 256, 255, np.uint8)
    level[: 256 * 40] = rng.integers(0, 256, 256 * 40, dtype=np.uint8)
    got = []
    for has_alpha in (False, True):
        out = np.empty(256 * 256, np.uint8)
        args = list(_diffusion_args(lab, hist.pixel_colors(img, kern), None, entries, 256, 256, out))
        args[2], args[3] = np.zeros(hist.n_colors, np.bool_), has_alpha  # nothing transparent
        kern.adaptive_dither(*args, level, DEAD_ZONE, tie, 60.0, 0.8, 0.75, np.array([0, 97, 130, 256], np.int64))
        got.append(out)
    np.testing.assert_array_equal(got[0], got[1])
    assert len(np.unique(got[0])) > 200


def test_an_unbounded_tie_repeats_the_first_pixel_down_the_image(kern):
    # every pixel keeps its row's run; the first pixel of a row (no run yet) keeps the entry
    # above it: the whole image takes its first pixel's entry. A vertical ramp: each row alone
    # would start from an entry of its own
    ramp = np.linspace(20, 235, 24).astype(np.uint8)
    img = np.ascontiguousarray(np.broadcast_to(ramp[:, None, None], (24, 9, 3)))
    palette = np.array([[20, 20, 20], [90, 90, 90], [160, 160, 160], [235, 235, 235]], np.uint8)
    level = np.zeros(img.shape[:2], np.uint8)  # no error carried: each pixel's own colour
    free, _, _ = _adaptive_direct(img, palette, level, 1e9, kern)
    assert len(np.unique(free)) == 4 and (free == free[:, :1]).all()
    tied, _, _ = _adaptive_direct(img, palette, level, 1e9, kern, tie=1e12)
    assert (tied == free[0, 0]).all()


def test_dead_zone_leaves_exact_colours_alone(kern):
    # every pixel is a palette entry: no error to carry, the remap is exact, whatever the level
    palette = np.array([[0, 0, 0], [250, 20, 20], [20, 250, 20], [255, 255, 255]], np.uint8)
    rng = np.random.default_rng(2)
    idx = rng.integers(0, 4, (12, 15))
    img = np.ascontiguousarray(palette[idx])
    got, _, _ = _adaptive_direct(img, palette, np.full(idx.shape, 255, np.uint8), 1e9, kern)
    np.testing.assert_array_equal(got, idx)


def test_default_is_adaptive_and_no_dither_is_the_plain_remap(photos):
    img = _crop(photos, "astronaut", 64, 80)
    assert Options().dither == "adaptive"
    plain = kmpress.quantize(img, 16, dither=None)
    # the plain remap: each colour's nearest entry (sRGB) of a palette fitted to the pixel counts
    hist = build_histogram(img, kernels_numpy)
    d = ((hist.colors[:, None, :].astype(np.int64) - plain.palette[None].astype(np.int64)) ** 2).sum(-1)
    np.testing.assert_array_equal(plain.indices.reshape(-1), d.argmin(1)[hist.pixel_colors(img, kernels_numpy)])
    q = kmpress.quantize(img, 16)
    assert q.dither == "adaptive"
    assert not np.array_equal(q.palette, plain.palette)  # the palette is weighted by the contrast
    np.testing.assert_array_equal(q.to_array(), q.palette[q.indices])


def test_adaptive_dither_breaks_bands_of_a_smooth_ramp():
    ramp = np.linspace(30, 220, 200)
    img = np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (40, 200, 3)).astype(np.uint8))
    plain = kmpress.quantize(img, 4, dither=None)
    q = kmpress.quantize(img, 4)
    # undithered: one entry per column (bands); dithered: columns mix entries
    assert all(len(np.unique(plain.indices[:, x])) == 1 for x in range(200))
    assert sum(len(np.unique(q.indices[:, x])) > 1 for x in range(200)) > 100
    # and the mean of every column follows the ramp better
    err_plain = np.abs(plain.to_array()[..., 0].mean(0) - ramp).mean()
    err_q = np.abs(q.to_array()[..., 0].mean(0) - ramp).mean()
    assert err_q < err_plain / 2


def _local_mean_error(img: np.ndarray, got: np.ndarray, r: int = 3) -> float:
    """Mean length (RGB) of the difference of two images' 7x7 box means: how far the remap moved
    the colour a viewer sees from a step back."""
    n = 2 * r + 1

    def box(a):
        c = np.pad(a.astype(np.float64), ((r + 1, r), (r + 1, r), (0, 0)), mode="edge").cumsum(0).cumsum(1)
        return (c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]) / (n * n)

    return float(np.sqrt(((box(got) - box(img)) ** 2).sum(-1)).mean())


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_a_stronger_dither_keeps_the_local_mean_colour_closer(photos, name):
    # texture hides grain but not a shift of its mean colour: the more of the carried error every
    # pixel takes (the default, half, against a tenth: about libimagequant's least level), the
    # closer each photo's local mean colour stays to the original's
    img = photos[name]
    errors = [_local_mean_error(img, kmpress.quantize(img, 16, dither_strength=s).to_array()) for s in (0.1, 0.5, 1.0)]
    assert errors[0] > errors[1] > errors[2]


def test_strength_sets_the_least_level_and_the_dead_zone():
    assert (remap_module.least_level(0.5), remap_module.dead_zone(0.5)) == (128, DEAD_ZONE)
    assert (remap_module.least_level(1.0), remap_module.dead_zone(1.0)) == (255, 0.0)
    levels = [remap_module.least_level(s / 100) for s in range(1, 101)]
    zones = [remap_module.dead_zone(s / 100) for s in range(1, 101)]
    assert levels == sorted(levels) and zones == sorted(zones, reverse=True)


def test_the_default_strength_and_full_strength(photos, kern, monkeypatch):
    img = _crop(photos, "coffee", 40, 52)
    default = kmpress.quantize(img, 8, backend="numpy")
    assert np.array_equal(default.indices, kmpress.quantize(img, 8, dither_strength=0.5, backend="numpy").indices)
    # the default grows with the palette: 0.7 at 256 colours
    big = kmpress.quantize(img, 256, backend="numpy").indices
    assert np.array_equal(big, kmpress.quantize(img, 256, dither_strength=0.7, backend="numpy").indices)
    assert not np.array_equal(big, kmpress.quantize(img, 256, dither_strength=0.5, backend="numpy").indices)
    # at strength 1 every pixel takes the whole carried error and none is dropped: the oracle with
    # level 255 everywhere and no dead zone (caps lifted, so that no mean error enters)
    monkeypatch.setattr(remap_module, "CAP_FACTOR", 1e12)
    palette = default.palette
    hist = build_histogram(img, kern)
    lab = colors_to_space(hist.colors, "oklab", kern)
    inverse = hist.pixel_colors(img, kern)
    edges = contrast_maps(img, kern)[1]
    got = remap_module.adaptive_dither(hist.counts, lab, inverse, None, palette, edges, 1.0, kern)
    entries = palette_to_space(palette, "oklab", kern).astype(np.float64)
    space_img = lab[:, inverse].T.reshape(*img.shape[:2], 3)
    full = np.full(img.shape[:2], 255, np.uint8)
    np.testing.assert_array_equal(
        got, reference_adaptive_dither(space_img, entries, full, np.inf, dead=0.0, tie=remap_module.RUN_TIE)
    )
    half = remap_module.adaptive_dither(hist.counts, lab, inverse, None, palette, edges, 0.5, kern)
    assert not np.array_equal(got, half)


def test_same_result_on_both_backends_and_with_the_stored_inverse(photos):
    img = _crop(photos, "chelsea", 90, 110)
    results = [kmpress.quantize(img, 12, backend=b, seed=5) for b in ("numba", "numpy")]
    a, b = results
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.palette, b.palette)
    assert a.figures.as_dict().keys() == b.figures.as_dict().keys()
    assert (a.psnr, a.delta_e) == (b.psnr, b.delta_e)


def test_smooth_replaces_the_default_dither_but_not_an_explicit_floyd_steinberg():
    assert Options(smooth=0.3).dither is None
    with pytest.raises(kmpress.InvalidParameterError):
        Options(smooth=0.3, dither="floyd-steinberg")
    assert Options(dither=None).dither is None


def test_quality_search_with_the_adaptive_default(photos):
    img = _crop(photos, "coffee", 48, 60)
    r = kmpress.quantize(img, target_psnr=28.0, max_colors=64)
    assert r.psnr >= 28.0 or not r.target_reached
    buf = io.BytesIO()
    kmpress.compress(img, buf, 16)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


#: SHA-256 of palette + indices of the plain remap (``dither=None``) of two test photos, as the
#: engine gave them before the adaptive default existed: no dithering must stay exactly that.
PLAIN = {
    ("chelsea", 2): "eae914a9bd3eed59cf109c5833faafec7883901c4ab4f0ccfca783544f5427dd",
    ("chelsea", 64): "ef81a537d192f6c2ead743e16e6da18aedd73dfe365105cf46317bd37d7b71b6",
    ("coffee", 2): "c3b86f8a9518b10d666f53eb15ee4eafe98f6c36aed57c53ca35c65f60a8a67c",
    ("coffee", 64): "7c9a36f2580ad64d88392ad08fa58486d3cf03162cf7183e1781726aeb355a61",
}


@pytest.mark.parametrize("name, k", sorted(PLAIN))
def test_no_dither_keeps_the_plain_result_bit_for_bit(photos, name, k):
    import hashlib

    q = kmpress.quantize(photos[name], k, dither=None)
    assert hashlib.sha256(q.palette.tobytes() + q.indices.tobytes()).hexdigest() == PLAIN[(name, k)]


# --------------------------------------------------------------------------------------------
# the palette's second fit, with weights raised by the first palette's error
# --------------------------------------------------------------------------------------------


def _sky_with_a_red_patch() -> np.ndarray:
    """A smooth sky (96 x 128) with a 6 x 6 saturated red patch: 0.3 % of the pixels."""
    h, w = 96, 128
    y = np.linspace(0, 1, h)[:, None]
    x = np.linspace(0, 1, w)[None, :]
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = 40 + 120 * y + 20 * x
    img[..., 1] = 90 + 110 * y + 0 * x
    img[..., 2] = 200 + 50 * y - 30 * x
    img[40:46, 60:66] = (230, 20, 30)
    return img


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_feedback_weights_raise_each_colour_by_its_error(backend):
    from kmpress.contrast import FEEDBACK_ERROR, feedback_weights

    rng = np.random.default_rng(11)
    X = np.ascontiguousarray(rng.integers(0, 256, (3, 700)).astype(np.float32))
    C = rng.uniform(0, 255, (9, 3))
    w = rng.uniform(0.5, 300.0, 700)
    got = feedback_weights(X, w, C, backends.load(backend))
    e = ((X.T.astype(np.float64)[:, None, :] - C[None]) ** 2).sum(-1).min(1)
    # integers, as the first weights: every weighted sum of the fit stays exact in any order
    np.testing.assert_array_equal(got, np.rint(w * np.sqrt(1.0 + e / FEEDBACK_ERROR)))
    assert np.all(got >= np.rint(w))
    np.testing.assert_array_equal(got, feedback_weights(X, w, C, backends.load("numpy")))


def test_a_small_saturated_area_gets_an_entry_of_its_own_at_small_k(monkeypatch):
    import kmpress.pipeline

    img = _sky_with_a_red_patch()
    red = np.array([230, 20, 30])

    def nearest_to_red(q):
        return float(np.sqrt(((q.palette.astype(np.float64) - red) ** 2).sum(1)).min())

    q = kmpress.quantize(img, 4)
    assert nearest_to_red(q) < 10  # the second fit gives the patch its colour
    assert q.to_array()[42, 62].tolist() == q.palette[np.argmin(((q.palette - red) ** 2).sum(1))].tolist()
    monkeypatch.setattr(kmpress.pipeline, "FEEDBACK_MAX_K", 0)
    assert nearest_to_red(kmpress.quantize(img, 4)) > 100  # one fit: the sky takes every entry


@pytest.mark.parametrize(
    "options", [dict(k=65), dict(k=1), dict(k=8, dither=None), dict(k=8, colorspace="oklab"), dict(k=8, max_iter=3)]
)
def test_only_the_adaptive_default_in_rgb_up_to_64_colours_fits_twice(photos, monkeypatch, options):
    import kmpress.pipeline

    img = _crop(photos, "astronaut", 64, 80)
    q = kmpress.quantize(img, **options)
    monkeypatch.setattr(kmpress.pipeline, "FEEDBACK_MAX_K", 0)
    once = kmpress.quantize(img, **options)
    np.testing.assert_array_equal(q.palette, once.palette)
    assert q.n_iter == once.n_iter


@pytest.mark.parametrize("k", [2, 16, 64])
def test_the_second_fit_is_the_same_on_both_backends(photos, k):
    img = _crop(photos, "coffee", 72, 90)
    a, b = kmpress.quantize(img, k, backend="numba"), kmpress.quantize(img, k, backend="numpy")
    np.testing.assert_array_equal(a.palette, b.palette)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.n_iter == b.n_iter


def _reach_case(seed: int, n: int = 900, k: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.ascontiguousarray(rng.integers(0, 256, (3, n)).astype(np.float32))
    counts = rng.integers(1, 40, n).astype(np.int64)
    C = np.round(rng.uniform(0, 255, (k, 3)), 1)
    C[3] = C[1]  # two centroids in one place: the second nearest at distance 0, a zero segment
    X[:, :5] = C[2, :, None].round()  # points on a centroid, and ties between the two copies
    return X, counts, C


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("seed, stride", [(0, 1), (1, 1), (2, 3), (3, 7)])
def test_reach_sums_match_the_oracle(backend, seed, stride):
    from reference import reference_reach_sums

    X, counts, C = _reach_case(seed)
    acc = np.empty(C.shape, np.int64)
    den = np.empty(C.shape[0], np.int64)
    backends.load(backend).reach_sums(X, counts, C, stride, acc, den)
    want_acc, want_den = reference_reach_sums(X, counts, C, stride)
    np.testing.assert_array_equal(acc, want_acc)
    np.testing.assert_array_equal(den, want_den)


def test_reach_sums_are_the_same_at_any_thread_count():
    from kmpress.kernels_numba import CHUNK

    X, counts, C = _reach_case(5, n=3 * CHUNK + 17, k=16)
    kern = backends.load("numba")
    got = []
    before = numba.get_num_threads()
    try:
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            acc = np.empty(C.shape, np.int64)
            den = np.empty(C.shape[0], np.int64)
            kern.reach_sums(X, counts, C, 1, acc, den)
            got.append((acc, den))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(got[0][0], got[1][0])
    np.testing.assert_array_equal(got[0][1], got[1][1])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_reach_palette_moves_two_entries_out_to_the_colour_between_them(backend):
    from kmpress.contrast import reach_palette

    # a colour 30 units off the segment joining the two entries, halfway along it: no mix of the
    # two gives it, so both move 30 units towards it, and then it lies on their segment
    X = np.ascontiguousarray(np.array([[125.0], [130.0], [100.0]], np.float32))
    C = np.array([[100.0, 100.0, 100.0], [150.0, 100.0, 100.0]])
    got = reach_palette(X, np.array([5], np.int64), C, backends.load(backend))
    np.testing.assert_array_equal(got, [[100.0, 130.0, 100.0], [150.0, 130.0, 100.0]])
    # a colour the two already mix to moves nothing
    X = np.ascontiguousarray(np.array([[110.0, 140.0], [100.0, 100.0], [100.0, 100.0]], np.float32))
    np.testing.assert_array_equal(reach_palette(X, np.array([3, 1], np.int64), C, backends.load(backend)), C)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_reach_palette_moves_colour_not_alpha(backend):
    from kmpress.contrast import reach_palette

    rng = np.random.default_rng(12)
    X = np.ascontiguousarray(rng.integers(0, 256, (4, 500)).astype(np.float32))
    C = rng.uniform(0, 255, (6, 4))
    got = reach_palette(X, np.ones(500, np.int64), C, backends.load(backend))
    np.testing.assert_array_equal(got[:, 3], C[:, 3])
    assert np.abs(got[:, :3] - C[:, :3]).max() > 1.0


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_reach_palette_weighs_a_count_as_that_many_repeated_colours(backend):
    from kmpress.contrast import reach_palette

    X, counts, C = _reach_case(9, n=300, k=6)
    kern = backends.load(backend)
    repeated = np.ascontiguousarray(np.repeat(X, counts, axis=1))
    np.testing.assert_array_equal(
        reach_palette(X, counts, C, kern), reach_palette(repeated, np.ones(repeated.shape[1], np.int64), C, kern)
    )


def test_reach_palette_looks_at_a_sample_of_many_colours(monkeypatch):
    import kmpress.contrast as contrast

    X, counts, C = _reach_case(4, n=5000, k=8)
    kern = backends.load("numba")
    full = contrast.reach_palette(X, counts, C, kern)
    monkeypatch.setattr(contrast, "REACH_SAMPLE", 1000)
    sampled = contrast.reach_palette(X, counts, C, kern)
    every5 = contrast.reach_palette(np.ascontiguousarray(X[:, ::5]), np.ascontiguousarray(counts[::5]), C, kern)
    np.testing.assert_array_equal(sampled, every5)
    assert not np.array_equal(sampled, full)


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_the_reached_palette_keeps_the_dithered_colours_closer_to_the_photo(photos, monkeypatch, name):
    import kmpress.contrast as contrast

    img = np.ascontiguousarray(photos[name][:96, :128, :3])

    def blurred_error(q) -> float:
        # mean colour distance of both pictures blurred by a 9 x 9 box: what the eye averages
        box = np.ones(9) / 9
        a, b = img.astype(np.float64), q.to_array().astype(np.float64)
        for axis in (0, 1):
            a = np.apply_along_axis(np.convolve, axis, a, box, mode="valid")
            b = np.apply_along_axis(np.convolve, axis, b, box, mode="valid")
        return float(np.sqrt(((a - b) ** 2).sum(-1)).mean())

    reached = [blurred_error(kmpress.quantize(img, k)) for k in (8, 16)]
    monkeypatch.setattr(contrast, "REACH_PASSES", 0)
    lloyd_only = [blurred_error(kmpress.quantize(img, k)) for k in (8, 16)]
    assert reached[0] < lloyd_only[0] and reached[1] < lloyd_only[1]


@pytest.mark.parametrize(
    "shape, limit, step", [((7, 9, 3), 1000, 1), ((40, 31, 4), 1000, 1), ((40, 31, 3), 100, 4), ((40, 31, 3), 10, 20)]
)
def test_local_means_average_each_two_by_two_block(shape, limit, step):
    from reference import reference_local_means

    from kmpress.contrast import local_means

    img = np.random.default_rng(3).integers(0, 256, shape).astype(np.uint8)
    got = local_means(img, limit)
    # at most limit blocks, but at least one row of them
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape[1] <= max(limit, shape[1] // 2)
    np.testing.assert_array_equal(got, reference_local_means(img, step))


def test_local_means_of_a_single_row_are_its_pixels():
    from kmpress.contrast import local_means

    img = np.arange(30, dtype=np.uint8).reshape(1, 10, 3)
    np.testing.assert_array_equal(local_means(img), img[0].T.astype(np.float32))


def test_noise_the_eye_averages_away_does_not_widen_the_palette(monkeypatch):
    import kmpress.contrast as contrast

    # two flat colours, each pixel +-12 in a pattern every 2 x 2 block cancels: the local colours
    # are exactly the two, which the palette already holds, so it stays put (aimed at the pixels,
    # the entries would move out to the noise, and the dither would copy it)
    h, w = 48, 64
    base = np.where(np.arange(w)[None, :, None] < w // 2, [70, 110, 160], [200, 150, 90])
    sign = np.where((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0, 1, -1)[..., None]
    img = np.ascontiguousarray((base + 12 * sign).astype(np.uint8))
    reached = kmpress.quantize(img, 2)
    monkeypatch.setattr(contrast, "REACH_PASSES", 0)
    np.testing.assert_array_equal(reached.palette, kmpress.quantize(img, 2).palette)


def test_the_reach_takes_fewer_local_colours_the_more_entries_it_compares_them_with(photos, monkeypatch):
    import kmpress.contrast as contrast
    import kmpress.pipeline

    limits = []

    def recording(img, limit):
        limits.append(limit)
        return contrast.local_means(img, limit)

    monkeypatch.setattr(kmpress.pipeline, "local_means", recording)
    img = _crop(photos, "coffee", 64, 80)
    for k in (8, 64, 128, 256):
        kmpress.quantize(img, k)
    assert limits == [1 << 18, 1 << 18, 1 << 17, 1 << 16]  # at most 2^24 points x entries a pass


@pytest.mark.parametrize("k", [100, 256])
def test_past_64_colours_the_palette_reaches_without_a_second_fit(photos, monkeypatch, k):
    import kmpress.contrast as contrast

    img = _crop(photos, "astronaut", 120, 160)
    reached = kmpress.quantize(img, k)
    monkeypatch.setattr(contrast, "REACH_PASSES", 0)
    plain = kmpress.quantize(img, k)
    assert reached.n_iter == plain.n_iter  # one fit
    assert not np.array_equal(reached.palette, plain.palette)
