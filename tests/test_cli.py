"""The kmpress CLI through typer's CliRunner: options, exit codes, messages, JSON shape."""

from __future__ import annotations

import json
import os
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


def run(runner, *args, cwd=None):
    """Invoke the app; stdout and stderr separately (typer >= 0.12 / click 8.2 keep them apart)."""
    if cwd is not None:
        old = os.getcwd()
        os.chdir(cwd)
    try:
        return runner.invoke(app, [str(a) for a in args], prog_name="kmpress")
    finally:
        if cwd is not None:
            os.chdir(old)


def photo(path: Path, size=(72, 48), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img[: size[1] // 2] //= 4  # two regions, so k-means has something to find
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------------------------
# help and defaults
# --------------------------------------------------------------------------------------------


def test_help_lists_commands_and_exit_codes(runner):
    r = run(runner, "--help")
    assert r.exit_code == 0
    for word in ("compress", "demo", "info", "Exit codes", "130 interrupted", "2 usage error"):
        assert word in r.stdout
    r = run(runner, "compress", "--help")
    assert r.exit_code == 0
    for opt in ("--colors", "--out-dir", "--suffix", "--force", "--jobs", "--seed", "--max-iter", "--tol",
                "--json", "--quiet", "--recursive", "--debug", "--max-pixels", "Exit codes"):
        assert opt in r.stdout, opt


def test_help_does_not_import_the_engine():
    import subprocess

    code = "import sys, kmpress.cli.main; print(sorted(m for m in ('numba', 'numpy', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_help_shows_the_defaults_of_the_options_object(runner):
    from kmpress.options import Options

    o = Options()
    text = " ".join(run(runner, "compress", "--help").stdout.split())
    for shown in (f"[default: {o.max_iter}]", f"[default: {o.tol}]", f"[default: {o.max_pixels}:", f"[default: {o.k}]",
                  f"[default: {o.colorspace}]", f"[default: {o.n_init}]", f"[default: {o.max_colors}]", "[default: adaptive]"):
        assert shown in text, shown


# --------------------------------------------------------------------------------------------
# what the commands forward to the engine (the engine call replaced, the options asserted)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], dict()),
        (["-k", 64, "--seed", 3, "--max-iter", 50, "--tol", 1e-4], dict(k=64, seed=3, max_iter=50, tol=1e-4)),
        (["--quality", 35, "--max-colors", 64, "--strict"], dict(target_psnr=35, max_colors=64, strict=True)),
        (["--space", "oklab", "--dither", "floyd-steinberg"], dict(colorspace="oklab", dither="floyd-steinberg")),
        (["--dither", "adaptive"], dict()),
        (["--no-dither"], dict(dither=None)),
        (["--starts", 4, "--smooth", 0.3], dict(n_init=4, smooth=0.3)),
        (["--max-pixels", 0], dict(max_pixels=None)),
        (["--max-pixels", 1000], dict(max_pixels=1000)),
    ],
)
def test_compress_forwards_one_options_object(runner, tmp_path, monkeypatch, args, expected):
    import kmpress.batch
    from kmpress.options import Options

    calls = []
    monkeypatch.setattr(kmpress.batch, "compress_many", lambda plan, **kw: calls.append((plan, kw)) or iter(()))
    a = photo(tmp_path / "a.png")
    r = run(runner, "compress", a, *args, "-j", 2, "-o", tmp_path / "o")
    assert r.exit_code == 0, r.stderr
    [(plan, kw)] = calls
    assert plan.options == Options(**expected)
    assert set(kw) == {"jobs", "on_start", "on_stage"} and kw["jobs"] == 2 and kw["on_stage"] is None  # no terminal: no stages
    assert [it.dst.parent for it in plan.items] == [tmp_path / "o"]


