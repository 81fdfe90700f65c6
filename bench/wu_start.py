"""Wu's variance-cutting quantizer as the start of Lloyd's iterations, against kmpress's k-means++.

Run from the repository root::

    python -m bench.wu_start PHOTO...              # K = 16, 64, 256
    python -m bench.wu_start PHOTO... --k 256

Celebi (2011, "Improving the performance of k-means for color quantization") found Wu's quantizer
(Wu 1991: the colour cube cut box by box, always the box of largest variance, where the cut
leaves the least variance) a start from which colour k-means converges faster than from
k-means++. This checks it on kmpress's Lloyd: for each photo and K, ``kmpress.kmeans`` on the
photo's histogram (distinct RGB colours weighted by their counts, the clustering the pipeline
runs) from k-means++ (seed 0) and from Wu's centroids (a 32-level cube per channel, the usual
resolution), and prints the iterations to convergence, the PSNR of the fit and the seconds of
each. An experiment: kmpress does not use Wu's start.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

#: Levels per channel of Wu's cube (5 bits).
BITS = 5


class Moments:
    """Cumulative moments of a histogram on a (2^BITS + 1)^3 cube (index 0 is padding)."""

    def __init__(self, colors: np.ndarray, counts: np.ndarray) -> None:
        side = (1 << BITS) + 1
        q = (colors >> (8 - BITS)).astype(np.int64) + 1
        idx = (q[:, 0] * side + q[:, 1]) * side + q[:, 2]
        w = counts.astype(np.float64)
        c = colors.astype(np.float64)

        def cube(values: np.ndarray) -> np.ndarray:
            a = np.bincount(idx, values, side**3).reshape(side, side, side)
            return a.cumsum(0).cumsum(1).cumsum(2)

        self.weight = cube(w)
        self.sums = [cube(w * c[:, j]) for j in range(3)]
        self.squares = cube(w * (c * c).sum(axis=1))

    @staticmethod
    def volume(a: np.ndarray, box: tuple[int, ...]) -> float:
        """Return the sum of ``a``'s histogram over ``box`` = (r0, r1, g0, g1, b0, b1), half-open below."""
        r0, r1, g0, g1, b0, b1 = box
        return float(
            a[r1, g1, b1] - a[r1, g1, b0] - a[r1, g0, b1] + a[r1, g0, b0]
            - a[r0, g1, b1] + a[r0, g1, b0] + a[r0, g0, b1] - a[r0, g0, b0]
        )  # fmt: skip

    def stats(self, box: tuple[int, ...]) -> tuple[float, np.ndarray]:
        """Return the weight and the (3,) weighted sums of the colours in ``box``."""
        return self.volume(self.weight, box), np.array([self.volume(s, box) for s in self.sums])

    def variance(self, box: tuple[int, ...]) -> float:
        """Return the weighted sum of squared distances to the box's mean."""
        w, s = self.stats(box)
        return 0.0 if w <= 0 else self.volume(self.squares, box) - float(s @ s) / w


def best_cut(m: Moments, box: tuple[int, ...]) -> tuple[int, int] | None:
    """Return (axis, position) of the cut of ``box`` that leaves the least variance, or None."""
    w, s = m.stats(box)
    best, where = -1.0, None
    for axis in range(3):
        for cut in range(box[2 * axis] + 1, box[2 * axis + 1]):
            half = list(box)
            half[2 * axis + 1] = cut
            w1, s1 = m.stats(tuple(half))
            if 0 < w1 < w:
                s2 = s - s1
                score = float(s1 @ s1) / w1 + float(s2 @ s2) / (w - w1)
                if score > best:
                    best, where = score, (axis, cut)
    return where


def wu_centroids(colors: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """Return up to ``k`` (k', 3) float64 centroids: the means of Wu's boxes."""
    m = Moments(colors, counts)
    n = 1 << BITS
    boxes = [(0, n, 0, n, 0, n)]
    spread = [m.variance(boxes[0])]
    while len(boxes) < k:
        for i in np.argsort(spread)[::-1]:
            if spread[i] <= 0:
                return _means(m, boxes)
            cut = best_cut(m, boxes[i])
            if cut is None:
                spread[i] = 0.0
                continue
            axis, at = cut
            low, high = list(boxes[i]), list(boxes[i])
            low[2 * axis + 1] = high[2 * axis] = at
            boxes[i] = tuple(low)
            boxes.append(tuple(high))
            spread[i] = m.variance(boxes[i])
            spread.append(m.variance(boxes[-1]))
            break
        else:
            break
    return _means(m, boxes)


def _means(m: Moments, boxes: list[tuple[int, ...]]) -> np.ndarray:
    out = []
    for box in boxes:
        w, s = m.stats(box)
        if w > 0:
            out.append(s / w)
    return np.array(out, np.float64)


def main(argv: list[str] | None = None) -> None:
    """Print one row per photo and K."""
    from PIL import Image

    import kmpress

    ap = argparse.ArgumentParser(prog="python -m bench.wu_start", description=__doc__.split("\n")[0])
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--k", type=int, action="append", help="K (repeat; default 16, 64, 256)")
    a = ap.parse_args(argv)
    print(
        "| photo | colours | K | iterations k-means++ / Wu | PSNR k-means++ / Wu | seconds k-means++ / Wu (Wu's cut) |"
    )
    print("|---|---|---|---|---|---|")
    for path in a.photos:
        px = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
        colors, counts = np.unique(px, axis=0, return_counts=True)
        points, weights = colors.astype(np.float64), counts.astype(np.float64)
        for k in a.k or (16, 64, 256):
            t0 = time.perf_counter()
            pp = kmpress.kmeans(points, k, weights=weights, seed=0, backend="numba")
            t1 = time.perf_counter()
            start = wu_centroids(colors, counts, k)
            t2 = time.perf_counter()
            if len(start) < k:
                print(f"| {path} | {len(colors):,} | {k} | Wu found {len(start)} boxes | | |")
                continue
            wu = kmpress.kmeans(points, k, weights=weights, init=start, backend="numba")
            t3 = time.perf_counter()
            psnr = [10 * np.log10(255.0**2 * px.shape[0] * 3 / r.inertia) for r in (pp, wu)]
            print(
                f"| {path.rsplit('/', 1)[-1]} | {len(colors):,} | {k} | {pp.n_iter} / {wu.n_iter} "
                f"| {psnr[0]:.2f} / {psnr[1]:.2f} | {t1 - t0:.2f} / {t3 - t1:.2f} ({t2 - t1:.2f}) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
