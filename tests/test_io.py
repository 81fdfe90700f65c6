"""Files: compress round trip, PNG bit depth/tRNS/ICC, images in the wild, and every bad input.

Every file is generated under ``tmp_path`` with Pillow (or by hand where Pillow cannot write it).
"""

from __future__ import annotations

import io
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import kmpress
from kmpress import (
    ImageReadError,
    ImageTooLargeError,
    ImageWriteError,
    InvalidParameterError,
    KmpressError,
)


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _decode(path: Path) -> tuple[Image.Image, np.ndarray]:
    """The PNG as Pillow sees it, and its pixels as RGB or RGBA (RGBA when it has a tRNS)."""
    im = Image.open(path)
    im.load()
    rgba = "transparency" in im.info
    return im, np.array(im.convert("RGBA" if rgba else "RGB"))


def _assert_round_trip(src: Path, dst: Path, k: int, png, **options):
    """compress(src) == quantize(read_image(src)) and the file decodes to exactly to_array()."""
    rep = kmpress.compress(src, dst, k, **options)
    q = kmpress.quantize(kmpress.read_image(src), k, **options)
    data = dst.read_bytes()
    hdr = png.ihdr(data)
    im, pixels = _decode(dst)
    assert im.format == "PNG" and im.mode == "P"
    np.testing.assert_array_equal(pixels, q.to_array())
    np.testing.assert_array_equal(np.array(im), q.indices)
    assert hdr["color_type"] == 3
    assert hdr["bit_depth"] == q.bit_depth == rep.bit_depth
    assert (hdr["width"], hdr["height"]) == (rep.width, rep.height) == (q.indices.shape[1], q.indices.shape[0])
    plte = [p for t, p in png.chunks(data) if t == b"PLTE"][0]
    assert plte == q.palette[:, :3].tobytes()
    assert rep.colors == q.colors == q.palette.shape[0] and rep.k == q.k == k
    assert rep.bits == q.bits
    assert rep.output_bytes == len(data) == dst.stat().st_size
    assert rep.input_bytes == src.stat().st_size
    assert rep.mse == q.mse and (rep.psnr == q.psnr or (math.isinf(rep.psnr) and math.isinf(q.psnr)))
    d = rep.as_dict()
    assert d["colors"] == q.colors and d["bits"]["total"] == q.bits.total
    return rep, q, data


# --------------------------------------------------------------------------------------------
# round trip and PNG structure
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 16, 64])
def test_round_trip_photo(photo_paths, tmp_path, png, k):
    src = tmp_path / "cat.png"
    with Image.open(photo_paths["chelsea"]) as im:
        im.crop((50, 40, 250, 190)).save(src)
    rep, q, data = _assert_round_trip(src, tmp_path / "out.png", k, png, seed=3)
    assert b"tRNS" not in [t for t, _ in png.chunks(data)]
    assert rep.bit_depth == {2: 1, 16: 4, 64: 8}[k]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 16, 17, 200, 256])
def test_bit_depth_is_smallest_legal(tmp_path, png, n):
    # an image with exactly n colours keeps all n: the palette size, hence the depth, is known
    rng = np.random.default_rng(n)
    cols = rng.choice(1 << 24, n, replace=False)
    palette = np.stack([(cols >> 16) & 255, (cols >> 8) & 255, cols & 255], axis=1).astype(np.uint8)
    idx = rng.integers(0, n, (19, 23))
    idx.flat[:n] = np.arange(n)
    src = tmp_path / "in.png"
    Image.fromarray(palette[idx]).save(src)
    rep, q, data = _assert_round_trip(src, tmp_path / "out.png", 256, png)
    assert q.colors == n and math.isinf(rep.psnr)
    assert png.ihdr(data)["bit_depth"] == (1 if n <= 2 else 2 if n <= 4 else 4 if n <= 16 else 8)


