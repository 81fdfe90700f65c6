"""A first run, from an empty numba cache, as the user sees it: it says that it compiles (one line
when stderr is not a terminal, progress on a terminal), a second run says nothing, ``kmpress warm``
compiles every kernel and names the cache folder, and a cache folder that cannot be made still
works."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess

import pytest
from helpers import crop_photo, kmpress_command

pytestmark = pytest.mark.needs_jit

NOTICE = re.compile(r"^kmpress: compiling (\d+) numba kernels? \(first run only; cached in (.+)\) \.\.\.$")


def _photo(tmp_path):
    # large enough for the numba backend at K = 16 (the smallest jobs run in NumPy)
    return crop_photo(tmp_path / "cat.png", box=(0, 0, 450, 300))


def _env(cache: object) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "NUMBA_CACHE_DIR": str(cache)}


def _run(*args, cwd, cache) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*kmpress_command(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=900, env=_env(cache)
    )


def test_first_run_says_it_compiles_once_and_warm_compiles_the_rest(tmp_path):
    src = _photo(tmp_path)
    cache = tmp_path / "cache"
    r = _run("compress", src, "-k", 16, "-o", "out", cwd=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr  # one line, not a progress display, when not a terminal
    m = NOTICE.match(lines[0])
    assert m and int(m.group(1)) >= 5, r.stderr
    assert os.path.isdir(m.group(2)) and os.path.commonpath([m.group(2), cache]) == str(cache)
    first = int(m.group(1))

    # the same run again: everything loads from the cache, nothing is said
    r = _run("compress", src, "-k", 16, "-o", "out", "--force", cwd=tmp_path, cache=cache)
    assert r.returncode == 0 and r.stderr == "", r.stderr

    # warm: the kernels the run did not need, then nothing left to do
    r = _run("warm", "--json", cwd=tmp_path, cache=cache)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["kernels"] > doc["compiled"] > 0 and doc["compiled"] <= doc["kernels"] - first
    assert doc["cache_dir"] == m.group(2) and doc["cache_writable"] is True
    r = _run("warm", cwd=tmp_path, cache=cache)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert f"all {doc['kernels']} numba kernels were already compiled" in r.stdout
    assert f"cache: {m.group(2)}" in r.stdout

    # a demo and a dithered, OKLab, quality-searched compression: all cached now, nothing said
    r = _run("demo", "-o", "demo", cwd=tmp_path, cache=cache)
    assert r.returncode == 0 and "compiling" not in r.stderr, r.stderr
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
            env=_env(tmp_path / "cache"),
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
