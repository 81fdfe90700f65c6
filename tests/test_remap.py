"""Stage 5, kmpress.remap: Floyd-Steinberg dithering and the rate-aware (smooth) remap, on both
backends, against the naive oracle of tests/reference.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reference import delta_e

import kmpress
from kmpress import kernels_numpy
from kmpress.colorspace import colors_to_space, palette_to_space
from kmpress.histogram import build_histogram
from kmpress.remap import floyd_steinberg, indexed_pixels, smooth_remap

ROOT = Path(__file__).resolve().parent.parent
FS = "floyd-steinberg"


def _crop(photos, name="chelsea", h=96, w=120):
    return np.ascontiguousarray(photos[name][60 : 60 + h, 100 : 100 + w])


def _box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over (2r+1)^2 windows (valid part only), float64, per channel."""
    c = np.cumsum(np.cumsum(np.pad(a.astype(np.float64), ((1, 0), (1, 0), (0, 0))), 0), 1)
    n = 2 * r + 1
    return (c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]) / (n * n)


@pytest.mark.parametrize("space", ["rgb", "oklab"])
def test_dithered_output_uses_only_palette_entries_and_reports_its_own_error(photos, space):
    img = _crop(photos)
    q = kmpress.quantize(img, 8, colorspace=space, dither=FS)
    assert q.dither == FS
    assert q.indices.dtype == np.uint8 and q.indices.shape == img.shape[:2]
    assert int(q.indices.max()) < q.colors
    out = q.to_array()
    # every output pixel is a palette entry (trivially, through the indices) and the figures
    # are those of the dithered pixels, not of the nearest-entry shortcut
    err = out.astype(np.int64) - img.astype(np.int64)
    assert q.mse == pytest.approx(float((err * err).mean()), rel=1e-12)
    assert q.psnr == pytest.approx(kmpress.psnr(img, out), rel=1e-12)
    assert q.delta_e == pytest.approx(delta_e(img, out), rel=1e-9)
    plain = kmpress.quantize(img, 8, colorspace=space, dither=None)
    np.testing.assert_array_equal(plain.palette, q.palette)  # same clustering, other remap
    assert not np.array_equal(plain.indices, q.indices)
    # error diffusion never beats the nearest entry pixel by pixel
    assert q.mse > plain.mse


def test_dither_preserves_local_mean_color_on_a_gradient():
    # a slow horizontal ramp with 4 colours: without dithering it is 4 flat bands whose local
    # mean is off by up to half a step; dithering mixes neighbouring entries to follow the ramp
    x = np.linspace(20, 230, 256)
    img = np.zeros((48, 256, 3), np.uint8)
    img[:, :, 0] = np.rint(x)
    img[:, :, 1] = np.rint(x * 0.8 + 10)
    img[:, :, 2] = 128
    plain = kmpress.quantize(img, 4, dither=None)
    fs = kmpress.quantize(img, 4, dither=FS)
    ref = _box_blur(img, 4)
    e_plain = np.abs(_box_blur(plain.to_array(), 4) - ref).mean()
    e_fs = np.abs(_box_blur(fs.to_array(), 4) - ref).mean()
    assert e_fs < 0.5 * e_plain
    # and the global mean colour too
    assert np.abs(fs.to_array().mean((0, 1)) - img.mean((0, 1))).max() < 1.0


def _fs_direct(
    img: np.ndarray, entries_u8: np.ndarray, space: str = "rgb", kern=kernels_numpy, strength=0.75
) -> np.ndarray:
    hist = build_histogram(np.ascontiguousarray(img), kern)
    X = colors_to_space(hist.colors, space, kern)
    alpha = hist.colors[:, 3] if img.shape[2] == 4 else None
    return floyd_steinberg(
        X, hist.pixel_colors(img, kern), alpha, palette_to_space(entries_u8, space, kern), img.shape[:2], strength, kern
    )


def test_no_diffusion_into_or_out_of_transparent_pixels(photos, kern):
    rgb = _crop(photos, "coffee", 64, 80)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, 30:45] = 0  # a transparent stripe
    alpha[10:20, 60:70] = 0  # and a transparent hole
    img = np.dstack([rgb, alpha])
    palette = kmpress.quantize(img, 12).palette
    out = _fs_direct(img, palette, kern=kern)
    # transparent pixels get their own nearest entry: no error diffused into them
    nearest = ((img[..., None, :].astype(np.int64) - palette[None, None].astype(np.int64)) ** 2).sum(-1).argmin(-1)
    t = alpha == 0
    np.testing.assert_array_equal(out[t], nearest[t])
    assert np.all(palette[out[t], 3] == 0)
    # whatever colour hides under the transparent pixels, the visible result is the same: no
    # error diffuses out of them either
    other = img.copy()
    other[t, :3] = np.random.default_rng(5).integers(0, 256, (int(t.sum()), 3), dtype=np.uint8)
    out2 = _fs_direct(other, palette, kern=kern)
    np.testing.assert_array_equal(out2[~t], out[~t])
    # through the API: fully transparent input stays fully transparent
    q = kmpress.quantize(img, 12, dither=FS)
    assert np.all(q.to_array()[t][:, 3] == 0)