def test_demo_and_sweep_forward_their_options(runner, tmp_path, monkeypatch):
    import kmpress.report
    from kmpress.options import Options

    seen = {}

    def fake_demo(out_dir, options=None, **kw):
        seen["demo"] = (out_dir, options)
        return [], None

    def fake_sweep(src, out_dir, ks, options=None, on_row=None):
        seen["sweep"] = (src, out_dir, ks, options)
        raise KeyboardInterrupt  # the command stops here; its exit code is the interrupt's

    monkeypatch.setattr(kmpress.report, "run_demo", fake_demo)
    monkeypatch.setattr(kmpress.report, "write_sweep", fake_sweep)
    r = run(runner, "demo", "-o", tmp_path / "d", "--seed", 2, "--space", "oklab", "--json")
    assert r.exit_code == 0 and seen["demo"] == (tmp_path / "d", Options(seed=2, colorspace="oklab"))
    r = run(runner, "sweep", tmp_path / "x.png", "-k", "2..4", "--tol", 0, "--dither", "floyd-steinberg")
    assert r.exit_code == 130
    assert seen["sweep"] == (tmp_path / "x.png", Path("kmpress-sweep"), [2, 3, 4], Options(tol=0, dither="floyd-steinberg"))


# --------------------------------------------------------------------------------------------
# compress
# --------------------------------------------------------------------------------------------


def test_compress_writes_beside_input_and_prints_table(runner, tmp_path):
    a = photo(tmp_path / "a.jpg")
    r = run(runner, "compress", a, "-k", 4)
    assert r.exit_code == 0, r.output
    out = tmp_path / "a-k4.png"
    with Image.open(out) as im:
        assert im.mode == "P" and len(im.getpalette()) // 3 <= 4
    for col in ("file", "pixels", "K", "input", "output", "out/in", "bits/raw", "PSNR", "iter", "seconds", "total"):
        assert col in r.stdout
    assert "a.jpg" in r.stdout and "1 written, 0 skipped, 0 failed" in r.stdout
    # the second run skips the existing output (exit 0), --force rewrites it
    r = run(runner, "compress", a, "-k", 4)
    assert r.exit_code == 0 and "skipped 1" in r.stdout and "--force" in r.stdout
    before = out.stat().st_mtime_ns
    r = run(runner, "compress", a, "-k", 4, "--force", "--seed", 3)
    assert r.exit_code == 0 and "1 written" in r.stdout and out.stat().st_mtime_ns != before


def test_compress_out_dir_suffix_and_options(runner, tmp_path):
    a = photo(tmp_path / "in" / "a.png", seed=1)
    r = run(runner, "compress", a, "-o", tmp_path / "new" / "dir", "--suffix", "_{k}c", "--colors", 3,
            "--max-iter", 2, "--tol", 0, "--quiet")
    assert r.exit_code == 0, r.output
    assert r.stdout == ""  # --quiet: nothing on stdout when all is well
    assert (tmp_path / "new" / "dir" / "a_3c.png").exists()


