"""Small helpers shared by the test modules (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from kmpress.png import deflate_parts


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
