"""kmpress.formats: lossless WebP out (the same colours as the PNG, pixel for pixel), AVIF and
HEIC/HEIF in (pillow-heif, the extra ``kmpress[heif]``), folders picking those up, and the one-line
hint for a HEIC without the extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import BytesIO

import numpy as np
import pytest
from helpers import DATA, ROOT, run
from PIL import Image, features

import kmpress
from kmpress import formats
from kmpress.batch import plan_batch
from kmpress.errors import (
    HeifUnavailableError,
    ImageReadError,
    ImageWriteError,
    InvalidParameterError,
    MissingExtraError,
)
from kmpress.options import Options


def crop(name="chelsea", box=(120, 60, 280, 160)) -> Image.Image:
    with Image.open(DATA / f"{name}.png") as im:
        return im.convert("RGB").crop(box)


def heic_bytes(im: Image.Image) -> bytes:
    import pillow_heif

    buf = BytesIO()
    pillow_heif.from_pillow(im).save(buf, quality=90)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# WebP out
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize("k", [16, 256])
def test_webp_decodes_to_exactly_the_quantized_pixels(photos, name, k):
    q = kmpress.quantize(photos[name], k)
    data = formats.encode(q.palette, q.indices, "webp")
    with Image.open(BytesIO(data)) as im:
        assert im.format == "WEBP" and im.size == photos[name].shape[1::-1]
        assert np.array_equal(np.array(im.convert("RGB")), q.to_array())
    # lossless and smaller than the PNG of the same palette image on these photos (docs/results.md)
    assert len(data) < len(formats.encode(q.palette, q.indices, "png"))
    assert formats.encode(q.palette, q.indices, "webp") == data  # deterministic


def test_webp_keeps_alpha_and_the_color_under_transparent_pixels():
    rng = np.random.default_rng(3)
    palette = np.array([[255, 0, 0, 255], [0, 255, 0, 128], [10, 20, 30, 0], [200, 100, 50, 0]], np.uint8)
    indices = rng.integers(0, 4, (33, 47), dtype=np.uint8)
    data = formats.encode(palette, indices, "webp")
    with Image.open(BytesIO(data)) as im:
        assert im.mode == "RGBA"
        # the two fully transparent entries keep their own RGB (libwebp's exact mode)
        assert np.array_equal(np.array(im), palette[indices])


def test_webp_through_compress_and_the_cli(tmp_path, photo_paths):
    rep = kmpress.compress(photo_paths["coffee"], tmp_path / "c.webp", 64, format="webp")
    assert rep.format == "webp" and rep.output_bytes == (tmp_path / "c.webp").stat().st_size
    q = kmpress.quantize(kmpress.read_image(photo_paths["coffee"]), 64)
    with Image.open(tmp_path / "c.webp") as im:
        assert np.array_equal(np.array(im.convert("RGB")), q.to_array())
    d = tmp_path / "d"
    d.mkdir()
    (d / "chelsea.png").write_bytes(photo_paths["chelsea"].read_bytes())
    r = run("compress", d, "-k", 16, "--format", "webp", "--json")
    assert r.exit_code == 0, r.stderr
    (f,) = json.loads(r.stdout)["files"]
    assert f["dst"] == str(d / "chelsea-k16.webp") and f["format"] == "webp"
    assert (d / "chelsea-k16.webp").read_bytes()[8:12] == b"WEBP"
    # the folder's own WebP outputs are not inputs of the next run, in either format
    for fmt in ("webp", "png"):
        plan = plan_batch([d], Options(k=32, format=fmt))
        assert [it.src.name for it in plan.items] == ["chelsea.png"]
        assert plan.items[0].dst.name == f"chelsea-k32.{fmt}"


def test_a_destination_named_for_the_other_format_is_refused(tmp_path, photo_paths):
    with pytest.raises(InvalidParameterError, match="names a WEBP file but the format is 'png'"):
        kmpress.compress(photo_paths["chelsea"], tmp_path / "c.webp", 8)
    with pytest.raises(InvalidParameterError, match="format='png'"):
        kmpress.compress(photo_paths["chelsea"], tmp_path / "c.PNG", 8, format="webp")
    assert list(tmp_path.iterdir()) == []


def test_webp_size_limit_is_one_line(monkeypatch):
    monkeypatch.setattr(formats, "WEBP_MAX_SIDE", 20)
    with pytest.raises(ImageWriteError, match=r"WebP holds at most 20x20 pixels, this image is 30x10: use PNG"):
        formats.encode(np.zeros((1, 3), np.uint8), np.zeros((10, 30), np.uint8), "webp")


# --------------------------------------------------------------------------------------------
# AVIF and HEIC in
# --------------------------------------------------------------------------------------------


def test_sniff_knows_heif_and_avif_by_their_brands():
    assert formats.sniff(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic") == "HEIF"
    assert formats.sniff(b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic") == "HEIF"
    assert formats.sniff(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf") == "AVIF"
    assert formats.sniff(b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif") == "AVIF"
    assert formats.sniff(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2") is None  # an MP4 video
    assert formats.sniff(b"\x89PNG\r\n\x1a\n") is None and formats.sniff(b"") is None


def test_avif_input(tmp_path):
    assert features.check("avif"), "Pillow reads AVIF (Pillow 13 wheels bundle libavif)"
    src = tmp_path / "pic.avif"
    crop().save(src, quality=90)
    with Image.open(src) as im:
        decoded = np.array(im.convert("RGB"))
    assert np.array_equal(kmpress.read_image(src), decoded)
    rep = kmpress.compress(src, tmp_path / "pic.png", 8)
    assert (rep.width, rep.height) == (160, 100) and rep.colors <= 8


def test_heic_input_with_the_extra(tmp_path):
    src = tmp_path / "IMG_1234.HEIC"
    src.write_bytes(heic_bytes(crop()))
    a = kmpress.read_image(src)
    assert a.shape == (100, 160, 3)
    assert np.abs(a.astype(int) - np.array(crop()).astype(int)).mean() < 6  # lossy, but the same picture
    rep = kmpress.compress(src, tmp_path / "out.png", 16)
    assert rep.colors <= 16 and (tmp_path / "out.png").exists()
    # also from a stream (standard input)
    rep = kmpress.compress(BytesIO(src.read_bytes()), tmp_path / "out2.png", 16)
    assert (tmp_path / "out2.png").read_bytes() == (tmp_path / "out.png").read_bytes()


def test_folders_pick_up_avif_and_heic(tmp_path):
    d = tmp_path / "phone"
    d.mkdir()
    crop().save(d / "a.avif", quality=80)
    (d / "b.heic").write_bytes(heic_bytes(crop()))
    (d / "c.HEIF").write_bytes(heic_bytes(crop()))
    (d / "notes.txt").write_text("not a picture")
    plan = plan_batch([d], Options(k=8))
    assert sorted(it.src.name for it in plan.items) == ["a.avif", "b.heic", "c.HEIF"]
    exts = formats.readable_extensions()
    assert {".avif", ".heic", ".heif", ".hif"} <= exts


def test_without_pillow_heif_folders_leave_heic_out(monkeypatch):
    monkeypatch.setattr(formats, "heif_installed", lambda: False)
    exts = formats.readable_extensions()
    assert ".heic" not in exts and ".avif" in exts


def test_heif_error_is_an_input_failure_naming_the_extra():
    e = HeifUnavailableError(formats.HEIF_HINT, "IMG_1.HEIC")
    assert isinstance(e, MissingExtraError) and isinstance(e, ImageReadError)
    assert str(e) == 'IMG_1.HEIC: HEIC/HEIF images need pillow-heif: pip install "kmpress[heif]"'


_NO_HEIF = """
import sys
sys.modules["pillow_heif"] = None  # as if kmpress[heif] were not installed
sys.argv = ["kmpress", *sys.argv[1:]]
from kmpress.cli.main import main
main()
"""


def _without_heif(*args, cwd, input=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", _NO_HEIF, *map(str, args)],
        cwd=cwd,
        input=input,
        capture_output=True,
        timeout=300,
        env=env,
    )


def test_heic_without_the_extra_gets_a_hint_not_not_an_image(tmp_path):
    heic = heic_bytes(crop())
    (tmp_path / "IMG_1.HEIC").write_bytes(heic)
    Image.fromarray(np.array(crop())).save(tmp_path / "ok.png")
    hint = 'HEIC/HEIF images need pillow-heif: pip install "kmpress[heif]"'
    # a file among others: that file fails with the hint (exit 1), the other is written
    # (-j 1: in this process; spawned workers would import pillow-heif)
    r = _without_heif("compress", "IMG_1.HEIC", "ok.png", "-k", 4, "-q", "-j", 1, cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert err.splitlines() == [f"kmpress: IMG_1.HEIC: {hint}"]
    assert "not an image" not in err and "Traceback" not in err
    assert (tmp_path / "ok-k4.png").exists() and not (tmp_path / "IMG_1-k4.png").exists()
    # on standard input, and for kmpress info
    r = _without_heif("compress", "-", "-o", "-", cwd=tmp_path, input=heic)
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.decode().splitlines() == [f"kmpress: <stdin>: {hint}"]
    r = _without_heif("info", "IMG_1.HEIC", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.decode().splitlines() == [f"kmpress: IMG_1.HEIC: {hint}"]


def test_pyproject_declares_the_heif_extra():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("pillow-heif") for d in extras["heif"])
    assert any(d.startswith("pillow-heif") for d in extras["test"])
