"""The installed ``kmpress`` command, end to end, in subprocesses: real files, exit codes, and a
batch interrupted with SIGINT (no partial output, exit 130)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import DATA, ROOT, crop_photo, kmpress_command, run_installed
from PIL import Image


def test_installed_command_end_to_end(tmp_path):
    for name in ("chelsea", "coffee"):
        shutil.copy(DATA / f"{name}.png", tmp_path / f"{name}.png")
    (tmp_path / "notes.jpg").write_text("not a photo")
    r = run_installed(
        "compress", "chelsea.png", "coffee.png", "notes.jpg", "-k", 8, "-o", "out", "--json", cwd=tmp_path
    )
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    status = {Path(f["src"]).name: f["status"] for f in doc["files"]}
    assert status == {"chelsea.png": "ok", "coffee.png": "ok", "notes.jpg": "error"}
    for name in ("chelsea", "coffee"):
        with Image.open(tmp_path / "out" / f"{name}-k8.png") as im, Image.open(tmp_path / f"{name}.png") as src:
            assert im.mode == "P" and im.size == src.size and len(im.getcolors()) <= 8
    # the human-readable run of the same batch: all skipped now, exit 0
    r = run_installed("compress", "chelsea.png", "coffee.png", "-k", 8, "-o", "out", cwd=tmp_path)
    assert r.returncode == 0 and "skipped 2" in r.stdout and r.stderr == ""
    r = run_installed("info", "out/coffee-k8.png", "--against", "coffee.png", cwd=tmp_path)
    assert r.returncode == 0 and "PSNR" in r.stdout and "4 bits per index" in r.stdout
    r = run_installed("--help", cwd=tmp_path)
    assert r.returncode == 0 and "Exit codes" in r.stdout
    r = run_installed("compress", "-k", 999, "coffee.png", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("kmpress: ") and "Traceback" not in r.stderr


def test_python_dash_m_cli(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "kmpress", "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert r.returncode == 0 and "compress" in r.stdout


def test_real_process_exit_code_3_and_sweep(tmp_path):
    """The installed command end to end: --strict's exit code, and a sweep's files."""
    src = crop_photo(tmp_path / "cat.png")
    p = run_installed("compress", src, "--psnr", 60, "--max-colors", 4, "--strict", cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    assert p.stderr.count("\n") == 1 and "60 dB not reached" in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["cat.png"]
    p = run_installed("sweep", src, "--k", "2..4", "-o", "sw", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert {"cat-sweep.csv", "cat-contact.png"} <= {x.name for x in (tmp_path / "sw").iterdir()}


def _batch(tmp_path: Path, n: int, jobs: int, env: dict | None = None, k: int = 32) -> subprocess.Popen:
    for i in range(n):
        shutil.copy(DATA / "astronaut.png", tmp_path / f"p{i:02d}.png")
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **(env or {})}
    return subprocess.Popen(
        [*kmpress_command(), "compress", ".", "-o", "out", "-k", str(k), "--jobs", str(jobs)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(proc: subprocess.Popen, ready, what: str) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    assert proc.poll() is None, f"the batch ended before {what}"


def _assert_stopped_cleanly(tmp_path: Path, proc: subprocess.Popen, code: int, word: str, n: int, some: bool = True):
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, (stdout, stderr)
    # a first run says first that it compiles the kernels (one line when stderr is not a terminal)
    stderr = "".join(line for line in stderr.splitlines(True) if not line.startswith("kmpress: compiling "))
    # then one line, saying how far the batch got: no "Exception ignored", no traceback
    said = re.fullmatch(rf"kmpress: {word}(?:: (\d+) of {n} written; run the same command again to go on)?\n", stderr)
    assert said, stderr
    out = tmp_path / "out"
    written = sorted(out.iterdir()) if out.is_dir() else []
    assert int(said.group(1) or 0) <= len(written)  # a worker may finish a file as the batch stops
    assert (1 <= len(written) if some else 0 <= len(written)) and len(written) < n
    assert [p for p in written if not p.name.endswith("-k32.png")] == []  # no temporary files
    for p in written:
        with Image.open(p) as im:
            im.load()  # every file left is complete
            assert im.mode == "P" and im.size == (512, 512)
    # no stray worker process: every process started in the batch's folder is gone
    assert _processes_in(tmp_path) == []


def _some_output(tmp_path: Path):
    out = tmp_path / "out"
    return lambda: out.is_dir() and any(p.suffix == ".png" for p in out.iterdir())


@pytest.mark.parametrize("jobs", [1, 2])
def test_sigint_mid_batch_leaves_no_partial_output(tmp_path, jobs):
    proc = _batch(tmp_path, 24, jobs)
    # interrupt as soon as the first output exists: the batch is then surely in full swing
    _wait_for(proc, _some_output(tmp_path), "it could be interrupted")
    proc.send_signal(signal.SIGINT)
    _assert_stopped_cleanly(tmp_path, proc, 130, "interrupted", 24)


@pytest.mark.parametrize("jobs", [1, 2])
def test_sigint_while_numba_compiles_from_an_empty_cache(tmp_path, jobs):
    """A fresh install: nothing compiled yet. Ctrl-C while the kernels compile (in this process,
    or in two workers at once) stops cleanly: exit 130, one line, no partial file, no process
    left. Interrupted after a few kernels, so this costs seconds, not a whole compilation."""
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    # K=64: the photo's 113 k colours x 64 are numba's work (backend "auto"), so numba compiles
    proc = _batch(tmp_path, 8, jobs, {"NUMBA_CACHE_DIR": str(cache)}, k=64)
    _wait_for(proc, lambda: len(list(cache.rglob("*.nbi"))) >= 3, "the kernels compiled")
    assert not _some_output(tmp_path)()  # still compiling
    proc.send_signal(signal.SIGINT)
    _assert_stopped_cleanly(tmp_path, proc, 130, "interrupted", 8, some=False)


def test_sigterm_stops_the_workers_too(tmp_path):
    proc = _batch(tmp_path, 24, 2)
    _wait_for(proc, _some_output(tmp_path), "it could be terminated")
    proc.send_signal(signal.SIGTERM)
    _assert_stopped_cleanly(tmp_path, proc, 143, "terminated", 24)
    time.sleep(1)  # nothing keeps writing
    assert len(list((tmp_path / "out").iterdir())) < 24


def _processes_in(folder: Path) -> list[int]:
    """PIDs of live processes whose working directory is ``folder`` (Linux /proc)."""
    found = []
    deadline = time.monotonic() + 10  # workers get a few seconds' grace to exit
    while True:
        found = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if Path(os.readlink(d / "cwd")) == folder:
                        found.append(int(d.name))
                except OSError:
                    pass
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
