"""The plumbing of the benchmark suite: the ``--benchmark`` switch of the root conftest and the
speed-up table. No timing is asserted: only which bodies run, how often, and what is saved/printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.summary import KS, STAGES, Record, group_name, speedup_lines

ROOT = Path(__file__).resolve().parent.parent

# A stand-in suite: two benchmarks (numba, numpy) of one stage and an ordinary test. Every call of
# a body appends its implementation's name to calls.txt, so the run count can be read back.
DUMMY = """
import pathlib
import time

import pytest

CALLS = pathlib.Path(__file__).with_name("calls.txt")


def test_ordinary():
    pass


@pytest.mark.parametrize("impl", ["numba", "numpy"])
def test_bench(benchmark, impl):
    benchmark.group = "1-histogram"
    benchmark.extra_info.update(stage="histogram", K=None, impl=impl)

    def body():
        with CALLS.open("a") as f:
            f.write(impl + "\\n")
        time.sleep(0.001 if impl == "numba" else 0.004)

    benchmark(body)
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_dummy.py").write_text(DUMMY)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-c",
        str(tmp_path / "pytest.ini"),
        "--rootdir",
        str(tmp_path),
        str(tmp_path),
        *args,
    ]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def _calls(tmp_path: Path) -> list[str]:
    p = tmp_path / "calls.txt"
    return p.read_text().split() if p.exists() else []


def test_plain_run_executes_each_benchmark_body_once_untimed(tmp_path):
    r = _run(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(_calls(tmp_path)) == ["numba", "numpy"]
    assert "3 passed" in r.stdout
    assert not list(tmp_path.rglob("*.json"))  # nothing saved (pytest-benchmark may make the empty folder)
    assert "speed-ups" not in r.stdout


def test_benchmark_flag_times_only_benchmarks_saves_and_prints_speedups(tmp_path):
    fast = ("--benchmark-min-rounds=3", "--benchmark-max-time=0.05")
    r = _run(tmp_path, "--benchmark", *fast)
    assert r.returncode == 0, r.stdout + r.stderr
    calls = _calls(tmp_path)
    assert calls.count("numba") >= 3 and calls.count("numpy") >= 3
    assert "2 passed, 1 deselected" in r.stdout
    # saved under <rootdir>/.benchmarks/<size>/<machine>/
    saved = list((tmp_path / ".benchmarks" / "full").rglob("*.json"))
    assert len(saved) == 1
    names = {b["name"] for b in json.loads(saved[0].read_text())["benchmarks"]}
    assert names == {"test_bench[numba]", "test_bench[numpy]"}
    assert "kmpress speed-ups (full)" in r.stdout
    row = next(line for line in r.stdout.splitlines() if line.startswith("1-histogram "))
    assert row.split()[-1].endswith("x")

    # a second run compares with the first one and is saved next to it
    r2 = _run(tmp_path, "--benchmark", "--benchmark-compare", *fast)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "NOW" in r2.stdout and "0001" in r2.stdout
    assert len(list((tmp_path / ".benchmarks").rglob("*.json"))) == 2


def test_bench_size_rejects_unknown_names(tmp_path):
    r = _run(tmp_path, "--benchmark", "--bench-size", "huge")
    assert r.returncode != 0
    assert "invalid choice" in r.stderr


def test_group_names_sort_in_pipeline_and_numeric_k_order():
    names = [group_name(stage, k) for stage in STAGES for k in KS]
    assert sorted(names) == names
    assert group_name("histogram", None) == "1-histogram"


def test_speedup_lines_ratios_and_columns():
    recs = [
        Record("histogram", None, "numba", 0.1),
        Record("histogram", None, "numpy", 0.4),
        Record("iter-pixels", 16, "numba", 0.08),
        Record("iter-pixels", 16, "numpy", 1.2),
        Record("iter-pixels", 16, "sklearn", 0.16),
        Record("iter-hist", 16, "numba", 0.004),
        Record("png", 16, "numba", 0.5),
    ]
    lines = speedup_lines(recs)
    header = lines[0].split()
    assert "vs numpy" in lines[0] and "vs sklearn" in lines[0] and "sklearn-iter" not in lines[0]
    rows = {tuple(line.split()[:2]): line.split() for line in lines[2:]}
    assert rows[("1-histogram", "-")][-2:] == ["4.00x", "-"]
    assert rows[("3-lloyd-iter-pixels", "16")][-2:] == ["15.0x", "2.00x"]
    assert rows[("7-png-encode", "16")][2:4] == ["500.0", "ms"]
    cross = next(line for line in lines if line.startswith("numba on histogram"))
    assert cross.split()[-2:] == ["300x", "-"]
    assert len(header) >= 5


def test_speedup_lines_show_the_plain_numpy_yardstick_beside_the_backend():
    recs = [
        Record("iter-pixels", 64, "numba", 0.1),
        Record("iter-pixels", 64, "numpy", 0.6),
        Record("iter-pixels", 64, "numpy-plain", 0.5),
        Record("iter-hist", 64, "numba", 0.01),
    ]
    lines = speedup_lines(recs)
    assert lines[0].split()[-4:] == ["vs", "numpy", "vs", "numpy-plain"]
    row = next(line for line in lines if line.startswith("3-lloyd-iter-pixels"))
    assert row.split()[-2:] == ["6.00x", "5.00x"]
    cross = next(line for line in lines if line.startswith("numba on histogram"))
    assert cross.split()[-2:] == ["60.0x", "50.0x"]
    assert "numpy-plain = per 8192-point chunk" in lines[-1]


def test_speedup_lines_empty_without_records():
    assert speedup_lines([]) == []


@pytest.mark.parametrize(
    "numba, peer, text", [(1.0, 2.5, "2.50x"), (1.0, 25.0, "25.0x"), (0.01, 3.0, "300x"), (1.0, None, "-")]
)
def test_speedup_formatting(numba, peer, text):
    recs = [Record("seeding", 64, "numba", numba)]
    if peer is not None:
        recs.append(Record("seeding", 64, "numpy", peer))
    recs.append(Record("seeding", 16, "numpy", 1.0))  # keeps the numpy column when peer is None
    row = next(line for line in speedup_lines(recs) if line.startswith("2-seeding") and " 64 " in line)
    assert row.split()[-1] == text


def test_speed_script_reports_the_measured_process_own_peak_rss():
    """bench/speed_vs_pngquant.py: a child's peak RSS is its own, not a copy of this (larger)
    process, whose memory Linux counts in the ru_maxrss of a child it starts."""
    import numpy as np

    from bench.speed_vs_pngquant import gnu_time_works, run_once

    assert gnu_time_works(), "GNU time (/usr/bin/time, Debian package time) is needed by the speed script"
    held = np.ones(160 << 20, np.uint8)  # 160 MB touched in this process
    child = [sys.executable, "-S", "-c", "b = b'x' * (40 << 20)"]  # an interpreter + 40 MB
    wall, mb = run_once(child)
    assert 40 < mb < 120 and wall > 0
    _, small = run_once(["true"])
    assert 0 < small < 20
    _, piped = run_once(f"{sys.executable} -S -c \"b = b'x' * (40 << 20)\" | cat", shell=True)
    assert 40 < piped < 120  # a pipeline: its largest process
    _, none = run_once(["true"], rss=False)
    assert none != none  # NaN without GNU time
    with pytest.raises(RuntimeError, match="failed"):
        run_once(["false"])
    del held


# --------------------------------------------------------------------------------------------
# bench.perceptual: kmpress's file at pngquant's bytes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "budget, label",
    [
        (50, "2"),  # even K' = 2 is too large: the smallest there is
        (5_120, "128"),  # the largest K' that fits
        (10_240, "256"),  # K' = 256 fits, no stronger dither does
        (10_940, "256 @ 0.84375"),  # the strongest dither that fits, to 1/32
        (99_999, "256 @ 1"),
    ],
)
def test_equal_bytes_takes_the_largest_k_then_the_strongest_dither_that_fits(tmp_path, monkeypatch, budget, label):
    import bench.perceptual as perceptual

    def fake_kmpress(src, k, dst, exe, args):
        # file size grows with K, and at K = 256 with the dither strength
        strength = float(args[args.index("--dither-strength") + 1]) if "--dither-strength" in args else 0.5
        dst.write_bytes(b"x" * (40 * k + int(2000 * (strength - 0.5)) * (k == 256)))

    monkeypatch.setattr(perceptual, "run_kmpress", fake_kmpress)
    monkeypatch.setattr(perceptual, "measure", lambda ref, dist, cache=None: {"bytes": dist.stat().st_size})
    src = tmp_path / "photo.png"
    got, figures = perceptual.equal_bytes(src, 64, budget, tmp_path, None, [])
    assert got == label
    assert figures["bytes"] <= max(budget, 80)
    # with the dither given, only K is searched
    got, _ = perceptual.equal_bytes(src, 64, 99_999, tmp_path, None, ["--dither-strength", "0.7"])
    assert got == "256"


