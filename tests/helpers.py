"""Small helpers shared by the test modules (plain functions; fixtures live in conftest.py):
test images written to a path, the CLI run in this process (:func:`run`) and the installed
command run in a child (:func:`run_installed`), and the test-only forms of engine data.

Import them as ``from helpers import run, photo`` (``tests/`` is on ``sys.path``, see conftest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
from PIL import Image

from kmpress.png import deflate_parts

TESTS = Path(__file__).resolve().parent
#: The test photos (``astronaut``, ``chelsea``, ``coffee`` as PNG) and the other test files.
DATA = TESTS / "data"
#: The repository.
ROOT = TESTS.parent


# --------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------


def run(*args, input=None, cwd=None):
    """``kmpress ARGS`` in this process, through typer's CliRunner: a click ``Result`` with
    ``exit_code`` and ``stdout``/``stderr`` apart. ``cwd``: the working folder during the run."""
    from typer.testing import CliRunner

    from kmpress.cli.main import app

    if cwd is not None:
        old = os.getcwd()
        os.chdir(cwd)
    try:
        return CliRunner().invoke(app, [str(a) for a in args], input=input, prog_name="kmpress")
    finally:
        if cwd is not None:
            os.chdir(old)


def kmpress_command() -> list[str]:
    """The console script installed with the package (``pip install .``)."""
    import pytest

    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        exe = Path(folder) / ("kmpress.exe" if os.name == "nt" else "kmpress")
        if exe.exists():
            return [str(exe)]
    found = shutil.which("kmpress")
    if found:
        return [found]
    pytest.fail("the kmpress command is not installed: run `pip install .` (or `pip install -e .`) first")


def run_installed(*args, cwd, timeout=300) -> subprocess.CompletedProcess:
    """The installed ``kmpress`` command in a child process (the installed package, not the tree)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [*kmpress_command(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of unfinished writes under ``folder``."""
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------------------------
# test images
# --------------------------------------------------------------------------------------------


def photo(path: Path, size=(72, 48), seed=0, alpha=False) -> Path:
    """Noise in two regions (the top half four times darker), so k-means has something to find,
    saved to ``path`` (format from its extension; folders made)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size[1], size[0], 4 if alpha else 3), dtype=np.uint8)
    img[: size[1] // 2, :, :3] //= 4
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def crop_photo(path: Path, box=(150, 100, 246, 164), name="chelsea") -> Path:
    """A small real photo (a crop of a test photo) saved to ``path``."""
    with Image.open(DATA / f"{name}.png") as im:
        im.convert("RGB").crop(box).save(path)
    return path


def small_jpeg(path: Path, quality=50) -> Path:
    """A JPEG so small that a K=256 PNG of it is several times larger."""
    with Image.open(DATA / "chelsea.png") as im:
        im.convert("RGB").crop((100, 50, 300, 200)).save(path, quality=quality)
    return path


def big_png(path: Path) -> Path:
    """A test photo as an RGB PNG (220 kB): at K=256 its palette PNG is far smaller (83 kB)."""
    path.write_bytes((DATA / "chelsea.png").read_bytes())
    return path


def gradient_photo(path: Path, size=(96, 64), seed=0, fmt=None) -> Path:
    """A small noisy gradient photo (many colours), written to ``path``."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), (x + y) * 127 // max(1, w + h - 2)], axis=2)
    img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format=fmt)
    return path


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def zlib_stream(raw: bytes, level: int, threads: int | None = None) -> bytes:
    """A zlib stream of ``raw`` made by the PNG encoder's parallel DEFLATE
    (:func:`kmpress.png.deflate_parts`): fixed blocks, the same bytes at any thread count."""
    view = memoryview(raw)
    return b"".join(deflate_parts(lambda s, e: view[s:e], len(raw), level, threads))


def planar(hist) -> np.ndarray:
    """A :class:`kmpress.histogram.Histogram`'s colours as the kernels take them: (C, U) float32,
    C-contiguous."""
    return np.ascontiguousarray(hist.colors.T, dtype=np.float32)
