"""``kmpress compress`` with a quality target: ``--quality N|MIN-MAX`` (SSIMULACRA 2, the
smallest file; below MIN nothing is written, exit code 3), ``--psnr DB`` (the smallest K),
``--max-colors`` and ``--strict``; the JSON document, the output names and the help."""

from __future__ import annotations

import json

import numpy as np
from helpers import crop_photo, run
from PIL import Image


def test_compress_psnr(tmp_path):
    src = crop_photo(tmp_path / "cat.png")
    r = run("compress", src, "--psnr", 31, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["target_psnr"] == 31 and doc["k"] is None and doc["target_quality"] is None
    (f,) = doc["files"]
    assert f["status"] == "ok" and f["dst"] == str(tmp_path / "cat-psnr31.png")
    assert f["psnr"] >= 31 and f["target_reached"] is True and f["target_psnr"] == 31
    assert 2 <= f["k"] <= 64 and f["dither"] == "adaptive"
    with Image.open(f["dst"]) as im:
        assert im.mode == "P" and len(im.getcolors()) <= f["k"]
    # the table names the chosen K
    r = run("compress", src, "--psnr", 31, "--force")
    assert r.exit_code == 0 and "cat.png" in r.stdout


def test_compress_psnr_is_the_api_psnr_search(tmp_path):
    import kmpress

    src = crop_photo(tmp_path / "cat.png")
    r = run("compress", src, "--psnr", 30, "--no-dither", "--suffix", "-a")
    assert r.exit_code == 0, r.stderr
    q = kmpress.quantize_to_quality(kmpress.read_image(src), 30, dither=None).quantized
    with Image.open(tmp_path / "cat-a.png") as im:
        assert np.array_equal(np.array(im), q.indices)


def test_compress_quality(tmp_path):
    src = crop_photo(tmp_path / "cat.png")
    r = run("compress", src, "--quality", 55, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["target_quality"] == 55 and doc["min_quality"] is None and doc["target_psnr"] is None
    (f,) = doc["files"]
    assert f["status"] == "ok" and f["dst"] == str(tmp_path / "cat-q55.png")
    assert f["ssimulacra2"] >= 55 and f["target_reached"] is True and f["target_quality"] == 55
    assert f["dither"] in ("adaptive", None) and f["target_psnr"] is None
    assert {t["dither"] for t in f["search"]} == {"adaptive", None}
    with Image.open(f["dst"]) as im:
        assert im.mode == "P" and len(im.getcolors()) <= f["k"]


def test_compress_quality_min_max(tmp_path):
    src = crop_photo(tmp_path / "cat.png")
    # the target is out of reach at 8 colours, the minimum is not: written at --max-colors, marked
    r = run("compress", src, "--quality", "20-95", "--max-colors", 8, "--json")
    assert r.exit_code == 0, r.stderr
    (f,) = json.loads(r.stdout)["files"]
    assert f["status"] == "ok" and f["k"] == 8 and f["target_reached"] is False
    assert 20 <= f["ssimulacra2"] < 95 and f["dst"].endswith("cat-q20-95.png")
    r = run("compress", src, "--quality", "20-95", "--max-colors", 8, "--force")
    assert r.exit_code == 0 and "8!" in r.stdout
    # below the minimum: nothing written, exit code 3 (pngquant's 99); --strict: minimum = target
    for args in (["--quality", "90-95"], ["--quality", "95", "--strict"]):
        r = run("compress", src, *args, "--max-colors", 8, "--suffix", "-x")
        assert r.exit_code == 3, (args, r.stderr)
        assert "not reached" in r.stderr and "cat.png" in r.stderr
        assert not (tmp_path / "cat-x.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_compress_psnr_unreachable(tmp_path):
    src = crop_photo(tmp_path / "cat.png")
    r = run("compress", src, "--psnr", 60, "--max-colors", 8, "--json")
    assert r.exit_code == 0, r.stderr
    (f,) = json.loads(r.stdout)["files"]
    assert f["status"] == "ok" and f["k"] == 8 and f["target_reached"] is False
    assert (tmp_path / "cat-psnr60.png").exists()
    r = run("compress", src, "--psnr", 60, "--max-colors", 8, "--force")
    assert r.exit_code == 0 and "8!" in r.stdout and "--strict" in r.stdout
    (tmp_path / "cat-psnr60.png").unlink()
    r = run("compress", src, "--psnr", 60, "--max-colors", 8, "--strict")
    assert r.exit_code == 3
    assert "60 dB not reached" in r.stderr and "cat.png" in r.stderr
    assert not (tmp_path / "cat-psnr60.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_strict_miss_and_a_broken_file_exit_1(tmp_path):
    src = crop_photo(tmp_path / "cat.png")
    (tmp_path / "bad.png").write_text("not an image")
    r = run("compress", src, tmp_path / "bad.png", "--psnr", 60, "--max-colors", 4, "--strict")
    assert r.exit_code == 1


def test_quality_help():
    r = run("compress", "--help")
    text = " ".join(r.stdout.split())
    assert "--quality MAX|MIN-MAX" in text and "SSIMULACRA 2" in text and "--psnr DB" in text
