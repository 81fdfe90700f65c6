"""``kmpress compress`` through typer's CliRunner: the options it forwards to the engine (one
options object), the table and the ``--json`` document, exit codes, one-line messages, batches of
folders, the quality options (``--quality``, ``--psnr``, ``--max-colors``, ``--strict``), ``--space``,
``--dither``, ``--starts``, ``--smooth``, ``--format``, ``--strip`` and ``--skip-if-larger``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import big_png, crop_photo, leftovers, photo, run, small_jpeg
from PIL import Image

import kmpress.cli.main as climain
import kmpress.cli.progress as progress_module
import kmpress.cli.render as render
from kmpress import compress
from kmpress.cli.flags import EXIT_LARGER
from kmpress.cli.progress import Running, progress
from kmpress.errors import InvalidParameterError
from kmpress.options import Options
from kmpress.results import FileResult
from kmpress.stages import STAGES

#: The stages of a compression in RGB (OKLab adds "colorspace" after "histogram").
PLAIN = [s for s in STAGES if s != "colorspace"]


# --------------------------------------------------------------------------------------------
# what compress forwards to the engine (the engine call replaced, the options asserted)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], dict()),
        (["-k", 64, "--seed", 3, "--max-iter", 50, "--tol", 1e-4], dict(k=64, seed=3, max_iter=50, tol=1e-4)),
        (["--psnr", 35, "--max-colors", 64, "--strict"], dict(target_psnr=35, max_colors=64, strict=True)),
        (["--quality", 70, "--max-colors", 64, "--strict"], dict(target_quality=70, max_colors=64, strict=True)),
        (["--quality", "60-80"], dict(target_quality=80, min_quality=60)),
        (["--quality=-80"], dict(target_quality=80)),
        (["--quality", "60-"], dict(target_quality=100, min_quality=60)),
        (["--space", "oklab", "--dither", "floyd-steinberg"], dict(colorspace="oklab", dither="floyd-steinberg")),
        (["--dither", "adaptive"], dict()),
        (["--no-dither"], dict(dither=None)),
        (["--dither-strength", 1], dict(dither_strength=1.0)),
        (
            ["--dither", "floyd-steinberg", "--dither-strength", 0.3],
            dict(dither="floyd-steinberg", dither_strength=0.3),
        ),
        (["--starts", 4, "--smooth", 0.3], dict(n_init=4, smooth=0.3)),
        (["--max-pixels", 0], dict(max_pixels=None)),
        (["--max-pixels", 1000], dict(max_pixels=1000)),
        (["-q"], dict(measure=False)),  # no table: its per-pixel figures are not measured
        (["-q", "--json"], dict()),
    ],
)
def test_compress_forwards_one_options_object(tmp_path, monkeypatch, args, expected):
    import kmpress.batch
    from kmpress.options import Options

    calls = []
    monkeypatch.setattr(kmpress.batch, "compress_many", lambda plan, **kw: calls.append((plan, kw)) or iter(()))
    a = photo(tmp_path / "a.png")
    r = run("compress", a, *args, "-j", 2, "-o", tmp_path / "o")
    assert r.exit_code == 0, r.stderr
    [(plan, kw)] = calls
    assert plan.options == Options(**expected)
    assert (
        set(kw) == {"jobs", "on_start", "on_stage"} and kw["jobs"] == 2 and kw["on_stage"] is None
    )  # no terminal: no stages
    assert [it.dst.parent for it in plan.items] == [tmp_path / "o"]


# --------------------------------------------------------------------------------------------
# compress
# --------------------------------------------------------------------------------------------


def test_compress_writes_beside_input_and_prints_table(tmp_path):
    a = photo(tmp_path / "a.jpg")
    r = run("compress", a, "-k", 4)
    assert r.exit_code == 0, r.output
    out = tmp_path / "a-k4.png"
    with Image.open(out) as im:
        assert im.mode == "P" and len(im.getpalette()) // 3 <= 4
    for col in ("file", "pixels", "K", "input", "output", "out/in", "bits/raw", "PSNR", "iter", "seconds", "total"):
        assert col in r.stdout
    assert "a.jpg" in r.stdout and "1 written, 0 skipped, 0 failed" in r.stdout
    # the second run skips the existing output (exit 0), --force rewrites it
    r = run("compress", a, "-k", 4)
    assert r.exit_code == 0 and "skipped 1" in r.stdout and "--force" in r.stdout
    before = out.stat().st_mtime_ns
    r = run("compress", a, "-k", 4, "--force", "--seed", 3)
    assert r.exit_code == 0 and "1 written" in r.stdout and out.stat().st_mtime_ns != before


def test_compress_out_dir_suffix_and_options(tmp_path):
    a = photo(tmp_path / "in" / "a.png", seed=1)
    r = run(
        "compress",
        a,
        "-o",
        tmp_path / "new" / "dir",
        "--suffix",
        "_{k}c",
        "--colors",
        3,
        "--max-iter",
        2,
        "--tol",
        0,
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    assert r.stdout == ""  # --quiet: nothing on stdout when all is well
    assert (tmp_path / "new" / "dir" / "a_3c.png").exists()


def test_quiet_writes_the_same_file_and_json_keeps_every_figure(tmp_path):
    a = photo(tmp_path / "a.png", seed=4)
    assert run("compress", a, "-k", 8, "-o", tmp_path / "loud").exit_code == 0
    assert run("compress", a, "-k", 8, "-o", tmp_path / "quiet", "-q").exit_code == 0
    assert (tmp_path / "loud" / "a-k8.png").read_bytes() == (tmp_path / "quiet" / "a-k8.png").read_bytes()
    r = run("compress", a, "-k", 8, "-o", tmp_path / "json", "-q", "--json")
    [f] = json.loads(r.stdout)["files"]
    assert all(isinstance(f[name], float) for name in ("ssimulacra2", "psnr", "delta_e"))  # measured: not null


def test_compress_json_document(tmp_path):
    a = photo(tmp_path / "a.png", seed=2)
    b = photo(tmp_path / "b.png", seed=3)
    (tmp_path / "b-k8.png").write_bytes(b"existing")
    r = run("compress", a, b, tmp_path / "gone.png", "-k", 8, "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)  # the whole of stdout is one JSON document
    assert doc["command"] == "compress" and doc["k"] == 8 and doc["exit_code"] == 1
    files = {Path(f["src"]).name: f for f in doc["files"]}
    assert files["a.png"]["status"] == "ok"
    for key in (
        "dst",
        "width",
        "height",
        "pixels",
        "k",
        "colors",
        "input_bytes",
        "output_bytes",
        "file_ratio",
        "bits",
        "bit_depth",
        "psnr",
        "n_iter",
        "converged",
        "seconds",
        "timings",
    ):
        assert key in files["a.png"], key
    assert files["b.png"]["status"] == "skipped" and "exists" in files["b.png"]["message"]
    assert files["gone.png"]["status"] == "error" and "no such file" in files["gone.png"]["message"]
    assert doc["summary"]["ok"] == 1 and doc["summary"]["skipped"] == 1 and doc["summary"]["errors"] == 1
    assert (tmp_path / "b-k8.png").read_bytes() == b"existing"


def test_two_folders_into_one_out_dir(tmp_path):
    """Each folder under a sub-folder of its name: nothing collides, the JSON gives each file's
    paths and the table tells the files of the same name apart by their folders."""
    for season in ("2023-summer", "2023-autumn"):
        for i in range(3):
            photo(tmp_path / "photos" / season / f"DSC_000{i}.jpg", size=(24, 16), seed=i)
    args = ["compress", "photos/2023-summer", "photos/2023-autumn", "-o", "sel", "-k", 4, "-j", 1]
    r = run(*args, "--json", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    pairs = sorted((f["src"], f["dst"], f["status"]) for f in doc["files"])
    assert pairs == sorted(
        (f"photos/{s}/DSC_000{i}.jpg", f"sel/{s}/DSC_000{i}-k4.png", "ok")
        for s in ("2023-summer", "2023-autumn")
        for i in range(3)
    )
    assert all((tmp_path / dst).exists() for _, dst, _ in pairs)
    r = run(*args, "-o", "sel2", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    assert "6 written, 0 skipped, 0 failed" in r.stdout
    for s in ("2023-summer", "2023-autumn"):
        assert f"{s}/DSC_0001.jpg" in r.stdout


def test_a_mixed_batch_writes_the_good_files_and_names_each_bad_one(tmp_path):
    """Corrupt file, text named .jpg, missing path, three good photos: three PNGs, exit 1, each bad
    file named with its reason, no partial file anywhere."""
    d = tmp_path / "photos"
    good = [photo(d / f"g{i}.png", size=(64 + 16 * i, 64), seed=i) for i in range(3)]
    whole = photo(tmp_path / "w.png", size=(128, 128)).read_bytes()
    (d / "corrupt.png").write_bytes(whole[: len(whole) // 3])
    (d / "text.jpg").write_text("hello, I am text\n")
    out = tmp_path / "out"
    r = run("compress", d / "corrupt.png", d / "text.jpg", tmp_path / "missing.jpg", *good, "-o", out, "--jobs", 2)
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


def test_compress_folder_recursive(tmp_path):
    photo(tmp_path / "lib" / "a.png")
    photo(tmp_path / "lib" / "deep" / "b.png", seed=1)
    (tmp_path / "lib" / "readme.txt").write_text("x")
    r = run("compress", tmp_path / "lib", "-k", 2, "-q")
    assert r.exit_code == 0 and (tmp_path / "lib" / "a-k2.png").exists()
    assert not (tmp_path / "lib" / "deep" / "b-k2.png").exists()
    r = run("compress", tmp_path / "lib", "-k", 2, "-q", "--recursive")
    assert r.exit_code == 0 and (tmp_path / "lib" / "deep" / "b-k2.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-k", 0], "-k/--colors must be from 1 to 256, got 0"),
        (["-k", 257], "-k/--colors must be from 1 to 256, got 257"),
        (["--seed", -1], "--seed must be"),
        (["--tol", -1], "--tol must be"),
        (["--max-iter", -1], "--max-iter must be"),
        (["--jobs", 0], "--jobs must be"),
        (["--max-pixels", -5], "--max-pixels must be"),
        (["--suffix", "a/b"], "suffix must not contain a path separator"),
    ],
)
def test_bad_option_values_exit_2_with_one_line(tmp_path, args, message):
    a = photo(tmp_path / "a.png")
    r = run("compress", a, *args)
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().count("\n") == 0 and message in r.stderr and r.stderr.startswith("kmpress: ")
    assert not list(tmp_path.glob("*-k*.png"))


def test_usage_errors_exit_2(tmp_path):
    r = run("compress")
    assert r.exit_code == 2 and "no input given" in r.stderr
    r = run("compress", tmp_path / "nothing.jpg")
    assert r.exit_code == 2 and "nothing.jpg: no such file" in r.stderr
    (tmp_path / "empty").mkdir()
    r = run("compress", tmp_path / "empty")
    assert r.exit_code == 2 and "no image found" in r.stderr
    r = run("compress", photo(tmp_path / "a.png"), "--colors", "many")
    assert r.exit_code == 2
    r = run("compress", tmp_path / "a.png", "--no-such-option")
    assert r.exit_code == 2
    r = run("frobnicate")
    assert r.exit_code == 2


def test_a_collision_fails_only_its_inputs_exit_1(tmp_path):
    a = photo(tmp_path / "x.png")
    b = photo(tmp_path / "x.jpg", seed=4)
    c = photo(tmp_path / "y.png", seed=5)
    r = run("compress", a, b, c)
    assert r.exit_code == 1, r.output
    err = r.stderr.splitlines()
    assert len(err) == 2 and all("same output" in line for line in err)
    assert any(line.startswith(f"kmpress: {a}:") and str(b) in line for line in err)
    assert any(line.startswith(f"kmpress: {b}:") and str(a) in line for line in err)
    assert not (tmp_path / "x-k16.png").exists() and (tmp_path / "y-k16.png").exists()


def test_a_photo_library_in_one_command(tmp_path):
    lib = tmp_path / "Pictures"
    for i, rel in enumerate(
        ["DCIM/100CANON/IMG_0001.JPG", "DCIM/101CANON/IMG_0001.JPG", "trip/a.jpg", "trip/a.png", "b.png"]
    ):
        photo(lib / rel, seed=i)
    r = run("compress", lib, "-r", "-o", tmp_path / "small", "-k", 4, "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    status = {str(Path(f["src"]).relative_to(lib)): f["status"] for f in doc["files"]}
    assert status == {
        "DCIM/100CANON/IMG_0001.JPG": "ok",
        "DCIM/101CANON/IMG_0001.JPG": "ok",
        "trip/a.jpg": "error",
        "trip/a.png": "error",
        "b.png": "ok",
    }
    assert sorted(str(p.relative_to(tmp_path / "small")) for p in (tmp_path / "small").rglob("*.png")) == [
        "DCIM/100CANON/IMG_0001-k4.png",
        "DCIM/101CANON/IMG_0001-k4.png",
        "b-k4.png",
    ]


def test_input_is_never_overwritten(tmp_path):
    a = photo(tmp_path / "a.png")
    before = a.read_bytes()
    r = run("compress", a, "--suffix", "", "--force")
    assert r.exit_code == 1 and "would overwrite an input" in r.stderr
    assert a.read_bytes() == before


def test_over_the_pixel_limit_and_unwritable_out_dir(tmp_path):
    a = photo(tmp_path / "a.png", size=(100, 100))
    r = run("compress", a, "--max-pixels", 5000)
    assert r.exit_code == 1 and "a.png" in r.stderr and "over the limit of 5,000" in r.stderr
    (tmp_path / "afile").write_text("x")
    r = run("compress", a, "-o", tmp_path / "afile")
    assert r.exit_code == 1 and "afile: output folder is a file" in r.stderr
    assert "Traceback" not in r.output


# --------------------------------------------------------------------------------------------
# quality target, colour space, dithering, starts and smoothing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["-k", "8", "--quality", "30"], "give either -k/--colors or --quality, not both"),
        (["-k", "8", "--psnr", "30"], "give either -k/--colors or --psnr, not both"),
        (["--quality", "70", "--psnr", "30"], "--psnr"),
        (["--max-colors", "8"], "--max-colors"),
        (["--strict"], "--strict"),
        (["--psnr", "-3"], "--psnr"),
        (["--quality", "101"], "--quality must be a finite number in [0, 100]"),
        (["--quality", "high"], "must be N or MIN-MAX"),
        (["--quality", "80-60"], "the minimum quality 80 is above the target 60"),
        (["--quality", "60-80", "--strict"], "--strict"),
        (["--quality", "30", "--max-colors", "300"], "--max-colors"),
        (["--space", "hsv"], "--space"),
        (["--quality", "30", "--suffix", "-k{k}"], "{k}"),
    ],
)
def test_usage_errors(tmp_path, args, message):
    src = crop_photo(tmp_path / "cat.png")
    r = run("compress", src, *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png"]


def test_space_and_dither_reach_the_engine(tmp_path):
    import kmpress

    src = crop_photo(tmp_path / "cat.png")
    r = run("compress", src, "-k", 8, "--space", "oklab", "--dither", "floyd-steinberg", "--json", "--suffix", "-a")
    assert r.exit_code == 0, r.stderr
    (f,) = json.loads(r.stdout)["files"]
    q = kmpress.quantize(kmpress.read_image(src), 8, colorspace="oklab", dither="floyd-steinberg")
    assert f["psnr"] == pytest.approx(q.psnr)
    with Image.open(tmp_path / "cat-a.png") as im:
        assert np.array_equal(np.array(im), q.indices)
    r = run("compress", src, "-k", 8, "--no-dither", "--json", "--suffix", "-b")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["files"][0]["psnr"] == pytest.approx(
        kmpress.quantize(kmpress.read_image(src), 8, dither=None).psnr
    )


def test_batch_carries_the_options_to_workers(tmp_path):
    a = crop_photo(tmp_path / "a.png")
    b = crop_photo(tmp_path / "b.png", name="coffee")
    r = run("compress", a, b, "--psnr", 30, "--max-colors", 40, "--space", "oklab", "--jobs", 2, "--json")
    assert r.exit_code == 0, r.stderr
    files = json.loads(r.stdout)["files"]
    assert [Path(f["dst"]).name for f in sorted(files, key=lambda f: f["src"])] == ["a-psnr30.png", "b-psnr30.png"]
    for f in files:
        assert f["target_psnr"] == 30 and f["psnr"] >= 30 and f["k"] <= 40 and f["colorspace"] == "oklab"


def test_compress_starts_and_smooth_reach_the_engine(tmp_path):
    # --starts/--smooth give exactly kmpress.compress(n_init=, smooth=); bad values are usage errors
    import kmpress

    src = crop_photo(tmp_path / "cat.png")
    r = run("compress", src, "-k", 8, "--starts", 3, "--smooth", 0.3, "-o", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    ref = tmp_path / "ref.png"
    kmpress.compress(src, ref, 8, n_init=3, smooth=0.3)
    assert (tmp_path / "out" / "cat-k8.png").read_bytes() == ref.read_bytes()
    plain = tmp_path / "plain.png"
    kmpress.compress(src, plain, 8)
    assert plain.read_bytes() != ref.read_bytes()
    for bad in (
        ["--starts", 0],
        ["--smooth", -1],
        ["--smooth", 0.3, "--dither", "floyd-steinberg"],
        ["--dither", "ordered"],
        ["--dither", "adaptive", "--no-dither"],
        ["--dither-strength", 0],
        ["--dither-strength", 1.5],
        ["--no-dither", "--dither-strength", 0.5],
    ):
        r = run("compress", src, "-k", 8, *bad, "-o", tmp_path / "bad")
        assert r.exit_code == 2, (bad, r.exit_code, r.stderr)
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


# --------------------------------------------------------------------------------------------
# --format, --strip and --skip-if-larger
# --------------------------------------------------------------------------------------------


def test_skip_if_larger_with_every_file_skipped_exits_98(tmp_path):
    a = small_jpeg(tmp_path / "a.jpg")
    r = run("compress", a, "-k", 256, "--skip-if-larger", "--json")
    assert r.exit_code == EXIT_LARGER == 98
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


def test_skip_if_larger_with_some_written_exits_0_and_failures_still_exit_1(tmp_path):
    a = small_jpeg(tmp_path / "a.jpg")
    b = big_png(tmp_path / "b.png")
    r = run("compress", a, b, "-k", 256, "--skip-if-larger", "--json", "-j", 1)
    assert r.exit_code == 0, r.stderr
    status = {Path(f["src"]).name: f["status"] for f in json.loads(r.stdout)["files"]}
    assert status == {"a.jpg": "skipped", "b.png": "ok"}
    (tmp_path / "bad.jpg").write_text("not a photo")
    r = run("compress", a, tmp_path / "bad.jpg", "-k", 256, "--skip-if-larger", "-j", 1, "--force")
    assert r.exit_code == 1


def test_bad_format_is_a_usage_error(tmp_path, photo_paths):
    r = run("compress", photo_paths["chelsea"], "--format", "bogus", "-o", tmp_path)
    assert r.exit_code == 2
    assert r.stderr.strip() == "kmpress: --format must be one of 'png', 'webp', not 'bogus'"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InvalidParameterError, match="format must be one of"):
        Options(format="gif")
    assert Options(format="WebP").format == "webp" and Options(format="webp").extension == ".webp"


def test_format_strip_and_skip_if_larger_are_forwarded_in_the_options_object(tmp_path, monkeypatch):
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


# --------------------------------------------------------------------------------------------
# the progress bar: files running and their stages
# --------------------------------------------------------------------------------------------


def test_running_files_show_their_stage_once_they_take_long():
    now = [100.0]
    r = Running(stage_after=2.0, clock=lambda: now[0])
    r.start("/photos/big.tif")
    r.stage("/photos/big.tif", "read")
    assert r.describe() == "big.tif"  # a file that may be quick: no flicker of stages
    now[0] += 2.5
    assert r.describe() == "big.tif: read"
    r.stage("/photos/big.tif", "lloyd")
    r.start("/photos/small.jpg")
    r.stage("/photos/small.jpg", "histogram")
    assert r.describe() == "big.tif: lloyd, small.jpg"
    r.stage("/photos/gone.png", "write")  # a late report of a file not running: ignored
    for name in ("c.png", "d.png"):
        r.start(f"/x/{name}")
    assert r.describe() == "big.tif: lloyd, small.jpg, c.png ..."
    assert r.finish("/photos/big.tif") and not r.finish("/photos/big.tif")
    assert r.describe() == "small.jpg, c.png, d.png"


@pytest.fixture
def terminal(monkeypatch):
    """The progress bar drawn on a fake terminal (a StringIO rich console that thinks it is one)."""
    from rich.console import Console

    class Screen(io.StringIO):
        def close(self) -> None:  # the bar closes its stream when done; keep what was drawn
            pass

    buf = Screen()
    monkeypatch.setattr(render, "_terminal_console", lambda: Console(file=buf, force_terminal=True, width=200))
    return buf


def test_the_bar_draws_the_file_and_its_stage(terminal):
    with progress(1, True, stage_after=0) as (started, finished, staged):
        started("/photos/big.tif")
        staged("/photos/big.tif", "lloyd")  # drawn at once
        finished("/photos/big.tif")
    assert "big.tif: lloyd" in terminal.getvalue()
    with progress(1, False) as (started, finished, staged):
        assert staged is None  # disabled: nothing for the engine to report to


def test_the_cli_shows_each_stage_of_a_file_on_a_terminal(tmp_path, monkeypatch, terminal):
    """The real engine, in process, through the CLI: every stage's "<file>: <stage>" is drawn,
    in order (with the threshold at 0; by default a file shows its stages after 2 s)."""
    monkeypatch.setattr(climain, "_want_progress", lambda quiet, as_json: True)
    monkeypatch.setattr(progress_module, "STAGE_AFTER", 0.0)
    src = photo(tmp_path / "holiday.png", size=(80, 60))
    r = run("compress", src, "-k", 8, "-o", tmp_path / "o")
    assert r.exit_code == 0, r.stderr
    drawn = terminal.getvalue()
    at = [drawn.find(f"holiday.png: {stage}") for stage in PLAIN]
    assert all(i >= 0 for i in at), drawn[-2000:]
    assert at == sorted(at)
    assert (tmp_path / "o" / "holiday-k8.png").read_bytes() == _reference(src, tmp_path)


def _reference(src: Path, tmp_path: Path) -> bytes:
    compress(src, tmp_path / "ref.png", 8)
    return (tmp_path / "ref.png").read_bytes()


def test_the_cli_passes_its_stage_callback_to_the_batch(tmp_path, monkeypatch, terminal):
    import kmpress.batch

    monkeypatch.setattr(climain, "_want_progress", lambda quiet, as_json: True)
    monkeypatch.setattr(progress_module, "STAGE_AFTER", 0.0)
    src = photo(tmp_path / "pano.png", size=(80, 60))

    def fake(plan, jobs=None, on_start=None, on_stage=None):
        [it] = plan.items
        on_start(str(it.src))
        on_stage(str(it.src), "remap")
        yield FileResult(str(it.src), str(it.dst), "skipped", "a test")

    monkeypatch.setattr(kmpress.batch, "compress_many", fake)
    r = run("compress", src, "-o", tmp_path / "o")
    assert r.exit_code == 0, r.stderr
    assert "pano.png: remap" in terminal.getvalue()
