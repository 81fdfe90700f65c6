"""The quality target: the smallest K reaching a PSNR, found with warm-started fits.

Brute force (an independent :func:`kmpress.quantize` at every K) is the reference. On an image
with a clear cluster structure the two must agree exactly; on a photo crop, where neighbouring K
differ by hundredths of a dB and warm and cold starts land in slightly different local optima,
the search's own certificate must hold (K reaches the target, K - 1 was fitted and does not) and
K must sit next to the brute-force answer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import kmpress
from kmpress.errors import InvalidParameterError, KmpressError
from kmpress.metrics import psnr
from kmpress.quality import TargetNotReachedError, quantize_to_quality


def visited(r) -> list[int]:
    """The K values a search fitted, in order."""
    return [t.k for t in r.trials]


def structured_image(seed: int = 0) -> np.ndarray:
    """48x48 RGB: six far-apart colours in unequal amounts, +-4 noise (PSNR jumps at K = 2..6)."""
    rng = np.random.default_rng(seed)
    base = np.array([[20, 20, 20], [230, 40, 40], [40, 220, 60], [50, 60, 230], [240, 240, 90], [200, 200, 210]])
    sizes = [700, 550, 400, 300, 200, 154]  # unequal, so every K adds a clearly different amount
    labels = rng.permutation(np.repeat(np.arange(6), sizes))
    img = base[labels] + rng.integers(-4, 5, (labels.size, 3))
    return np.clip(img, 0, 255).astype(np.uint8).reshape(48, 48, 3)


def brute_force(img: np.ndarray, kmax: int, **opts) -> list[float]:
    """PSNR of an independent quantize at K = 1..kmax (index K-1)."""
    return [kmpress.quantize(img, k, **opts).psnr for k in range(1, kmax + 1)]


def smallest(psnrs: list[float], target: float) -> int | None:
    return next((k for k, p in enumerate(psnrs, 1) if p >= target), None)


@pytest.fixture(scope="module")
def crop(photos) -> np.ndarray:
    return np.ascontiguousarray(photos["chelsea"][100:164, 150:246])


def test_matches_brute_force_on_a_structured_image():
    img = structured_image()
    # undithered: PSNR then grows with K by the structure's blocks (dithering trades it away)
    bf = brute_force(img, 10, dither=None)
    # the structure shows: each added block is worth well over 1 dB up to K = 6
    assert all(bf[i + 1] - bf[i] > 1.0 for i in range(5)), bf
    targets = [(bf[i] + bf[i + 1]) / 2 for i in range(5)] + [bf[0] - 1.0]
    for target in targets:
        want = smallest(bf, target)
        for search_tol in (None, kmpress.DEFAULT_TOL):
            r = quantize_to_quality(img, target, max_colors=10, search_tol=search_tol, dither=None)
            assert r.reached
            assert r.k == want, (target, search_tol, r.k, want, visited(r))
            assert r.quantized.psnr >= target


def test_photo_crop_certificate_and_brute_force(crop):
    bf = brute_force(crop, 48)
    for target in (24.0, 29.5, 32.0, 33.5):  # the dithered crop reaches 33.85 dB at K = 48
        want = smallest(bf, target)
        assert want is not None
        r = quantize_to_quality(crop, target, max_colors=48, search_tol=kmpress.DEFAULT_TOL)
        assert r.reached and r.quantized.psnr >= target
        by_k = {t.k: t for t in r.trials}
        if r.k > 1:
            # the certificate: the K just below was fitted and stays under the target
            assert r.k - 1 in by_k and by_k[r.k - 1].psnr < target
        assert abs(r.k - want) <= 2, (target, r.k, want, visited(r))
        # far fewer fits than K values
        assert len(r.trials) < max(8, want // 2)


def test_default_search_tolerance_stays_close(crop):
    bf = brute_force(crop, 48)
    for target in (29.5, 33.0):
        r = quantize_to_quality(crop, target, max_colors=48)
        assert r.reached and r.quantized.psnr >= target
        assert abs(r.k - smallest(bf, target)) <= 3


def test_reported_psnr_is_that_of_the_pixels(crop):
    for opts in ({}, {"colorspace": "oklab"}, {"dither": "floyd-steinberg"}):
        r = quantize_to_quality(crop, 31.0, max_colors=64, **opts)
        q = r.quantized
        assert q.psnr == pytest.approx(psnr(crop, q.to_array()), abs=1e-9)
        assert q.psnr >= 31.0
        assert q.colorspace == opts.get("colorspace", "rgb") and q.dither == opts.get("dither", "adaptive")


def test_deterministic(crop):
    a = quantize_to_quality(crop, 32.0, seed=7)
    b = quantize_to_quality(crop, 32.0, seed=7)
    assert a.k == b.k and visited(a) == visited(b)
    assert np.array_equal(a.quantized.palette, b.quantized.palette)
    assert np.array_equal(a.quantized.indices, b.quantized.indices)


def test_unreachable_target_gives_the_max_colors_result(crop):
    r = quantize_to_quality(crop, 60.0, max_colors=12)
    assert not r.reached
    assert r.k == 12 and r.quantized.k <= 12
    assert r.quantized.psnr < 60.0
    # the line through the first fits says 60 dB is far: it jumps to max_colors
    assert visited(r)[-1] == 12 and len(r.trials) <= 5
    with pytest.raises(TargetNotReachedError) as info:
        quantize_to_quality(crop, 60.0, max_colors=12, strict=True)
    assert isinstance(info.value, KmpressError)
    assert "60 dB not reached" in str(info.value) and "12 colours" in str(info.value)
    assert info.value.result.k == 12


def test_error_pickles():
    import pickle

    e = pickle.loads(pickle.dumps(TargetNotReachedError("no", "a.png")))
    assert isinstance(e, TargetNotReachedError) and str(e) == "a.png: no"


def test_few_colors_reach_any_target_losslessly():
    rng = np.random.default_rng(1)
    pal = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], np.uint8)
    img = pal[rng.integers(0, 5, (20, 20))]
    r = quantize_to_quality(img, 80.0)
    assert r.reached and r.k == 5 and math.isinf(r.quantized.psnr)
    assert np.array_equal(r.quantized.to_array(), img)
    r1 = quantize_to_quality(np.zeros((4, 4, 3), np.uint8), 50.0)
    assert r1.k == 1 and visited(r1) == [1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target_psnr": -1}, "target_psnr"),
        ({"target_psnr": float("nan")}, "target_psnr"),
        ({"target_psnr": "high"}, "target_psnr"),
        ({"target_psnr": True}, "target_psnr"),
        ({"target_psnr": 30, "max_colors": 0}, "max_colors"),
        ({"target_psnr": 30, "max_colors": 257}, "max_colors"),
        ({"target_psnr": 30, "colorspace": "hsv"}, "colorspace"),
        ({"target_psnr": 30, "search_tol": -1}, "tol"),
    ],
)
def test_bad_parameters(kwargs, message):
    img = structured_image()
    with pytest.raises(InvalidParameterError, match=message):
        quantize_to_quality(img, **kwargs)


def test_quantize_and_compress_take_a_target(crop, tmp_path):
    q = kmpress.quantize(crop, target_psnr=31.0, seed=2)
    r = quantize_to_quality(crop, 31.0, seed=2)
    assert np.array_equal(q.palette, r.quantized.palette) and np.array_equal(q.indices, r.quantized.indices)
    assert q.target_psnr == 31.0 and q.target_reached is True and [t.k for t in q.search] == visited(r)
    plain = kmpress.quantize(crop, 8)
    assert plain.target_psnr is None and plain.target_reached is None and plain.search == []
    for kwargs in ({"k": 8, "target_psnr": 30}, {"k": 8, "max_colors": 16}, {"k": 8, "strict": True}):
        with pytest.raises(InvalidParameterError):
            kmpress.quantize(crop, **kwargs)

    src = tmp_path / "crop.png"
    from PIL import Image

    Image.fromarray(crop).save(src)
    rep = kmpress.compress(src, tmp_path / "out.png", target_psnr=31.0, seed=2)
    assert rep.k == r.k and rep.colors == r.quantized.k and rep.psnr == pytest.approx(r.quantized.psnr)
    d = rep.as_dict()
    assert d["target_psnr"] == 31.0 and d["target_reached"] is True and d["search"][-1]["k"] in visited(r)
    assert kmpress.compress(src, tmp_path / "k.png", 8).as_dict()["target_psnr"] is None
    with pytest.raises(TargetNotReachedError) as info:
        kmpress.compress(src, tmp_path / "strict.png", target_psnr=70, max_colors=6, strict=True)
    assert info.value.path == str(src) and str(src) in str(info.value)
    assert not (tmp_path / "strict.png").exists()
    rep = kmpress.compress(src, tmp_path / "loose.png", target_psnr=70, max_colors=6)
    assert rep.k == 6 and rep.target_reached is False and (tmp_path / "loose.png").exists()
    for kwargs in ({"k": 8, "target_psnr": 30}, {"k": 8, "strict": True}, {"target_psnr": 30, "max_colors": 0}):
        with pytest.raises(InvalidParameterError):
            kmpress.compress(src, tmp_path / "bad.png", **kwargs)
    assert not (tmp_path / "bad.png").exists()


def test_a_nearly_flat_line_predicts_a_large_k_without_overflow():
    from kmpress.quality import _predict

    k = _predict(2, 30.0, 4, 30.0 + 1e-12, 60.0)  # the line would reach 60 dB near K = 2^(3e13)
    assert math.isfinite(k) and k >= 2**20
