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


def _with_thumbnail(order: str, thumb: bytes) -> bytes:
    """A camera-style TIFF payload built by hand: IFD0 (make, orientation 6, a link to an Exif
    IFD holding the date), then IFD1 pointing at a JPEG thumbnail, which comes last."""
    e = "<" if order == "II" else ">"
    head = (b"II*\x00" if order == "II" else b"MM\x00*") + struct.pack(e + "I", 8)
    make = b"Sony\x00\x00\x00\x00"  # 8 bytes: stored outside the entry
    ifd0_at, n0 = 8, 3
    make_at = ifd0_at + 2 + 12 * n0 + 4
    exif_at = make_at + len(make)
    date = DATE.encode() + b"\x00"
    date_at = exif_at + 2 + 12 + 4
    ifd1_at = date_at + len(date)
    thumb_at = ifd1_at + 2 + 12 * 2 + 4
    ifd0 = struct.pack(e + "H", n0)
    ifd0 += struct.pack(e + "HHII", 0x010F, 2, len(make), make_at)
    ifd0 += struct.pack(e + "HHIHH", 0x0112, 3, 1, 6, 0)
    ifd0 += struct.pack(e + "HHII", 0x8769, 4, 1, exif_at)
    ifd0 += struct.pack(e + "I", ifd1_at)
    exif = struct.pack(e + "H", 1) + struct.pack(e + "HHII", 0x9003, 2, len(date), date_at) + struct.pack(e + "I", 0)
    ifd1 = struct.pack(e + "H", 2)
    ifd1 += struct.pack(e + "HHII", 0x0201, 4, 1, thumb_at) + struct.pack(e + "HHII", 0x0202, 4, 1, len(thumb))
    ifd1 += struct.pack(e + "I", 0)
    return head + ifd0 + make + exif + date + ifd1 + thumb


def _jpeg_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    with Image.open(DATA / "chelsea.png") as im:
        im.convert("RGB").resize((160, 120)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("order", ["II", "MM"])
def test_the_embedded_thumbnail_is_dropped_and_the_rest_kept(order):
    thumb = _jpeg_bytes()
    raw = _with_thumbnail(order, thumb)
    out = metadata.exif_for_output(metadata.EXIF_PREFIX + raw)
    assert out is not None and len(out) == len(raw) - len(thumb) - (2 + 12 * 2 + 4)
    assert thumb not in out
    ex = Image.Exif()
    ex.load(out)
    assert ex[ExifTags.Base.Make].startswith("Sony")
    assert ex[ExifTags.Base.Orientation] == 1
    assert ex.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == DATE
    assert not ex.get_ifd(ExifTags.IFD.IFD1)
    # the source as Pillow reads it does have the thumbnail
    src = Image.Exif()
    src.load(raw)
    assert src.get_ifd(ExifTags.IFD.IFD1)


def test_a_photos_thumbnail_does_not_reach_the_png(tmp_path):
    thumb = _jpeg_bytes()
    src = tmp_path / "DSC_0001.JPG"
    with Image.open(DATA / "chelsea.png") as im:
        im.convert("RGB").crop((100, 50, 260, 150)).save(
            src, quality=92, exif=metadata.EXIF_PREFIX + _with_thumbnail("II", thumb)
        )
    dst = tmp_path / "out.png"
    kmpress.compress(src, dst, 16)
    data = dst.read_bytes()
    assert thumb[:64] not in data and b"Sony" in data
    with Image.open(dst) as im:
        assert im.getexif()[ExifTags.Base.Make].startswith("Sony")
