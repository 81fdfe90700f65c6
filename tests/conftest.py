"""Shared fixtures of the tests: the test photos, small synthetic data, PNG helpers.

Where a test goes (one rule, by what the test runs):

- ``tests/test_<module>.py``: unit tests of one engine module, ``kmpress.<module>`` (``engine/<module>.py``),
  in this process; ``test_<module>_<aspect>.py`` when a module has more than one file (``test_api_invariances.py``,
  ``test_api_general_data.py``); ``test_kernels.py`` for both backends' kernels, ``test_layout.py`` for the
  package's shape, ``test_bench_<script>.py`` for the plumbing of ``bench/``. A module that exists for
  one option may show it through that option too (``test_pipes.py``: ``compress -``; ``test_formats.py``:
  ``--format``; ``test_metadata.py``: ``--strip``).
- ``tests/cli/test_<command>.py``: the command line in this process (typer's CliRunner, through
  :func:`helpers.run`), one file per command (``test_compress.py``, ``test_info.py``, ``test_demo.py``,
  ``test_sweep.py``) and ``test_main.py`` for what belongs to no command (``--version``, ``--help``, exit codes,
  ``--json`` of every run, ``--debug``, Ctrl-C).
- ``tests/e2e/``: end-to-end runs in other processes: the installed command (``test_command.py``), signals,
  a Dask cluster, other CPU code paths, the NUMBA_DISABLE_JIT rerun, the docs' code blocks, real-world files.

Helpers live in one place: plain functions (test images written to a path, the CLI runners,
test-only forms of engine data) in ``tests/helpers.py``, the naive oracles in ``tests/reference.py``,
fixtures here. ``tests/`` is put on ``sys.path`` below, so ``from helpers import run`` works from every
folder (no ``__init__.py`` anywhere: test module names must be unique across the folders). Test names
say the behaviour they check.

The photos are the copies in ``tests/data`` (never ``../shared``). Everything that writes a file
writes it under pytest's ``tmp_path``.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
ROOT = TESTS.parent

# ``import reference`` must work whether or not tests/ is a package and whatever conftest.py
# sits at the repository root.
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _load(name: str) -> np.ndarray:
    with Image.open(DATA / f"{name}.png") as im:
        a = np.array(im.convert("RGB"))
    # read-only, so a test that mutates a shared photo fails loudly instead of poisoning others
    a.flags.writeable = False
    return a


@pytest.fixture(scope="session", params=["numba", "numpy"])
def kern(request):
    """Each backend's kernel module in turn."""
    from kmpress import backends

    return backends.load(request.param)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """The three test photos as read-only uint8 (H, W, 3) arrays, keyed by name."""
    return {name: _load(name) for name in ("astronaut", "chelsea", "coffee")}


@pytest.fixture(scope="session")
def photo_paths() -> dict[str, Path]:
    """Paths of the test photos (PNG files; never write next to them)."""
    return {name: DATA / f"{name}.png" for name in ("astronaut", "chelsea", "coffee")}


def blobs(seed: int, n: int, d: int, k: int, sigma: float = 14.0):
    """Gaussian blobs centred around the origin, as float32 points, with weights and an init.

    Returns
    -------
    X : (n, d) float32 points
    w : (n,) float64 weights in [0.1, 5)
    init : (k, d) float64, k distinct points of X
    """
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-100, 100, (k, d))
    lab = rng.integers(0, k, n)
    X = (centres[lab] + rng.normal(0, sigma, (n, d))).astype(np.float32)
    w = rng.uniform(0.1, 5, n)
    init = X[rng.choice(n, k, replace=False)].astype(np.float64)
    return X, w, init


@pytest.fixture(scope="session")
def make_blobs():
    """The :func:`blobs` generator."""
    return blobs


# --------------------------------------------------------------------------------------------
# PNG helpers
# --------------------------------------------------------------------------------------------

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a PNG file, checking signature and CRCs."""
    assert data[:8] == PNG_SIG, "not a PNG signature"
    out = []
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(ctype + payload) == crc, f"bad CRC in {ctype!r}"
        out.append((ctype, payload))
        pos += 12 + length
    return out


def png_ihdr(data: bytes) -> dict[str, int]:
    """Width, height, bit depth and colour type from the IHDR chunk."""
    ctype, payload = png_chunks(data)[0]
    assert ctype == b"IHDR"
    w, h, depth, color = struct.unpack(">IIBB", payload[:10])
    return {"width": w, "height": h, "bit_depth": depth, "color_type": color}


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", zlib.crc32(ctype + payload))


def make_png(width: int, height: int, bit_depth: int, color_type: int, raw: bytes) -> bytes:
    """A minimal PNG from already-filtered scanline bytes (each row starts with its filter byte).

    Used for what Pillow cannot write itself (16-bit RGB) and for hostile headers (huge sizes).
    """
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return PNG_SIG + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def png():
    """PNG helpers: ``png.chunks(bytes)``, ``png.ihdr(bytes)``, ``png.make(w, h, depth, type, raw)``."""
    return SimpleNamespace(chunks=png_chunks, ihdr=png_ihdr, make=make_png)


# --------------------------------------------------------------------------------------------
# "nothing was written" checks
# --------------------------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for f in files:
            p = Path(dirpath) / f
            out[str(p.relative_to(folder))] = p.read_bytes()
    return out


@pytest.fixture(scope="session")
def snap():
    """The :func:`snapshot` function: compare before/after a failing call."""
    return snapshot


@pytest.fixture(scope="session", autouse=True)
def _kernels_compiled():
    """Every numba kernel compiled (several at once) before the first test, in another process
    (this one keeps numba unloaded until a test loads it): no test sees a first run's compile
    notice but those that ask for an empty cache (``tests/e2e/test_first_run.py``)."""
    import subprocess

    code = "from kmpress import backends; backends.warm()"
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=1800, check=False)
