"""Files in the wild: a sample of real-world, broken and fuzzer-found images (tests/data/wild, see
tests/data/SOURCES.md) and the cases found running kmpress over whole corpora. Every file either
compresses to a PNG that two decoders accept, or fails with one line naming it; colour keys,
orientations, multi-size icons and oversized ICC profiles come out as a viewer shows them.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import DATA, kmpress_command, run
from PIL import Image

import kmpress
from kmpress import ImageReadError, ImageTooLargeError, KmpressError
from kmpress.io import MAX_ICC_BYTES
from kmpress.limits import over_cap

WILD = DATA / "wild"
CORPUS = sorted(p for p in WILD.rglob("*") if p.is_file())


def check_png(data: bytes) -> tuple[int, int, int, bool]:
    """An independent decoder of kmpress's output (stdlib only): signature, chunk order and
    CRCs, PLTE/tRNS sizes, iCCP inflates, IDAT inflates to exactly the rows, unfiltered, every
    index inside the palette. Returns (width, height, entries, has tRNS)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])[0] == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + n
    assert pos == len(data)
    kinds = [k for k, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and kinds.count(b"PLTE") == 1
    w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert color == 3 and depth in (1, 2, 4, 8) and interlace == 0 and w > 0 and h > 0
    plte = dict(chunks)[b"PLTE"]
    entries = len(plte) // 3
    assert len(plte) % 3 == 0 and 1 <= entries <= 1 << depth
    trns = dict(chunks).get(b"tRNS")
    assert trns is None or 1 <= len(trns) <= entries
    if b"iCCP" in dict(chunks):
        name, rest = dict(chunks)[b"iCCP"].split(b"\0", 1)
        assert 1 <= len(name) <= 79 and rest[0] == 0 and len(zlib.decompress(rest[1:])) <= MAX_ICC_BYTES
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    rowbytes = (w * depth + 7) // 8
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + rowbytes)
    assert not rows[:, 0].any()  # filter type None on every row
    bits = np.unpackbits(rows[:, 1:], axis=1)[:, : w * depth].reshape(h, w, depth)
    indices = (bits * (1 << np.arange(depth - 1, -1, -1))).sum(axis=2)
    assert indices.max() < entries
    return w, h, entries, trns is not None


@pytest.mark.parametrize("src", CORPUS, ids=[str(p.relative_to(WILD)) for p in CORPUS])
def test_every_file_is_written_or_fails_in_one_line(src, tmp_path):
    dst = tmp_path / "out.png"
    try:
        rep = kmpress.compress(src, dst, 8)
    except KmpressError as e:  # the only kind of exception that may escape
        assert str(e).startswith(f"{src}: ") and "\n" not in str(e) and e.message
        assert not dst.exists()
    else:
        w, h, entries, _ = check_png(dst.read_bytes())
        assert (w, h, entries) == (rep.width, rep.height, rep.colors)
        with Image.open(dst) as im:  # the second decoder: Pillow itself reads every output
            im.load()
            assert im.size == (w, h) and im.mode == "P"
        assert all("\n" not in note for note in rep.warnings)
    assert [p.name for p in tmp_path.iterdir()] == (["out.png"] if dst.exists() else [])  # no temporary file


EXPECTED_ERRORS = {
    "pillow/unimplemented_pixel_format.dds": (ImageReadError, "Pillow cannot decode: Unimplemented pixel format 0"),
    "pillow/unimplemented_pfflags.dds": (ImageReadError, "Pillow cannot decode: Unknown pixel format flags 8"),
    "pillow/unimplemented_dxgi_format.dds": (ImageReadError, "Pillow cannot decode: Unimplemented DXGI format 93"),
    "pillow/decompression_bomb.gif": (
        ImageTooLargeError,
        "over the 1,073,741,824 kmpress accepts by default (--max-pixels N",
    ),
    "pillow/decompression_bomb.ico": (
        ImageTooLargeError,
        "over the 1,073,741,824 kmpress accepts by default (--max-pixels N",
    ),
    "pillow/zero_width.gif": (ImageReadError, "not an image"),
    "pngsuite/xs1n0g01.png": (ImageReadError, "not an image"),
    "pngsuite/xcrn0g04.png": (ImageReadError, "not an image"),
    "pngsuite/xhdn0g08.png": (ImageReadError, "not an image"),  # bad IHDR CRC
    "pngsuite/xdtn0g01.png": (ImageReadError, "corrupt or truncated image: cannot load this image"),  # no IDAT
}


