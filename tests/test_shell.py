"""Shell habits: ``kmpress --version`` (the package metadata, one source), and ``--skip-if-larger``
(library and CLI: nothing written, both sizes in the table and in ``--json``, exit code 98 when no
file is written for that reason, as pngquant)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import kmpress
import kmpress.cli.main as climain
from kmpress.cli.main import app
from kmpress.errors import InvalidParameterError

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parent.parent


def run(*args, input=None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input, prog_name="kmpress")


def small_jpeg(path: Path, quality=50) -> Path:
    """A JPEG so small that a K=256 PNG of it is several times larger."""
    with Image.open(DATA / "chelsea.png") as im:
        im.convert("RGB").crop((100, 50, 300, 200)).save(path, quality=quality)
    return path


def big_png(path: Path) -> Path:
    """A test photo as an RGB PNG (220 kB): at K=256 its palette PNG is far smaller (83 kB)."""
    path.write_bytes((DATA / "chelsea.png").read_bytes())
    return path


# --------------------------------------------------------------------------------------------
# --version
# --------------------------------------------------------------------------------------------


def test_version_is_the_package_metadata():
    assert kmpress.__version__ == version("kmpress")
    r = run("--version")
    assert r.exit_code == 0 and r.stdout == f"kmpress {version('kmpress')}\n"
    assert "--version" in run("--help").stdout


def test_version_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from kmpress.cli.main import main\n"
        "sys.argv = ['kmpress', '--version']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, sorted(m for m in ('numpy', 'numba', 'PIL') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.splitlines()[-1] == "0 []"
    assert out.stdout.splitlines()[0] == f"kmpress {version('kmpress')}"


# --------------------------------------------------------------------------------------------
# --skip-if-larger
# --------------------------------------------------------------------------------------------


def test_library_skip_if_larger(tmp_path):
    src = small_jpeg(tmp_path / "a.jpg")
    rep = kmpress.compress(src, tmp_path / "a.png", 256, skip_if_larger=True)
    assert rep.written is False and not (tmp_path / "a.png").exists()
    assert rep.output_bytes > rep.input_bytes == src.stat().st_size
    assert rep.as_dict()["written"] is False
    # the same call without the option writes exactly the size reported
    rep2 = kmpress.compress(src, tmp_path / "a.png", 256)
    assert rep2.written and (tmp_path / "a.png").stat().st_size == rep.output_bytes
    # smaller outputs are written as usual
    rep3 = kmpress.compress(src, tmp_path / "b.png", 2, skip_if_larger=True)
    assert rep3.written and (tmp_path / "b.png").stat().st_size == rep3.output_bytes < rep3.input_bytes
    # an image in memory has no input file to compare with
    with pytest.raises(InvalidParameterError, match="skip_if_larger compares the output with the input file"):
        kmpress.compress(np.zeros((4, 4, 3), np.uint8), tmp_path / "c.png", 2, skip_if_larger=True)


def test_batch_skip_if_larger_reports_both_sizes(tmp_path):
    small_jpeg(tmp_path / "a.jpg")
    small_jpeg(tmp_path / "b.jpg", quality=40)
    results = list(kmpress.compress_many([tmp_path], k=256, skip_if_larger=True, jobs=1))
    assert {r.status for r in results} == {"skipped"}
    for r in results:
        assert r.skipped_larger and not Path(r.dst).exists()
        d = r.as_dict()
        assert d["skip_reason"] == "larger" and d["output_bytes"] > d["input_bytes"] > 0
        assert f"{d['output_bytes']:,} bytes" in r.message and f"{d['input_bytes']:,}" in r.message


def test_cli_all_skipped_for_size_exits_98(tmp_path):
    a = small_jpeg(tmp_path / "a.jpg")
    r = run("compress", a, "-k", 256, "--skip-if-larger", "--json")
    assert r.exit_code == climain.EXIT_LARGER == 98
    doc = json.loads(r.stdout)
    (f,) = doc["files"]
    assert f["status"] == "skipped" and f["skip_reason"] == "larger" and f["written"] is False
    assert f["output_bytes"] > f["input_bytes"] == a.stat().st_size
    assert doc["summary"]["skipped_larger"] == 1 and doc["summary"]["ok"] == 0 and doc["exit_code"] == 98
    # the table shows the file with both sizes, marked, and the reason below it
    r = run("compress", a, "-k", 256, "--skip-if-larger")
    assert r.exit_code == 98
    assert "a.jpg (not written: larger)" in r.stdout and "--skip-if-larger" in r.stdout
    size = a.stat().st_size
    assert f"input's {size:,}" in r.stdout
    assert "0 written, 1 skipped, 0 failed" in r.stdout
    assert not (tmp_path / "a-k256.png").exists()
    # to standard output: nothing there, the reason on stderr, the same exit code
    r = run("compress", a, "-k", 256, "--skip-if-larger", "-o", "-")
    assert r.exit_code == 98 and r.stdout_bytes == b""
    assert r.stderr.startswith("kmpress: ") and "--skip-if-larger" in r.stderr and len(r.stderr.splitlines()) == 1


def test_cli_some_written_exits_0_and_failures_still_exit_1(tmp_path):
    a = small_jpeg(tmp_path / "a.jpg")
    b = big_png(tmp_path / "b.png")
    r = run("compress", a, b, "-k", 256, "--skip-if-larger", "--json", "-j", 1)
    assert r.exit_code == 0, r.stderr
    status = {Path(f["src"]).name: f["status"] for f in json.loads(r.stdout)["files"]}
    assert status == {"a.jpg": "skipped", "b.png": "ok"}
    (tmp_path / "bad.jpg").write_text("not a photo")
    r = run("compress", a, tmp_path / "bad.jpg", "-k", 256, "--skip-if-larger", "-j", 1, "--force")
    assert r.exit_code == 1


def test_help_documents_the_new_options_and_exit_code_98():
    text = " ".join(run("compress", "--help").stdout.split())
    for opt in ("--format", "--strip", "--skip-if-larger", "98", "standard input", "[default: png]"):
        assert opt in text, opt


def test_the_new_flags_are_forwarded_in_the_options_object(tmp_path, monkeypatch):
    import kmpress.batch
    from kmpress.options import Options

    calls = []
    monkeypatch.setattr(kmpress.batch, "compress_many", lambda plan, **kw: calls.append(plan) or iter(()))
    a = big_png(tmp_path / "a.png")
    r = run("compress", a, "--format", "webp", "--strip", "--skip-if-larger", "-o", tmp_path / "o")
    assert r.exit_code == 0, r.stderr
    [plan] = calls
    assert plan.options == Options(format="webp", strip=True, skip_if_larger=True)
    assert [it.dst.name for it in plan.items] == ["a-k16.webp"]


def test_python_dash_m_kmpress_version():
    out = subprocess.run([sys.executable, "-m", "kmpress", "--version"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0 and out.stdout == f"kmpress {version('kmpress')}\n"
