"""K sweeps (one warm-started pass), their files, and palette swatches."""

from __future__ import annotations

import csv
import math
import sys

import numpy as np
import pytest
from PIL import Image

import kmpress
from kmpress.errors import ImageReadError, InvalidParameterError
from kmpress.io import encode_png
from kmpress.ksweep import (
    PLOT_HINT,
    SWATCH_COLUMNS,
    SWATCH_GAP,
    SWATCH_SIZE,
    image_palette,
    palette_swatch,
    parse_ks,
    sweep,
    swatch_image,
    write_sweep,
)


@pytest.fixture(scope="module")
def crop(photos) -> np.ndarray:
    return np.ascontiguousarray(photos["coffee"][120:200, 200:320])


def test_parse_ks():
    assert parse_ks("2..8") == [2, 3, 4, 5, 6, 7, 8]
    assert parse_ks("2..8", 2) == [2, 4, 6, 8]
    assert parse_ks("2..9", 3) == [2, 5, 8, 9]  # the last K is always in
    assert parse_ks("64,4,16,4") == [4, 16, 64]
    assert parse_ks("2..4, 32") == [2, 3, 4, 32]
    assert parse_ks("256") == [256]
    for bad in ("", "a..b", "0..4", "2..300", "8..2", "2..", "1.5"):
        with pytest.raises(InvalidParameterError):
            parse_ks(bad)
    with pytest.raises(InvalidParameterError):
        parse_ks("2..8", 0)


def test_sweep_rows(crop):
    ks = [2, 4, 6, 8, 12, 16, 24, 32]
    rows = sweep(crop, reversed(ks), seed=5)
    assert [r.k for r in rows] == ks
    # the first K is a cold start: exactly quantize's result and exactly the PNG it writes
    q = kmpress.quantize(crop, 2, seed=5)
    assert rows[0].psnr == q.psnr and rows[0].colors == q.k
    assert rows[0].bytes == len(encode_png(q.palette, q.indices))
    for a, b in zip(rows, rows[1:]):
        # warm-started: the k-means cost never goes up from one K to the next
        assert b.inertia <= a.inertia * (1 + 1e-9)
        # PSNR after rounding and remapping: monotone up to a little
        assert b.psnr > a.psnr - 0.3
    assert rows[-1].psnr > rows[0].psnr + 8
    for r in rows:
        assert r.colors <= r.k and r.bytes > 0 and r.seconds >= 0 and r.n_iter >= 0
        assert 0 < r.delta_e < 0.2
        assert r.thumbnail is None
    # deterministic
    again = sweep(crop, ks, seed=5)
    assert [(r.inertia, r.psnr, r.bytes) for r in again] == [(r.inertia, r.psnr, r.bytes) for r in rows]


def test_sweep_options_reach_the_pipeline(crop):
    rows = sweep(crop, [4, 8], colorspace="oklab", dither="floyd-steinberg", thumbnail=30)
    q = kmpress.quantize(crop, 4, colorspace="oklab", dither="floyd-steinberg")
    assert rows[0].psnr == q.psnr and rows[0].delta_e == q.delta_e
    assert rows[0].thumbnail.shape == (20, 30, 3)
    # a thumbnail holds only the palette's colours (nearest-neighbour scaling)
    assert len(np.unique(rows[0].thumbnail.reshape(-1, 3), axis=0)) <= 4


def test_sweep_lossless_and_bad_input():
    img = np.zeros((6, 6, 3), np.uint8)
    img[:3] = 200
    rows = sweep(img, [1, 2, 3])
    assert math.isinf(rows[1].psnr) and math.isinf(rows[2].psnr) and rows[2].colors == 2
    with pytest.raises(InvalidParameterError):
        sweep(img, [])
    with pytest.raises(InvalidParameterError):
        sweep(img, [0, 2])
    with pytest.raises(InvalidParameterError):
        sweep(img, [2], colorspace="xyz")


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
