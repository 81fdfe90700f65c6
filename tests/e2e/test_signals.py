"""Ctrl-C and SIGTERM at every stage of a compression, end to end: the ``kmpress`` command in a
subprocess, beside a CPU hog (a loaded machine's timing), for one file, a ``--jobs 1`` batch (both
in-process) and a ``--jobs 2`` batch (workers), from numba's cache and while it compiles.

The signal lands in a known stage without any hook in kmpress: the child runs the command's own
entry point after wrapping ``kmpress.batch.compress_many`` so that its ``on_stage`` listener (the
public per-stage callback) sends the signal from another thread, as a terminal's Ctrl-C arrives,
when the chosen stage begins: as soon as the main thread lets go of the GIL, which it does as it
enters the stage's first kernel or C call, so the signal lands in there. The image has over
2^19 pixels, so that the histogram takes the dense path (two parallel kernels).
Whatever the stage: exit 130 (SIGINT) or 143 (SIGTERM), never 0 (the signal lost), one line on
stderr (no traceback, no "Fatal Python error", nothing "ignored"), every output left complete, no
temporary file, no process left.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import DATA
from PIL import Image
from test_command import _processes_in

_DRIVER = r"""
import os, signal, sys, threading, time

stage, sig = sys.argv[1], getattr(signal, sys.argv[2])
import kmpress.batch as batch

sent = threading.Event()
real = batch.compress_many


def send():
    # wait for the main thread to let go of the GIL: it does so as it enters the stage's first
    # kernel (numba's run without it) or C call, and the signal lands in there
    time.sleep(0)
    os.kill(os.getpid(), sig)


def compress_many(plan, *args, on_stage=None, **kw):
    def listen(src, name):
        if on_stage is not None:
            on_stage(src, name)
        if name == stage and not sent.is_set():
            sent.set()
            threading.Thread(target=send).start()

    return real(plan, *args, on_stage=listen, **kw)


batch.compress_many = compress_many
sys.argv = ["kmpress", *sys.argv[3:]]
from kmpress.cli import run

run()
"""

#: (stage, signal) per mode: every stage of one file, and a spread for the batches.
ONE_FILE = [
    ("read", "SIGINT"),
    ("histogram", "SIGTERM"),
    ("init", "SIGINT"),
    ("lloyd", "SIGTERM"),
    ("remap", "SIGINT"),
    ("write", "SIGTERM"),
]
BATCH_1 = [("init", "SIGINT"), ("write", "SIGTERM")]
BATCH_2 = [("read", "SIGTERM"), ("lloyd", "SIGINT")]


@pytest.fixture(scope="module")
def cpu_hog():
    """A busy loop beside the runs, stopped at the end."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield
    hog.kill()
    hog.wait(30)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A 1024 x 576 photo (the test photo, enlarged, with noise: many colours)."""
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    with Image.open(DATA / "astronaut.png") as im:
        big = np.asarray(im.convert("RGB").resize(SIZE, Image.BILINEAR)).astype(np.int16)
    noise = np.random.default_rng(0).integers(-6, 7, big.shape)
    Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8)).save(path, compress_level=1)
    return path


SIZE = (1024, 576)


def _start(
    folder: Path, photo: Path, stage: str, sig: str, n_files: int, jobs: int | None, env: dict | None = None
) -> subprocess.Popen:
    folder.mkdir()
    names = []
    for i in range(n_files):
        shutil.copy(photo, folder / f"p{i}.png")
        names.append(f"p{i}.png")
    args = [*names, "-k", "32", "-o", "out"] + ([] if jobs is None else ["--jobs", str(jobs)])
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONFAULTHANDLER": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", _DRIVER, stage, sig, "compress", *args],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _assert_stopped(folder: Path, proc: subprocess.Popen, stage: str, sig: str) -> None:
    _, stderr = proc.communicate(timeout=300)
    code, word = (130, "interrupted") if sig == "SIGINT" else (143, "terminated")
    # a first run says first that it compiles the kernels
    stderr = "".join(line for line in stderr.splitlines(True) if not line.startswith("kmpress: compiling "))
    assert proc.returncode == code, f"{sig} at {stage}"
    # one line; a batch says how far it got
    assert re.fullmatch(rf"kmpress: {word}(: \d+ of \d+ written; run the same command again to go on)?\n", stderr)
    out = folder / "out"
    for p in sorted(out.iterdir()) if out.is_dir() else []:
        assert p.name.endswith("-k32.png"), p.name  # no temporary file
        with Image.open(p) as im:
            im.load()  # complete
            assert im.mode == "P" and im.size == SIZE
    assert _processes_in(folder) == []


def _run_all(tmp_path: Path, photo: Path, cases, n_files: int, jobs: int | None, env: dict | None = None) -> None:
    # the runs go side by side: the same checks, in a fraction of the time
    procs = [(tmp_path / f"{stage}-{sig}", stage, sig) for stage, sig in cases]
    started = [
        (folder, _start(folder, photo, stage, sig, n_files, jobs, env), stage, sig) for folder, stage, sig in procs
    ]
    for folder, proc, stage, sig in started:
        _assert_stopped(folder, proc, stage, sig)


@pytest.mark.parametrize("mode", ["one file", "--jobs 1", "--jobs 2"])
def test_a_signal_at_every_stage_stops_cleanly(tmp_path, photo, cpu_hog, mode):
    cases, n_files, jobs = {"one file": (ONE_FILE, 1, None), "--jobs 1": (BATCH_1, 3, 1), "--jobs 2": (BATCH_2, 4, 2)}[
        mode
    ]
    _run_all(tmp_path, photo, cases, n_files, jobs)


def test_a_signal_while_numba_compiles_stops_cleanly(tmp_path, photo, cpu_hog):
    """An empty cache: at ``histogram`` the first kernels are being compiled (in worker
    processes, which stop with the command)."""
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    _run_all(tmp_path, photo, [("histogram", "SIGINT")], 1, None, {"NUMBA_CACHE_DIR": str(cache)})
