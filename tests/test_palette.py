"""Stage 4, kmpress.palette: finishing and order, the one nearest-entry search against its oracle,
and several starts."""

from __future__ import annotations

import numpy as np
import pytest
from reference import reference_nearest

import kmpress
from kmpress.palette import nearest_in_space, order_palette


def _crop(photos, name="astronaut"):
    return np.ascontiguousarray(photos[name][120:248, 140:300])


@pytest.mark.parametrize("space", ["rgb", "oklab"])
@pytest.mark.parametrize("k", [5, 16, 200])
def test_palette_order_only_permutes_indices(photos, space, k):
    img = _crop(photos)
    a = kmpress.quantize(img, k, colorspace=space, palette_order="luma")
    b = kmpress.quantize(img, k, colorspace=space, palette_order="path")
    # the same entries in another order ...
    assert a.colors == b.colors
    assert sorted(map(tuple, a.palette)) == sorted(map(tuple, b.palette))
    # ... and the indices map through one permutation: the picture and every figure are equal
    perm = {int(i): int(j) for i, j in zip(a.indices.ravel(), b.indices.ravel(), strict=True)}
    assert len(perm) == a.colors and len(set(perm.values())) == a.colors
    for i, j in perm.items():
        assert tuple(a.palette[i]) == tuple(b.palette[j])
    np.testing.assert_array_equal(a.to_array(), b.to_array())
    assert a.figures == b.figures  # every figure but the times


def test_luma_order_is_sorted_by_luma():
    rng = np.random.default_rng(0)
    pal = np.unique(rng.integers(0, 256, (60, 3), dtype=np.uint8), axis=0)
    o = order_palette(pal, "luma")
    assert sorted(o.tolist()) == list(range(len(pal)))
    p = pal[o].astype(np.int64)
    luma = 299 * p[:, 0] + 587 * p[:, 1] + 114 * p[:, 2]
    assert np.all(np.diff(luma) >= 0)


def test_path_order_is_a_short_deterministic_path():
    rng = np.random.default_rng(1)
    pal = np.unique(rng.integers(0, 256, (120, 3), dtype=np.uint8), axis=0)
    from kmpress.colorspace import srgb_to_oklab

    def length(order):
        lab = srgb_to_oklab(pal[order])
        return float(np.sqrt(((lab[1:] - lab[:-1]) ** 2).sum(1)).sum())

    path = order_palette(pal, "path")
    assert sorted(path.tolist()) == list(range(len(pal)))
    np.testing.assert_array_equal(path, order_palette(pal, "path"))
    # a nearest-neighbour path through the colours is much shorter than a random order and
    # than sorting by luma
    assert length(path) < 0.7 * length(order_palette(pal, "luma"))
    assert length(path) < 0.5 * length(rng.permutation(len(pal)))


def test_translucent_entries_come_first():
    pal = np.array([[0, 0, 0, 255], [9, 9, 9, 0], [50, 50, 50, 255], [200, 1, 1, 128], [1, 1, 1, 255]], np.uint8)
    for method in ("luma", "path"):
        o = order_palette(pal, method)
        assert np.all(pal[o][:2, 3] != 255) and np.all(pal[o][2:, 3] == 255)


def test_bad_palette_order_is_refused():
    with pytest.raises(kmpress.InvalidParameterError, match="palette_order"):
        kmpress.quantize(np.zeros((4, 4, 3), np.uint8), 2, palette_order="hue")


# --------------------------------------------------------------------------------------------
# several starts
# --------------------------------------------------------------------------------------------


def test_n_init_1_is_the_single_run_and_more_starts_do_not_lose(photos):
    img = np.ascontiguousarray(photos["coffee"][::2, ::2])
    one = kmpress.quantize(img, 16)
    same = kmpress.quantize(img, 16, n_init=1)
    np.testing.assert_array_equal(one.palette, same.palette)
    np.testing.assert_array_equal(one.indices, same.indices)
    four = kmpress.quantize(img, 16, n_init=4)
    again = kmpress.quantize(img, 16, n_init=4)
    np.testing.assert_array_equal(four.palette, again.palette)
    np.testing.assert_array_equal(four.indices, again.indices)
    # the best of 4 converged runs (by inertia) includes run 1: never clearly worse than it
    assert four.psnr >= one.psnr - 0.02


@pytest.mark.parametrize("bad", [0, 33, 1.5, "2"])
def test_bad_n_init_is_refused(bad):
    with pytest.raises(kmpress.InvalidParameterError, match="n_init"):
        kmpress.quantize(np.zeros((4, 4, 3), np.uint8), 2, n_init=bad)


# --------------------------------------------------------------------------------------------
# the nearest-entry search
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [3, 4])
def test_nearest_entry_equals_the_oracle(kern, d):
    rng = np.random.default_rng(d)
    points = rng.integers(0, 256, (700, d)).astype(np.float32)
    entries = rng.integers(0, 256, (37, d)).astype(np.float32)
    entries[5] = entries[2]  # a duplicate: ties go to the lowest index
    points[:20] = entries[rng.integers(0, 37, 20)]  # points sitting on entries
    got = nearest_in_space(np.ascontiguousarray(points.T), entries, kern)
    np.testing.assert_array_equal(got, reference_nearest(points, entries))
    assert not np.any(got == 5)
