"""The adaptive default's own stages, per megapixel, in one process (not a pytest file).

Run from the repository root::

    python -m bench.default_stages                       # the 4 MP photo of bench/photos.py
    python -m bench.default_stages PHOTO.png --k 16 --k 256 --runs 5

For each K (the palette of ``kmpress.quantize`` of the photo) it times, after compilation: the
contrast maps and palette weights (once), the undithered remap in OKLab, the dither map, the
error diffusion kernel alone, the whole remap (:func:`kmpress.remap.adaptive_dither`) and the
SSIMULACRA 2 score of the result. Each figure is the best of ``--runs`` in wall time and in CPU
time of the process (all threads: the parallel stages use every core), in seconds per megapixel.

The diffusion is serial within a band (bands of a megapixel run in parallel): its floor is one
pass over the pixels, each a nearest-entry search and four error shares. ``floor`` is the same
kernel with a palette of one entry (a search of one candidate, no error to carry): the loop's own
cost, which no search can go below.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.photos import make_photo
from kmpress import backends, quantize, read_image
from kmpress.colorspace import colors_to_space, palette_to_space
from kmpress.contrast import color_weights, contrast_maps
from kmpress.histogram import build_histogram
from kmpress.options import Options
from kmpress.palette import nearest_in_space
from kmpress.perceptual import ssimulacra2
from kmpress.remap import (
    ERROR_CAP,
    OFFSET_CAP,
    RUN_TIE,
    _diffusion_args,
    adaptive_dither,
    dead_zone,
    dither_bands,
    least_level,
)


def best(f, runs: int) -> tuple[float, float]:
    """Best wall and best CPU seconds of ``runs`` calls of ``f``."""
    wall = cpu = float("inf")
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        f()
        wall = min(wall, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
    return wall, cpu


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.default_stages", description=__doc__.split("\n")[0])
    ap.add_argument("photo", nargs="?", help="a photo (default: the 2560x1600 photo of bench/photos.py)")
    ap.add_argument("--k", action="append", type=int, help="colours (repeatable; default 16, 64, 256)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each stage; the best counts (default 3)")
    a = ap.parse_args(argv)
    img = np.ascontiguousarray(read_image(a.photo)[..., :3] if a.photo else make_photo((2560, 1600)))
    h, w, _ = img.shape
    mp = h * w / 1e6
    backends.own_process()  # as the kmpress command: the kernels load from the cache it would use
    kern = backends.load("numba")
    print(f"kernels: {backends.tier()['tier']} ({'this CPU' if backends.tier()['tier'] == 'native' else 'prebuilt'})")
    hist = build_histogram(img, kern)
    inverse = hist.pixel_colors(img, kern)
    lab = colors_to_space(hist.colors, "oklab", kern)
    rows = []

    def row(name: str, f) -> None:
        f()  # compiled, caches warm
        wall, cpu = best(f, a.runs)
        rows.append((name, wall / mp, cpu / mp))
        print(f"{name:34s} {wall / mp:7.3f} s/MP wall {cpu / mp:7.3f} s/MP CPU", flush=True)

    print(f"{w}x{h}, {hist.n_colors} colours, {kern.__name__}", flush=True)
    noise, edges = contrast_maps(img, kern)
    row("contrast maps", lambda: contrast_maps(img, kern))
    row("palette weights", lambda: color_weights(noise, inverse, hist.n_colors, kern))

    def measure_k(k: int) -> None:
        palette = quantize(img, k, dither=None).palette if k > 1 else img[:1, 0].copy()
        entries32 = palette_to_space(palette, "oklab", kern)
        entries = entries32.astype(np.float64)
        labels = nearest_in_space(lab, entries32, kern)
        plain = np.empty(h * w, np.uint8)
        level = np.empty(h * w, np.uint8)
        kern.gather(labels.astype(np.uint8), inverse, plain)
        kern.dither_map(plain, edges.reshape(-1), h, w, level)
        strength = Options().diffusion_strength(k)  # the default's, as a compress at K uses
        floored = np.maximum(level, least_level(strength))

        def diffuse() -> None:
            args = _diffusion_args(lab, inverse, None, entries, h, w, np.empty(h * w, np.uint8))
            bands = dither_bands(h, w)
            kern.adaptive_dither(*args, floored, dead_zone(strength), RUN_TIE, 1.0, OFFSET_CAP, ERROR_CAP, bands)

        if k == 1:
            row("diffusion floor (one entry)", diffuse)
            return
        row(
            f"K={k} undithered remap",
            lambda: kern.gather(nearest_in_space(lab, entries32, kern).astype(np.uint8), inverse, plain),
        )
        row(f"K={k} dither map", lambda: kern.dither_map(plain, edges.reshape(-1), h, w, level))
        row(f"K={k} diffusion kernel", diffuse)
        out = adaptive_dither(hist.counts, lab, inverse, None, palette, edges, strength, kern)
        row(
            f"K={k} whole remap",
            lambda: adaptive_dither(hist.counts, lab, inverse, None, palette, edges, strength, kern),
        )
        row(f"K={k} SSIMULACRA 2", lambda: ssimulacra2(img, palette[out], kern))

    for k in [1, *(a.k or [16, 64, 256])]:
        measure_k(k)


if __name__ == "__main__":
    main()
