"""``kmpress info``: a file's facts, PSNR against an original, ``--palette`` swatches, ``--json``."""

from __future__ import annotations

import json

from helpers import DATA, crop_photo, photo, run


def test_info(tmp_path):
    a = photo(tmp_path / "a.png")
    assert run("compress", a, "-k", 4, "-q").exit_code == 0
    r = run("info", tmp_path / "a-k4.png", "--against", a)
    assert r.exit_code == 0, r.output
    for word in ("72 x 48", "mode", "P", "palette size", "bit depth", "2 bits per index", "PSNR", "dB"):
        assert word in r.stdout, word
    r = run("info", tmp_path / "a-k4.png", "--against", a, "--json")
    doc = json.loads(r.stdout)
    assert doc["mode"] == "P" and doc["palette_size"] <= 4 and doc["bit_depth"] == 2 and doc["psnr"] > 0
    r = run("info", tmp_path / "none.png")
    assert r.exit_code == 1 and "none.png: no such file" in r.stderr
    r = run("info", a, "--against", photo(tmp_path / "small.png", size=(8, 8)))
    assert r.exit_code == 1 and "sizes differ" in r.stderr


def test_json_of_the_other_commands_carries_the_exit_code(tmp_path):
    a = photo(tmp_path / "a.png")
    r = run("info", a, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["exit_code"] == 0 and json.loads(r.stdout)["command"] == "info"


def test_info_palette(tmp_path):
    from test_report import count_swatches

    src = crop_photo(tmp_path / "cat.png")
    assert run("compress", src, "-k", 12).exit_code == 0
    png = tmp_path / "cat-k12.png"
    r = run("info", png, "--palette", tmp_path / "pal.png")
    assert r.exit_code == 0, r.stderr
    assert "palette swatch" in r.stdout and "12 entries" in r.stdout
    assert len(count_swatches(tmp_path / "pal.png")) == 12
    r = run("info", png, "--palette", tmp_path / "pal2.png", "--json")
    assert json.loads(r.stdout)["palette_entries"] == 12
    # a photo has no palette: one line, exit 1, nothing written
    r = run("info", DATA / "coffee.png", "--palette", tmp_path / "pal3.png")
    assert r.exit_code == 1 and "more than 256 colours" in r.stderr
    assert not (tmp_path / "pal3.png").exists()
    r = run("info", png, "--palette", png)
    assert r.exit_code == 1 and "overwrite" in r.stderr