def test_compress_json_document(runner, tmp_path):
    a = photo(tmp_path / "a.png", seed=2)
    b = photo(tmp_path / "b.png", seed=3)
    (tmp_path / "b-k8.png").write_bytes(b"existing")
    r = run(runner, "compress", a, b, tmp_path / "gone.png", "-k", 8, "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)  # the whole of stdout is one JSON document
    assert doc["command"] == "compress" and doc["k"] == 8 and doc["exit_code"] == 1
    files = {Path(f["src"]).name: f for f in doc["files"]}
    assert files["a.png"]["status"] == "ok"
    for key in ("dst", "width", "height", "pixels", "k", "colors", "input_bytes", "output_bytes", "file_ratio",
                "bits", "bit_depth", "psnr", "n_iter", "converged", "seconds", "timings"):
        assert key in files["a.png"], key
    assert files["b.png"]["status"] == "skipped" and "exists" in files["b.png"]["message"]
    assert files["gone.png"]["status"] == "error" and "no such file" in files["gone.png"]["message"]
    assert doc["summary"]["ok"] == 1 and doc["summary"]["skipped"] == 1 and doc["summary"]["errors"] == 1
    assert (tmp_path / "b-k8.png").read_bytes() == b"existing"


def test_two_folders_into_one_out_dir(runner, tmp_path):
    """Each folder under a sub-folder of its name: nothing collides, the JSON gives each file's
    paths and the table tells the files of the same name apart by their folders."""
    for season in ("2023-summer", "2023-autumn"):
        for i in range(3):
            photo(tmp_path / "photos" / season / f"DSC_000{i}.jpg", size=(24, 16), seed=i)
    args = ["compress", "photos/2023-summer", "photos/2023-autumn", "-o", "sel", "-k", 4, "-j", 1]
    r = run(runner, *args, "--json", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    pairs = sorted((f["src"], f["dst"], f["status"]) for f in doc["files"])
    assert pairs == sorted((f"photos/{s}/DSC_000{i}.jpg", f"sel/{s}/DSC_000{i}-k4.png", "ok")
                           for s in ("2023-summer", "2023-autumn") for i in range(3))
    assert all((tmp_path / dst).exists() for _, dst, _ in pairs)
    r = run(runner, *args, "-o", "sel2", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    assert "6 written, 0 skipped, 0 failed" in r.stdout
    for s in ("2023-summer", "2023-autumn"):
        assert f"{s}/DSC_0001.jpg" in r.stdout


def test_the_mixed_batch_of_the_issue(runner, tmp_path):
    """Corrupt file, text named .jpg, missing path, three good photos: three PNGs, exit 1, each bad
    file named with its reason, no partial file anywhere."""
    d = tmp_path / "photos"
    good = [photo(d / f"g{i}.png", size=(64 + 16 * i, 64), seed=i) for i in range(3)]
    whole = photo(tmp_path / "w.png", size=(128, 128)).read_bytes()
    (d / "corrupt.png").write_bytes(whole[: len(whole) // 3])
    (d / "text.jpg").write_text("hello, I am text\n")
    out = tmp_path / "out"
    r = run(runner, "compress", d / "corrupt.png", d / "text.jpg", tmp_path / "missing.jpg", *good, "-o", out, "--jobs", 2)
    assert r.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == ["g0-k16.png", "g1-k16.png", "g2-k16.png"]
    err = r.stderr.splitlines()
    assert any("corrupt.png" in line and "truncated" in line for line in err), err
    assert any("text.jpg" in line and "not an image" in line for line in err), err
    assert any("missing.jpg" in line and "no such file" in line for line in err), err
    assert len(err) == 3 and all(line.startswith("kmpress: ") for line in err)
    assert "3 written, 0 skipped, 3 failed" in r.stdout
    assert not leftovers(tmp_path)
    assert "Traceback" not in r.output


def test_compress_folder_recursive(runner, tmp_path):
    photo(tmp_path / "lib" / "a.png")
    photo(tmp_path / "lib" / "deep" / "b.png", seed=1)
    (tmp_path / "lib" / "readme.txt").write_text("x")
    r = run(runner, "compress", tmp_path / "lib", "-k", 2, "-q")
    assert r.exit_code == 0 and (tmp_path / "lib" / "a-k2.png").exists()
    assert not (tmp_path / "lib" / "deep" / "b-k2.png").exists()
    r = run(runner, "compress", tmp_path / "lib", "-k", 2, "-q", "--recursive")
    assert r.exit_code == 0 and (tmp_path / "lib" / "deep" / "b-k2.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-k", 0], "k must be from 1 to 256, got 0"),
        (["-k", 257], "k must be from 1 to 256, got 257"),
        (["--seed", -1], "seed must be"),
        (["--tol", -1], "tol must be"),
        (["--max-iter", -1], "max_iter must be"),
        (["--jobs", 0], "jobs must be"),
        (["--max-pixels", -5], "max_pixels must be"),
        (["--suffix", "a/b"], "suffix must not contain a path separator"),
    ],
)
def test_bad_option_values_exit_2_with_one_line(runner, tmp_path, args, message):
    a = photo(tmp_path / "a.png")
    r = run(runner, "compress", a, *args)
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().count("\n") == 0 and message in r.stderr and r.stderr.startswith("kmpress: ")
    assert not list(tmp_path.glob("*-k*.png"))


def test_usage_errors_exit_2(runner, tmp_path):
    r = run(runner, "compress")
    assert r.exit_code == 2 and "no input given" in r.stderr
    r = run(runner, "compress", tmp_path / "nothing.jpg")
    assert r.exit_code == 2 and "nothing.jpg: no such file" in r.stderr
    (tmp_path / "empty").mkdir()
    r = run(runner, "compress", tmp_path / "empty")
    assert r.exit_code == 2 and "no image found" in r.stderr
    r = run(runner, "compress", photo(tmp_path / "a.png"), "--colors", "many")
    assert r.exit_code == 2
    r = run(runner, "compress", tmp_path / "a.png", "--no-such-option")
    assert r.exit_code == 2
    r = run(runner, "frobnicate")
    assert r.exit_code == 2


def test_a_collision_fails_only_its_inputs_exit_1(runner, tmp_path):
    a = photo(tmp_path / "x.png")
    b = photo(tmp_path / "x.jpg", seed=4)
    c = photo(tmp_path / "y.png", seed=5)
    r = run(runner, "compress", a, b, c)
    assert r.exit_code == 1, r.output
    err = r.stderr.splitlines()
    assert len(err) == 2 and all("same output" in line for line in err)
    assert any(line.startswith(f"kmpress: {a}:") and str(b) in line for line in err)
    assert any(line.startswith(f"kmpress: {b}:") and str(a) in line for line in err)
    assert not (tmp_path / "x-k16.png").exists() and (tmp_path / "y-k16.png").exists()


def test_a_photo_library_in_one_command(runner, tmp_path):
    lib = tmp_path / "Pictures"
    for i, rel in enumerate(["DCIM/100CANON/IMG_0001.JPG", "DCIM/101CANON/IMG_0001.JPG", "trip/a.jpg", "trip/a.png", "b.png"]):
        photo(lib / rel, seed=i)
    r = run(runner, "compress", lib, "-r", "-o", tmp_path / "small", "-k", 4, "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    status = {str(Path(f["src"]).relative_to(lib)): f["status"] for f in doc["files"]}
    assert status == {"DCIM/100CANON/IMG_0001.JPG": "ok", "DCIM/101CANON/IMG_0001.JPG": "ok", "trip/a.jpg": "error",
                      "trip/a.png": "error", "b.png": "ok"}
    assert sorted(str(p.relative_to(tmp_path / "small")) for p in (tmp_path / "small").rglob("*.png")) == [
        "DCIM/100CANON/IMG_0001-k4.png", "DCIM/101CANON/IMG_0001-k4.png", "b-k4.png"]


@pytest.mark.parametrize(
    "args, code, says",
    [
        (["compress"], 2, "no input given"),
        (["compress", "{d}/a.png", "--bogus"], 2, "No such option"),
        (["compress", "{d}/a.png", "-k", "many"], 2, "valid int"),  # click says "integer" or "int"
        (["compress", "{d}/a.png", "-k", "0"], 2, "k must be from 1 to 256"),
        (["compress", "{d}/nothing.jpg"], 2, "no image found"),
        (["compress", "{d}/a.png", "-o", "{d}/afile"], 1, "output folder is a file"),
        (["frobnicate"], 2, "No such command"),
        (["info", "{d}/nothing.png"], 1, "no such file"),
        (["info", "{d}/a.png", "--max-pixels", "10"], 1, "over the limit of 10"),
        (["sweep", "{d}/afile", "-k", "2,3", "-o", "{d}/sw"], 1, "not an image"),
    ],
)
def test_json_every_run_prints_one_document(runner, tmp_path, args, code, says):
    photo(tmp_path / "a.png")
    (tmp_path / "afile").write_text("x")
    r = run(runner, *[a.format(d=tmp_path) for a in args], "--json")
    assert r.exit_code == code, r.output
    doc = json.loads(r.stdout)  # the whole of stdout, even for a usage error
    assert doc["exit_code"] == code and says in doc["error"] and "\n" not in doc["error"]
    assert doc["command"] == (None if args[0] == "frobnicate" else args[0])
    assert "Traceback" not in r.stderr


def test_json_of_the_other_commands_carries_the_exit_code(runner, tmp_path):
    a = photo(tmp_path / "a.png")
    r = run(runner, "info", a, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["exit_code"] == 0 and json.loads(r.stdout)["command"] == "info"


def test_input_is_never_overwritten(runner, tmp_path):
    a = photo(tmp_path / "a.png")
    before = a.read_bytes()
    r = run(runner, "compress", a, "--suffix", "", "--force")
    assert r.exit_code == 1 and "would overwrite an input" in r.stderr
    assert a.read_bytes() == before


def test_over_the_pixel_limit_and_unwritable_out_dir(runner, tmp_path):
    a = photo(tmp_path / "a.png", size=(100, 100))
    r = run(runner, "compress", a, "--max-pixels", 5000)
    assert r.exit_code == 1 and "a.png" in r.stderr and "over the limit of 5,000" in r.stderr
    (tmp_path / "afile").write_text("x")
    r = run(runner, "compress", a, "-o", tmp_path / "afile")
    assert r.exit_code == 1 and "afile: output folder is a file" in r.stderr
    assert "Traceback" not in r.output


def test_debug_shows_the_traceback(runner, tmp_path, monkeypatch):
    import kmpress.batch

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(kmpress.batch, "plan_batch", boom)
    a = photo(tmp_path / "a.png")
    r = run(runner, "compress", a)
    assert r.exit_code == 1 and "internal error: RuntimeError: kaboom" in r.stderr and "Traceback" not in r.stderr
    r = run(runner, "compress", a, "--debug")
    assert r.exit_code == 1 and "Traceback" in r.stderr


def test_ctrl_c_exits_130(runner, tmp_path, monkeypatch):
    import kmpress.batch

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(kmpress.batch, "compress_many", interrupted)
    r = run(runner, "compress", photo(tmp_path / "a.png"))
    assert r.exit_code == 130 and "interrupted" in r.stderr


# --------------------------------------------------------------------------------------------
# demo and info
# --------------------------------------------------------------------------------------------


def test_demo(runner, tmp_path):
    r = run(runner, "demo", "--out-dir", tmp_path / "d")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert names == ["astronaut-k16.png", "astronaut-k4.png", "astronaut-k64.png", "comparison.png"]
    assert "astronaut-k64.png" in r.stdout and "comparison" in r.stdout and "dB" in r.stdout
    with Image.open(tmp_path / "d" / "comparison.png") as im:
        assert im.width > 3 * im.height  # four square panels side by side, labels underneath
    # run again: the demo replaces its own files
    r = run(runner, "demo", "--out-dir", tmp_path / "d", "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and [f["k"] for f in doc["files"]] == [4, 16, 64]
    assert all(f["status"] == "ok" for f in doc["files"]) and doc["comparison"].endswith("comparison.png")


def test_info(runner, tmp_path):
    a = photo(tmp_path / "a.png")
    assert run(runner, "compress", a, "-k", 4, "-q").exit_code == 0
    r = run(runner, "info", tmp_path / "a-k4.png", "--against", a)
    assert r.exit_code == 0, r.output
    for word in ("72 x 48", "mode", "P", "palette size", "bit depth", "2 bits per index", "PSNR", "dB"):
        assert word in r.stdout, word
    r = run(runner, "info", tmp_path / "a-k4.png", "--against", a, "--json")
    doc = json.loads(r.stdout)
    assert doc["mode"] == "P" and doc["palette_size"] <= 4 and doc["bit_depth"] == 2 and doc["psnr"] > 0
    r = run(runner, "info", tmp_path / "none.png")
    assert r.exit_code == 1 and "none.png: no such file" in r.stderr
    r = run(runner, "info", a, "--against", photo(tmp_path / "small.png", size=(8, 8)))
    assert r.exit_code == 1 and "sizes differ" in r.stderr


# --------------------------------------------------------------------------------------------
# numba cache location
# --------------------------------------------------------------------------------------------
