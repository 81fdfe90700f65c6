"""Everything that must not depend on the CPU, as one JSON document: the OKLab conversion and the
error figures of both backends' kernels, and whole compressions (PNG SHA-256 and every reported
figure, timings aside) of two small photos at a few K, RGB and OKLab, the adaptive default, plain, dithered, several
starts with the rate-aware remap, on each backend.

``tests/e2e/test_cpu_paths.py`` computes it in its own process and again in child processes running
other CPU code paths (``python tests/e2e/cpu_probe.py`` prints it), and they must be equal.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).resolve().parents[1] / "data"
PHOTOS = ("chelsea", "coffee")
KS = (16, 64)
MODES = {
    "default": {},
    "plain": {"dither": None},
    "oklab": {"colorspace": "oklab"},
    "oklab-dither": {"colorspace": "oklab", "dither": "floyd-steinberg"},
    "starts-smooth-path": {"n_init": 2, "smooth": 0.3, "palette_order": "path"},
}
BACKENDS = ("numba", "numpy")


def _sha(data: bytes | np.ndarray) -> str:
    raw = data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()
    return hashlib.sha256(raw).hexdigest()


def _photo(name: str) -> np.ndarray:
    with Image.open(DATA / f"{name}.png") as im:
        a = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(a[::3, ::3])  # ~150 x 100: a few thousand colours


def kernel_figures() -> dict[str, dict[str, str]]:
    """Per backend: hashes of the OKLab conversions and the contrast maps, the ΔE / error figures and
    the SSIMULACRA 2 score (repr: every bit)."""
    from kmpress import backends, colorspace, contrast, metrics, perceptual

    rng = np.random.default_rng(7)
    grey = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1)
    cols = np.vstack([grey, rng.integers(0, 256, (20000, 3), dtype=np.uint8)])
    counts = rng.integers(1, 500, cols.shape[0]).astype(np.int64)
    palette = rng.integers(0, 256, (37, 3), dtype=np.uint8)
    labels = rng.integers(0, 37, cols.shape[0]).astype(np.int32)
    inverse = rng.integers(0, cols.shape[0], 70000).astype(np.int32)
    idx = rng.integers(0, 37, 70000).astype(np.uint8)
    img = _photo(PHOTOS[0])
    noisy = np.clip(img + rng.normal(0, 6, img.shape).round(), 0, 255).astype(np.uint8)
    out = {}
    for name in BACKENDS:
        kern = backends.load(name)
        sse, de = metrics.pixel_errors(cols, inverse, idx, palette, kern)
        out[name] = {
            "oklab64": _sha(colorspace.oklab_of_colors(cols, kern)),
            "oklab32": _sha(colorspace.colors_to_space(cols, "oklab", kern)),
            "delta_e_histogram": repr(metrics.delta_e_histogram(cols, counts, palette, labels, kern)),
            "pixel_errors": repr((sse, de)),
            "contrast_maps": _sha(np.stack(contrast.contrast_maps(_photo("coffee"), kern))),
            "ssimulacra2": repr(perceptual.ssimulacra2(img, noisy, kern)),
        }
    return out


def shared_figures() -> dict[str, str]:
    """The float64 conversions and figures both backends share."""
    from kmpress import colorspace, metrics, quality

    rng = np.random.default_rng(8)
    cols = rng.integers(0, 256, (5000, 3), dtype=np.uint8)
    lab = colorspace.srgb_to_oklab(cols) + rng.normal(0, 0.01, (5000, 3))
    return {
        "srgb_to_oklab": _sha(colorspace.srgb_to_oklab(cols)),
        "oklab_to_srgb": _sha(colorspace.oklab_to_srgb(lab)),
        "psnr": repr([metrics.psnr_from_mse(m) for m in (0.37, 12.3, 51.44879773343188, 400.0, 1234.5)]),
        "quality_guess": repr([quality._predict(16, 30.1, 64, 34.7, t) for t in (31.0, 33.3, 40.0)]),
    }


def compressions() -> dict[str, dict]:
    """``photo/kK/mode/backend`` -> the PNG's SHA-256 and the report's figures (no timings)."""
    import kmpress

    out = {}
    for photo in PHOTOS:
        img = _photo(photo)
        for k in KS:
            for mode, opts in MODES.items():
                for backend in BACKENDS:
                    buf = io.BytesIO()
                    rep = kmpress.compress(img, buf, k, backend=backend, seed=3, **opts).as_dict()
                    rep.pop("timings")
                    out[f"{photo}/k{k}/{mode}/{backend}"] = {"png": _sha(buf.getvalue()), **rep}
    return out


def probe() -> dict:
    """The whole document (see the module docstring)."""
    return {"kernels": kernel_figures(), "shared": shared_figures(), "compressions": compressions()}


def cpu_paths() -> dict:
    """The code paths this process runs: NumPy's SIMD features switched on, numba's target CPU and
    the cache its kernels loaded from (this CPU's own, "native", or the prebuilt "portable" one)."""
    import numba

    from kmpress import backends

    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    return {
        "numpy_dispatch_on": [f for f in __cpu_dispatch__ if __cpu_features__.get(f)],
        "numba_cpu_name": numba.config.CPU_NAME,
        "numba_tier": backends.tier()["tier"],
    }


if __name__ == "__main__":
    from kmpress import backends

    backends.own_process()  # as the kmpress command: the prebuilt kernels load into an empty cache
    print(json.dumps({"probe": probe(), "paths": cpu_paths()}, sort_keys=True))
