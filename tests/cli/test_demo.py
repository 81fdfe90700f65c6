"""``kmpress demo``: the bundled photo at three K and the comparison sheet, a gradient with and
without dithering, and the options it forwards to the engine."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run
from PIL import Image


def test_demo(tmp_path):
    r = run("demo", "--out-dir", tmp_path / "d")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert names == [
        "astronaut-k16.png",
        "astronaut-k4.png",
        "astronaut-k64.png",
        "comparison.png",
        "dithering.png",
        "sky-k8-dither.png",
        "sky-k8-nodither.png",
        "sky.png",
    ]
    assert "astronaut-k64.png" in r.stdout and "comparison" in r.stdout and "dB" in r.stdout
    assert "sky-k8-nodither.png" in r.stdout and "dithering on a gradient:" in r.stdout
    with Image.open(tmp_path / "d" / "comparison.png") as im:
        assert im.width > 3 * im.height  # four square panels side by side, labels underneath
    # run again: the demo replaces its own files
    r = run("demo", "--out-dir", tmp_path / "d", "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and [f["k"] for f in doc["files"]] == [4, 16, 64, 8, 8]
    assert [f["dither"] for f in doc["files"][3:]] == ["adaptive", None]
    assert all(f["status"] == "ok" for f in doc["files"]) and doc["comparison"].endswith("comparison.png")
    assert doc["dithering"].endswith("dithering.png")


def test_demo_and_sweep_forward_their_options(tmp_path, monkeypatch):
    import kmpress.report
    from kmpress.options import Options

    seen = {}

    def fake_demo(out_dir, options=None, **kw):
        seen["demo"] = (out_dir, options)
        return [], None

    def fake_gradient(out_dir, options=None, **kw):
        seen["gradient"] = (out_dir, options)
        return [], None

    def fake_sweep(src, out_dir, ks, options=None, on_row=None):
        seen["sweep"] = (src, out_dir, ks, options)
        raise KeyboardInterrupt  # the command stops here; its exit code is the interrupt's

    monkeypatch.setattr(kmpress.report, "run_demo", fake_demo)
    monkeypatch.setattr(kmpress.report, "run_gradient_demo", fake_gradient)
    monkeypatch.setattr(kmpress.report, "write_sweep", fake_sweep)
    r = run("demo", "-o", tmp_path / "d", "--seed", 2, "--space", "oklab", "--json")
    assert r.exit_code == 0 and seen["demo"] == (tmp_path / "d", Options(seed=2, colorspace="oklab"))
    assert seen["gradient"] == seen["demo"]
    r = run("sweep", tmp_path / "x.png", "-k", "2..4", "--tol", 0, "--dither", "floyd-steinberg")
    assert r.exit_code == 130
    assert seen["sweep"] == (
        tmp_path / "x.png",
        Path("kmpress-sweep"),
        [2, 3, 4],
        Options(tol=0, dither="floyd-steinberg"),
    )


def test_demo_takes_space_and_dither(tmp_path):
    r = run("demo", "-o", tmp_path / "d", "--space", "oklab", "--dither", "floyd-steinberg", "--json")
    assert r.exit_code == 0, r.stderr
    files = json.loads(r.stdout)["files"]
    assert len(files) == 5
    assert all(f["colorspace"] == "oklab" for f in files)
    assert [f["dither"] for f in files] == ["floyd-steinberg"] * 4 + [None]
