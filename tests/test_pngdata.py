"""kmpress.pngdata: a PNG whose image data is in many chunks, read as if it were in one."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import kmpress
import kmpress.io as kio
from kmpress.errors import ImageReadError
from kmpress.pngdata import MIN_CHUNKS, JoinedPng, joined_png

DATA = Path(__file__).parent / "data"
PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def rechunked(data: bytes, size: int, after: list[tuple[bytes, bytes]] = ()) -> bytes:
    """The PNG ``data`` with its image data cut into IDAT chunks of ``size`` bytes, and the
    chunks ``after`` put right after them."""
    pos, found = 8, []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        found.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]))
        pos += 12 + n
    z = b"".join(p for k, p in found if k == b"IDAT")
    out, done = [PNG_SIG], False
    for kind, payload in found:
        if kind == b"IDAT":
            if not done:
                out += [_chunk(b"IDAT", z[i : i + size]) for i in range(0, len(z), size)]
                out += [_chunk(k, p) for k, p in after]
                done = True
            continue
        out.append(_chunk(kind, payload))
    return b"".join(out)


def _saved(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    with Image.open(DATA / "chelsea.png") as im:
        return im.convert("RGB").crop((0, 0, 160, 120))


def _modes(base: Image.Image) -> dict[str, bytes]:
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(base.size))
    return {
        "rgb": _saved(base),
        "rgba": _saved(rgba),
        "grey": _saved(base.convert("L")),
        "palette": _saved(base.quantize(40)),
        "grey16": _saved(base.convert("I;16")),
    }


@pytest.mark.parametrize("mode", ["rgb", "rgba", "grey", "palette", "grey16"])
def test_the_pixels_are_pillows_own(tmp_path, chelsea, mode):
    path = tmp_path / "many.png"
    path.write_bytes(rechunked(_modes(chelsea)[mode], 97))
    view = joined_png(path)
    assert isinstance(view, JoinedPng)
    view.close()
    plain = tmp_path / "one.png"
    plain.write_bytes(_modes(chelsea)[mode])
    assert joined_png(plain) is None  # a chunk or two: read as usual
    np.testing.assert_array_equal(kmpress.read_image(path), kmpress.read_image(plain))


def test_the_view_is_a_valid_png_with_one_chunk_of_image_data(tmp_path, chelsea, png):
    original = rechunked(_saved(chelsea), 200, after=[(b"tEXt", b"Comment\x00after the data")])
    path = tmp_path / "many.png"
    path.write_bytes(original)
    with joined_png(path) as view:
        seen = view.read()
        assert view.tell() == len(seen) and view.read() == b""
    chunks = png.chunks(seen)  # every CRC checked, the joined chunk's too
    kinds = [k for k, _ in chunks]
    assert kinds.count(b"IDAT") == 1
    before = png.chunks(original)
    assert b"".join(p for k, p in chunks if k == b"IDAT") == b"".join(p for k, p in before if k == b"IDAT")
    assert [c for c in chunks if c[0] != b"IDAT"] == [c for c in before if c[0] != b"IDAT"]
    # what follows the image data is still read by Pillow
    with joined_png(path) as view, Image.open(view) as im:
        im.load()
        assert im.info["Comment"] == "after the data"
        np.testing.assert_array_equal(np.asarray(im), np.asarray(chelsea))


@pytest.mark.parametrize("how", ["read", "readinto"])
def test_reads_anywhere_give_the_same_bytes(tmp_path, chelsea, how):
    path = tmp_path / "many.png"
    path.write_bytes(rechunked(_saved(chelsea), 300))
    with joined_png(path) as view:
        whole = view.read()
    rng = np.random.default_rng(len(how))
    with joined_png(path) as view:  # out of order from the start: the CRC is made when asked for
        for _ in range(300):
            at, n = int(rng.integers(0, len(whole))), int(rng.integers(1, 5000))
            view.seek(at)
            if how == "read":
                got = view.read(n)
            else:
                buf = bytearray(n)
                got = bytes(buf[: view.readinto(buf)])
            assert got == whole[at : at + n]
        view.seek(-4, os.SEEK_END)
        assert view.read() == whole[-4:]


def test_files_read_as_usual(tmp_path, chelsea):
    many = rechunked(_saved(chelsea), 100)
    frames = [chelsea, chelsea.rotate(180)]
    cases = {
        "few.png": rechunked(_saved(chelsea), len(many)),  # one chunk
        "photo.jpg": many,  # named otherwise
        "cut.png": many[: len(many) // 2],  # cut short within the image data
        "anim.png": rechunked(_saved(frames[0], save_all=True, append_images=frames[1:]), 100),
        "noise.png": os.urandom(5000),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert joined_png(tmp_path / name) is None, name
    assert joined_png(tmp_path / "missing.png") is None
    assert MIN_CHUNKS > 1
    with pytest.raises(ImageReadError):
        kmpress.read_image(tmp_path / "cut.png")


def test_corrupt_image_data_is_the_same_error(tmp_path, chelsea, monkeypatch):
    data = bytearray(rechunked(_saved(chelsea), 100))
    data[len(data) // 2 : len(data) // 2 + 40] = bytes(40)
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    assert joined_png(path) is not None
    with pytest.raises(ImageReadError) as joined:
        kmpress.read_image(path)
    monkeypatch.setattr(kio, "joined_png", lambda p: None)
    with pytest.raises(ImageReadError) as plain:
        kmpress.read_image(path)
    assert str(joined.value) == str(plain.value)
    assert "\n" not in str(joined.value)


def test_the_file_is_closed_after_reading(tmp_path, chelsea):
    path = tmp_path / "many.png"
    path.write_bytes(rechunked(_saved(chelsea), 100))
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        kmpress.read_image(path)
    assert len(os.listdir("/proc/self/fd")) == fds


def test_kmpress_reads_such_a_file_through_the_view(tmp_path, chelsea, monkeypatch):
    path = tmp_path / "many.png"
    path.write_bytes(rechunked(_saved(chelsea), 100))
    made: list[JoinedPng] = []

    def spy(p: Path) -> JoinedPng | None:
        view = joined_png(p)
        if view is not None:
            made.append(view)
        return view

    monkeypatch.setattr(kio, "joined_png", spy)
    np.testing.assert_array_equal(kmpress.read_image(path), np.asarray(chelsea))
    assert len(made) == 1 and made[0].closed
