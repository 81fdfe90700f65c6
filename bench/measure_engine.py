"""The engine figures of the README's "Speed" table, in one process (not a pytest file).

Run from the repository root: ``python -m bench.measure_engine``. Uses the 24 MP photo of
``bench/photos.py`` (made and cached on first use). Best of a few runs; the steady-state Lloyd
iteration is (t(11 iterations) - t(1)) / 10, which leaves out the fit's set-up and its first,
full assignment.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.photos import photo_file
from kmpress import kernels_numba as kn
from kmpress import kernels_numpy as kp
from kmpress import quantize, read_image
from kmpress.histogram import build_histogram
from kmpress.clustering import kmeans_plusplus
from kmpress.clustering import lloyd

SMALL = Path(__file__).resolve().parent.parent / "tests" / "data" / "astronaut.png"


def best(f, n: int = 3):
    b = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        f()
        b = min(b, time.perf_counter() - t)
    return b


def main() -> None:
    big = read_image(photo_file("full", "png"))
    small = read_image(SMALL)
    quantize(small, 4)  # compile or load the kernels outside every timing
    h = build_histogram(big, kn)
    X, w = h.planar(), h.counts.astype(np.float64)
    P = np.ascontiguousarray(big.reshape(-1, 3).T, dtype=np.float32)
    print(f"24 MP photo {big.shape[1]}x{big.shape[0]}: {h.n_colors:,} distinct colours")
    print(f"histogram: {best(lambda: build_histogram(big, kn)) * 1000:.0f} ms")
    for k in (16, 64, 256):
        c0 = kmeans_plusplus(X, w, True, k, np.random.default_rng(0), kn)
        t_pp = best(lambda: kmeans_plusplus(X, w, True, k, np.random.default_rng(0), kn))
        t1 = best(lambda: lloyd(X, w, True, c0, 1, 0.0, kn, final_assign=False))
        t11 = best(lambda: lloyd(X, w, True, c0, 11, 0.0, kn, final_assign=False))
        t_px = best(lambda: lloyd(P, np.empty(0), False, c0, 1, 0.0, kn, final_assign=False))
        t_np = best(lambda: lloyd(P, np.empty(0), False, c0, 1, 0.0, kp, final_assign=False), 1)
        print(
            f"K={k:3d}: k-means++ {t_pp * 1000:.0f} ms | Lloyd on the histogram: first iteration with set-up "
            f"{t1 * 1000:.1f} ms, steady {(t11 - t1) / 10 * 1000:.2f} ms | first per-pixel iteration: "
            f"numba {t_px * 1000:.0f} ms, numpy {t_np * 1000:.0f} ms"
        )
    for k in (16, 64, 256):
        q = quantize(big, k)
        t = best(lambda: quantize(big, k), 2)
        stages = ", ".join(f"{a} {b:.3f}" for a, b in q.timings.items())
        print(f"quantize 24 MP K={k}: {t:.2f} s, {q.n_iter} iterations, PSNR {q.psnr:.3f} dB ({stages})")
    t = best(lambda: quantize(small, 16), 7)
    print(f"quantize 512x512 K=16: {t * 1000:.1f} ms")


if __name__ == "__main__":
    main()
