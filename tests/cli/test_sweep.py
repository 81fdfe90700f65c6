"""``kmpress sweep``: the K sweep's CSV, contact sheet and plot (``kmpress[plot]``), bad input, and
its progress bar."""

from __future__ import annotations

import json
import sys

from helpers import crop_photo, run


def test_sweep_command(tmp_path):
    src = crop_photo(tmp_path / "cat.png")
    out = tmp_path / "sw"
    r = run("sweep", src, "--k", "2..8", "--step", 2, "-o", out)
    assert r.exit_code == 0, r.stderr
    for k in (2, 4, 6, 8):
        assert f"\n{k} " in r.stdout
    assert (out / "cat-sweep.csv").exists() and (out / "cat-contact.png").exists()
    if "matplotlib" in sys.modules or _has_matplotlib():
        assert (out / "cat-sweep.png").exists()
    r = run("sweep", src, "--k", "4,2", "-o", out, "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert [row["k"] for row in doc["rows"]] == [2, 4]
    assert set(doc["rows"][0]) >= {"k", "inertia", "psnr", "delta_e", "bytes", "seconds"}


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_sweep_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    src = crop_photo(tmp_path / "cat.png")
    r = run("sweep", src, "--k", "2..3", "-o", tmp_path / "o")
    assert r.exit_code == 0
    assert 'pip install "kmpress[plot]"' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 2  # the "sweeping ..." line and the hint
    assert (tmp_path / "o" / "cat-sweep.csv").exists() and (tmp_path / "o" / "cat-contact.png").exists()


def test_sweep_bad_input(tmp_path):
    src = crop_photo(tmp_path / "cat.png")
    r = run("sweep", src, "--k", "8..2")
    assert r.exit_code == 2 and "empty K range" in r.stderr
    r = run("sweep", tmp_path / "missing.png", "--k", "2..3", "-o", tmp_path / "o")
    assert r.exit_code == 1 and "no such file" in r.stderr


def test_sweep_progress_bar_callbacks():
    from types import SimpleNamespace

    from kmpress.cli.progress import sweep_progress

    seen = []
    with sweep_progress(2, True) as on_row:  # drawn on stderr (captured), transient
        for k in (2, 4):
            on_row(SimpleNamespace(k=k))
            seen.append(k)
    with sweep_progress(2, False) as on_row:
        on_row(SimpleNamespace(k=2))
    assert seen == [2, 4]
