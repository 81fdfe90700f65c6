"""kmpress.pipeline: the stages composed (prepare once, fit, polish, score, finish), and the
image coercion at its edge."""

from __future__ import annotations

import numpy as np
import pytest

import kmpress
from kmpress.options import Options
from kmpress.pipeline import Pipeline, as_image
from kmpress.stages import Stages


@pytest.fixture(scope="module")
def crop(photos) -> np.ndarray:
    return np.ascontiguousarray(photos["chelsea"][100:180, 150:270])


@pytest.mark.parametrize("opts", [{}, {"colorspace": "oklab"}, {"dither": "floyd-steinberg"}, {"smooth": 0.3}])
def test_pipeline_steps_are_quantize(crop, opts):
    """A cold fit through the shared pipeline is exactly kmpress.quantize (the search uses it)."""
    for k in (1, 9, 40):
        q = kmpress.quantize(crop, k, seed=3, **opts)
        pipe = Pipeline(crop, Options(**opts))
        f = pipe.fit(k, np.random.default_rng(3))
        score = pipe.score(f)
        q2 = pipe.finish(f)
        assert np.array_equal(q.palette, q2.palette) and np.array_equal(q.indices, q2.indices)
        assert q.psnr == q2.psnr == score and q.figures == q2.figures


def test_the_steps_are_timed_by_the_recorder_they_are_given(crop):
    seen: list[str] = []
    rec = Stages(seen.append)
    pipe = Pipeline(crop, Options(colorspace="oklab", n_init=2), stages=rec)
    assert list(rec.times) == ["histogram", "colorspace"]
    f = pipe.fit(9, np.random.default_rng(3))
    q = pipe.finish(f)
    assert seen == ["histogram", "colorspace", "init", "lloyd", "init", "lloyd", "remap", "delta_e"]
    assert q.timings == rec.times and q.timings is not rec.times  # a copy: later stages do not move it
    assert pipe.figures(f, {}) == q.figures


def test_warm_start_never_raises_the_cost(crop):
    pipe = Pipeline(crop, Options())
    prev = None
    for k in (2, 3, 5, 8, 13, 21):
        f = pipe.fit(k, np.random.default_rng(0), start=None if prev is None else prev.centroids)
        if prev is not None:
            assert f.inertia <= prev.inertia * (1 + 1e-9)
            # the warm start keeps the old centres as the first ones it starts from
        prev = f


def test_polish_only_lowers_the_cost(crop):
    pipe = Pipeline(crop, Options(tol=0))
    loose = pipe.fit(12, np.random.default_rng(1), tol=1e-2)
    polished = pipe.polish(loose)
    assert polished.inertia <= loose.inertia and polished.n_iter >= loose.n_iter
    full = pipe.fit(12, np.random.default_rng(1))
    assert polished.inertia == pytest.approx(full.inertia, rel=1e-3)


def test_as_image_copies_only_when_it_must(crop):
    assert as_image(crop) is crop
    ro = crop.copy()
    ro.flags.writeable = False
    assert as_image(ro) is ro  # read-only is fine: no stage writes to the image
    q = kmpress.quantize(ro, 8)
    assert np.array_equal(q.palette, kmpress.quantize(crop, 8).palette)
    f = np.asfortranarray(crop)
    assert as_image(f).flags.c_contiguous
    with pytest.raises(kmpress.InvalidParameterError, match="uint8"):
        as_image(crop.astype(np.float32))


# --------------------------------------------------------------------------------------------
# Pillow interop: Quantized.to_pil(), and Pillow images wherever an image array goes
# --------------------------------------------------------------------------------------------


def test_to_pil_is_a_palette_image_of_the_same_pixels(crop):
    from PIL import Image

    q = kmpress.quantize(crop, 12)
    im = q.to_pil()
    assert isinstance(im, Image.Image) and im.mode == "P" and im.size == (crop.shape[1], crop.shape[0])
    assert np.array_equal(np.array(im), q.indices)
    assert np.array_equal(np.array(im.getpalette()[: 3 * q.colors], np.uint8).reshape(-1, 3), q.palette)
    assert np.array_equal(np.array(im.convert("RGB")), q.to_array())


