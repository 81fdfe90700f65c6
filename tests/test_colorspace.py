"""OKLab conversion (kmpress.colorspace) and the colorspace option of kmpress.quantize."""

from __future__ import annotations

import math

import numpy as np
import pytest
from reference import delta_e

import kmpress
from kmpress.colorspace import (
    LAB_SCALE,
    colors_to_space,
    oklab_of_colors,
    oklab_to_srgb,
    palette_to_space,
    srgb_to_oklab,
)

# An independent path, all float64 NumPy: sRGB -> linear -> CIE XYZ (IEC 61966-2-1 matrix, D65)
# -> OKLab with the XYZ form of Ottosson's M1. The engine folds sRGB->XYZ into its M1, so the two
# agree only to the precision of the published matrices (about 1e-4).
SRGB_TO_XYZ = np.array(
    [
        [0.4124, 0.3576, 0.1805],
        [0.2126, 0.7152, 0.0722],
        [0.0193, 0.1192, 0.9505],
    ]
)
XYZ_M1 = np.array(
    [
        [0.8189330101, 0.3618667424, -0.1288597137],
        [0.0329845436, 0.9293118715, 0.0361456387],
        [0.0482003018, 0.2643662691, 0.6338517070],
    ]
)
M2 = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]
)


def xyz_to_oklab_reference(xyz):
    return np.cbrt(np.asarray(xyz, float) @ XYZ_M1.T) @ M2.T


def srgb_to_oklab_reference(rgb):
    c = np.asarray(rgb, float) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return xyz_to_oklab_reference(lin @ SRGB_TO_XYZ.T)


# Ottosson's published XYZ -> OKLab test values (https://bottosson.github.io/posts/oklab/)
PUBLISHED = [
    ((0.950, 1.000, 1.089), (1.000, 0.000, 0.000)),
    ((1.000, 0.000, 0.000), (0.450, 1.236, -0.019)),
    ((0.000, 1.000, 0.000), (0.922, -0.671, 0.263)),
    ((0.000, 0.000, 1.000), (0.153, -1.415, -0.449)),
]


@pytest.mark.parametrize("xyz,lab", PUBLISHED)
def test_reference_path_matches_published_vectors(xyz, lab):
    # validates the independent reference used below
    np.testing.assert_allclose(xyz_to_oklab_reference(xyz), lab, atol=1.5e-3)


