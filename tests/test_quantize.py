"""kmpress.quantize: bit accounting, small palettes, K limits, RGBA, backends, results' integrity."""

from __future__ import annotations

import math

import numpy as np
import pytest

import kmpress
from kmpress.metrics import bit_accounting, png_bit_depth


def _distinct(a: np.ndarray) -> int:
    return len(np.unique(a.reshape(-1, a.shape[-1]), axis=0))


def _check_integrity(img: np.ndarray, q) -> None:
    """Everything a Quantized promises about itself, recomputed from scratch."""
    h, w, c = img.shape
    assert q.palette.dtype == np.uint8 and q.palette.ndim == 2 and q.palette.shape[1] == c
    assert q.indices.dtype == np.uint8 and q.indices.shape == (h, w)
    assert 1 <= q.k <= 256
    assert int(q.indices.max()) < q.k
    assert len(np.unique(q.palette, axis=0)) == q.k, "duplicate palette entries"
    assert len(np.unique(q.indices)) == q.k, "unused palette entries"
    out = q.to_array()
    assert out.shape == img.shape and out.dtype == np.uint8
    err = out.astype(np.int64) - img.astype(np.int64)
    mse = float((err * err).mean())
    assert q.mse == pytest.approx(mse, rel=1e-12, abs=0)
    assert q.psnr == kmpress.psnr(img, out) or (math.isinf(q.psnr) and math.isinf(kmpress.psnr(img, out)))
    assert q.n_colors_in == _distinct(img)
    assert q.bits == bit_accounting(h, w, c, q.k)
    assert q.png_bit_depth == png_bit_depth(q.k)


# --------------------------------------------------------------------------------------------
# bit accounting on real results
# --------------------------------------------------------------------------------------------


def test_bits_128x128_rgb_k16(photos):
    img = np.ascontiguousarray(photos["astronaut"][100:228, 150:278])
    assert img.shape == (128, 128, 3) and _distinct(img) >= 16
    q = kmpress.quantize(img, 16)
    _check_integrity(img, q)
    assert q.k == 16
    assert (q.bits.raw, q.bits.index, q.bits.palette, q.bits.total) == (393_216, 65_536, 384, 65_920)
    assert q.bits.ratio == pytest.approx(65_920 / 393_216, rel=1e-15)
    assert f"{q.bits.ratio:.4f}" == "0.1676"


def test_bits_227x303_k2(photos):
    img = np.ascontiguousarray(photos["coffee"][50:277, 100:403])
    assert img.shape == (227, 303, 3)
    q = kmpress.quantize(img, 2)
    _check_integrity(img, q)
    assert q.k == 2
    assert (q.bits.raw, q.bits.index, q.bits.palette, q.bits.total) == (1_650_744, 68_781, 48, 68_829)


# --------------------------------------------------------------------------------------------
# fewer colours than K, K limits
# --------------------------------------------------------------------------------------------


def _few_colour_image(n_colours: int, channels: int = 3, shape=(37, 53), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cols = rng.choice(256**channels if channels == 3 else 2**31, n_colours, replace=False)
    palette = ((cols[:, None] >> (8 * np.arange(channels))) & 255).astype(np.uint8)
    idx = rng.integers(0, n_colours, shape)
    idx.flat[:n_colours] = np.arange(n_colours)  # every colour present
    return np.ascontiguousarray(palette[idx])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("n_colours,k", [(1, 1), (1, 16), (5, 16), (16, 16), (100, 256), (3, 4)])
@pytest.mark.parametrize("channels", [3, 4])
def test_fewer_colours_than_k_is_lossless(backend, n_colours, k, channels):
    img = _few_colour_image(n_colours, channels)
    q = kmpress.quantize(img, k, backend=backend)
    _check_integrity(img, q)
    assert q.k == n_colours
    assert {tuple(r) for r in q.palette} == {tuple(r) for r in img.reshape(-1, channels)}
    np.testing.assert_array_equal(q.to_array(), img)
    assert q.mse == 0.0 and math.isinf(q.psnr)
    assert q.n_iter == 0 and q.converged


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_k1_is_the_rounded_mean(photos, backend):
    img = np.ascontiguousarray(photos["chelsea"][:60, :80])
    q = kmpress.quantize(img, 1, backend=backend)
    _check_integrity(img, q)
    assert q.k == 1 and q.png_bit_depth == 1 and q.bits.index == 0
    mean = img.reshape(-1, 3).astype(np.float64).mean(axis=0)
    np.testing.assert_array_equal(q.palette[0], np.rint(mean).astype(np.uint8))
    assert np.all(q.indices == 0)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_k256(photos, backend):
    img = np.ascontiguousarray(photos["coffee"][::4, ::4])
    q = kmpress.quantize(img, 256, backend=backend)
    _check_integrity(img, q)
    assert 200 < q.k <= 256 and q.png_bit_depth == 8
    q16 = kmpress.quantize(img, 16, backend=backend)
    assert q.psnr > q16.psnr + 5


def test_more_k_is_never_worse(photos):
    img = np.ascontiguousarray(photos["astronaut"][::4, ::4])
    psnrs = [kmpress.quantize(img, k).psnr for k in (2, 4, 8, 16, 32, 64)]
    assert all(b > a for a, b in zip(psnrs, psnrs[1:])), psnrs


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
