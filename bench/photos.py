"""Deterministic large test photos, made from the bundled sample and cached on disk.

A Lanczos upscale of the sample plus seeded Gaussian noise (sigma 2 per channel) has about as many
distinct colours as a real camera image (~1.7 M at 24 MP), which is what the histogram path and
the kernels are sensitive to.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

#: (W, H) of each size name: 24 MP, 2 MP, and a tiny one on which plain ``pytest`` runs every
#: benchmark body once (so the suite cannot rot) in well under a second.
SIZES = {"full": (6000, 4000), "small": (1732, 1155), "tiny": (96, 64)}
CACHE = Path(os.environ.get("KMPRESS_BENCH_CACHE", Path(__file__).resolve().parent.parent / ".bench-cache"))


def make_photo(size: tuple[int, int], seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """(H, W, 3) uint8: the sample upscaled to ``size`` (W, H) with seeded Gaussian noise."""
    from kmpress import sample_path

    with Image.open(sample_path()) as im:
        big = np.asarray(im.convert("RGB").resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty(big.shape, np.uint8)
    rows = 256  # in bands, to keep the float32 noise small
    for r in range(0, big.shape[0], rows):
        band = big[r : r + rows] + rng.normal(0.0, sigma, size=big[r : r + rows].shape).astype(np.float32)
        out[r : r + rows] = np.clip(np.rint(band), 0, 255).astype(np.uint8)
    return out


def photo_file(kind: str = "full", fmt: str = "jpg") -> Path:
    """Path of the cached test photo of a size name ("full" 24 MP, "small" 2 MP, "tiny"), made if missing.

    ``fmt`` is "jpg" (quality 92) or "png". Writes go through a temporary file, so a run
    interrupted while making the photo never leaves a broken one in the cache.
    """
    size = SIZES[kind]
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"photo-{size[0]}x{size[1]}.{fmt}"
    if not path.exists():
        arr = make_photo(size)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        if fmt == "jpg":
            Image.fromarray(arr).save(tmp, format="JPEG", quality=92)
        else:
            Image.fromarray(arr).save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, path)
    return path


def photo_array(kind: str = "full") -> np.ndarray:
    """The test photo of that size as an array, decoded from the cached JPEG."""
    from kmpress import read_image

    return read_image(photo_file(kind, "jpg"))
