"""Start-up benchmarks: whole processes, as a user or a script starts them (group ``9-startup``).

- ``import``: ``python -c "import kmpress"`` (which must not import numba);
- ``help``: ``kmpress --help``;
- ``cli``: ``kmpress compress IMG -k 16 -o DIR --force -q`` of a 64x64 PNG, whose backend auto
  picks NumPy, so numba is never imported;
- ``numba`` / ``numpy``: ``kmpress.compress`` of the same PNG at K=16 in a fresh interpreter with
  the backend forced (set up as the command line sets up its process,
  ``kmpress.backends.own_process``): the process start-up the "auto" pick saves or pays. numba
  loads its kernels from its cache, which the session's JIT warm-up (``bench/conftest.py``) has
  filled; a first, untimed round also loads the files into the page cache.

The command is this interpreter environment's ``kmpress`` console script when it is there and
runs this interpreter, else ``python -m kmpress``. Each round is one process (``subprocess.run``,
~1 ms of its own); a few pedantic rounds keep the group at a few seconds. Plain ``pytest`` runs
each once, untimed, and checks what it did.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.bench_engine import measure
from bench.photos import make_photo

#: Timed rounds per command (after one warm-up round).
ROUNDS = 5

K = 16


def kmpress_command() -> list[str]:
    """The ``kmpress`` console script of this interpreter's environment (its shebang names this
    interpreter), else ``[sys.executable, "-m", "kmpress"]``."""
    scripts = Path(sysconfig.get_path("scripts"))
    for name in ("kmpress", "kmpress.exe"):
        script = scripts / name
        if not (script.is_file() and os.access(script, os.X_OK)):
            continue
        if name.endswith(".exe"):
            return [str(script)]
        with script.open("rb") as f:
            first = f.readline(4096).decode(errors="replace")
        if first.startswith("#!") and first[2:].strip().split()[:1] == [sys.executable]:
            return [str(script)]
    return [sys.executable, "-m", "kmpress"]


#: The API run of a forced backend; its exit code says whether numba was imported as it should be.
API_RUN = (
    "import sys\n"
    "from kmpress import backends, compress\n"
    "backends.own_process()\n"
    "compress(sys.argv[1], sys.argv[2], int(sys.argv[3]), backend=sys.argv[4])\n"
    "sys.exit(3 if ('numba' in sys.modules) != (sys.argv[4] == 'numba') else 0)\n"
)


#: What each benchmark runs (its extra_info).
COMMANDS = {
    "import": 'python -c "import kmpress"',
    "help": "kmpress --help",
    "cli": f"kmpress compress 64x64.png -k {K} -o DIR --force -q (auto: numpy)",
    "numba": f"python -c: kmpress.compress of 64x64.png at K={K}, backend numba (cached kernels)",
    "numpy": f"python -c: kmpress.compress of 64x64.png at K={K}, backend numpy",
}


@pytest.fixture(scope="module")
def png64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 64x64 RGB PNG (the sample downscaled, with the suite's seeded noise)."""
    path = tmp_path_factory.mktemp("startup") / "photo64.png"
    Image.fromarray(make_photo((64, 64))).save(path)
    return path


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{cmd} exited with {r.returncode}: {r.stderr[-2000:]}"
    return r


def _check_png(path: Path) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "P" and im.size == (64, 64)
        assert np.unique(np.asarray(im)).size <= K


@pytest.mark.parametrize("what", ("import", "help", "cli", "numba", "numpy"))
def test_startup(benchmark, png64, tmp_path, what):
    exe = kmpress_command()
    out = tmp_path / "out"
    if what == "import":
        cmd = [sys.executable, "-c", "import sys, kmpress; sys.exit(3 if 'numba' in sys.modules else 0)"]
    elif what == "help":
        cmd = [*exe, "--help"]
    elif what == "cli":
        cmd = [*exe, "compress", str(png64), "-k", str(K), "-o", str(out), "--force", "-q"]
    else:
        out.mkdir()
        cmd = [sys.executable, "-c", API_RUN, str(png64), str(out / f"{png64.stem}-k{K}.png"), str(K), what]
    r = measure(
        benchmark,
        lambda: _run(cmd, tmp_path),
        stage="startup",
        k=None,
        impl=what,
        rounds=ROUNDS,
        warmup_rounds=1,
        command=COMMANDS[what],
        exe=" ".join(exe),
    )
    if what == "help":
        assert "compress" in r.stdout and "Usage" in r.stdout
    if what in ("cli", "numba", "numpy"):
        _check_png(out / f"{png64.stem}-k{K}.png")
    if what == "cli":  # once more, untimed: the command never imported numba
        script = exe[1:] if exe[0] == sys.executable else exe
        r = _run([sys.executable, "-X", "importtime", *script, *cmd[len(exe) :]], tmp_path)
        imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
        assert "kmpress.cli.main" in imported and "numpy" in imported and "numba" not in imported
