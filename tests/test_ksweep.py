"""kmpress.ksweep: K sweeps in one warm-started pass."""

from __future__ import annotations

import math

import numpy as np
import pytest

import kmpress
from kmpress.errors import InvalidParameterError
from kmpress.ksweep import parse_ks, sweep
from kmpress.png import encode_png


@pytest.fixture(scope="module")
def crop(photos) -> np.ndarray:
    return np.ascontiguousarray(photos["coffee"][120:200, 200:320])


def test_parse_ks():
    assert parse_ks("2..8") == [2, 3, 4, 5, 6, 7, 8]
    assert parse_ks("2..8", 2) == [2, 4, 6, 8]
    assert parse_ks("2..9", 3) == [2, 5, 8, 9]  # the last K is always in
    assert parse_ks("64,4,16,4") == [4, 16, 64]
    assert parse_ks("2..4, 32") == [2, 3, 4, 32]
    assert parse_ks("256") == [256]
    for bad in ("", "a..b", "0..4", "2..300", "8..2", "2..", "1.5"):
        with pytest.raises(InvalidParameterError):
            parse_ks(bad)
    with pytest.raises(InvalidParameterError):
        parse_ks("2..8", 0)


def test_sweep_rows(crop):
    ks = [2, 4, 6, 8, 12, 16, 24, 32]
    rows = sweep(crop, reversed(ks), seed=5)
    assert [r.k for r in rows] == ks
    # the first K is a cold start: exactly quantize's result and exactly the PNG it writes
    q = kmpress.quantize(crop, 2, seed=5)
    assert rows[0].psnr == q.psnr and rows[0].colors == q.k
    assert rows[0].bytes == len(encode_png(q.palette, q.indices))
    for a, b in zip(rows, rows[1:], strict=False):
        # warm-started: the k-means cost never goes up from one K to the next
        assert b.inertia <= a.inertia * (1 + 1e-9)
        # PSNR after rounding and remapping: monotone up to a little
        assert b.psnr > a.psnr - 0.3
    assert rows[-1].psnr > rows[0].psnr + 8
    for r in rows:
        assert r.colors <= r.k and r.bytes > 0 and r.seconds >= 0 and r.n_iter >= 0
        assert 0 < r.delta_e < 0.2
        assert r.thumbnail is None
    # deterministic
    again = sweep(crop, ks, seed=5)
    assert [(r.inertia, r.psnr, r.bytes) for r in again] == [(r.inertia, r.psnr, r.bytes) for r in rows]


def test_sweep_options_reach_the_pipeline(crop):
    rows = sweep(crop, [4, 8], colorspace="oklab", dither="floyd-steinberg", thumbnail=30)
    q = kmpress.quantize(crop, 4, colorspace="oklab", dither="floyd-steinberg")
    assert rows[0].psnr == q.psnr and rows[0].delta_e == q.delta_e
    assert rows[0].thumbnail.shape == (20, 30, 3)
    # a thumbnail holds only the palette's colours (nearest-neighbour scaling)
    assert len(np.unique(rows[0].thumbnail.reshape(-1, 3), axis=0)) <= 4


def test_sweep_lossless_and_bad_input():
    img = np.zeros((6, 6, 3), np.uint8)
    img[:3] = 200
    rows = sweep(img, [1, 2, 3])
    assert math.isinf(rows[1].psnr) and math.isinf(rows[2].psnr) and rows[2].colors == 2
    with pytest.raises(InvalidParameterError):
        sweep(img, [])
    with pytest.raises(InvalidParameterError):
        sweep(img, [0, 2])
    with pytest.raises(InvalidParameterError):
        sweep(img, [2], colorspace="xyz")
    with pytest.raises(InvalidParameterError, match="not target_psnr"):
        sweep(img, [2], target_psnr=30)