def test_white_black_grey():
    lab = srgb_to_oklab(np.array([[255, 255, 255], [0, 0, 0], [119, 119, 119]]))
    np.testing.assert_allclose(lab[0], [1.0, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(lab[1], [0.0, 0.0, 0.0], atol=1e-12)
    # greys have a = b = 0 and L = cube root of the linear luminance
    lin = ((119 / 255 + 0.055) / 1.055) ** 2.4
    np.testing.assert_allclose(lab[2], [np.cbrt(lin), 0.0, 0.0], atol=1e-4)


@pytest.mark.parametrize(
    "rgb",
    [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (10, 200, 77), (3, 3, 3)],
)
def test_primaries_against_independent_xyz_path(rgb):
    ours = srgb_to_oklab(np.array(rgb))
    np.testing.assert_allclose(ours, srgb_to_oklab_reference(rgb), atol=2e-3)


def test_known_srgb_red():
    # sRGB red in OKLab, as commonly quoted from Ottosson's code: (0.62796, 0.22486, 0.12585)
    np.testing.assert_allclose(srgb_to_oklab(np.array([255, 0, 0])), [0.62796, 0.22486, 0.12585], atol=2e-4)


def test_kernels_match_the_float64_formulas_for_every_grey_and_random_colors(kern):
    rng = np.random.default_rng(3)
    cols = np.vstack(
        [np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1), rng.integers(0, 256, (5000, 3), dtype=np.uint8)]
    )
    ref = srgb_to_oklab(cols)
    np.testing.assert_allclose(oklab_of_colors(cols, kern), ref, atol=1e-12)
    planar = colors_to_space(cols, "oklab", kern)
    assert planar.dtype == np.float32 and planar.shape == (3, cols.shape[0])
    np.testing.assert_allclose(planar.T / LAB_SCALE, ref, atol=1e-6)
    np.testing.assert_array_equal(palette_to_space(cols[:10], "oklab", kern), planar[:, :10].T)
    # rgb space is the colours themselves
    np.testing.assert_array_equal(colors_to_space(cols, "rgb", kern), cols.T.astype(np.float32))


def test_backends_convert_identically():
    from kmpress import backends

    cols = np.random.default_rng(5).integers(0, 256, (3000, 4), dtype=np.uint8)
    a = colors_to_space(cols, "oklab", backends.load("numba"))
    b = colors_to_space(cols, "oklab", backends.load("numpy"))
    np.testing.assert_array_equal(a, b)  # bit for bit: the same operations in the same order


def test_alpha_is_carried_unchanged(kern):
    cols = np.array([[10, 20, 30, 0], [200, 100, 50, 128], [1, 2, 3, 255]], np.uint8)
    planar = colors_to_space(cols, "oklab", kern)
    np.testing.assert_array_equal(planar[3], [0, 128, 255])


def test_round_trip_every_8bit_value_per_channel():
    # every 8-bit value of every channel (plus a random sample) comes back exactly after rounding
    rng = np.random.default_rng(1)
    v = np.arange(256)
    cols = np.vstack(
        [
            np.stack([v, v * 0, v * 0], 1),
            np.stack([v * 0, v, v * 0], 1),
            np.stack([v * 0, v * 0, v], 1),
            rng.integers(0, 256, (20000, 3)),
        ]
    )
    back = np.rint(oklab_to_srgb(srgb_to_oklab(cols))).astype(np.int64)
    np.testing.assert_array_equal(back, cols)


def test_out_of_gamut_lab_is_clipped():
    out = oklab_to_srgb(np.array([[1.2, 0.5, -0.5], [-0.1, 0.0, 0.0]]))
    assert out.min() >= 0 and out.max() <= 255


@pytest.mark.parametrize("k", [8, 64])
def test_oklab_quantize_results(photos, k):
    img = np.ascontiguousarray(photos["chelsea"][100:228, 150:310])
    rgb = kmpress.quantize(img, k)
    lab = kmpress.quantize(img, k, colorspace="oklab")
    assert lab.colorspace == "oklab" and rgb.colorspace == "rgb"
    assert lab.palette.dtype == np.uint8 and lab.k <= k
    out = lab.to_array()
    err = out.astype(np.int64) - img.astype(np.int64)
    assert lab.mse == pytest.approx(float((err * err).mean()), rel=1e-12)
    assert lab.delta_e == pytest.approx(delta_e(img, out), rel=1e-9)
    # each colour gets its nearest entry in OKLab (not in RGB)
    cols = np.unique(img.reshape(-1, 3), axis=0)
    pl = srgb_to_oklab(lab.palette)
    d = ((srgb_to_oklab(cols)[:, None, :] - pl[None]) ** 2).sum(-1)
    pos = {tuple(c): i for i, c in enumerate(map(tuple, img.reshape(-1, 3)))}
    got = lab.indices.reshape(-1)[[pos[tuple(c)] for c in cols]]
    best = d.min(axis=1)
    assert np.all(d[np.arange(len(cols)), got] <= best + 1e-9)
    # clustering in OKLab optimises OKLab error: it wins on delta E, RGB k-means wins on PSNR
    assert lab.delta_e < rgb.delta_e
    assert rgb.psnr > lab.psnr


def test_oklab_lossless_when_few_colors():
    rng = np.random.default_rng(0)
    cols = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    img = cols[rng.integers(0, 5, (20, 30))]
    q = kmpress.quantize(img, 8, colorspace="oklab")
    np.testing.assert_array_equal(q.to_array(), img)
    assert math.isinf(q.psnr) and q.delta_e == 0.0


def test_oklab_rgba_keeps_alpha(photos):
    img = np.ascontiguousarray(photos["astronaut"][:64, :64])
    a = np.dstack([img, np.where(np.arange(64)[None, :] < 20, 0, 255).repeat(64, 0).astype(np.uint8)])
    q = kmpress.quantize(a, 16, colorspace="oklab")
    assert q.palette.shape[1] == 4
    out = q.to_array()
    np.testing.assert_array_equal(out[:, :, 3] == 0, a[:, :, 3] == 0)


@pytest.mark.parametrize("bad", ["lab", "RGB", None, 3])
def test_bad_colorspace_is_refused(bad):
    with pytest.raises(kmpress.InvalidParameterError, match="colorspace"):
        kmpress.quantize(np.zeros((4, 4, 3), np.uint8), 2, colorspace=bad)
