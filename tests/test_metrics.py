"""kmpress.metrics: bit accounting, PSNR/MSE, and the ΔE and squared-error figures on both
backends against the naive ΔE oracle of tests/reference.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from reference import delta_e, reference_delta_e

import kmpress
from kmpress.histogram import build_histogram
from kmpress.metrics import bit_accounting, delta_e_histogram, mse, pixel_errors, png_bit_depth, psnr, psnr_from_mse


def _crop(photos, name, h, w):
    return np.ascontiguousarray(photos[name][60 : 60 + h, 100 : 100 + w])


# --------------------------------------------------------------------------------------------
# bit accounting
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "h,w,c,k,expected",
    [
        (128, 128, 3, 16, (393_216, 65_536, 384)),
        (227, 303, 3, 2, (1_650_744, 68_781, 48)),
        (10, 10, 4, 3, (3_200, 200, 96)),  # ceil(log2 3) = 2; 32 bits per colour with alpha
        (10, 10, 3, 1, (2_400, 0, 24)),  # one colour needs no index bits
        (10, 10, 3, 256, (2_400, 800, 6_144)),
        (10, 10, 3, 129, (2_400, 800, 3_096)),
        (10, 10, 3, 5, (2_400, 300, 120)),
    ],
)
def test_bit_accounting_formula(h, w, c, k, expected):
    b = bit_accounting(h, w, c, k)
    assert (b.raw, b.index, b.palette) == expected
    assert b.total == expected[1] + expected[2]
    assert b.as_dict()["total"] == b.total


@pytest.mark.parametrize("k,depth", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 4), (16, 4), (17, 8), (256, 8)])
def test_png_bit_depth_is_smallest_legal(k, depth):
    assert png_bit_depth(k) == depth


# --------------------------------------------------------------------------------------------
# PSNR and MSE
# --------------------------------------------------------------------------------------------


def test_mse_and_psnr_are_exact():
    a = np.zeros((2, 3, 3), np.uint8)
    b = a.copy()
    assert mse(a, b) == 0.0 and math.isinf(psnr(a, b))
    b[0, 0, 0] = 255
    assert mse(a, b) == 255.0**2 / 18
    assert psnr(a, b) == pytest.approx(10 * math.log10(18), rel=1e-12)
    assert psnr_from_mse(255.0**2) == 0.0
    with pytest.raises(ValueError):
        mse(a, b[:1])


# --------------------------------------------------------------------------------------------
# ΔE and squared errors, both backends, against the oracle
# --------------------------------------------------------------------------------------------


def test_delta_e_matches_the_oracle(photos):
    img = _crop(photos, "coffee", 24, 30)
    other = np.ascontiguousarray(img[::-1, ::-1])
    assert delta_e(img, other) == pytest.approx(reference_delta_e(img, other), rel=1e-9)
    assert delta_e(img, img) == 0.0


def test_delta_e_histogram_matches_the_pixel_oracle(photos, kern):
    img = _crop(photos, "coffee", 48, 64)
    q = kmpress.quantize(img, 8, backend=kern.NAME)
    hist = build_histogram(img, kern)
    labels = q.indices.reshape(-1)[np.unique(hist.pixel_colors(img, kern), return_index=True)[1]]
    de = delta_e_histogram(hist.colors, hist.counts, q.palette, labels, kern)
    assert de == pytest.approx(reference_delta_e(img, q.to_array()), rel=1e-9)
    assert q.delta_e == pytest.approx(de, rel=1e-12)
    # a colour shown as itself has distance 0
    cols = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    assert delta_e_histogram(cols, np.array([3, 1]), cols, np.array([0, 1]), kern) == 0.0
    assert delta_e_histogram(cols, np.array([3, 1]), cols[:1], np.array([0, 0]), kern) == pytest.approx(0.25, abs=1e-4)


def test_pixel_errors_of_an_arbitrary_remap(photos, kern):
    img = _crop(photos, "astronaut", 40, 50)
    hist = build_histogram(img, kern)
    rng = np.random.default_rng(2)
    pal = rng.integers(0, 256, (9, 3), dtype=np.uint8)
    idx = rng.integers(0, 9, img.shape[:2]).astype(np.uint8)
    sse, de = pixel_errors(hist.colors, hist.pixel_colors(img, kern), idx, pal, kern)
    err = pal[idx].astype(np.int64) - img.astype(np.int64)
    assert sse == int((err * err).sum())
    assert de == pytest.approx(reference_delta_e(img, pal[idx]), rel=1e-9)
