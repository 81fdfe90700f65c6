"""A first run, from an empty numba cache, as the user sees it. On an x86-64-v3 CPU it loads the
prebuilt portable kernels shipped with the package: nothing is compiled in the foreground, nothing
is said, and the outputs are the bytes of numba's own (native) kernels. Where the prebuilt kernels
are not used (here: NUMBA_CPU_NAME set by the user) it says that it compiles (one line when stderr
is not a terminal, progress on a terminal); a second run says nothing, ``kmpress warm`` compiles
every kernel for this CPU and names the cache folder, and a cache folder that cannot be made still
works."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess

import llvmlite.binding as ll
import numba
import pytest
from helpers import crop_photo, kmpress_command

from kmpress import prebuilt

pytestmark = pytest.mark.needs_jit

HOST_CPU = ll.get_host_cpu_name()
NOTICE = re.compile(r"^kmpress: compiling (\d+) numba kernels? \(first run only; cached in (.+)\) \.\.\.$")


def _photo(tmp_path):
    # large enough for the numba backend at K = 16 (the smallest jobs run in NumPy)
    return crop_photo(tmp_path / "cat.png", box=(0, 0, 450, 300))


def _env(cache: object, native: bool = False) -> dict[str, str]:
    drop = ("PYTHONPATH", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")
    env = {**{k: v for k, v in os.environ.items() if k not in drop}, "NUMBA_CACHE_DIR": str(cache)}
    if native:  # the user names numba's CPU (this one's, as numba would): the prebuilt kernels are not used
        env["NUMBA_CPU_NAME"] = HOST_CPU
    return env


def _run(*args, cwd, cache, native=False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*kmpress_command(), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env=_env(cache, native),
    )


def _portable_here() -> bool:
    """Whether a first run here loads the prebuilt kernels: this CPU runs them and the package has
    them for this numba and Python (the archive's own test checks that it does)."""
    return prebuilt.runs_here(ll.get_host_cpu_features()) and prebuilt.archive_path(numba.__version__).exists()


def _table(stdout: str) -> list[list[str]]:
    """The demo's table rows without their last column (the seconds)."""
    return [line.split()[:-1] for line in stdout.splitlines() if ".png " in line]


def test_first_run_says_it_compiles_once_and_warm_compiles_the_rest(tmp_path, snap):
    src = _photo(tmp_path)
    cache = tmp_path / "cache"
    r = _run("compress", src, "-k", 16, "-o", "out", cwd=tmp_path, cache=cache, native=True)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr  # one line, not a progress display, when not a terminal
    m = NOTICE.match(lines[0])
    assert m and int(m.group(1)) >= 5, r.stderr
    assert os.path.isdir(m.group(2)) and os.path.commonpath([m.group(2), cache]) == str(cache)
    first = int(m.group(1))

    # the same run again: everything loads from the cache, nothing is said
    r = _run("compress", src, "-k", 16, "-o", "out", "--force", cwd=tmp_path, cache=cache, native=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr

    # the demo, the user's CPU not named: numba's own cache lacks kernels, so the prebuilt ones
    # load (unpacked into the same cache folder) and nothing is compiled or said
    r = _run("demo", "-o", "portable", cwd=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr
    portable = _portable_here()
    if portable:
        assert "compiling" not in r.stderr, r.stderr
        assert list((cache / prebuilt.FOLDER).glob("*/*/*.nbi"))
    demo_table = _table(r.stdout)

    # warm: this CPU's own kernels, those the runs did not need, then nothing left to do
    r = _run("warm", "--json", cwd=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["kernels"] > doc["compiled"] > 0 and doc["compiled"] <= doc["kernels"] - first
    assert doc["cache_dir"] == m.group(2) and doc["cache_writable"] is True and doc["tier"] == "native"
    assert doc["archive"] is None or doc["archive"].endswith(prebuilt.archive_path(numba.__version__).name)
    r = _run("warm", cwd=tmp_path, cache=cache)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert f"all {doc['kernels']} numba kernels were already compiled" in r.stdout
    assert f"cache: {m.group(2)}" in r.stdout and "runs load this cache" in r.stdout

    # a demo and a dithered, OKLab, quality-searched compression: this CPU's kernels, all cached
    # now, nothing said; the demo's files and figures are those of the prebuilt kernels
    r = _run("demo", "-o", "demo", cwd=tmp_path, cache=cache)
    assert r.returncode == 0 and "compiling" not in r.stderr, r.stderr
    assert _table(r.stdout) == demo_table and len(demo_table) >= 5
    assert snap(tmp_path / "demo") == snap(tmp_path / "portable")
    r = _run(
        "compress",
        src,
        "--quality",
        30,
        "--space",
        "oklab",
        "--dither",
        "floyd-steinberg",
        "-o",
        "q",
        cwd=tmp_path,
        cache=cache,
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_a_terminal_shows_progress_and_a_cache_folder_that_cannot_be_made_still_works(tmp_path):
    src = _photo(tmp_path)
    parent, child = pty.openpty()
    try:
        p = subprocess.Popen(
            [*kmpress_command(), "compress", str(src), "-k", "16", "-o", "out", "--json"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=child,
            env=_env(tmp_path / "cache", native=True),
        )
        os.close(child)
        out = b""
        while True:
            try:
                chunk = os.read(parent, 4096)
            except OSError:  # the terminal's other end closed
                break
            if not chunk:
                break
            out += chunk
        stdout, _ = p.communicate(timeout=900)
    finally:
        os.close(parent)
    assert p.returncode == 0, out
    assert json.loads(stdout)["summary"]["ok"] == 1
    text = out.decode()
    counts = re.findall(r"compiling numba kernels \(first run only; cached in [^)]+\): (\d+)/(\d+)", text)
    assert counts, text
    done, total = map(int, counts[-1])
    assert done == total >= 5 and len(counts) > total  # 0/N, 1/N, ... N/N, rewritten in place
    assert "\r" in text and text.endswith("\n")
    assert (tmp_path / "out" / "cat-k16.png").exists()

    # NUMBA_CACHE_DIR under a file: numba cannot make it (not even as root) and caches elsewhere
    (tmp_path / "a-file").write_text("not a folder")
    r = _run("compress", src, "-k", 16, "-o", "out2", cwd=tmp_path, cache=tmp_path / "a-file" / "cache")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert (tmp_path / "out2" / "cat-k16.png").read_bytes() == (tmp_path / "out" / "cat-k16.png").read_bytes()