@pytest.mark.parametrize("k", [2, 5, 40])
def test_rgba_round_trip_writes_trns(photos, tmp_path, png, k):
    img = np.ascontiguousarray(photos["astronaut"][100:160, 200:290])
    alpha = np.zeros(img.shape[:2], np.uint8)
    alpha[:, 30:60] = 128
    alpha[:, 60:] = 255
    src = tmp_path / "in.png"
    Image.fromarray(np.concatenate([img, alpha[:, :, None]], axis=2), "RGBA").save(src)
    rep, q, data = _assert_round_trip(src, tmp_path / "out.png", k, png)
    assert q.palette.shape[1] == 4
    chunks = dict(png.chunks(data))
    assert b"tRNS" in chunks
    trns = chunks[b"tRNS"]
    # one alpha per palette entry (PNG allows trailing opaque entries to be omitted)
    assert trns == q.palette[: len(trns), 3].tobytes() and np.all(q.palette[len(trns) :, 3] == 255)
    im, pixels = _decode(tmp_path / "out.png")
    levels = set(np.unique(pixels[:, :, 3]).tolist())
    assert len(levels) >= 2  # transparency is kept, not flattened
    if k >= 40:
        # alpha steps of 127-128 dwarf the colour spread: no cluster mixes two levels
        assert levels == {0, 128, 255}


def test_write_png_round_trip_and_atomic_temp_name(tmp_path, png):
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (7, 4), dtype=np.uint8)
    indices = rng.integers(0, 7, (13, 11), dtype=np.uint8)
    p_before, i_before = palette.copy(), indices.copy()
    dst = tmp_path / "x.png"
    size = kmpress.write_png(dst, palette, indices)
    np.testing.assert_array_equal(palette, p_before)
    np.testing.assert_array_equal(indices, i_before)
    assert size == dst.stat().st_size
    assert sorted(os.listdir(tmp_path)) == ["x.png"]
    im, pixels = _decode(dst)
    np.testing.assert_array_equal(pixels, palette[indices])
    assert png.ihdr(dst.read_bytes())["bit_depth"] == 4
    # replacing an existing file works and is complete
    kmpress.write_png(dst, palette[:2], (indices % 2).astype(np.uint8))
    im, pixels = _decode(dst)
    np.testing.assert_array_equal(pixels, palette[:2][indices % 2])
    assert sorted(os.listdir(tmp_path)) == ["x.png"]


def test_icc_profile_carried_over(photos, tmp_path):
    icc = _srgb_icc()
    img = np.ascontiguousarray(photos["coffee"][:64, :96])
    for ext in ("png", "jpg"):
        src = tmp_path / f"in.{ext}"
        Image.fromarray(img).save(src, icc_profile=icc)
        dst = tmp_path / f"out-{ext}.png"
        kmpress.compress(src, dst, 8)
        with Image.open(dst) as im:
            assert im.info.get("icc_profile") == icc, ext
        assert kmpress.load_image(src).icc_profile == icc
    # no profile in, none out
    src = tmp_path / "plain.png"
    Image.fromarray(img).save(src)
    kmpress.compress(src, tmp_path / "plain-out.png", 8)
    with Image.open(tmp_path / "plain-out.png") as im:
        assert "icc_profile" not in im.info


def test_same_seed_byte_identical_png(photo_paths, tmp_path):
    src = photo_paths["chelsea"]
    kmpress.compress(src, tmp_path / "a.png", 16, seed=7)
    kmpress.compress(src, tmp_path / "b.png", 16, seed=7)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_compress_bundled_sample(tmp_path, png):
    rep, q, data = _assert_round_trip(kmpress.sample_path(), tmp_path / "s.png", 16, png)
    assert (rep.width, rep.height) == (512, 512)
    assert rep.output_bytes < rep.input_bytes * 3


# --------------------------------------------------------------------------------------------
# images in the wild
# --------------------------------------------------------------------------------------------


def _gradient(h=24, w=40) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], axis=2).astype(np.uint8)


def test_mode_rgb(tmp_path, png):
    img = _gradient()
    src = tmp_path / "rgb.png"
    Image.fromarray(img).save(src)
    a = kmpress.read_image(src)
    assert a.dtype == np.uint8 and a.flags.c_contiguous and a.flags.writeable
    np.testing.assert_array_equal(a, img)
    _assert_round_trip(src, tmp_path / "o.png", 8, png)