def test_to_pil_keeps_transparency_through_a_saved_png(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    rgba[:10, :, 3] = 0
    rgba[10:20, :, 3] = 128
    rgba[20:, :, 3] = 255
    q = kmpress.quantize(rgba, 9)
    assert q.palette.shape[1] == 4
    im = q.to_pil()
    assert im.mode == "P" and np.array_equal(np.array(im.convert("RGBA")), q.to_array())
    im.save(tmp_path / "t.png")
    with Image.open(tmp_path / "t.png") as back:
        assert back.mode == "P" and "transparency" in back.info
        assert np.array_equal(np.array(back.convert("RGBA")), q.to_array())


def test_pillow_images_go_where_arrays_go(crop):
    from PIL import Image

    im = Image.fromarray(crop)
    q_pil, q_arr = kmpress.quantize(im, 16, seed=2), kmpress.quantize(crop, 16, seed=2)
    assert np.array_equal(q_pil.palette, q_arr.palette) and np.array_equal(q_pil.indices, q_arr.indices)
    # the quality search and the sweep take them too
    r = kmpress.quantize_to_quality(im, target_psnr=28)
    assert r.k == kmpress.quantize_to_quality(crop, target_psnr=28).k
    rows = kmpress.sweep(im, [2, 4])
    assert [row.k for row in rows] == [2, 4]
    # any mode is converted as a file's pixels are: greyscale, palette, 16-bit, RGBA
    grey = im.convert("L")
    assert np.array_equal(as_image(grey), np.repeat(np.array(grey)[:, :, None], 3, axis=2))
    pal = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    assert np.array_equal(as_image(pal), np.array(pal.convert("RGB")))
    wide = Image.fromarray(np.array(grey).astype(np.uint16) * 257)
    assert wide.mode.startswith("I")
    assert np.array_equal(as_image(wide)[:, :, 0], np.array(grey))
    assert as_image(im.convert("RGBA")).shape == crop.shape[:2] + (4,)


def test_round_trip_through_pillow_is_lossless(crop):
    q = kmpress.quantize(crop, 20)
    again = kmpress.quantize(q.to_pil(), q.colors)
    assert np.isinf(again.psnr) and again.n_colors_in == q.colors
    assert np.array_equal(again.to_array(), q.to_array())
    assert np.array_equal(np.array(again.to_pil().convert("RGB")), q.to_array())


def test_compress_takes_a_pillow_image_and_an_array(tmp_path, crop):
    from PIL import Image, ImageOps

    im = Image.fromarray(crop)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: compress applies it, as for a file
    exif[0x010F] = "Canon"
    im.info["exif"] = exif.tobytes()
    rep = kmpress.compress(im, tmp_path / "a.png", 8)
    assert rep.src == "<image>" and rep.input_bytes == 0 and rep.written
    expected = kmpress.quantize(np.array(ImageOps.exif_transpose(im)), 8)
    with Image.open(tmp_path / "a.png") as out:
        assert out.size == (crop.shape[0], crop.shape[1])
        assert np.array_equal(np.array(out.convert("RGB")), expected.to_array())
        assert out.getexif()[0x0112] == 1 and out.getexif()[0x010F] == "Canon"
    rep = kmpress.compress(crop, tmp_path / "b.png", 8)
    with Image.open(tmp_path / "b.png") as out:
        assert np.array_equal(np.array(out.convert("RGB")), kmpress.quantize(crop, 8).to_array())


def test_a_truncated_pillow_image_is_a_read_error(tmp_path, crop):
    from PIL import Image

    from kmpress.errors import ImageReadError

    Image.fromarray(crop).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with Image.open(tmp_path / "cut.png") as im, pytest.raises(ImageReadError, match="truncated"):
        kmpress.quantize(im, 4)


@pytest.mark.parametrize("opts", [{}, {"dither": "floyd-steinberg"}, {"smooth": 0.3}])
def test_a_last_finish_lets_the_clustering_points_go_when_the_remap_does_without(crop, opts):
    q = kmpress.quantize(crop, 9, seed=3, **opts)
    pipe = Pipeline(crop, Options(**opts))
    q2 = pipe.finish(pipe.fit(9, np.random.default_rng(3)), last=True)
    assert np.array_equal(q.palette, q2.palette) and np.array_equal(q.indices, q2.indices)
    assert q.psnr == q2.psnr and q.delta_e == q2.delta_e
    plain = not opts
    assert (pipe.X is None and pipe.weights is None) == plain  # dithering and smooth use them


@pytest.mark.parametrize("opts", [{}, {"dither": "floyd-steinberg"}])
def test_a_released_fit_keeps_its_figures_and_finishes_the_same(crop, opts):
    """release() lets a scored fit's pixel indices go (a search keeps failing fits only as warm
    starts); its centroids and figures stay, and finishing it later remaps to the same result."""
    pipe = Pipeline(crop, Options(**opts))
    f = pipe.fit(9, np.random.default_rng(3))
    score = pipe.score(f)
    held = pipe.finish(f)
    centroids, sse, delta_e = f.centroids.copy(), f.sse, f.delta_e
    f.release()
    assert f.indices is None
    assert np.array_equal(f.centroids, centroids) and (f.score, f.sse, f.delta_e) == (score, sse, delta_e)
    again = pipe.finish(f)
    assert np.array_equal(again.indices, held.indices) and again.psnr == held.psnr == score
