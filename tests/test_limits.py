"""kmpress.limits: the default size guard lets real photos of any size through and refuses
decompression bombs, and what this machine's memory cannot take, before decoding; small images
only (the guard reads headers)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import kmpress
from kmpress import limits
from kmpress.errors import ImageTooLargeError


def _bomb_png(width: int, height: int, png) -> bytes:
    # a valid header, and a few KB of zeros that would inflate to the whole image
    raw = zlib.compress(b"\0" * 200_000, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) is patched to declare another size."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("w, h", [(100_000, 100_000), (30_000, 30_000)])
def test_a_bomb_png_is_refused_before_decoding(tmp_path, snap, png, w, h):
    src = tmp_path / "bomb.png"
    src.write_bytes(_bomb_png(w, h, png))
    assert src.stat().st_size < 5000
    before = snap(tmp_path)
    with pytest.raises(ImageTooLargeError) as info:
        kmpress.compress(src, tmp_path / "out.png", 4)
    msg = str(info.value)
    # over 2x the cap Pillow's own guard (kept on while headers are read: ICO decodes then) speaks
    # first and tells the pixel count alone
    assert msg.startswith(str(src)) and (f"{w}x{h}" in msg or f"{w * h:,} pixels" in msg) and "--max-pixels" in msg
    assert "\n" not in msg and ("decompression bomb" in msg or "kmpress accepts by default" in msg)
    assert snap(tmp_path) == before


def test_a_huge_declared_jpeg_is_refused(tmp_path):
    for w, h in ((65_000, 65_000), (20_000, 20_000)):  # over 2^30 pixels; and 400 MP in 600 bytes
        src = tmp_path / f"huge-{w}.jpg"
        src.write_bytes(_jpeg_declaring(w, h))
        with pytest.raises(ImageTooLargeError, match="kmpress accepts by default|decompression bomb"):
            kmpress.compress(src, tmp_path / "out.png", 4)
    # a plain cap of the user's own replaces the judgement (and says so)
    with pytest.raises(ImageTooLargeError, match="over the limit of 1,000"):
        kmpress.compress(src, tmp_path / "out.png", 4, max_pixels=1000)


def test_more_than_the_machine_can_take_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "available_memory", lambda: 1 << 30)  # 1 GB available
    reason = limits.size_refusal(20_000, 10_000, 3, 50_000_000, "auto")  # 200 MP in 50 MB: a real photo
    assert reason is not None and "would need about" in reason and "1.0 GB are available" in reason
    monkeypatch.setattr(limits, "available_memory", lambda: 64 << 30)
    assert limits.size_refusal(20_000, 10_000, 3, 50_000_000, "auto") is None
    monkeypatch.setattr(limits, "available_memory", lambda: None)  # unknown: nothing refused for it
    assert limits.size_refusal(20_000, 10_000, 3, 50_000_000, "auto") is None


@pytest.mark.parametrize("mp", [24, 45, 61, 100, 150, 200, 500])
def test_real_photo_sizes_pass_by_default(mp):
    # a camera JPEG is at least ~1 bit per pixel; a 24 GB machine has the memory
    w = int((mp * 1e6 * 1.5) ** 0.5)
    h = int(mp * 1e6 / w)
    assert limits.size_refusal(w, h, 3, w * h // 8, "auto") is None or limits.available_memory() < limits.job_bytes(
        w * h
    )


def test_a_flat_large_png_is_not_a_bomb(tmp_path):
    # 6000 x 4000 of one colour: a small file, but a real (if dull) image that compresses
    src = tmp_path / "flat.png"
    Image.new("RGB", (6000, 4000), (40, 90, 200)).save(src)
    assert src.stat().st_size < 200_000
    rep = kmpress.compress(src, tmp_path / "flat-k4.png", 4)
    assert rep.colors == 1 and rep.width == 6000


def test_a_fixed_cap_and_no_cap(tmp_path):
    src = tmp_path / "a.png"
    Image.new("RGB", (100, 50)).save(src)
    with pytest.raises(ImageTooLargeError, match="over the limit of 4,999"):
        kmpress.compress(src, tmp_path / "o.png", 2, max_pixels=4999)
    assert kmpress.compress(src, tmp_path / "o.png", 2, max_pixels=5000).width == 100
    assert kmpress.compress(src, tmp_path / "p.png", 2, max_pixels=None).width == 100
    with pytest.raises(kmpress.InvalidParameterError, match="max_pixels"):
        kmpress.Options(max_pixels="lots")


def test_job_bytes_grows_with_the_image():
    small, large = limits.job_bytes(4_000_000), limits.job_bytes(200_000_000)
    assert limits.RUNTIME_BYTES < small < large
    assert large > 200_000_000 * 7
    assert limits.available_memory() is None or limits.available_memory() > 0