def test_mode_rgba_keeps_transparency_and_drops_opaque_alpha(tmp_path, png):
    img = _gradient()
    alpha = np.full(img.shape[:2], 255, np.uint8)
    alpha[:8] = 0
    rgba = np.concatenate([img, alpha[:, :, None]], axis=2)
    src = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(src)
    a = kmpress.read_image(src)
    np.testing.assert_array_equal(a, rgba)
    rep, q, data = _assert_round_trip(src, tmp_path / "o.png", 6, png)
    assert q.palette.shape[1] == 4 and b"tRNS" in dict(png.chunks(data))
    # a fully opaque alpha channel carries nothing: 3 channels, no tRNS
    alpha[:] = 255
    Image.fromarray(np.concatenate([img, alpha[:, :, None]], axis=2), "RGBA").save(src)
    assert kmpress.read_image(src).shape == img.shape
    rep, q, data = _assert_round_trip(src, tmp_path / "o2.png", 6, png)
    assert b"tRNS" not in dict(png.chunks(data))


def test_mode_l(tmp_path, png):
    g = _gradient()[:, :, 0]
    src = tmp_path / "l.png"
    Image.fromarray(g, "L").save(src)
    a = kmpress.read_image(src)
    assert a.shape == g.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(a[:, :, c], g)
    _assert_round_trip(src, tmp_path / "o.png", 4, png)


def test_mode_la(tmp_path, png):
    g = _gradient()
    la = np.stack([g[:, :, 0], g[:, :, 1]], axis=2)
    src = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(src)
    with Image.open(src) as im:
        assert im.mode == "LA"
    a = kmpress.read_image(src)
    assert a.shape == g.shape[:2] + (4,)
    for c in range(3):
        np.testing.assert_array_equal(a[:, :, c], la[:, :, 0])
    np.testing.assert_array_equal(a[:, :, 3], la[:, :, 1])
    _assert_round_trip(src, tmp_path / "o.png", 16, png)


@pytest.mark.parametrize("transparent", [False, True])
def test_mode_p(tmp_path, png, transparent):
    rng = np.random.default_rng(1)
    pal = rng.integers(0, 256, (6, 3), dtype=np.uint8)
    idx = rng.integers(0, 6, (20, 30)).astype(np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette(pal.tobytes())
    src = tmp_path / "p.png"
    if transparent:
        im.save(src, transparency=2)
    else:
        im.save(src)
    a = kmpress.read_image(src)
    expected = pal[idx]
    if transparent:
        alpha = np.where(idx == 2, 0, 255).astype(np.uint8)
        assert a.shape == (20, 30, 4)
        np.testing.assert_array_equal(a[:, :, 3], alpha)
        np.testing.assert_array_equal(a[idx != 2, :3], expected[idx != 2])
    else:
        np.testing.assert_array_equal(a, expected)
    rep, q, data = _assert_round_trip(src, tmp_path / "o.png", 256, png)
    assert q.colors == 6 and math.isinf(q.psnr)  # lossless: 6 colours in, 6 out
    assert (b"tRNS" in dict(png.chunks(data))) == transparent


def test_mode_1(tmp_path, png):
    bits = _gradient()[:, :, 0] > 100
    src = tmp_path / "one.png"
    Image.fromarray(bits).save(src)
    with Image.open(src) as im:
        assert im.mode == "1"
    a = kmpress.read_image(src)
    np.testing.assert_array_equal(a, np.repeat(np.where(bits, 255, 0).astype(np.uint8)[:, :, None], 3, axis=2))
    rep, q, data = _assert_round_trip(src, tmp_path / "o.png", 16, png)
    assert q.colors == 2 and rep.bit_depth == 1


def test_mode_i16_grey_png_reduced_to_8_bits(tmp_path, png):
    rng = np.random.default_rng(2)
    v = rng.integers(0, 65536, (16, 20)).astype(np.uint16)
    v[0, 0], v[0, 1] = 0, 65535
    v[1, :] = rng.integers(0, 256, 20)  # dark 16-bit values are not 8-bit values
    src = tmp_path / "g16.png"
    Image.fromarray(v).save(src)
    with Image.open(src) as im:
        assert im.mode.startswith("I")
    assert png.ihdr(src.read_bytes())["bit_depth"] == 16
    a = kmpress.read_image(src)
    assert a.dtype == np.uint8 and a.shape == (16, 20, 3)
    # the nearest 8-bit level of every 16-bit sample
    assert np.all(np.abs(a[:, :, 0].astype(np.float64) - v / 257.0) <= 0.5 + 1e-9)
    assert a[0, 0, 0] == 0 and a[0, 1, 0] == 255 and a[1].max() <= 1
    _assert_round_trip(src, tmp_path / "o.png", 8, png)


def test_16_bit_rgb_png(tmp_path, png):
    rng = np.random.default_rng(3)
    v = rng.integers(0, 65536, (9, 12, 3)).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in v)
    src = tmp_path / "rgb16.png"
    src.write_bytes(png.make(12, 9, 16, 2, raw))
    a = kmpress.read_image(src)
    assert a.dtype == np.uint8 and a.shape == (9, 12, 3)
    assert np.all(np.abs(a.astype(np.float64) - v.astype(np.float64) / 257.0) <= 1.0)
    _assert_round_trip(src, tmp_path / "o.png", 8, png)


