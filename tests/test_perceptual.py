"""SSIMULACRA 2 (kmpress.perceptual): against a slow float64 transcription of libjxl's
tools/ssimulacra2.cc (its recursive Gaussian run as the recursion it is), both backends bit for
bit, at any thread count, and its invariances: identical images score 100, more noise scores
lower."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from kmpress import backends, kernels_numpy
from kmpress.colorspace import LINEAR_LUT
from kmpress.fixedmath import cbrt, cbrt_unit
from kmpress.perceptual import OPSIN, TAPS, WEIGHTS, ssimulacra2

# --------------------------------------------------------------------------------------------
# the oracle: libjxl's steps in float64, written as plainly as possible
# --------------------------------------------------------------------------------------------


def _recursive_gaussian(sigma: float = 1.5):
    """libjxl's CreateRecursiveGaussian (Charalampidis 2016): radius, n2, d1 of the 3 terms."""
    radius = round(3.2795 * sigma + 0.2546)
    w = math.pi / (2.0 * radius)
    omega = [w, 3 * w, 5 * w]
    p = [1 / math.tan(0.5 * omega[0]), -1 / math.tan(0.5 * omega[1]), 1 / math.tan(0.5 * omega[2])]
    r = [p[0] ** 2 / math.sin(omega[0]), -(p[1] ** 2) / math.sin(omega[1]), p[2] ** 2 / math.sin(omega[2])]
    rho = [math.exp(-0.5 * sigma * sigma * o * o) / radius for o in omega]
    d13 = p[0] * r[1] - r[0] * p[1]
    d35 = p[1] * r[2] - r[1] * p[2]
    d51 = p[2] * r[0] - r[2] * p[0]
    z15, z35 = d35 / d13, d51 / d13
    a = np.array([p, r, [z15, z35, 1.0]])
    gamma = np.array([1.0, radius * radius - sigma * sigma, z15 * rho[0] + z35 * rho[1] + rho[2]])
    beta = np.linalg.solve(a, gamma)
    n2 = [-beta[i] * math.cos(omega[i] * (radius + 1.0)) for i in range(3)]
    d1 = [-2.0 * math.cos(omega[i]) for i in range(3)]
    return radius, n2, d1


def _iir_rows(x: np.ndarray) -> np.ndarray:
    """libjxl's FastGaussian1D on every row of x (..., W), zero outside, float64."""
    N, n2, d1 = _recursive_gaussian()
    W = x.shape[-1]
    out = np.zeros_like(x)
    prev = [np.zeros(x.shape[:-1]) for _ in range(3)]
    prev2 = [np.zeros(x.shape[:-1]) for _ in range(3)]
    for n in range(-N + 1, W):
        left, right = n - N - 1, n + N - 1
        s = (x[..., left] if left >= 0 else 0.0) + (x[..., right] if right < W else 0.0)
        total = 0.0
        for k in range(3):
            o = n2[k] * s - d1[k] * prev[k] - prev2[k]
            prev2[k], prev[k] = prev[k], o
            total = total + o
        if n >= 0:
            out[..., n] = total
    return out


def _blur(img: np.ndarray) -> np.ndarray:
    """(3, H, W): rows, then columns."""
    return np.swapaxes(_iir_rows(np.swapaxes(_iir_rows(img), 1, 2)), 1, 2)


def _xyb(lin: np.ndarray) -> np.ndarray:
    m = [np.maximum(sum(OPSIN[j, i] * lin[i] for i in range(3)) + OPSIN[j, 3], 0.0) for j in range(3)]
    cb = np.cbrt(OPSIN[0, 3])
    lc, mc, sc = (np.cbrt(v) - cb for v in m)
    x, y, b = 0.5 * (lc - mc), 0.5 * (lc + mc), sc
    return np.stack([x * 14.0 + 0.42, y + 0.01, (b - y) + 0.55])


def _down(lin: np.ndarray) -> np.ndarray:
    H, W = lin.shape[1:]
    p = np.pad(lin, ((0, 0), (0, H % 2), (0, W % 2)), mode="edge")
    return 0.25 * (p[:, 0::2, 0::2] + p[:, 0::2, 1::2] + p[:, 1::2, 0::2] + p[:, 1::2, 1::2])


