"""kmpress.report: info facts and PSNR against an original, the demo's comparison sheet, the
sweep's files, palette swatches."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import gradient_photo as photo
from helpers import no_temp_files
from PIL import Image

import kmpress
from kmpress import KmpressError
from kmpress.batch import compress_many
from kmpress.errors import ImageReadError
from kmpress.report import (
    PLOT_HINT,
    SWATCH_COLUMNS,
    SWATCH_GAP,
    SWATCH_SIZE,
    compare_images,
    comparison_sheet,
    describe_image,
    image_palette,
    palette_swatch,
    run_demo,
    run_gradient_demo,
    sky_gradient,
    swatch_image,
    write_sweep,
)


def test_describe_and_compare(tmp_path):
    src = photo(tmp_path / "a.png", size=(64, 48))
    [r] = compress_many([src], tmp_path, 5)
    info = describe_image(r.dst, against=src)
    assert (info["format"], info["width"], info["height"], info["mode"]) == ("PNG", 64, 48, "P")
    assert info["palette_size"] == r.report.colors <= 5
    assert info["bit_depth"] == r.report.bit_depth
    assert info["bytes"] == Path(r.dst).stat().st_size
    assert info["psnr"] == pytest.approx(r.report.psnr, abs=1e-9)
    same = compare_images(src, src)
    assert same["psnr"] is None and same["mse"] == 0
    plain = describe_image(src)
    assert plain["palette_size"] is None and plain["bit_depth"] == 8 and plain["mode"] == "RGB"
    with pytest.raises(KmpressError, match="sizes differ"):
        compare_images(src, photo(tmp_path / "b.png", size=(10, 10)))
    with pytest.raises(KmpressError, match="no such file"):
        describe_image(tmp_path / "none.png")
    (tmp_path / "t.png").write_text("text")
    with pytest.raises(KmpressError, match="not an image"):
        describe_image(tmp_path / "t.png")


def test_comparison_sheet(tmp_path):
    a = photo(tmp_path / "a.png", size=(60, 40))
    b = photo(tmp_path / "b.png", size=(30, 20))
    out = comparison_sheet([(a, "original"), (b, "K=4")], tmp_path / "sheet.png", height=50)
    with Image.open(out) as im:
        assert im.height > 50 and im.width >= 75 + 50 + 3 * 8
        arr = np.asarray(im.convert("L"))
    assert (arr[50 + 8 :] < 128).any()  # some label text was drawn under the tiles
    assert no_temp_files(tmp_path)


def test_demo_writes_each_k_and_the_sheet(tmp_path):
    results, sheet = run_demo(tmp_path / "d", ks=(2, 8), options=kmpress.Options(seed=3))
    assert [r.report.k for r in results] == [2, 8] and all(r.status == "ok" for r in results)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "astronaut-k2.png",
        "astronaut-k8.png",
        "comparison.png",
    ]
    assert sheet == tmp_path / "d" / "comparison.png"
    again, _ = run_demo(tmp_path / "d", ks=(2,), options=kmpress.Options(seed=3))  # its own folder: replaced
    assert again[0].status == "ok"


def test_sky_gradient_is_smooth_and_fixed():
    import hashlib

    sky = sky_gradient()
    assert sky.shape == (256, 384, 3) and sky.dtype == np.uint8
    d = np.diff(sky.astype(int), axis=0)
    assert (d[..., 0] >= 0).all() and (np.abs(d) <= 3).all()  # warms towards the horizon, no step
    assert (np.diff(sky.astype(int), axis=1) >= 0).all()  # a little lighter to the right
    assert len(np.unique(sky.reshape(-1, 3), axis=0)) > 1000  # far more shades than K = 8
    assert hashlib.sha256(sky.tobytes()).hexdigest()[:16] == SKY_DIGEST


#: The gradient's bytes, made with integer arithmetic: the same on every machine.
SKY_DIGEST = "6c501c84cbe772bc"


def test_gradient_demo_shows_banding_against_dithering(tmp_path):
    results, sheet = run_gradient_demo(tmp_path / "d", k=6, options=kmpress.Options(seed=1))
    assert [r.status for r in results] == ["ok", "ok"]
    dithered, plain = (r.report for r in results)
    assert (dithered.k, dithered.dither, plain.k, plain.dither) == (6, "adaptive", 6, None)
    assert Path(results[0].dst).name == "sky-k6-dither.png" and Path(results[1].dst).name == "sky-k6-nodither.png"
    # the bands: the undithered file is smaller and scores far lower
    assert plain.output_bytes < dithered.output_bytes and plain.ssimulacra2 < dithered.ssimulacra2 - 20
    assert sheet == tmp_path / "d" / "dithering.png"
    with Image.open(sheet) as im:
        assert im.width > 3 * im.height
    with Image.open(tmp_path / "d" / "sky.png") as im:
        assert np.array_equal(np.asarray(im), sky_gradient())
    # the demo's files are the same bytes every run
    first = {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir()}
    run_gradient_demo(tmp_path / "d", k=6, options=kmpress.Options(seed=1))
    assert {p.name: p.read_bytes() for p in (tmp_path / "d").iterdir()} == first


def test_write_sweep_files(tmp_path, photo_paths):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    files = write_sweep(photo_paths["chelsea"], out, [2, 4, 8], thumbnail=64)
    assert files.plot_error is None
    assert files.table == out / "chelsea-sweep.csv"
    with open(files.table) as fh:
        table = list(csv.DictReader(fh))
    assert [int(r["k"]) for r in table] == [2, 4, 8]
    assert float(table[0]["psnr"]) == pytest.approx(files.rows[0].psnr)
    with Image.open(files.plot) as im:
        assert im.format == "PNG" and im.width > 300
    with Image.open(files.contact) as im:
        assert im.format == "PNG" and im.width >= 3 * 64
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_write_sweep_without_matplotlib(tmp_path, photo_paths, monkeypatch):
    # None in sys.modules makes "import matplotlib" raise ImportError, as when it is not installed
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    files = write_sweep(photo_paths["chelsea"], tmp_path, [2, 3])
    assert files.plot is None and files.plot_error == PLOT_HINT
    assert 'pip install "kmpress[plot]"' in files.plot_error
    assert files.table.exists() and files.contact.exists()
    assert not (tmp_path / "chelsea-sweep.png").exists()


def test_swatch_layout():
    pal = np.array([[i, 255 - i, (7 * i) % 256] for i in range(20)], np.uint8)
    sw = swatch_image(pal)
    rows = math.ceil(20 / SWATCH_COLUMNS)
    step = SWATCH_SIZE + SWATCH_GAP
    assert sw.shape == (SWATCH_GAP + rows * step, SWATCH_GAP + SWATCH_COLUMNS * step, 3)
    for i in range(20):
        y = SWATCH_GAP + (i // SWATCH_COLUMNS) * step
        x = SWATCH_GAP + (i % SWATCH_COLUMNS) * step
        assert (sw[y : y + SWATCH_SIZE, x : x + SWATCH_SIZE] == pal[i]).all()


def count_swatches(path) -> list[tuple[int, ...]]:
    """The colours of the filled cells of a swatch picture, read back from the file."""
    with Image.open(path) as im:
        a = np.array(im)
    step = SWATCH_SIZE + SWATCH_GAP
    found = []
    for y in range(SWATCH_GAP + SWATCH_SIZE // 2, a.shape[0], step):
        for x in range(SWATCH_GAP + SWATCH_SIZE // 2, a.shape[1], step):
            cell = a[y - SWATCH_SIZE // 2 : y + SWATCH_SIZE // 2, x - SWATCH_SIZE // 2 : x + SWATCH_SIZE // 2]
            if not (cell == cell[0, 0]).all():
                raise AssertionError("a cell is not flat")
            if not (a[y, x] == 128).all():  # the background grey is not a swatch
                found.append(tuple(int(v) for v in a[y, x]))
    return found


def test_palette_swatch_of_a_kmpress_png(tmp_path, photo_paths):
    png = tmp_path / "c.png"
    rep = kmpress.compress(photo_paths["chelsea"], png, 20)
    out = palette_swatch(png, tmp_path / "swatch.png")
    assert out["palette_entries"] == rep.colors == 20
    with Image.open(png) as im:
        stored = np.array(im.getpalette()[: 3 * rep.colors], np.uint8).reshape(-1, 3)
    got = count_swatches(tmp_path / "swatch.png")
    assert len(got) == 20
    assert sorted(got) == sorted(map(tuple, stored.tolist()))


def test_image_palette_variants(tmp_path):
    # an RGB image with few colours: those colours, most frequent first
    a = np.zeros((4, 4, 3), np.uint8)
    a[0] = [255, 0, 0]
    p = tmp_path / "few.png"
    Image.fromarray(a).save(p)
    assert image_palette(p).tolist() == [[0, 0, 0], [255, 0, 0]]
    # too many colours and no palette: a clear error
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "many.png")
    with pytest.raises(ImageReadError, match="more than 256 colours"):
        image_palette(tmp_path / "many.png")
    with pytest.raises(ImageReadError, match="no such file"):
        palette_swatch(tmp_path / "missing.png", tmp_path / "sw.png")
    # RGBA with transparency keeps its alpha
    b = np.zeros((2, 2, 4), np.uint8)
    b[0, 0] = [10, 20, 30, 0]
    b[1] = [1, 2, 3, 255]
    Image.fromarray(b).save(tmp_path / "alpha.png")
    assert image_palette(tmp_path / "alpha.png").shape[1] == 4
