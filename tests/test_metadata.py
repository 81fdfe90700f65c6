"""kmpress.metadata and the metadata of the outputs: a photo's EXIF (date, camera, GPS) survives
into the PNG's eXIf chunk and the WebP's EXIF chunk with the orientation reset to 1 (the pixels are
rotated), the ICC profile is kept, and ``strip`` / ``--strip`` leaves no metadata at all."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from helpers import DATA, run
from PIL import ExifTags, Image, ImageCms

import kmpress
from kmpress import metadata

DATE = "2024:05:01 10:11:12"
GPS = {1: "N", 2: (52.0, 22.0, 7.5), 3: "E", 4: (4.0, 53.0, 30.0)}


def _exif(orientation: int | None = 6) -> Image.Exif:
    ex = Image.Exif()
    ex[ExifTags.Base.Make] = "Canon"
    ex[ExifTags.Base.Model] = "EOS 5D"
    ex[ExifTags.Base.DateTime] = DATE
    if orientation is not None:
        ex[ExifTags.Base.Orientation] = orientation
    ex.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = DATE
    ex.get_ifd(ExifTags.IFD.GPSInfo).update(GPS)
    return ex


def _make_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


ICC = _make_icc()  # once: the profile holds its creation time


def camera_photo(path: Path, orientation: int | None = 6, icc: bool = True) -> Path:
    """A crop of a test photo saved as a camera would: JPEG, EXIF with make, model, dates, GPS and
    an orientation, and an ICC profile."""
    with Image.open(DATA / "chelsea.png") as im:
        pic = im.convert("RGB").crop((100, 50, 260, 150))  # 160 x 100, stored sideways
    extra = {"icc_profile": ICC} if icc else {}
    pic.save(path, quality=92, exif=_exif(orientation).tobytes(), **extra)
    return path


def png_chunk_types(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        out.append(data[pos + 4 : pos + 8])
        pos += 12 + n
    return out


def webp_chunk_types(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    out, pos = [], 12
    while pos + 8 <= len(data):
        kind, n = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        out.append(kind)
        pos += 8 + n + (n & 1)
    return out


def assert_camera_exif(im: Image.Image) -> None:
    ex = im.getexif()
    assert ex[ExifTags.Base.Make] == "Canon" and ex[ExifTags.Base.Model] == "EOS 5D"
    assert ex[ExifTags.Base.DateTime] == DATE
    assert ex[ExifTags.Base.Orientation] == 1  # reset: the pixels are already upright
    assert ex.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == DATE
    assert ex.get_ifd(ExifTags.IFD.GPSInfo) == GPS


# --------------------------------------------------------------------------------------------
# the bytes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
def test_orientation_is_patched_in_place_both_byte_orders(order):
    # a hand-made TIFF block: IFD0 with Make (ASCII, offset), Orientation 8, and a trailing string
    head = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8)
    entries = struct.pack(order + "H", 2)
    entries += struct.pack(order + "HHII", 0x010F, 2, 6, 8 + 2 + 24 + 4)
    entries += struct.pack(order + "HHI", 0x0112, 3, 1) + struct.pack(order + "H", 8) + b"\x00\x00"
    raw = head + entries + struct.pack(order + "I", 0) + b"Canon\x00"
    assert metadata.orientation(raw) == 8
    out = metadata.exif_for_output(metadata.EXIF_PREFIX + raw)
    assert metadata.orientation(out) == 1
    assert len(out) == len(raw)
    # nothing but the two bytes of the value changed
    diff = [i for i in range(len(raw)) if raw[i] != out[i]]
    assert diff and all(8 + 2 + 12 + 8 <= i < 8 + 2 + 12 + 10 for i in diff)
    assert out.endswith(b"Canon\x00")


def test_blocks_that_are_not_exif_are_dropped_and_others_kept():
    assert metadata.exif_for_output(None) is None
    assert metadata.exif_for_output(b"") is None
    assert metadata.exif_for_output(b"Exif\x00\x00garbage that is not TIFF") is None
    no_orientation = _exif(orientation=None).tobytes()
    out = metadata.exif_for_output(no_orientation)
    assert out == no_orientation[6:] and metadata.orientation(out) is None
    # a truncated IFD is kept as it is rather than patched out of bounds
    truncated = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 5) + b"\x00" * 12
    assert metadata.exif_for_output(truncated) == truncated


def test_png_encoder_writes_the_exif_chunk_before_the_pixels():
    from kmpress.png import encode_png

    payload = metadata.exif_for_output(_exif().tobytes())
    data = encode_png(np.array([[0, 0, 0], [255, 255, 255]], np.uint8), np.zeros((3, 3), np.uint8), exif=payload)
    types = png_chunk_types(data)
    assert types.index(b"eXIf") < types.index(b"IDAT")
    from io import BytesIO

    with Image.open(BytesIO(data)) as im:
        assert_camera_exif(im)


# --------------------------------------------------------------------------------------------
# files: compress keeps EXIF and ICC; strip leaves none
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_a_photos_exif_and_icc_survive(tmp_path, fmt):
    src = camera_photo(tmp_path / "IMG_0001.JPG")
    dst = tmp_path / f"out.{fmt}"
    rep = kmpress.compress(src, dst, 16, format=fmt)
    assert (rep.width, rep.height) == (100, 160)  # rotated by the orientation (6: 90 degrees)
    with Image.open(dst) as im:
        assert im.size == (100, 160)
        assert im.info.get("icc_profile") == ICC
        assert_camera_exif(im)
    data = dst.read_bytes()
    if fmt == "png":
        assert b"eXIf" in png_chunk_types(data) and b"iCCP" in png_chunk_types(data)
    else:
        assert {b"EXIF", b"ICCP"} <= set(webp_chunk_types(data))


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_strip_leaves_no_metadata(tmp_path, fmt):
    src = camera_photo(tmp_path / "IMG_0002.JPG")
    dst = tmp_path / f"out.{fmt}"
    kmpress.compress(src, dst, 16, format=fmt, strip=True)
    data = dst.read_bytes()
    if fmt == "png":
        assert png_chunk_types(data) == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]
    else:
        assert webp_chunk_types(data) == [b"VP8L"]
    with Image.open(dst) as im:
        assert not im.getexif() and "icc_profile" not in im.info and "exif" not in im.info
        assert im.size == (100, 160)  # the rotation is applied all the same


def test_strip_from_the_command_line(tmp_path):
    src = camera_photo(tmp_path / "IMG_0003.JPG")
    r = run("compress", src, "-k", 8, "-q")
    assert r.exit_code == 0, r.stderr
    kept = (tmp_path / "IMG_0003-k8.png").read_bytes()
    assert {b"eXIf", b"iCCP"} <= set(png_chunk_types(kept))
    r = run("compress", src, "-k", 8, "-q", "--strip", "--suffix", "-s")
    assert r.exit_code == 0, r.stderr
    stripped = (tmp_path / "IMG_0003-s.png").read_bytes()
    assert png_chunk_types(stripped) == [b"IHDR", b"PLTE", b"IDAT", b"IEND"]
    # the same pixels either way
    with Image.open(tmp_path / "IMG_0003-k8.png") as a, Image.open(tmp_path / "IMG_0003-s.png") as b:
        assert np.array_equal(np.array(a.convert("RGB")), np.array(b.convert("RGB")))
    # kmpress info says which has EXIF
    r = run("info", tmp_path / "IMG_0003-k8.png", "--json")
    assert '"exif": true' in r.stdout
    r = run("info", tmp_path / "IMG_0003-s.png", "--json")
    assert '"exif": false' in r.stdout


def test_no_exif_in_means_no_chunk_and_unchanged_bytes(tmp_path, photo_paths):
    # a PNG without metadata gives exactly the bytes of the encoder alone (outputs did not change)
    from kmpress.png import encode_png

    dst = tmp_path / "c.png"
    kmpress.compress(photo_paths["chelsea"], dst, 16)
    q = kmpress.quantize(kmpress.read_image(photo_paths["chelsea"]), 16)
    assert dst.read_bytes() == encode_png(q.palette, q.indices)