@pytest.mark.parametrize("name", EXPECTED_ERRORS)
def test_the_known_failures_name_their_reason(name, tmp_path):
    cls, says = EXPECTED_ERRORS[name]
    with pytest.raises(cls) as info:
        kmpress.compress(WILD / name, tmp_path / "o.png", 4)
    assert says in str(info.value) and "internal error" not in str(info.value)


def test_go_style_invalid_pngs(tmp_path):
    """The broken files of Go's image/png/testdata, made from a valid PNG: a bad IDAT CRC, no IEND,
    cut short, a corrupt zlib stream."""
    buf = io.BytesIO()
    Image.fromarray(np.arange(32 * 24 * 3, dtype=np.uint32).reshape(24, 32, 3).astype(np.uint8)).save(buf, "PNG")
    good = buf.getvalue()
    idat = good.index(b"IDAT") - 4
    n = struct.unpack(">I", good[idat : idat + 4])[0]
    crc_at = idat + 8 + n
    cases = {
        "invalid-crc32.png": good[:crc_at] + bytes(4) + good[crc_at + 4 :],
        "invalid-noend.png": good[: good.index(b"IEND") - 4],
        "invalid-trunc.png": good[: idat + 8 + n // 2],
        "invalid-zlib.png": good[: idat + 10] + bytes(16) + good[idat + 26 :],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        try:
            rep = kmpress.compress(tmp_path / name, tmp_path / "o.png", 4)
        except ImageReadError as e:
            assert str(e).startswith(str(tmp_path / name)) and "\n" not in str(e)
        else:  # Pillow decodes the pixels of these two (it checks no IDAT CRC and needs no IEND)
            assert name in ("invalid-noend.png", "invalid-crc32.png")
            assert check_png((tmp_path / "o.png").read_bytes())[:2] == (rep.width, rep.height) == (32, 24)
    assert sorted(p.name for p in tmp_path.glob("*.tmp")) == []


# --------------------------------------------------------------------------------------------
# colour keys (tRNS on greyscale and RGB PNGs) are kept
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, key_pixels",
    [
        ("pillow/rgb_trns.png", 876),
        ("pillow/l_trns.png", 559),
        ("pillow/i_trns.png", 559),
        ("pillow/1_trns.png", 1994),
        ("pngsuite/tbrn2c08.png", 453),
        ("pngsuite/tbbn2c16.png", 453),
        ("pngsuite/tbwn0g16.png", 453),
        ("pngsuite/tbbn0g04.png", 464),
    ],
)
def test_color_key_transparency_is_kept(name, key_pixels, tmp_path):
    a = kmpress.read_image(WILD / name)
    assert a.shape[2] == 4 and int((a[:, :, 3] == 0).sum()) == key_pixels and set(np.unique(a[:, :, 3])) == {0, 255}
    kmpress.compress(WILD / name, tmp_path / "o.png", 8)
    assert check_png((tmp_path / "o.png").read_bytes())[3]  # a tRNS chunk
    with Image.open(tmp_path / "o.png") as im:
        out = np.array(im.convert("RGBA"))
    np.testing.assert_array_equal(out[:, :, 3] == 0, a[:, :, 3] == 0)


def test_low_bit_depth_grey_key_is_scaled_like_the_samples(tmp_path, png):
    # a 2-bit greyscale PNG whose key is level 2 (of 0..3): Pillow reads the samples as 0, 85,
    # 170, 255 but keeps the key as 2
    levels = np.array([[0, 1, 2, 3] * 4] * 3, np.uint8)
    packed = np.packbits(np.unpackbits(levels[:, :, None], axis=2)[:, :, 6:].reshape(3, -1), axis=1)
    raw = b"".join(b"\0" + row.tobytes() for row in packed)
    data = png.make(16, 3, 2, 0, raw)
    trns = struct.pack(">I", 2) + b"tRNS" + struct.pack(">H", 2)
    trns += struct.pack(">I", zlib.crc32(trns[4:]))
    at = data.index(b"IDAT") - 4
    (tmp_path / "g2.png").write_bytes(data[:at] + trns + data[at:])
    a = kmpress.read_image(tmp_path / "g2.png")
    np.testing.assert_array_equal(a[:, :, 3] == 0, levels == 2)
    np.testing.assert_array_equal(a[:, :, 0], levels * 85)


# --------------------------------------------------------------------------------------------
# kmpress info: 16-bit greyscale, decompression bombs
# --------------------------------------------------------------------------------------------


def test_info_reads_16_bit_grey_and_refuses_bombs_like_compress(tmp_path):
    r = run("info", WILD / "pngsuite" / "basn0g16.png", "--json")
    assert r.exit_code == 0, r.output
    facts = json.loads(r.stdout)
    assert facts["mode"].startswith("I;16") and facts["bit_depth"] == 16 and facts["colors_used"] is None
    assert kmpress.compress(WILD / "pngsuite" / "basn0g16.png", tmp_path / "o.png", 4).width == 32
    for bomb in ("decompression_bomb.gif", "decompression_bomb.ico"):
        src = WILD / "pillow" / bomb
        with pytest.raises(ImageTooLargeError) as refused:
            kmpress.compress(src, tmp_path / "o.png", 4)
        r = run("info", src)
        assert r.exit_code == 1 and r.stderr == f"kmpress: {refused.value}\n"  # the same one line


# --------------------------------------------------------------------------------------------
# what a viewer shows: orientations, multi-size icons
# --------------------------------------------------------------------------------------------

_QUADRANTS = np.zeros((40, 64, 3), np.uint8)
_QUADRANTS[:20, :32], _QUADRANTS[:20, 32:], _QUADRANTS[20:, :32], _QUADRANTS[20:, 32:] = (
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    255,
)
_SHOWN = {  # EXIF / TIFF Orientation -> what a viewer shows of the stored pixels
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("fmt", ["jpg", "tif", "webp", "png"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientations_give_the_picture_a_viewer_shows(orientation, fmt, tmp_path):
    src = tmp_path / f"in.{fmt}"
    exif = Image.Exif()
    exif[0x0112] = orientation
    if fmt == "tif":
        Image.fromarray(_QUADRANTS).save(src, tiffinfo={0x0112: orientation})
    else:
        Image.fromarray(_QUADRANTS).save(src, exif=exif.tobytes(), **({"quality": 95} if fmt == "jpg" else {}))
    expected = _SHOWN[orientation](_QUADRANTS)
    rep = kmpress.compress(src, tmp_path / "o.png", 4)
    assert (rep.height, rep.width) == expected.shape[:2]
    with Image.open(tmp_path / "o.png") as im:
        # a quadrant in the wrong place is off by 255 in two channels: a mean error over 80; a
        # lossy file's edge colours (JPEG, WebP) also pull on the 4 entries, some 10 at most
        assert np.abs(np.array(im.convert("RGB")).astype(int) - expected).mean() < 16


def _icon(path: Path) -> np.ndarray:
    """A five-size icon whose directory lists the 256x256 entry first, as many icon tools write
    it (and pillow.ico of Pillow's tests): 16 .. 256, the largest a busy PNG of 64-128 kB."""
    rng = np.random.default_rng(0)
    big = np.dstack([rng.integers(0, 16, (256, 256, 3)) * 17, np.full((256, 256), 255)]).astype(np.uint8)
    big[:64, :64, 3] = 0
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "ICO", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (256, 256)])
    data = buf.getvalue()
    n = struct.unpack("<H", data[4:6])[0]
    entries = sorted((data[6 + 16 * i : 22 + 16 * i] for i in range(n)), key=lambda e: e[0] or 256, reverse=True)
    assert 1 << 16 <= struct.unpack("<I", entries[0][8:12])[0] < 1 << 17  # the size of the case found
    path.write_bytes(data[:6] + b"".join(entries) + data[6 + 16 * n :])
    return big


def test_a_multi_size_icon_gives_its_largest_picture_whatever_was_read_before(tmp_path):
    big = _icon(tmp_path / "app.ico")
    a = kmpress.read_image(tmp_path / "app.ico")
    np.testing.assert_array_equal(a, big)
    # in a fresh process, after a TGA: Pillow 12+ then tries its TGA plugin first, which takes
    # such an icon for a TGA ("cannot load this image"); the verdict must not depend on that
    code = "import sys, kmpress; kmpress.read_image(sys.argv[1]); a = kmpress.read_image(sys.argv[2]); print(a.shape)"
    r = subprocess.run(
        [sys.executable, "-c", code, str(WILD / "pillow" / "200x32_p_bl_raw_origin.tga"), str(tmp_path / "app.ico")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout.strip() == "(256, 256, 4)", r.stderr


# --------------------------------------------------------------------------------------------
# an oversized ICC profile is dropped with a warning; every output opens in Pillow
# --------------------------------------------------------------------------------------------


def test_a_huge_icc_profile_is_dropped_and_the_output_opens(tmp_path):
    icc = bytes(range(256)) * (5 * (1 << 20) // 256)  # 5 MiB, split by Pillow over APP2 markers
    src = tmp_path / "big-icc.jpg"
    Image.fromarray(_QUADRANTS).save(src, quality=90, icc_profile=icc)
    with Image.open(src) as im:
        assert len(im.info["icc_profile"]) == len(icc)
    rep = kmpress.compress(src, tmp_path / "o.png", 4)
    assert len(rep.warnings) == 1 and "ICC profile of 5,242,880 bytes dropped" in rep.warnings[0]
    data = (tmp_path / "o.png").read_bytes()
    assert b"iCCP" not in data and check_png(data)
    with Image.open(tmp_path / "o.png") as im:
        im.load()
    r = run("compress", src, "-o", tmp_path / "cli", "-k", 4)
    assert r.exit_code == 0 and r.stderr == f"kmpress: {src}: warning: {rep.warnings[0]}\n"
    r = run("info", tmp_path / "cli" / "big-icc-k4.png")
    assert r.exit_code == 0 and "ICC profile" in r.stdout
    # a profile within the limit still travels
    small = tmp_path / "small-icc.jpg"
    Image.fromarray(_QUADRANTS).save(small, quality=90, icc_profile=icc[: MAX_ICC_BYTES // 2])
    assert (
        kmpress.compress(small, tmp_path / "s.png", 4).warnings == [] and b"iCCP" in (tmp_path / "s.png").read_bytes()
    )


# --------------------------------------------------------------------------------------------
# the real command over the sample: one JSON document, one line per file at most, never more
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_command_over_the_sample(tmp_path, jobs):
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(
        [*kmpress_command(), "compress", str(WILD), "-r", "-o", str(tmp_path / "out"), "-k", "4", "--jobs", str(jobs)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 1  # some inputs are broken on purpose; the others are written
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    lines = r.stderr.splitlines()
    assert all(line.startswith("kmpress: ") for line in lines)
    per_file = [line.split(": ", 2)[1] for line in lines]
    assert len(per_file) == len(set(per_file))  # one line per file, at most
    # libtiff's 196 lines and Pillow's 84 warnings about this file: one line
    assert sum(str(WILD / "pillow" / "crash-2020-10-test.tif") in line for line in lines) == 1
    assert any("crash-0da013" in line and "warning: Fax4Decode" in line for line in lines)
    written = list((tmp_path / "out").rglob("*.png"))
    assert len(written) >= 20 and not list((tmp_path / "out").rglob("*.tmp"))
    for p in written:
        check_png(p.read_bytes())
    assert {p.parent.name for p in written} == {"pngsuite", "pillow"}  # the tree is mirrored
    r = subprocess.run(
        [*kmpress_command(), "compress", str(WILD), "-r", "-o", str(tmp_path / "out"), "--json", "-k", "4"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == r.returncode == 1 and doc["summary"]["skipped"] == len(written)


# --------------------------------------------------------------------------------------------
# memory: a size learned only while decoding, and a decode the memory cannot hold
# --------------------------------------------------------------------------------------------


def _png_header_only(width: int, height: int, color_type: int = 2) -> bytes:
    """A PNG declaring ``width`` x ``height`` 8-bit pixels, with one scanline of data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    row = b"\0" + b"\x80" * (width * (3 if color_type == 2 else 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row)) + chunk(b"IEND", b"")


def _icns_hiding(png: bytes) -> bytes:
    """An Apple icon whose one entry, 'ic08', is listed as 256x256: Pillow opens it at that size
    and learns the size of the PNG inside only when it decodes it."""
    entry = b"ic08" + struct.pack(">I", 8 + len(png)) + png
    return b"icns" + struct.pack(">I", 8 + len(entry)) + entry


@pytest.mark.parametrize("max_pixels", ["auto", 1_000_000_000])
def test_a_size_learned_while_decoding_is_held_against_the_limit(max_pixels, tmp_path):
    # 2^20 x 2^20 pixels (4 TB decoded) inside an icon that opens as 256x256: refused, before
    # any allocation, with the line of every image over the limit
    src = tmp_path / "icon.icns"
    src.write_bytes(_icns_hiding(_png_header_only(1 << 20, 1 << 20)))
    with Image.open(src) as im:
        assert im.size == (256, 256)
    with pytest.raises(ImageTooLargeError) as refused:
        kmpress.compress(src, tmp_path / "o.png", 4, max_pixels=max_pixels)
    pixels = f"{1 << 40:,} pixels"
    if max_pixels == "auto":
        assert refused.value.message == over_cap(pixels, "auto")
    else:
        assert refused.value.message == over_cap(pixels, max_pixels)
    assert not (tmp_path / "o.png").exists()


_OUT_OF_MEMORY = """
import resource, sys
import kmpress
from kmpress import ImageReadError
from kmpress.io import read_image
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:")) * 1024
room = vm + (512 << 20)  # half a gigabyte more than this process has mapped
resource.setrlimit(resource.RLIMIT_AS, (room, room))
try:
    read_image(sys.argv[1], max_pixels=None)
except ImageReadError as e:
    print(e)
"""


@pytest.mark.parametrize("color_type, mode_bytes", [(2, 4), (0, 1)])
def test_running_out_of_memory_while_decoding_says_so_with_the_size(color_type, mode_bytes, tmp_path):
    # RGB is decoded into kmpress's own memory (4 bytes a pixel), grey by Pillow (1 byte): 3.6 GB
    # either way, in a process allowed half a gigabyte more than it has
    side = 30_000 if color_type == 2 else 60_000
    src = tmp_path / "big.png"
    src.write_bytes(_png_header_only(side, side, color_type))
    r = subprocess.run([sys.executable, "-c", _OUT_OF_MEMORY, str(src)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    need = side * side * mode_bytes
    assert r.stdout == (
        f"{src}: out of memory while decoding the image: its header declares {side}x{side} = {side * side:,} pixels, "
        f"{need:,} bytes ({need / 2**30:.1f} GB) decoded\n"
    )


def test_out_of_memory_before_the_size_is_known_says_so():
    import errno

    from kmpress.io import reading

    for failure in (OSError(errno.ENOMEM, "Cannot allocate memory"), MemoryError()):
        with pytest.raises(ImageReadError) as e:
            with reading("a.ico"):
                raise failure
        assert str(e.value) == "a.ico: out of memory while decoding the image"