def test_cmyk_jpeg(tmp_path, png):
    rng = np.random.default_rng(4)
    cmyk = rng.integers(0, 256, (24, 32, 4), dtype=np.uint8)
    src = tmp_path / "cmyk.jpg"
    Image.fromarray(cmyk, "CMYK").save(src, quality=95)
    with Image.open(src) as im:
        assert im.mode == "CMYK"
        expected = np.array(im.convert("RGB"))
    a = kmpress.read_image(src)
    assert a.shape == (24, 32, 3)
    np.testing.assert_array_equal(a, expected)
    _assert_round_trip(src, tmp_path / "o.png", 8, png)


def test_exif_orientation_applied(tmp_path, png):
    # a picture whose top-left quadrant is red, stored sideways with orientation 6 (rotate 90 CW)
    img = np.zeros((40, 64, 3), np.uint8)
    img[:20, :32] = (255, 0, 0)
    img[:20, 32:] = (0, 255, 0)
    img[20:, :32] = (0, 0, 255)
    img[20:, 32:] = (255, 255, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    src = tmp_path / "rot.jpg"
    Image.fromarray(img).save(src, quality=95, exif=exif.tobytes())
    a = kmpress.read_image(src)
    assert a.shape == (64, 40, 3)
    expected = np.rot90(img, k=-1)  # clockwise
    assert np.abs(a.astype(int) - expected.astype(int)).mean() < 8
    rep, q, data = _assert_round_trip(src, tmp_path / "o.png", 4, png)
    assert (rep.width, rep.height) == (40, 64)


# --------------------------------------------------------------------------------------------
# bad input: the right error, nothing written, nothing modified
# --------------------------------------------------------------------------------------------


def _valid_png(path: Path, size=(30, 20)) -> Path:
    Image.fromarray(_gradient(size[1], size[0])).save(path)
    return path


def _bad_missing(d: Path) -> Path:
    return d / "nope.png"


def _bad_folder(d: Path) -> Path:
    (d / "folder.png").mkdir()
    return d / "folder.png"


def _bad_text_jpg(d: Path) -> Path:
    (d / "notes.jpg").write_text("this is not a picture\n")
    return d / "notes.jpg"


def _bad_empty_file(d: Path) -> Path:
    (d / "empty.png").write_bytes(b"")
    return d / "empty.png"


def _bad_random_bytes(d: Path) -> Path:
    (d / "noise.png").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return d / "noise.png"


def _bad_truncated_png(d: Path) -> Path:
    data = (Path(__file__).parent / "data" / "chelsea.png").read_bytes()
    (d / "half.png").write_bytes(data[: len(data) // 2])
    return d / "half.png"


def _bad_truncated_jpeg(d: Path) -> Path:
    buf = io.BytesIO()
    with Image.open(Path(__file__).parent / "data" / "coffee.png") as im:
        im.convert("RGB").save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    (d / "half.jpg").write_bytes(data[: len(data) // 2])
    return d / "half.jpg"


def _bad_corrupt_png_data(d: Path) -> Path:
    data = bytearray((Path(__file__).parent / "data" / "chelsea.png").read_bytes())
    data[5000:5100] = bytes(100)
    (d / "corrupt.png").write_bytes(bytes(data))
    return d / "corrupt.png"


def _bad_png_header_only(d: Path) -> Path:
    data = _valid_png(d / "tmpvalid.png").read_bytes()
    (d / "tmpvalid.png").unlink()
    (d / "header.png").write_bytes(data[:33])  # signature + IHDR, no data at all
    return d / "header.png"


BAD_FILES = {
    "missing": _bad_missing,
    "folder": _bad_folder,
    "text-named-jpg": _bad_text_jpg,
    "empty-file": _bad_empty_file,
    "random-bytes": _bad_random_bytes,
    "truncated-png": _bad_truncated_png,
    "truncated-jpeg": _bad_truncated_jpeg,
    "corrupt-png": _bad_corrupt_png_data,
    "header-only-png": _bad_png_header_only,
}


@pytest.fixture
def dirs(tmp_path):
    src_dir, out_dir = tmp_path / "in", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    return src_dir, out_dir


@pytest.mark.parametrize("make", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_file(dirs, snap, make):
    src_dir, out_dir = dirs
    src = make(src_dir)
    before_in = snap(src_dir)
    # an older output is there: a failed run must leave it exactly as it was
    (out_dir / "old.png").write_bytes(b"previous result")
    with pytest.raises(ImageReadError) as info:
        kmpress.read_image(src)
    assert not isinstance(info.value, ImageTooLargeError)
    assert str(src.name) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ImageReadError):
        kmpress.compress(src, out_dir / "new.png", 8)
    with pytest.raises(ImageReadError):
        kmpress.compress(src, out_dir / "old.png", 8)
    assert snap(out_dir) == {"old.png": b"previous result"}
    assert snap(src_dir) == before_in


def test_too_many_pixels_checked_on_header(dirs, snap, png):
    src_dir, out_dir = dirs
    # a 30000 x 30000 header (900 MP) over almost no data: refused from the header alone, with the
    # default limit, before anything is decoded or allocated
    bomb = src_dir / "bomb.png"
    bomb.write_bytes(png.make(30000, 30000, 8, 0, b"\x00" * 100))
    with pytest.raises(ImageTooLargeError):
        kmpress.read_image(bomb)
    with pytest.raises(ImageTooLargeError):
        kmpress.compress(bomb, out_dir / "b.png", 8)
    # a truncated real file: the size is checked before the (failing) decode
    half = _bad_truncated_png(src_dir)
    with pytest.raises(ImageTooLargeError):
        kmpress.compress(half, out_dir / "h.png", 8, max_pixels=1000)
    # the limit is inclusive and configurable
    ok = _valid_png(src_dir / "ok.png", (30, 20))
    with pytest.raises(ImageTooLargeError):
        kmpress.read_image(ok, max_pixels=599)
    with pytest.raises(ImageTooLargeError):
        kmpress.compress(ok, out_dir / "ok.png", 4, max_pixels=599)
    assert snap(out_dir) == {}
    assert kmpress.read_image(ok, max_pixels=600).shape == (20, 30, 3)
    assert ImageTooLargeError.__mro__[1] is ImageReadError  # one family


def test_never_overwrites_the_input(dirs, snap):
    src_dir, out_dir = dirs
    src = _valid_png(src_dir / "a.png")
    before = snap(src_dir)
    variants = [src, src_dir / "." / "a.png", src_dir / ".." / "in" / "a.png"]
    link = src_dir / "link.png"
    link.symlink_to(src)
    hard = src_dir / "hard.png"
    os.link(src, hard)
    variants += [link, hard]
    before = snap(src_dir)
    for dst in variants:
        with pytest.raises(ImageWriteError):
            kmpress.compress(src, dst, 4)
    with pytest.raises(ImageWriteError):
        kmpress.compress(link, src, 4)
    assert snap(src_dir) == before
    assert snap(out_dir) == {}


def test_output_folder_missing_or_a_folder(dirs, snap):
    src_dir, out_dir = dirs
    src = _valid_png(src_dir / "a.png")
    before = snap(src_dir)
    with pytest.raises(ImageWriteError):
        kmpress.compress(src, out_dir / "missing" / "a.png", 4)
    assert not (out_dir / "missing").exists()
    (out_dir / "dir.png").mkdir()
    with pytest.raises(ImageWriteError):
        kmpress.compress(src, out_dir / "dir.png", 4)
    assert snap(out_dir) == {} and sorted(os.listdir(out_dir)) == ["dir.png"]
    assert snap(src_dir) == before


def test_failed_write_leaves_no_partial_file(dirs, snap, monkeypatch):
    # the disk fills up in the middle of the PNG: ImageWriteError, the old output untouched,
    # and no temporary file left behind
    src_dir, out_dir = dirs
    src = _valid_png(src_dir / "a.png")
    (out_dir / "a.png").write_bytes(b"previous result")
    real_fdopen = os.fdopen

    class FillsUp:
        # the temporary file, which takes the first bytes and then finds the disk full
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(b"\x89PNG partial")
            self.f.flush()
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(kmpress.io.os, "fdopen", lambda fd, *a, **k: FillsUp(real_fdopen(fd, *a, **k)))
    with pytest.raises(ImageWriteError):
        kmpress.compress(src, out_dir / "a.png", 4)
    with pytest.raises(ImageWriteError):
        kmpress.compress(src, out_dir / "b.png", 4)
    assert snap(out_dir) == {"a.png": b"previous result"}
    monkeypatch.undo()
    kmpress.compress(src, out_dir / "a.png", 4)
    assert (out_dir / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(out_dir)) == ["a.png"]


BAD_COMPRESS_OPTIONS = [
    dict(k=0),
    dict(k=257),
    dict(k=-1),
    dict(k="3"),
    dict(k=True),
    dict(k=3.0),
    dict(k=4, target_psnr=30),
    dict(k=4, seed=-1),
    dict(k=4, seed=1.5),
    dict(k=4, max_iter=-1),
    dict(k=4, tol=-1.0),
    dict(k=4, tol=float("nan")),
    dict(k=4, tol="small"),
    dict(k=4, backend="cuda"),
    dict(k=4, init="kmeans"),
    dict(k=4, compress_level=10),
    dict(k=4, max_pixels=0),
]


@pytest.mark.parametrize("opts", BAD_COMPRESS_OPTIONS, ids=[repr(o) for o in BAD_COMPRESS_OPTIONS])
def test_bad_compress_options(dirs, snap, opts):
    src_dir, out_dir = dirs
    src = _valid_png(src_dir / "a.png")
    before = snap(src_dir)
    opts = dict(opts)
    k = opts.pop("k")
    with pytest.raises(InvalidParameterError) as info:
        kmpress.compress(src, out_dir / "a.png", k, **opts)
    assert isinstance(info.value, KmpressError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)
    assert snap(out_dir) == {}
    assert snap(src_dir) == before


def test_errors_are_one_family():
    for cls in (InvalidParameterError, ImageReadError, ImageTooLargeError, ImageWriteError):
        assert issubclass(cls, KmpressError)
    e = ImageReadError("no such file", "/x/y.png")
    assert str(e) == "/x/y.png: no such file" and e.path == "/x/y.png" and e.message == "no such file"


def test_png_helper_detects_bad_crc(png):
    # the helpers the tests above rely on must themselves be able to fail
    data = bytearray(png.make(2, 2, 8, 0, b"\x00\x01\x02\x00\x03\x04"))
    png.chunks(bytes(data))
    data[20] ^= 1
    with pytest.raises(AssertionError):
        png.chunks(bytes(data))
    assert struct.unpack(">I", bytes(data[16:20]))[0] == 2 and zlib.crc32(b"") == 0


@pytest.mark.parametrize("bad", [-5, 0, "big", 2.5])
def test_every_reader_checks_max_pixels(tmp_path, bad):
    # the check of the options, at the one place every reader opens a file
    from kmpress.report import compare_images, describe_image

    p = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(p)
    for call in (
        lambda: kmpress.read_image(p, max_pixels=bad),
        lambda: kmpress.io.image_size(p, max_pixels=bad),
        lambda: describe_image(p, max_pixels=bad),
        lambda: compare_images(p, p, max_pixels=bad),
    ):
        with pytest.raises(kmpress.InvalidParameterError, match="max_pixels"):
            call()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_the_decoder_is_handed_large_blocks(tmp_path, monkeypatch, fmt):
    # each call of Pillow's decoder gives the GIL back and waits for it again, behind kmpress's
    # warm-up thread: its data comes in blocks of a mebibyte, not 64 KiB
    from PIL import ImageFile

    path = tmp_path / f"photo.{fmt.lower()}"
    with Image.open(Path(__file__).parent / "data" / "coffee.png") as im:
        im.convert("RGB").save(path, fmt)
    seen: list[int] = []
    load = ImageFile.ImageFile.load

    def spy(self):
        seen.append(self.decodermaxblock)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    pixels = kmpress.read_image(path)
    assert seen and min(seen) >= 1 << 20
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    with Image.open(path) as im:
        np.testing.assert_array_equal(pixels, np.asarray(im.convert("RGB")))
