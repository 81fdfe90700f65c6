"""kmpress.buffers: RGB(A) JPEGs and PNGs decoded straight into kmpress's own memory, packed to
3 bytes a pixel in place, the freed quarter given back; every other image copied as before. The
pixels are always exactly Pillow's."""

from __future__ import annotations

import mmap
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import kmpress.buffers
import kmpress.io
from kmpress.buffers import all_opaque, pack_rgb
from kmpress.io import load_image


def _mapping(a: np.ndarray):
    """The object at the end of an array's chain of bases (an mmap for our own memory)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a.obj if isinstance(a, memoryview) else a


def _picture(h: int, w: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    a[: h // 2, :, :3] //= 3
    return a


@pytest.mark.parametrize("n", [1, 2, 5, 7, 8, 50, 1001])
def test_pack_rgb_in_place_is_the_rgb_of_every_pixel(monkeypatch, n):
    monkeypatch.setattr(kmpress.buffers, "BLOCK_PIXELS", 3)  # many blocks, most overlapping themselves
    px = np.random.default_rng(n).integers(0, 256, (n, 4), dtype=np.uint8)
    want = px[:, :3].copy()
    out = pack_rgb(px)
    np.testing.assert_array_equal(out, want)
    assert out.shape == (n, 3) and np.shares_memory(out, px) and out.flags.c_contiguous


def test_all_opaque_looks_at_every_block(monkeypatch):
    monkeypatch.setattr(kmpress.buffers, "BLOCK_PIXELS", 4)
    px = np.full((3, 7, 4), 255, np.uint8)
    assert all_opaque(px)
    for where in [(0, 0), (1, 3), (2, 6)]:
        q = px.copy()
        q[where + (3,)] = 254
        assert not all_opaque(q)
        q[where + (3,)] = 255
        q[where + (0,)] = 0  # colours do not count
        assert all_opaque(q)


def _save(tmp_path: Path, name: str, arr: np.ndarray, **kw) -> Path:
    p = tmp_path / name
    mode = "RGBA" if arr.shape[2] == 4 else "RGB"
    Image.fromarray(arr, mode).save(p, **kw)
    return p


CASES = {
    "rgb.png": (3, {}),
    "interlaced.png": (3, {"interlace": 1}),
    "rgb.jpg": (3, {"quality": 90}),
    "opaque-rgba.png": (4, {}),
    "translucent-rgba.png": (4, {}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_jpegs_and_pngs_are_decoded_into_our_own_memory(tmp_path, monkeypatch, name):
    monkeypatch.setattr(kmpress.buffers, "BLOCK_PIXELS", 100)  # packed 2 rows at a time: 34 strips
    channels, kw = CASES[name]
    arr = _picture(67, 45, channels)
    if name.startswith("opaque"):
        arr[:, :, 3] = 255
    p = _save(tmp_path, name, arr, **kw)
    with Image.open(p) as im:
        want = np.asarray(im.convert("RGB" if name.startswith(("opaque", "rgb", "inter")) else "RGBA"))
    got = load_image(p).pixels
    np.testing.assert_array_equal(got, want)
    assert got.flags.writeable and got.flags.c_contiguous and got.dtype == np.uint8
    assert isinstance(_mapping(got), mmap.mmap)  # Pillow's decoder wrote into our memory


def test_16_bit_rgb_png_through_our_memory(tmp_path):
    # Pillow reduces 16-bit RGB samples to 8 bits as it decodes; into our memory as well
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 65536, (9, 11 * 3), dtype=np.uint16).astype(">u2")
    raw = b"".join(b"\0" + r.tobytes() for r in rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    p = tmp_path / "deep.png"
    p.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 11, 9, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    with Image.open(p) as im:
        want = np.asarray(im.convert("RGB"))
    got = load_image(p).pixels
    np.testing.assert_array_equal(got, want)
    assert isinstance(_mapping(got), mmap.mmap)


def test_the_freed_quarter_goes_back_to_the_system(tmp_path):
    # 64 x 64 pixels: 16 KiB decoded at 4 bytes a pixel, 12 KiB at 3; the last page held the
    # decoder's RGBX of the last quarter of the pixels, and reads as zeros once given back
    arr = _picture(64, 64, 3, seed=1) | 1  # no zero byte anywhere
    p = _save(tmp_path, "a.png", arr)
    got = load_image(p).pixels
    np.testing.assert_array_equal(got, arr)
    mem = _mapping(got)
    assert isinstance(mem, mmap.mmap) and len(mem) == 64 * 64 * 4
    start = -(-64 * 64 * 3 // mmap.PAGESIZE) * mmap.PAGESIZE
    if start < len(mem):  # pages of 4 KiB here; nothing to give back with larger pages
        assert mem[start:] == bytes(len(mem) - start)


def _png_with_exif_after_the_pixels(path: Path, arr: np.ndarray, orientation: int) -> Path:
    """A PNG whose eXIf chunk follows its IDAT: its orientation is known only once decoded."""
    Image.fromarray(arr).save(path)
    data = path.read_bytes()
    ex = Image.Exif()
    ex[0x0112] = orientation
    payload = ex.tobytes()
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload + struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    iend = data.rindex(b"IEND") - 4
    path.write_bytes(data[:iend] + chunk + data[iend:])
    return path


def test_an_orientation_found_after_decoding_is_applied(tmp_path):
    arr = _picture(20, 30, 3, seed=2)
    p = _png_with_exif_after_the_pixels(tmp_path / "sideways.png", arr, 6)
    with Image.open(p) as im:
        im.load()
        assert im.getexif().get(0x0112) == 6  # Pillow found it, after the pixels
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = load_image(p).pixels
    assert got.shape == (30, 20, 3)
    np.testing.assert_array_equal(got, want)


def test_other_images_are_copied_from_pillow_as_before(tmp_path, monkeypatch):
    calls = []
    real = kmpress.io.decode_into_array
    monkeypatch.setattr(kmpress.io, "decode_into_array", lambda im, o: calls.append(im.format) or real(im, o))
    arr = _picture(10, 12, 3)
    for name, kw in [("a.tif", {}), ("a.bmp", {}), ("a.webp", {"lossless": True})]:
        p = _save(tmp_path, name, arr, **kw)
        np.testing.assert_array_equal(load_image(p).pixels, arr)
    grey = tmp_path / "g.png"
    Image.fromarray(arr[:, :, 0]).save(grey)
    np.testing.assert_array_equal(load_image(grey).pixels, np.repeat(arr[:, :, :1], 3, axis=2))
    keyed = tmp_path / "key.png"
    Image.fromarray(arr).save(keyed, transparency=tuple(int(v) for v in arr[0, 0]))
    assert load_image(keyed).pixels.shape[2] == 4  # the colour key became alpha, as before
    assert calls == []
    np.testing.assert_array_equal(load_image(_save(tmp_path, "b.png", arr)).pixels, arr)
    assert calls == ["PNG"]


def test_a_truncated_file_fails_the_same_way(tmp_path):
    arr = _picture(120, 90, 3)
    for name in ("t.png", "t.jpg"):
        p = _save(tmp_path, name, arr)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        with pytest.raises(kmpress.ImageReadError, match="truncated"):
            load_image(p)


def test_a_pillow_without_the_private_call_reads_as_before(tmp_path, monkeypatch):
    # Image.core.map_buffer is Pillow's private API: a Pillow whose call differs must still read
    # every file, through the usual copy
    files = {}
    for name in ("rgb.png", "rgb.jpg", "translucent-rgba.png"):
        channels, kw = CASES[name]
        p = _save(tmp_path, name, _picture(31, 17, channels), **kw)
        with Image.open(p) as im:
            files[p] = np.asarray(im.convert("RGB" if channels == 3 else "RGBA"))

    def refuse(*args, **kwargs):
        raise TypeError("map_buffer() takes other arguments")

    monkeypatch.setattr(Image.core, "map_buffer", refuse)
    for p, want in files.items():
        got = load_image(p).pixels
        np.testing.assert_array_equal(got, want)
        assert not isinstance(_mapping(got), mmap.mmap)
