"""The engine's stage times on a 24 MP photo, in one process (not a pytest file).

Run from the repository root: ``python -m bench.measure_engine`` (``--write-results``: also into
docs/results.md, section "engine"). Uses the 24 MP photo of
``bench/photos.py`` (made and cached on first use). Best of a few runs; the steady-state Lloyd
iteration is (t(11 iterations) - t(1)) / 10, which leaves out the fit's set-up and its first,
full assignment.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from bench.photos import photo_file
from bench.results import add_option, write_results
from kmpress import kernels_numba as kn
from kmpress import kernels_numpy as kp
from kmpress import quantize, read_image
from kmpress.clustering import kmeans_plusplus, lloyd
from kmpress.histogram import build_histogram

SMALL = Path(__file__).resolve().parent.parent / "tests" / "data" / "astronaut.png"


def best(f, n: int = 3):
    b = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        f()
        b = min(b, time.perf_counter() - t)
    return b


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.measure_engine", description=__doc__.split("\n")[0])
    add_option(ap)
    a = ap.parse_args(argv)
    big = read_image(photo_file("full", "png"))
    small = read_image(SMALL)
    quantize(small, 4)  # compile or load the kernels outside every timing
    h = build_histogram(big, kn)
    X, w = np.ascontiguousarray(h.colors.T, dtype=np.float32), h.counts.astype(np.float64)
    P = np.ascontiguousarray(big.reshape(-1, 3).T, dtype=np.float32)
    ks = (16, 64, 256)
    ms = lambda t: f"{t * 1000:.1f} ms" if t < 0.01 else f"{t * 1000:.0f} ms" if t < 1 else f"{t:.1f} s"  # noqa: E731
    rows = {
        "seeding": "| k-means++ seeding on the histogram |",
        "steady": "| one Lloyd iteration on the histogram, steady state |",
        "pixels": "| first Lloyd iteration over every pixel, numba / NumPy |",
        "quantize": "| whole `quantize` (iterations) |",
    }
    for k in ks:
        c0 = kmeans_plusplus(X, w, True, k, np.random.default_rng(0), kn)
        t_pp = best(lambda k=k: kmeans_plusplus(X, w, True, k, np.random.default_rng(0), kn))
        t1 = best(lambda c0=c0: lloyd(X, w, True, c0, 1, 0.0, kn, final_assign=False))
        t11 = best(lambda c0=c0: lloyd(X, w, True, c0, 11, 0.0, kn, final_assign=False))
        t_px = best(lambda c0=c0: lloyd(P, np.empty(0), False, c0, 1, 0.0, kn, final_assign=False))
        t_np = best(lambda c0=c0: lloyd(P, np.empty(0), False, c0, 1, 0.0, kp, final_assign=False), 1)
        q = quantize(big, k)
        t_q = best(lambda k=k: quantize(big, k), 2)
        rows["seeding"] += f" {ms(t_pp)} |"
        rows["steady"] += f" {ms((t11 - t1) / 10)} |"
        rows["pixels"] += f" {ms(t_px)} / {ms(t_np)} |"
        rows["quantize"] += f" {t_q:.2f} s ({q.n_iter}) |"
        print(f"K={k}: done", file=sys.stderr, flush=True)
    t_hist = best(lambda: build_histogram(big, kn))
    t_small = best(lambda: quantize(small, 16), 7)
    lines = [
        f"24 MP photo of `bench/photos.py` ({big.shape[1]}x{big.shape[0]}, {h.n_colors:,} distinct colours), "
        "numba backend after compilation, best of 3 in one process:",
        "",
        "| what (24 MP unless said) | K=16 | K=64 | K=256 |",
        "|---|---|---|---|",
        f"| histogram (distinct colours + counts) | {ms(t_hist)} | | |",
        *rows.values(),
        f"| `quantize` of a 512x512 photo | {ms(t_small)} | | |",
    ]
    print("\n".join(lines))
    if a.write_results:
        write_results(
            a.write_results, "engine", "\n".join(lines), "bench.measure_engine", sys.argv[1:] if argv is None else argv
        )


if __name__ == "__main__":
    main()