def oracle(a: np.ndarray, b: np.ndarray) -> float:
    lin1 = LINEAR_LUT[np.moveaxis(a[..., :3], 2, 0)]
    lin2 = LINEAR_LUT[np.moveaxis(b[..., :3], 2, 0)]
    scales = []
    for scale in range(6):
        if lin1.shape[1] < 8 or lin1.shape[2] < 8:
            break
        if scale:
            lin1, lin2 = _down(lin1), _down(lin2)
        i1, i2 = _xyb(lin1), _xyb(lin2)
        s11, s22, s12 = _blur(i1 * i1), _blur(i2 * i2), _blur(i1 * i2)
        mu1, mu2 = _blur(i1), _blur(i2)
        num_m = 1.0 - (mu1 - mu2) ** 2
        num_s = 2 * (s12 - mu1 * mu2) + 0.0009
        den_s = (s11 - mu1 * mu1) + (s22 - mu2 * mu2) + 0.0009
        d = np.maximum(1.0 - num_m * num_s / den_s, 0.0)
        d1 = (1.0 + np.abs(i2 - mu2)) / (1.0 + np.abs(i1 - mu1)) - 1.0
        maps = [d, np.maximum(d1, 0.0), np.maximum(-d1, 0.0)]
        # per channel c, norm n (1, 4), map m
        scales.append(
            [
                [[v[c].mean() if n == 0 else (v[c] ** 4).mean() ** 0.25 for v in maps] for n in range(2)]
                for c in range(3)
            ]
        )
    s, i = 0.0, 0
    for c in range(3):
        for sc in scales:
            for n in range(2):
                for m in range(3):
                    s += WEIGHTS[i] * abs(sc[c][n][m])
                    i += 1
    s *= 0.9562382616834844
    s = 2.326765642916932 * s - 0.020884521182843837 * s * s + 6.248496625763138e-05 * s**3
    return 100.0 - 10.0 * s**0.6276336467831387 if s > 0 else 100.0


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------


def _photo(name: str, step: int = 2) -> np.ndarray:
    from pathlib import Path

    with Image.open(Path(__file__).parent / "data" / name) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[::step, ::step])


def _posterize(img: np.ndarray, levels: int) -> np.ndarray:
    q = 255 / (levels - 1)
    return (np.round(np.round(img / q) * q)).astype(np.uint8)


def _noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    n = np.random.default_rng(seed).normal(0, 1, img.shape) * sigma
    return np.clip(np.round(img + n), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def numba_kernels():
    return backends.load("numba")


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


def test_the_taps_are_libjxls_recursive_gaussian():
    x = np.zeros((1, 41))
    x[0, 20] = 1.0
    h = _iir_rows(x)[0]
    np.testing.assert_allclose(h[20:25], TAPS, rtol=0, atol=1e-14)
    np.testing.assert_allclose(h[16:20], TAPS[:0:-1], rtol=0, atol=1e-14)
    assert np.abs(h[:16]).max() < 1e-14 and np.abs(h[25:]).max() < 1e-14  # 9 taps, nothing further
    assert TAPS[0] + 2 * TAPS[1:].sum() == pytest.approx(1.0, abs=1e-14)


def test_quick_cube_root_is_the_cube_root_on_its_domain():
    x = np.random.default_rng(1).uniform(0.0037, 1.0038, 200_000)
    x = np.concatenate([x, OPSIN[:, 3], [1.0, 0.125, 0.125 / 8, 1 / 512]])
    np.testing.assert_allclose(cbrt_unit(x), cbrt(x), rtol=1e-11, atol=0)


@pytest.mark.parametrize("name, levels", [("chelsea.png", 6), ("coffee.png", 12), ("astronaut.png", 24)])
def test_agrees_with_libjxls_algorithm_in_float64(name, levels):
    a = _photo(name, 3)
    b = _posterize(a, levels)
    got = ssimulacra2(a, b)
    assert got == pytest.approx(oracle(a, b), abs=0.02)


@pytest.mark.parametrize("shape", [(8, 8), (9, 31), (70, 13), (150, 226)])
def test_both_backends_give_the_same_bits(numba_kernels, shape):
    rng = np.random.default_rng(shape[0] * shape[1])
    a = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    b = _noisy(a, 12.0)
    s_np = ssimulacra2(a, b, kernels_numpy)
    s_nb = ssimulacra2(a, b, numba_kernels)
    assert s_np == s_nb and math.isfinite(s_np)


def test_photo_both_backends_any_thread_count(numba_kernels):
    a = _photo("astronaut.png", 1)  # 512 rows: several bands of the numba kernel
    b = _posterize(a, 16)
    s_np = ssimulacra2(a, b, kernels_numpy)
    got = []
    for n in (1, 2):
        backends.set_threads(n)
        got.append(ssimulacra2(a, b, numba_kernels))
    assert got[0] == got[1] == s_np


def test_identical_images_score_100_and_tiny_ones_nan(numba_kernels):
    a = _photo("coffee.png", 4)
    for k in (kernels_numpy, numba_kernels):
        assert ssimulacra2(a, a.copy(), k) == 100.0
    assert math.isnan(ssimulacra2(a[:7], a[:7]))
    assert math.isnan(ssimulacra2(a[:, :7], _noisy(a[:, :7], 9)))
    with pytest.raises(ValueError):
        ssimulacra2(a, a[1:])


def test_more_noise_scores_lower():
    a = _photo("chelsea.png", 2)
    scores = [ssimulacra2(a, _noisy(a, s)) for s in (1, 2, 4, 8, 16, 32)]
    assert all(x > y for x, y in zip(scores, scores[1:], strict=False)), scores
    assert scores[0] > 80 and scores[-1] < 40


def test_alpha_is_ignored():
    a = _photo("coffee.png", 4)
    b = _posterize(a, 8)
    alpha = np.full(a.shape[:2] + (1,), 128, np.uint8)
    a4, b4 = np.concatenate([a, alpha], 2), np.concatenate([b, 255 - alpha], 2)
    assert ssimulacra2(a4, b4) == ssimulacra2(a, b)
