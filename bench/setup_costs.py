"""The NumPy backend's Lloyd iteration and the set-up around it, against the plain NumPy iteration.

Run from the repository root::

    python -m bench.setup_costs                  # 2 MP photo of bench/photos.py, K = 16, 64, 256
    python -m bench.setup_costs --write-results  # also into docs/results.md, section "numpy-setup"

``kmpress.kmeans`` on every pixel (float64 points, unweighted), its steps timed apart in CPU time
(``time.process_time``; set ``OPENBLAS_NUM_THREADS=1``), each step in turn within a round,
medians over the rounds: the frame and the planar points (centring; the pass also measures the
moments and the search's norm bounds, which ``kmeans`` then takes from it), the moments (the sum
of squares and the mean) and the norm bounds of the search measured apart, as the Lloyd loop
does when not given them, the variance pass (which ``kmeans`` runs only when the stopping test
needs it), one iteration of the NumPy backend (the second of the run),
the last assignment (labels only), the plain NumPy iteration
(:func:`bench.peers.numpy_plain_iteration`) and the inertia of the result; the whole
``kmeans(max_iter=1)`` call (seeded apart, on every 97th point), and numba's iteration beside
them.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def measure(a: np.ndarray, k: int, rounds: int) -> dict[str, float]:
    """Median CPU seconds of each step for (N, 3) float64 points ``a`` at ``k`` centroids."""
    from bench.peers import numpy_plain_iteration
    from kmpress import backends, clustering, kernels_numpy, kmeans, points

    w = np.empty(0)
    frame, X, _ = points.frame_points(a, w, False, 0)
    # seeded on every 97th point: k-means++ over every pixel in NumPy would take minutes
    C0 = kmeans(a[::97], k, backend="numpy", max_iter=0, seed=0).centroids
    run = clustering.Lloyd(X, w, False, C0, kernels_numpy)
    run.step()
    C, labels = run.C.copy(), run.labels.copy()
    numba = backends.load("numba")
    run_numba = clustering.Lloyd(X, w, False, C0, numba)
    run_numba.step()
    sum_sq, mean, total_w = clustering.first_moments(X, w, False)
    steps = {
        "kmeans max_iter=1": lambda: kmeans(a, k, init=C0, max_iter=1, backend="numpy"),
        "frame + planar": lambda: points.frame_points(a, w, False, 0),
        "moments": lambda: clustering.first_moments(X, w, False),
        "variance": lambda: clustering.mean_variance(X, w, False, mean, total_w),
        "norm bounds": lambda: kernels_numpy.block_boxes(X),
        "inertia": lambda: frame.inertia(a, w, False, C, labels, X),
        "iteration": run.step,
        "last labels": run.relabel,
        "plain iteration": lambda: numpy_plain_iteration(X, None, C),
        "numba iteration": run_numba.step,
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, f in steps.items():
            t0 = time.process_time()
            f()
            times[name].append(time.process_time() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    from bench.photos import photo_array
    from bench.results import add_option, write_results

    ap = argparse.ArgumentParser(prog="python -m bench.setup_costs", description=__doc__.split("\n")[0])
    ap.add_argument("--k", action="append", type=int, help="centroids (repeatable; default 16, 64, 256)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of every step (default 5)")
    ap.add_argument("--size", default="small", help="bench/photos.py size name (default small: 2 MP)")
    add_option(ap)
    a = ap.parse_args(argv)
    pts = photo_array(a.size).reshape(-1, 3).astype(np.float64)
    rows = [
        f"{pts.shape[0]:,} points, CPU seconds, medians of {a.rounds}; set-up = the max_iter=1 call less one "
        "iteration (centring with the moments and norm bounds, the last assignment, the inertia; the variance "
        "pass is not run: the first update's shift is far above the stopping threshold)",
        "",
        "| K | frame + planar | moments | variance | norm bounds | last labels | inertia | kmeans max_iter=1 "
        "| NumPy iteration | plain iteration | numba iteration | set-up / iteration | NumPy / plain | plain / numba |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    cols = (
        "frame + planar",
        "moments",
        "variance",
        "norm bounds",
        "last labels",
        "inertia",
        "kmeans max_iter=1",
        "iteration",
        "plain iteration",
        "numba iteration",
    )
    for k in a.k or [16, 64, 256]:
        m = measure(pts, k, a.rounds)
        setup = m["kmeans max_iter=1"] - m["iteration"]
        ratios = (
            f"{setup / m['iteration']:.2f} | {m['iteration'] / m['plain iteration']:.2f} "
            f"| {m['plain iteration'] / m['numba iteration']:.1f}x"
        )
        rows.append(f"| {k} | " + " | ".join(f"{m[c]:.3f}" for c in cols) + f" | {ratios} |")
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(table)
    if a.write_results:
        write_results(a.write_results, "numpy-setup", table, "bench.setup_costs", argv)


if __name__ == "__main__":
    main()