def test_kernel_output_is_a_true_error_diffusion(kern):
    # a flat mid-grey between two palette entries comes out as a ~50/50 mix, not a flat field
    img = np.full((32, 32, 3), 128, np.uint8)
    pal = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    out = _fs_direct(img, pal, kern=kern)
    assert 0.45 < out.mean() < 0.55
    # serpentine: rows alternate direction, so no row is a copy of the previous one shifted
    assert not np.array_equal(out[1], out[0])


SCRIPT = r"""
import hashlib, sys
import numpy as np
from PIL import Image
sys.path.insert(0, {root!r})
import kmpress
with Image.open({path!r}) as im:
    img = np.array(im.convert("RGB"))[::2, ::2].copy()
h = hashlib.sha256()
for kw in (dict(dither="floyd-steinberg"), dict(dither="floyd-steinberg", colorspace="oklab"), dict(smooth=0.5)):
    q = kmpress.quantize(img, 16, **kw)
    h.update(q.palette.tobytes()); h.update(q.indices.tobytes()); h.update(repr((q.mse, q.delta_e)).encode())
print(h.hexdigest())
"""


def test_same_output_at_any_thread_count(photo_paths):
    code = SCRIPT.format(root=str(ROOT), path=str(photo_paths["astronaut"]))
    digests = []
    for n in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=n)
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        digests.append(r.stdout.strip())
    assert len(digests[0]) == 64 and digests[0] == digests[1]


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (1, 70000), (300, 257)])
def test_indexed_pixels_are_the_palette_entry_of_each_index(kern, channels, shape):
    # chunks of the parallel kernel: a shape of more pixels than one chunk, and of a few
    rng = np.random.default_rng(channels)
    palette = rng.integers(0, 256, (256, channels), dtype=np.uint8)
    indices = rng.integers(0, 256, shape, dtype=np.uint8)
    out = indexed_pixels(palette, indices, kern)
    assert out.shape == (*shape, channels) and out.dtype == np.uint8 and out.flags.c_contiguous
    for y, x in [(0, 0), (shape[0] - 1, shape[1] - 1), (shape[0] // 2, shape[1] // 3)]:
        np.testing.assert_array_equal(out[y, x], palette[indices[y, x]])
    np.testing.assert_array_equal(out, palette[indices])


# --------------------------------------------------------------------------------------------
# smooth (rate-aware) remap
# --------------------------------------------------------------------------------------------


def test_smooth_zero_is_the_nearest_remap(photos, kern):
    img = _crop(photos)
    q = kmpress.quantize(img, 16, dither=None)
    hist = build_histogram(img, kern)
    X = colors_to_space(hist.colors, "rgb", kern)
    ent = palette_to_space(q.palette, "rgb", kern)
    labels = q.indices.reshape(-1)[np.unique(hist.pixel_colors(img, kern), return_index=True)[1]].astype(np.int32)
    out = smooth_remap(X, hist.counts, hist.pixel_colors(img, kern), labels, ent, img.shape[:2], 0.0, kern)
    np.testing.assert_array_equal(out, q.indices)


def test_smooth_trades_a_little_error_for_a_smaller_file(photos, tmp_path):
    img = np.ascontiguousarray(photos["chelsea"])
    plain = kmpress.quantize(img, 16, dither=None)
    sm = kmpress.quantize(img, 16, smooth=0.3)
    np.testing.assert_array_equal(plain.palette, sm.palette)
    out = sm.to_array()
    err = out.astype(np.int64) - img.astype(np.int64)
    assert sm.mse == pytest.approx(float((err * err).mean()), rel=1e-12)
    assert plain.psnr - 0.1 < sm.psnr < plain.psnr
    a = kmpress.write_png(tmp_path / "a.png", plain.palette, plain.indices)
    b = kmpress.write_png(tmp_path / "b.png", sm.palette, sm.indices)
    assert b < 0.99 * a
    # a pixel that changed took its left or upper neighbour's entry
    changed = np.argwhere(sm.indices != plain.indices)
    assert changed.size
    for y, x in changed[:200]:
        nb = {sm.indices[y, x - 1] if x else -1, sm.indices[y - 1, x] if y else -1}
        assert sm.indices[y, x] in nb


@pytest.mark.parametrize(
    "kw,msg",
    [
        (dict(dither="fs"), "dither"),
        (dict(dither=True), "dither"),
        (dict(smooth=-1), "smooth"),
        (dict(smooth="a"), "smooth"),
        (dict(smooth=0.2, dither=FS), "smooth and dither"),
    ],
)
def test_bad_remap_options_are_refused(kw, msg):
    with pytest.raises(kmpress.InvalidParameterError, match=msg):
        kmpress.quantize(np.zeros((4, 4, 3), np.uint8), 2, **kw)


# --------------------------------------------------------------------------------------------
# Floyd-Steinberg against the oracle
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strength", [0.75, 1.0])
@pytest.mark.parametrize("alpha", [False, True])
def test_floyd_steinberg_equals_the_oracle(photos, kern, strength, alpha):
    from reference import reference_floyd_steinberg

    img = _crop(photos, "coffee", 21, 26)
    if alpha:
        a = np.full(img.shape[:2], 255, np.uint8)
        a[5:9, 3:20] = 0
        a[12:, 10:12] = 128
        img = np.ascontiguousarray(np.dstack([img, a]))
    palette = kmpress.quantize(img, 7).palette
    got = _fs_direct(img, palette, kern=kern, strength=strength)
    np.testing.assert_array_equal(got, reference_floyd_steinberg(img, palette, strength))
