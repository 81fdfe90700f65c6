"""Naive oracles, one per stage, the yardsticks of the engine: a slow, obviously-correct weighted
Lloyd k-means first, then the histogram, k-means++, the nearest entry, Floyd-Steinberg, ΔE and the
adaptive dither (contrast maps, dither map, error diffusion, the palette's reach).

The Lloyd reference:

Everything is float64 NumPy on small data, one iteration written out step by step as in the
textbook: assign every point to its nearest centroid (ties to the lowest index), then move every
centroid to the weighted mean of its points. It follows the loop rules that the engine documents
(:func:`kmpress.clustering.lloyd`), which are part of its contract, not an implementation detail:

- stop when an assignment pass changes no label (the centroids are then already the means of
  their points), or after ``max_iter`` updates, or - only when ``tol > 0`` - when the sum of
  squared centroid shifts is at most ``tol`` times the mean per-channel weighted variance; with
  ``tol == 0`` a zero shift also stops (the next pass could not change a label);
- after stopping on a shift or on ``max_iter``, one last assignment pass, so the labels always
  belong to the returned centroids;
- an empty cluster (total weight 0 after an assignment) is re-seeded with the point farthest from
  its own centroid (float64 distance, ties to the lowest point index), taken out of its old
  cluster; clusters are filled in increasing index order, a point is never taken from a cluster
  it would leave empty nor one of zero weight (it cannot fill a cluster), and the search gives
  up as soon as the farthest remaining point lies on its centroid. A cluster left empty keeps
  its old centroid.

The reference also records, for every assignment pass, the smallest gap between a point's best
and second-best squared distance. Tests use it to prove that their data has no near-ties, so that
float32 distance rounding in the kernels cannot legitimately pick another centroid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class RefResult:
    """What :func:`reference_lloyd` computed.

    Attributes
    ----------
    centroids : (K, D) float64
    labels : (N,) int64
    inertia : float; weighted sum of squared distances to the assigned centroids (last pass)
    n_iter : int; centroid updates made
    converged : bool; stopped before ``max_iter`` ran out
    inertia_history : list of float; inertia of every assignment pass
    min_gap : float; smallest (second-best - best) squared distance seen over all passes
    min_gap_rel : float; ``min_gap`` divided by the largest squared norm of any point or centroid
        (the scale of float32 rounding errors in a ``|x|^2 - 2 x.c + |c|^2`` distance)
    relocations : int; empty clusters re-seeded over the whole run
    """

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    converged: bool
    inertia_history: list[float] = field(default_factory=list)
    min_gap: float = np.inf
    min_gap_rel: float = np.inf
    relocations: int = 0


def _sqdist(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """(N, K) squared distances, by plain differences (no cancellation-prone expansion)."""
    diff = X[:, None, :] - C[None, :, :]
    return (diff * diff).sum(axis=2)


def _assign(X: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Nearest centroid (argmin picks the lowest index on exact ties), distances, smallest gap."""
    d = _sqdist(X, C)
    labels = d.argmin(axis=1)
    best = d[np.arange(len(X)), labels]
    if C.shape[0] > 1:
        part = np.partition(d, 1, axis=1)
        gap = float((part[:, 1] - part[:, 0]).min())
    else:
        gap = np.inf
    return labels, best, gap


