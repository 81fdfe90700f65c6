"""kmeans on general data: what the float32 kernels cost against a float64 Lloyd.

Run from the repository root::

    python -m bench.kmeans_general
    python -m bench.kmeans_general --write-results   # also into docs/results.md, section "kmeans-general"

For 20,000 points in 5 blobs (centres N(0, 10), sigma 3) placed at the origin, offset by 1e3 and
1e6, scaled to 1 +- 1e-6, and as int64 near 3e7, K = 8 from the same random start, ``tol=0``:
labels that differ from a plain float64 Lloyd, the largest centroid error relative to the data's
spread, the inertia's relative error against a float64 recomputation, and the iterations.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import kmpress

DATASETS = ("origin", "offset 1e3", "offset 1e6", "1 +- 1e-6", "int64 near 3e7")


def points(kind: str, n: int = 20_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 10, (5, 3))[rng.integers(0, 5, n)] + rng.normal(0, 3, (n, 3))
    return {
        "origin": lambda: base,
        "offset 1e3": lambda: base + 1e3,
        "offset 1e6": lambda: base + 1e6,
        "1 +- 1e-6": lambda: 1.0 + base * 1e-7,
        "int64 near 3e7": lambda: (3e7 + base * 100).astype(np.int64),
    }[kind]()


def float64_lloyd(x: np.ndarray, C: np.ndarray, max_iter: int = 300) -> tuple[np.ndarray, np.ndarray, int]:
    """Textbook Lloyd in float64 (no empty clusters occur on these data)."""
    labels = None
    for it in range(max_iter + 1):
        new = ((x[:, None] - C[None]) ** 2).sum(-1).argmin(1)
        if labels is not None and np.array_equal(new, labels):
            return C, labels, it
        labels = new
        if it == max_iter:
            break
        C = np.array([x[labels == j].mean(0) for j in range(len(C))])
    return C, labels, max_iter


def main(argv: list[str] | None = None) -> None:
    from bench.results import add_option, write_results

    ap = argparse.ArgumentParser(prog="python -m bench.kmeans_general", description=__doc__.split("\n")[0])
    add_option(ap)
    a = ap.parse_args(argv)
    rows = [
        "| data | backend | labels differing | centroid error / spread | inertia rel. error | iterations (float64) |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(rows), flush=True)
    for kind in DATASETS:
        X = points(kind)
        x = X.astype(np.float64)
        init = x[np.random.default_rng(3).choice(len(x), 8, replace=False)]
        C64, lab64, it64 = float64_lloyd(x, init)
        spread = float(np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean()))
        for backend in ("numba", "numpy"):
            r = kmpress.kmeans(X, 8, init=init, max_iter=300, tol=0, backend=backend)
            true = float(((x - r.centroids[r.labels]) ** 2).sum())
            rows.append(
                f"| {kind} | {backend} | {int((r.labels != lab64).sum())} "
                f"| {np.abs(r.centroids - C64).max() / spread:.1e} "
                f"| {abs(r.inertia - true) / true:.1e} | {r.n_iter} ({it64}) |"
            )
            print(rows[-1], flush=True)
    if a.write_results:
        write_results(
            a.write_results,
            "kmeans-general",
            "\n".join(rows),
            "bench.kmeans_general",
            sys.argv[1:] if argv is None else argv,
        )


if __name__ == "__main__":
    main()
