"""bench/memory_vs_pixels.py's plumbing on tiny photos: frames, the strip-by-strip generator and
its cache, /usr/bin/time's report, the table and the per-stage timeline. No figure is asserted."""

from __future__ import annotations

import numpy as np
from PIL import Image

import bench.memory_vs_pixels as mem

TIME_V = """\tCommand being timed: "kmpress compress a.png"
\tUser time (seconds): 1.52
\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02.31
\tMaximum resident set size (kbytes): 331000
\tExit status: 0
"""


def test_frames_are_3_by_2_of_that_many_megapixels():
    assert mem.frame(24) == (6000, 4000)  # bench/photos.py's 24 MP
    for mp in (4, 100, 200):
        w, h = mem.frame(mp)
        assert abs(w * h - mp * 1e6) < 0.001 * mp * 1e6 and abs(w / h - 1.5) < 0.01


def test_the_photo_is_made_strip_by_strip_and_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(mem, "STRIP", 7)  # strips that do not divide the height
    monkeypatch.setattr(mem, "frame", lambda mp: (31, 20))
    strips = list(mem._strips((31, 20)))
    assert [y for y, _ in strips] == [0, 7, 14]
    whole = np.concatenate([rows for _, rows in strips])
    assert whole.shape == (20, 31, 3) and len(np.unique(whole.reshape(-1, 3), axis=0)) > 100  # noisy
    png = mem.photo(1, "png", tmp_path)
    with Image.open(png) as im:
        assert im.size == (31, 20) and im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), whole)  # the same seeded noise, lossless
    jpg = mem.photo(1, "jpg", tmp_path)
    with Image.open(jpg) as im:
        assert im.format == "JPEG" and im.size == (31, 20)
    stamp = png.stat().st_mtime_ns
    assert mem.photo(1, "png", tmp_path) == png and png.stat().st_mtime_ns == stamp  # cached
    assert sorted(p.name for p in tmp_path.iterdir()) == ["large-31x20.jpg", "large-31x20.png"]  # no temporary left


def test_time_v_report_and_the_table():
    assert mem.parse_time_v(TIME_V) == (331000 * 1024 / 1e6, 62.31)
    rows = [
        {"mp": 24, "format": "png", "k": 16, "decoded": 72.0, "rss": 300.4, "goal": 244.0, "wall": 2.04},
        {"mp": 100, "format": "jpg", "k": 256, "decoded": 300.0, "rss": 609.0, "goal": 700.0, "wall": 3.1},
    ]
    lines = mem.table(rows).splitlines()
    assert lines[0].startswith("| MP | format | K | decoded MB | peak RSS MB |")
    assert lines[2] == "| 24 | PNG | 16 | 72 | 300 (over) | 244 | 2.0 |"
    assert lines[3] == "| 100 | JPG | 256 | 300 | 609 | 700 | 3.1 |"


def test_the_timeline_names_every_stage_of_a_compression(tmp_path):
    src = tmp_path / "a.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(src)
    rows = mem.timeline(str(src), 8, str(tmp_path / "out.png"), every=0.001)
    assert [r["stage"] for r in rows] == ["start", "read", "histogram", "init", "lloyd", "remap", "delta_e", "write"]
    assert all(0 < r["start_mb"] <= r["peak_mb"] and r["seconds"] >= 0 for r in rows)
    assert (tmp_path / "out.png").exists()