def _weighted_sums(X: np.ndarray, w: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster weighted coordinate sums (K, D) and weights (K,): ``np.add.at`` adds point by
    point (unbuffered), the plain scatter-add."""
    sums = np.zeros((k, X.shape[1]))
    wsum = np.zeros(k)
    np.add.at(sums, labels, w[:, None] * X)
    np.add.at(wsum, labels, w)
    return sums, wsum


def _relocate_empty(X, w, C, labels, dist, sums, wsum) -> int:
    """Fill the empty clusters with the farthest points (in place); see the module docstring.

    Returns the number of clusters filled.
    """
    order = sorted(range(len(X)), key=lambda p: (-dist[p], p))
    pos = 0
    filled = 0
    for j in range(C.shape[0]):
        if wsum[j] > 0:
            continue
        while pos < len(order):
            p = order[pos]
            pos += 1
            if dist[p] <= 0:
                return filled  # every remaining point sits on its centroid
            if w[p] <= 0:
                continue  # a weightless point cannot make a cluster non-empty
            old = labels[p]
            if wsum[old] - w[p] <= 0:
                continue
            sums[old] -= w[p] * X[p]
            wsum[old] -= w[p]
            sums[j] = w[p] * X[p]
            wsum[j] = w[p]
            labels[p] = j
            filled += 1
            break
    return filled


def weighted_mean_variance(X: np.ndarray, w: np.ndarray) -> float:
    """Mean over channels of the weighted variance of the points."""
    mean = (w[:, None] * X).sum(axis=0) / w.sum()
    return float(((w[:, None] * (X - mean) ** 2).sum(axis=0) / w.sum()).mean())


def reference_lloyd(
    points: np.ndarray,
    init: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    max_iter: int = 300,
    tol: float = 0.0,
) -> RefResult:
    """Weighted Lloyd k-means from explicit starting centroids.

    Parameters
    ----------
    points : (N, D) array_like, converted to float64
    init : (K, D) array_like, starting centroids
    weights : (N,) non-negative, optional (default: all ones)
    max_iter : most centroid updates
    tol : relative shift threshold (see the module docstring)
    """
    X = np.asarray(points, dtype=np.float64)
    C = np.array(init, dtype=np.float64)
    n, k = len(X), C.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    threshold = tol * weighted_mean_variance(X, w) if tol > 0 else 0.0
    scale = float(max((X * X).sum(axis=1).max(), (C * C).sum(axis=1).max(), 1e-300))

    labels = np.full(n, -1)
    history: list[float] = []
    min_gap = np.inf
    n_iter = 0
    relocations = 0
    converged = False
    stable = False
    for _ in range(max_iter):
        new_labels, dist, gap = _assign(X, C)
        min_gap = min(min_gap, gap)
        history.append(float((w * dist).sum()))
        if np.array_equal(new_labels, labels):
            converged = stable = True
            break
        labels = new_labels
        sums, wsum = _weighted_sums(X, w, labels, k)
        if np.any(wsum <= 0):
            relocations += _relocate_empty(X, w, C, labels, dist, sums, wsum)
        new_C = C.copy()
        for j in range(k):
            if wsum[j] > 0:
                new_C[j] = sums[j] / wsum[j]
        shift = float(((new_C - C) ** 2).sum())
        C = new_C
        n_iter += 1
        if shift <= threshold:
            converged = True
            break
    if not stable:
        labels, dist, gap = _assign(X, C)
        min_gap = min(min_gap, gap)
        history.append(float((w * dist).sum()))
    return RefResult(
        centroids=C,
        labels=labels,
        inertia=history[-1],
        n_iter=n_iter,
        converged=converged,
        inertia_history=history,
        min_gap=min_gap,
        min_gap_rel=min_gap / scale,
        relocations=relocations,
    )


# --------------------------------------------------------------------------------------------
# naive oracles of the other stages, written from their textbook definitions
# --------------------------------------------------------------------------------------------


def reference_histogram(pixels: np.ndarray) -> tuple[dict[tuple, int], list[tuple]]:
    """Stage 1 by counting in a dict: {colour: count} and each pixel's colour, raster order.

    Parameters
    ----------
    pixels : (N, C) uint8
    """
    counts: dict[tuple, int] = {}
    colors = [tuple(int(v) for v in row) for row in pixels]
    for c in colors:
        counts[c] = counts.get(c, 0) + 1
    return counts, colors


def reference_kmeans_plusplus(
    X: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator, trials: int | None = None
) -> np.ndarray:
    """Greedy weighted k-means++ in float64, drawing from ``rng`` exactly as the engine documents.

    The first centre is drawn with probability proportional to the weight (``u = rng.random()``,
    the first point whose running sum of weights exceeds ``u * total``). Each next centre: draw
    ``trials`` values at once (``rng.random(trials)``), each picking the first point whose running
    sum of ``w * D^2`` (D: distance to the nearest centre so far) exceeds ``u * total``; the
    candidate giving the lowest total ``w * min(D^2, d(x, cand)^2)`` wins (ties: the first).

    Parameters
    ----------
    X : (N, D) points; w : (N,) non-negative weights

    Returns
    -------
    (k, D) float64 centres and the indices of the points they are
    """
    X = np.asarray(X, np.float64)
    w = np.asarray(w, np.float64)
    trials = trials if trials is not None else 2 + int(np.log(k))

    def pick(pot: np.ndarray, u: float) -> int:
        target = u * pot.sum()
        run = 0.0
        last = 0
        for p in range(len(pot)):
            if pot[p] > 0:
                run += pot[p]
                last = p
                if run > target:
                    return p
        return last

    first = pick(w.copy(), rng.random())
    chosen = [first]
    closest = ((X - X[first]) ** 2).sum(axis=1)
    for _ in range(1, k):
        cands = [pick(w * closest, float(u)) for u in rng.random(trials)]
        pots = [float((w * np.minimum(closest, ((X - X[c]) ** 2).sum(axis=1))).sum()) for c in cands]
        best = cands[int(np.argmin(pots))]
        chosen.append(best)
        closest = np.minimum(closest, ((X - X[best]) ** 2).sum(axis=1))
    return X[chosen].copy(), np.array(chosen)


def reference_nearest(points: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of each point by brute force in float64, ties to the lowest."""
    P = np.asarray(points, np.float64)
    E = np.asarray(entries, np.float64)
    out = np.empty(len(P), np.int64)
    for i, p in enumerate(P):
        best, bd = 0, np.inf
        for j, e in enumerate(E):
            d = float(((p - e) ** 2).sum())
            if d < bd:
                best, bd = j, d
        out[i] = best
    return out


def reference_floyd_steinberg(image: np.ndarray, entries: np.ndarray, strength: float = 0.75) -> np.ndarray:
    """Serpentine Floyd-Steinberg onto ``entries``, as the engine documents it, on the whole image.

    Rows alternate direction (even rows left to right). Each pixel's value is its colour plus the
    error diffused into it, clamped to the entries' bounding box; it takes the nearest entry
    (ties to the lowest index), and ``strength`` x its error goes 7/16 ahead, 3/16 behind-below,
    5/16 below and 1/16 ahead-below. With an alpha channel, fully transparent pixels take their
    own colour's nearest entry and neither receive nor pass on error.

    Parameters
    ----------
    image : (H, W, C) values of the clustering space (sRGB values for "rgb")
    entries : (P, C) palette entries in the same space
    """
    img = np.asarray(image, np.float64)
    E = np.asarray(entries, np.float64)
    h, w, c = img.shape
    lo, hi = E.min(axis=0), E.max(axis=0)
    transparent = (img[:, :, 3] == 0) if c == 4 else np.zeros((h, w), bool)
    err = np.zeros((h, w, c))
    out = np.zeros((h, w), np.int64)

    def nearest(v):
        d = [float(sum((v[j] - e[j]) * (v[j] - e[j]) for j in range(c))) for e in E]
        return int(np.argmin(d))

    for y in range(h):
        step = 1 if y % 2 == 0 else -1
        xs = range(w) if step == 1 else range(w - 1, -1, -1)
        for x in xs:
            if transparent[y, x]:
                out[y, x] = nearest(img[y, x])
                continue
            v = [min(hi[j], max(lo[j], img[y, x, j] + err[y, x, j])) for j in range(c)]
            k = nearest(v)
            out[y, x] = k
            for dy, dx, share in ((0, step, 7), (1, -step, 3), (1, 0, 5), (1, step, 1)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and 0 <= xx < w and not transparent[yy, xx]:
                    for j in range(c):
                        err[yy, xx, j] += (v[j] - E[k, j]) * strength * (share / 16.0)
    return out


def reference_delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean OKLab distance of two uint8 images, pixel by pixel, from the formulas (sRGB transfer
    function, Ottosson's matrices, a real cube root): the yardstick of ΔE."""
    m1 = [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ]
    m2 = [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]

    def lab(rgb):
        lin = []
        for v in rgb[:3]:
            c = float(v) / 255.0
            lin.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
        lms = [sum(m1[i][j] * lin[j] for j in range(3)) for i in range(3)]
        root = [x ** (1.0 / 3.0) if x > 0 else 0.0 for x in lms]
        return [sum(m2[i][j] * root[j] for j in range(3)) for i in range(3)]

    pa = np.asarray(a).reshape(-1, np.asarray(a).shape[-1])
    pb = np.asarray(b).reshape(-1, np.asarray(b).shape[-1])
    cache: dict[tuple, list[float]] = {}
    total = 0.0
    for x, y in zip(pa, pb, strict=True):
        lx = cache.setdefault(tuple(x[:3]), lab(x))
        ly = cache.setdefault(tuple(y[:3]), lab(y))
        total += sum((lx[i] - ly[i]) ** 2 for i in range(3)) ** 0.5
    return total / len(pa)


def reference_contrast_maps(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The noise and edge maps of an image from their definition, in exact rational arithmetic:
    channel values ``v / 255`` weighted (1/2, 1, 9/20); per pixel (neighbours clamped to the image)
    the largest weighted ``|a + c - 2 b|`` along the row (h) and the column (v); ``edge = max(h, v)``,
    ``z = 1 - max(edge - |h - v| / 2, min(h, v))``, ``noise = min(255, floor(80 + 176 z^4))``,
    ``edges = floor(256 (1 - edge))`` clipped to 0..255. Then noise: two 3x3 maxima, the 7x7 mean
    rounded to the nearest integer, a 3x3 maximum, three 3x3 minima; edges: a 3x3 minimum, a 3x3
    maximum, then the smaller of it and noise (windows clamped to the image).

    Returns (noise, edges), (H, W) int64 each.
    """
    from fractions import Fraction

    img = np.asarray(image)
    h, w = img.shape[:2]
    wts = (Fraction(1, 2), Fraction(1), Fraction(9, 20))

    def px(y, x, c):
        return Fraction(int(img[min(max(y, 0), h - 1), min(max(x, 0), w - 1), c]), 255) * wts[c]

    noise = np.zeros((h, w), np.int64)
    edges = np.zeros((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            hz = max(abs(px(y, x - 1, c) + px(y, x + 1, c) - 2 * px(y, x, c)) for c in range(3))
            vt = max(abs(px(y - 1, x, c) + px(y + 1, x, c) - 2 * px(y, x, c)) for c in range(3))
            edge = max(hz, vt)
            z = 1 - max(edge - abs(hz - vt) / 2, min(hz, vt))
            noise[y, x] = min(255, math.floor(80 + 176 * z**4))
            edges[y, x] = max(0, min(255, math.floor(256 * (1 - edge))))

    def window(a, r, fn):
        return np.array(
            [
                [
                    fn(
                        a[yy, xx]
                        for yy in range(max(y - r, 0), min(y + r, h - 1) + 1)
                        for xx in range(max(x - r, 0), min(x + r, w - 1) + 1)
                    )
                    for x in range(w)
                ]
                for y in range(h)
            ]
        )

    def mean7(a):
        return np.array(
            [
                [
                    round(
                        Fraction(
                            sum(
                                int(a[min(max(yy, 0), h - 1), min(max(xx, 0), w - 1)])
                                for yy in range(y - 3, y + 4)
                                for xx in range(x - 3, x + 4)
                            ),
                            49,
                        )
                    )
                    for x in range(w)
                ]
                for y in range(h)
            ]
        )

    for fn in (max, max):
        noise = window(noise, 1, fn)
    noise = mean7(noise)
    for fn in (max, min, min, min):
        noise = window(noise, 1, fn)
    edges = window(window(edges, 1, min), 1, max)
    return noise, np.minimum(edges, noise)


def reference_dither_map(idx: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The dither map (libimagequant's update_dither_map), row by row: walking the row from its
    second pixel, a run ends where the entry changes, or at the last pixel. Its count ``n`` is 10
    per pixel from the run's start up to (not including) the pixel that ended it, plus 15 for each
    of those whose upper neighbour, and 15 for each whose lower neighbour, has the run's entry;
    every pixel from the run's start to the one that ended it (included) gets
    ``floor((edges + 128) x 255/383 x (1 - 20 / (20 + n)))``, and the next run starts after it.
    A one-pixel-wide image keeps its edges map. Returns (H, W) int64.
    """
    idx = np.asarray(idx)
    h, w = idx.shape
    out = np.array(edges, np.int64)
    for y in range(h):
        last, start = idx[y, 0], 0
        for col in range(1, w):
            if idx[y, col] != last or col == w - 1:
                n = 0
                for i in range(start, col):
                    n += 10 + 15 * (y > 0 and idx[y - 1, i] == last) + 15 * (y + 1 < h and idx[y + 1, i] == last)
                for i in range(start, col + 1):
                    out[y, i] = math.floor((float(edges[y, i]) + 128.0) * (255.0 / 383.0) * (1.0 - 20.0 / (20.0 + n)))
                start, last = col + 1, idx[y, col]
    return out


def reference_adaptive_dither(
    image: np.ndarray,
    entries: np.ndarray,
    level: np.ndarray,
    maxerr: float,
    dead: float = 1.0,
    bands: Sequence[int] | None = None,
    tie: float = 0.0,
) -> np.ndarray:
    """The adaptive error diffusion, as the engine documents it, band by band.

    ``bands`` are the first rows of the bands, then H (default: one band). Each band is diffused
    on its own from two rows above its first, starting with no error; only its own rows are kept.

    Serpentine (even rows left to right). Each pixel carries the error diffused into it, ``c``;
    its offset is ``s = c x level / 255``; when ``|s|^2 < dead`` it is dropped, when
    ``|s|^2 > maxerr`` scaled by 0.8. Its value, colour plus offset clamped to the entries'
    bounding box, takes the nearest entry (ties to the lowest index), or the entry of the pixel
    before it on its row (in the serpentine order, transparent or not) when that one's squared
    distance is at most ``tie`` more, or else, on the same terms, the entry of the pixel above it
    (as the band diffused it, its warm-up rows included); its error ``e`` (scaled by
    0.75 when ``|e|^2 > maxerr``) goes 7/16 ahead, 3/16 behind-below, 5/16 below and 1/16
    ahead-below. With an alpha channel, fully transparent pixels take their own colour's nearest
    entry and neither receive nor pass on error.

    image : (H, W, C) values of the space; entries : (P, C); level : (H, W) 0..255
    """
    img = np.asarray(image, np.float64)
    E = np.asarray(entries, np.float64)
    h, w, c = img.shape
    lo, hi = E.min(axis=0), E.max(axis=0)
    transparent = (img[:, :, 3] == 0) if c == 4 else np.zeros((h, w), bool)
    out = np.zeros((h, w), np.int64)

    def sq(v):
        t = 0.0
        for j in range(c):
            t += v[j] * v[j]
        return t

    def nearest(v):
        d = [sq([v[j] - e[j] for j in range(c)]) for e in E]
        return int(np.argmin(d))

    bands = [0, h] if bands is None else list(bands)
    for y0, y1 in zip(bands[:-1], bands[1:], strict=True):
        err = np.zeros((h, w, c))
        up = np.full(w, -1)  # the entry each column took on the row before, in this band
        for y in range(max(0, y0 - 2), y1):
            step = 1 if y % 2 == 0 else -1
            before = -1  # the entry of the pixel before, on this row, in the serpentine order
            for x in range(w) if step == 1 else range(w - 1, -1, -1):
                if transparent[y, x]:
                    before = up[x] = nearest(img[y, x])
                    if y >= y0:
                        out[y, x] = before
                    continue
                s = [err[y, x, j] * (float(level[y, x]) / 255.0) for j in range(c)]
                ratio = 0.0 if sq(s) < dead else 0.8 if sq(s) > maxerr else 1.0
                v = [min(hi[j], max(lo[j], img[y, x, j] + s[j] * ratio)) for j in range(c)]
                k = nearest(v)
                near, run = sq([v[j] - E[k, j] for j in range(c)]), sq([v[j] - E[before, j] for j in range(c)])
                if before >= 0 and run <= near + tie:
                    k = before
                elif up[x] >= 0 and sq([v[j] - E[up[x], j] for j in range(c)]) <= near + tie:
                    k = up[x]
                before = up[x] = k
                if y >= y0:
                    out[y, x] = k
                e = [v[j] - E[k, j] for j in range(c)]
                f = 0.75 if sq(e) > maxerr else 1.0
                for dy, dx, share in ((0, step, 7), (1, -step, 3), (1, 0, 5), (1, step, 1)):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < h and 0 <= xx < w and not transparent[yy, xx]:
                        for j in range(c):
                            err[yy, xx, j] += e[j] * f * (share / 16.0)
    return out


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean OKLab distance (plain units) between two uint8 (H, W, 3|4) images of the same shape,
    alpha ignored: the engine's own float64 conversion (:func:`kmpress.colorspace.srgb_to_oklab`)
    applied to every pixel, in NumPy (fast enough for whole photos, unlike
    :func:`reference_delta_e`)."""
    from kmpress.colorspace import srgb_to_oklab

    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    la = srgb_to_oklab(a[..., :3].reshape(-1, 3))
    lb = srgb_to_oklab(b[..., :3].reshape(-1, 3))
    return float(np.sqrt(((la - lb) ** 2).sum(axis=1)).mean())


def reference_reach_sums(
    X: np.ndarray, counts: np.ndarray, C: np.ndarray, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """What a mix of its two nearest centroids leaves of every ``stride``-th point, per centroid
    (:func:`kmpress.contrast.reach_palette`'s sums), one point at a time in plain Python floats.

    For point x: e1 its nearest centroid, e2 the next (ties: the lower index first); its place on
    the segment ``t = clip((x - e1).(e2 - e1) / |e2 - e1|^2, 0, 1)`` (0 when the two coincide),
    ``tq = round(256 t)``, and what is left ``rq = round(256 (x - (e1 + t (e2 - e1))))``, per
    channel.
    e1 gains ``count (256 - tq) rq`` and ``count (256 - tq)``, e2 ``count tq rq`` and
    ``count tq``. Returns ``(acc, den)``: (K, D) and (K,) Python integers in int64 arrays.
    """
    D, N = X.shape
    K = C.shape[0]
    acc = [[0] * D for _ in range(K)]
    den = [0] * K
    for p in range(0, N, stride):
        x = [float(X[j, p]) for j in range(D)]
        dist = []
        for k in range(K):
            d2 = 0.0
            for j in range(D):
                t = x[j] - float(C[k, j])
                d2 += t * t
            dist.append((d2, k))
        (_, k1), (_, k2) = sorted(dist)[:2]  # by distance, then by index
        e1 = [float(v) for v in C[k1]]
        e2 = [float(v) for v in C[k2]]
        v = [e2[j] - e1[j] for j in range(D)]
        vv = 0.0
        xv = 0.0
        for j in range(D):
            vv += v[j] * v[j]
            xv += (x[j] - e1[j]) * v[j]
        t = min(1.0, max(0.0, xv / vv)) if vv > 0.0 else 0.0
        tq = round(t * 256.0)
        w = int(counts[p])
        for j in range(D):
            rq = round((x[j] - (e1[j] + t * v[j])) * 256.0)
            acc[k1][j] += w * (256 - tq) * rq
            acc[k2][j] += w * tq * rq
        den[k1] += w * (256 - tq)
        den[k2] += w * tq
    return np.array(acc, np.int64), np.array(den, np.int64)


def reference_local_means(img: np.ndarray, step: int) -> np.ndarray:
    """Mean colour of each 2 x 2 block of pixel rows 2i, 2i + 1 (i = 0, step, 2 step, ... below
    H // 2) and columns 2j, 2j + 1 (j below W // 2), blocks in raster order: (C, M) float64."""
    h, w, c = img.shape
    out = []
    for i in range(0, h // 2, step):
        for j in range(w // 2):
            block = img[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(4, c).astype(np.float64)
            out.append(block.sum(axis=0) / 4.0)
    return np.array(out).T
