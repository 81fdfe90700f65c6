"""The CLI's quality options (--quality, --max-colors, --strict, --space, --dither), ``sweep`` and
``info --palette``, through typer's CliRunner."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import kmpress.cli.main as climain
from kmpress.cli.main import app

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def runner():
    return CliRunner()


def run(runner, *args):
    return runner.invoke(app, [str(a) for a in args], prog_name="kmpress")


def crop(path: Path, box=(150, 100, 246, 164), name="chelsea") -> Path:
    """A small real photo (a crop of a test photo) saved as PNG."""
    with Image.open(DATA / f"{name}.png") as im:
        im.convert("RGB").crop(box).save(path)
    return path


def test_help_documents_the_options_and_exit_code_3(runner):
    r = run(runner, "compress", "--help")
    for opt in ("--quality", "--max-colors", "--strict", "--space", "--dither", "--no-dither", "3: with --strict"):
        assert opt in r.stdout, opt
    r = run(runner, "sweep", "--help")
    assert r.exit_code == 0
    for opt in ("--k", "--step", "--out-dir", "kmpress[plot]", "--space", "--dither"):
        assert opt in r.stdout, opt
    assert "--palette" in run(runner, "info", "--help").stdout
    assert climain.EXIT_TARGET == 3


def test_compress_quality(runner, tmp_path):
    src = crop(tmp_path / "cat.png")
    r = run(runner, "compress", src, "--quality", 31, "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["target_psnr"] == 31 and doc["k"] is None
    (f,) = doc["files"]
    assert f["status"] == "ok" and f["dst"] == str(tmp_path / "cat-q31.png")
    assert f["psnr"] >= 31 and f["target_reached"] is True and f["target_psnr"] == 31
    assert 2 <= f["k"] <= 64
    with Image.open(f["dst"]) as im:
        assert im.mode == "P" and len(im.getcolors()) <= f["k"]
    # the table names the chosen K
    r = run(runner, "compress", src, "--quality", 31, "--force")
    assert r.exit_code == 0 and "cat.png" in r.stdout


def test_compress_quality_unreachable(runner, tmp_path):
    src = crop(tmp_path / "cat.png")
    r = run(runner, "compress", src, "--quality", 60, "--max-colors", 8, "--json")
    assert r.exit_code == 0, r.stderr
    (f,) = json.loads(r.stdout)["files"]
    assert f["status"] == "ok" and f["k"] == 8 and f["target_reached"] is False
    assert (tmp_path / "cat-q60.png").exists()
    r = run(runner, "compress", src, "--quality", 60, "--max-colors", 8, "--force")
    assert r.exit_code == 0 and "8!" in r.stdout and "--strict" in r.stdout
    (tmp_path / "cat-q60.png").unlink()
    r = run(runner, "compress", src, "--quality", 60, "--max-colors", 8, "--strict")
    assert r.exit_code == 3
    assert "60 dB not reached" in r.stderr and "cat.png" in r.stderr
    assert not (tmp_path / "cat-q60.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_strict_miss_and_a_broken_file_exit_1(runner, tmp_path):
    src = crop(tmp_path / "cat.png")
    (tmp_path / "bad.png").write_text("not an image")
    r = run(runner, "compress", src, tmp_path / "bad.png", "--quality", 60, "--max-colors", 4, "--strict")
    assert r.exit_code == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["-k", "8", "--quality", "30"], "give either k or target_psnr, not both (-k/--colors, --quality)"),
        (["--max-colors", "8"], "(--max-colors, --strict, --quality)"),
        (["--strict"], "max_colors and strict go with target_psnr"),
        (["--quality", "-3"], "target_psnr"),
        (["--quality", "30", "--max-colors", "300"], "max_colors"),
        (["--space", "hsv"], "colorspace"),
        (["--quality", "30", "--suffix", "-k{k}"], "{k}"),
    ],
)
def test_usage_errors(runner, tmp_path, args, message):
    src = crop(tmp_path / "cat.png")
    r = run(runner, "compress", src, *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png"]


def test_space_and_dither_reach_the_engine(runner, tmp_path):
    import kmpress

    src = crop(tmp_path / "cat.png")
    r = run(runner, "compress", src, "-k", 8, "--space", "oklab", "--dither", "floyd-steinberg", "--json", "--suffix", "-a")
    assert r.exit_code == 0, r.stderr
    (f,) = json.loads(r.stdout)["files"]
    q = kmpress.quantize(kmpress.read_image(src), 8, colorspace="oklab", dither="floyd-steinberg")
    assert f["psnr"] == pytest.approx(q.psnr)
    with Image.open(tmp_path / "cat-a.png") as im:
        assert np.array_equal(np.array(im), q.indices)
    r = run(runner, "compress", src, "-k", 8, "--no-dither", "--json", "--suffix", "-b")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["files"][0]["psnr"] == pytest.approx(kmpress.quantize(kmpress.read_image(src), 8, dither=None).psnr)


def test_demo_takes_space_and_dither(runner, tmp_path):
    r = run(runner, "demo", "-o", tmp_path / "d", "--space", "oklab", "--dither", "floyd-steinberg", "--json")
    assert r.exit_code == 0, r.stderr
    files = json.loads(r.stdout)["files"]
    assert len(files) == 3
    assert all(f["colorspace"] == "oklab" and f["dither"] == "floyd-steinberg" for f in files)


def test_batch_carries_the_options_to_workers(runner, tmp_path):
    a = crop(tmp_path / "a.png")
    b = crop(tmp_path / "b.png", name="coffee")
    r = run(runner, "compress", a, b, "--quality", 30, "--max-colors", 40, "--space", "oklab", "--jobs", 2, "--json")
    assert r.exit_code == 0, r.stderr
    files = json.loads(r.stdout)["files"]
    assert [Path(f["dst"]).name for f in sorted(files, key=lambda f: f["src"])] == ["a-q30.png", "b-q30.png"]
    for f in files:
        assert f["target_psnr"] == 30 and f["psnr"] >= 30 and f["k"] <= 40 and f["colorspace"] == "oklab"


def test_sweep_command(runner, tmp_path):
    src = crop(tmp_path / "cat.png")
    out = tmp_path / "sw"
    r = run(runner, "sweep", src, "--k", "2..8", "--step", 2, "-o", out)
    assert r.exit_code == 0, r.stderr
    for k in (2, 4, 6, 8):
        assert f"\n {k} " in r.stdout or f"\n  {k} " in r.stdout
    assert (out / "cat-sweep.csv").exists() and (out / "cat-contact.png").exists()
    if "matplotlib" in sys.modules or _has_matplotlib():
        assert (out / "cat-sweep.png").exists()
    r = run(runner, "sweep", src, "--k", "4,2", "-o", out, "--json")
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


def test_sweep_without_matplotlib(runner, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    src = crop(tmp_path / "cat.png")
    r = run(runner, "sweep", src, "--k", "2..3", "-o", tmp_path / "o")
    assert r.exit_code == 0
    assert 'pip install "kmpress[plot]"' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 2  # the "sweeping ..." line and the hint
    assert (tmp_path / "o" / "cat-sweep.csv").exists() and (tmp_path / "o" / "cat-contact.png").exists()


def test_sweep_bad_input(runner, tmp_path):
    src = crop(tmp_path / "cat.png")
    r = run(runner, "sweep", src, "--k", "8..2")
    assert r.exit_code == 2 and "empty K range" in r.stderr
    r = run(runner, "sweep", tmp_path / "missing.png", "--k", "2..3", "-o", tmp_path / "o")
    assert r.exit_code == 1 and "no such file" in r.stderr


def test_info_palette(runner, tmp_path):
    from test_report import count_swatches

    src = crop(tmp_path / "cat.png")
    assert run(runner, "compress", src, "-k", 12).exit_code == 0
    png = tmp_path / "cat-k12.png"
    r = run(runner, "info", png, "--palette", tmp_path / "pal.png")
    assert r.exit_code == 0, r.stderr
    assert "palette swatch" in r.stdout and "12 entries" in r.stdout
    assert len(count_swatches(tmp_path / "pal.png")) == 12
    r = run(runner, "info", png, "--palette", tmp_path / "pal2.png", "--json")
    assert json.loads(r.stdout)["palette_entries"] == 12
    # a photo has no palette: one line, exit 1, nothing written
    r = run(runner, "info", DATA / "coffee.png", "--palette", tmp_path / "pal3.png")
    assert r.exit_code == 1 and "more than 256 colours" in r.stderr
    assert not (tmp_path / "pal3.png").exists()
    r = run(runner, "info", png, "--palette", png)
    assert r.exit_code == 1 and "overwrite" in r.stderr


def test_real_process_exit_code_3_and_sweep(tmp_path):
    """The installed command end to end: --strict's exit code, and a sweep's files."""
    from test_cli_subprocess import run as run_installed

    src = crop(tmp_path / "cat.png")
    p = run_installed("compress", src, "--quality", 60, "--max-colors", 4, "--strict", cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    assert p.stderr.count("\n") == 1 and "60 dB not reached" in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["cat.png"]
    p = run_installed("sweep", src, "--k", "2..4", "-o", "sw", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert {"cat-sweep.csv", "cat-contact.png"} <= {x.name for x in (tmp_path / "sw").iterdir()}


def test_sweep_progress_bar_callbacks():
    from types import SimpleNamespace

    from kmpress.cli.render import sweep_progress

    seen = []
    with sweep_progress(2, True) as on_row:  # drawn on stderr (captured), transient
        for k in (2, 4):
            on_row(SimpleNamespace(k=k))
            seen.append(k)
    with sweep_progress(2, False) as on_row:
        on_row(SimpleNamespace(k=2))
    assert seen == [2, 4]


def test_ctrl_c_inside_a_compiled_kernel_is_an_interrupt(monkeypatch, tmp_path):
    """numba turns a KeyboardInterrupt raised inside a kernel into a SystemError caused by it;
    a batch must treat that as the interrupt (exit 130), not as a failed file."""
    import kmpress.pool
    from kmpress.options import Options
    from kmpress.pool import compress_file

    def interrupted(*args, **kwargs):
        try:
            raise KeyboardInterrupt()
        except KeyboardInterrupt as e:
            raise SystemError("CPUDispatcher(...) returned a result with an exception set") from e

    monkeypatch.setattr(kmpress.pool, "compress", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compress_file(str(tmp_path / "a.png"), str(tmp_path / "b.png"), Options(k=8))

    def broken(*args, **kwargs):
        raise SystemError("a real bug")

    monkeypatch.setattr(kmpress.pool, "compress", broken)
    r = compress_file(str(tmp_path / "a.png"), str(tmp_path / "b.png"), Options(k=8))
    assert r.status == "error" and "SystemError: a real bug" in r.message


def test_compress_starts_and_smooth_reach_the_engine(runner, tmp_path):
    # --starts/--smooth give exactly kmpress.compress(n_init=, smooth=); bad values are usage errors
    import kmpress

    src = crop(tmp_path / "cat.png")
    r = run(runner, "compress", src, "-k", 8, "--starts", 3, "--smooth", 0.3, "-o", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    ref = tmp_path / "ref.png"
    kmpress.compress(src, ref, 8, n_init=3, smooth=0.3)
    assert (tmp_path / "out" / "cat-k8.png").read_bytes() == ref.read_bytes()
    plain = tmp_path / "plain.png"
    kmpress.compress(src, plain, 8)
    assert plain.read_bytes() != ref.read_bytes()
    for bad in (["--starts", 0], ["--smooth", -1], ["--smooth", 0.3, "--dither", "floyd-steinberg"], ["--dither", "ordered"], ["--dither", "adaptive", "--no-dither"]):
        r = run(runner, "compress", src, "-k", 8, *bad, "-o", tmp_path / "bad")
        assert r.exit_code == 2, (bad, r.exit_code, r.stderr)
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