def test_perceptual_passes_the_flags_it_knows_to_the_api():
    from bench.perceptual import api_options

    assert api_options(["--space", "oklab", "--dither-strength", "0.8", "--no-dither"]) == dict(
        colorspace="oklab", dither_strength=0.8, dither=None
    )
    with pytest.raises(SystemExit):
        api_options(["--quality", "70"])


def test_photoset_writes_plain_rgb_without_the_source_metadata(tmp_path):
    """The set's photos carry no ICC profile or EXIF: kmpress keeps a profile and pngquant drops
    it, so one left in would count a few kilobytes against kmpress in every comparison of bytes."""
    from PIL import Image, ImageCms

    from bench.photoset import WIDTH, reduce

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "src.png"
    Image.new("RGBA", (WIDTH + 200, 300), (200, 100, 50, 255)).save(src, icc_profile=icc)
    assert Image.open(src).info.get("icc_profile") == icc
    dst = tmp_path / "dst.png"
    assert reduce(src, dst) == (WIDTH, round(300 * WIDTH / (WIDTH + 200)))
    with Image.open(dst) as im:
        assert im.mode == "RGB"
        assert "icc_profile" not in im.info
    assert b"iCCP" not in dst.read_bytes()

    jpeg = tmp_path / "src.jpg"
    exif = Image.Exif()
    exif[0x010F] = "camera"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(jpeg, icc_profile=icc, exif=exif)
    reduce(jpeg.read_bytes(), dst)
    data = dst.read_bytes()
    assert b"iCCP" not in data and b"eXIf" not in data
