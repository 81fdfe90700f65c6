"""``kmpress.kmeans`` on every pixel of the 24 MP photo: a NumPy iteration, the set-up around it,
the plain NumPy iteration beside them, and numba's iteration.

Run from the repository root (one process per backend and K, so that runs can be interleaved
with those of another checkout)::

    OPENBLAS_NUM_THREADS=1 python -m bench.numpy_baseline numpy 16 --plain
    OPENBLAS_NUM_THREADS=1 python -m bench.numpy_baseline numba 16

Prints one JSON line of CPU seconds (``time.process_time``): ``1`` and ``2``, whole
``kmpress.kmeans(points, K, init=C0, max_iter=1 or 2, tol=0)`` calls on the photo's (N, 3)
float64 pixels (C0: k-means++ on every 97th pixel, seed 0, so that seeding is left out); one
iteration is ``2 - 1`` and the set-up around it (centring, moments, the last assignment, the
inertia) ``1 - (2 - 1)``. ``plain``: :func:`bench.peers.numpy_plain_iteration` on the same points
and the final centroids, the NumPy backend's yardstick.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main(argv: list[str] | None = None) -> None:
    from bench.photos import photo_array
    from kmpress import kmeans

    ap = argparse.ArgumentParser(prog="python -m bench.numpy_baseline", description=__doc__.split("\n")[0])
    ap.add_argument("backend", choices=("numpy", "numba"))
    ap.add_argument("k", type=int)
    ap.add_argument("--plain", action="store_true", help="also time the plain NumPy iteration")
    ap.add_argument("--size", default="full", help="bench/photos.py size name (default full: 24 MP)")
    a = ap.parse_args(argv)
    pts = photo_array(a.size).reshape(-1, 3).astype(np.float64)
    C0 = kmeans(pts[::97], a.k, backend="numpy", max_iter=0, seed=0).centroids
    kmeans(pts[:20000], a.k, init=C0, backend=a.backend, max_iter=1)  # numba loaded and warm
    out: dict[str, object] = {"backend": a.backend, "k": a.k}
    for m in (1, 2):
        t0 = time.process_time()
        r = kmeans(pts, a.k, init=C0, backend=a.backend, max_iter=m, tol=0.0)
        out[str(m)] = time.process_time() - t0
        out[f"inertia{m}"] = r.inertia
    if a.plain:
        from bench.peers import numpy_plain_iteration

        X = np.ascontiguousarray(pts.T, dtype=np.float32)
        t0 = time.process_time()
        numpy_plain_iteration(X, None, r.centroids)
        out["plain"] = time.process_time() - t0
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
