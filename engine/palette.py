"""Stage 4: from centroids to the stored palette: rounding, de-duplication, order, and the one
nearest-entry search.

Everything here works in a clustering space ("rgb" or "oklab", see :mod:`kmpress.colorspace`):
centroids live in that space, the stored palette is sRGB(A) uint8, and every colour is labelled
with the palette entry nearest to it *in that space*, computed against the rounded uint8 entries
so that the file is exactly what the reported figures describe.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .colorspace import centroids_to_srgb, palette_to_space, srgb_to_oklab


def nearest_in_space(points: np.ndarray, entries: np.ndarray, kernels: ModuleType) -> np.ndarray:
    """Index of the nearest entry for each planar point, ties to the lowest index.

    Parameters
    ----------
    points : (C, U) float32 planar points of the clustering space
    entries : (P, C) float32 palette entries in the same space

    Returns
    -------
    (U,) int32. Between integer colours (the "rgb" space) distances are exact in float32 (at
    most 4 * 255^2 < 2^24), so both backends agree exactly there.
    """
    labels = np.empty(points.shape[1], np.int32)
    kernels.nearest(points, np.ascontiguousarray(entries, dtype=np.float32), labels, kernels.block_boxes(points))
    return labels


def order_palette(palette: np.ndarray, method: str = "luma") -> np.ndarray:
    """A deterministic permutation of the palette entries.

    Parameters
    ----------
    palette : (P, C) uint8, distinct entries
    method : "luma" or "path"
        "luma": by Rec. 601 luma, ties by R, G, B (then A).
        "path": a greedy nearest-neighbour path through the entries in OKLab, starting at the
        darkest, so consecutive indices hold similar colours.

        With alpha, the entries that are not fully opaque come first in either order (a
        shorter tRNS chunk).

    Returns
    -------
    (P,) int64 permutation: ``palette[order]`` is the ordered palette.

    Notes
    -----
    The PNG writer stores indices unfiltered (see :func:`kmpress.writing.write_png`), and DEFLATE on
    unfiltered data only sees byte equality, so the order does not change the file size at all;
    it matters only with PNG's prediction filters, which made these files larger in every
    configuration measured (bench/compare_pngquant.py, docs/results.md).
    """
    p = palette.astype(np.int64)
    luma = 299 * p[:, 0] + 587 * p[:, 1] + 114 * p[:, 2]
    keys = [p[:, j] for j in range(p.shape[1] - 1, -1, -1)] + [luma]
    if p.shape[1] == 4:
        keys.append(p[:, 3])
    by_luma = np.lexsort(keys)
    if method == "luma" or p.shape[0] <= 2:
        return _translucent_first(palette, by_luma)
    if method != "path":
        raise ValueError(f"unknown palette order {method!r}")
    lab = srgb_to_oklab(palette[:, :3])
    if p.shape[1] == 4:
        lab = np.hstack([lab, palette[:, 3:4] / 255.0])
    n = p.shape[0]
    rank = np.empty(n, np.int64)
    rank[by_luma] = np.arange(n)
    left = np.ones(n, bool)
    cur = int(by_luma[0])
    order = [cur]
    left[cur] = False
    for _ in range(n - 1):
        d = ((lab - lab[cur]) ** 2).sum(axis=1)
        d[~left] = np.inf
        # ties by luma rank: deterministic
        cand = np.flatnonzero(d == d.min())
        cur = int(cand[np.argmin(rank[cand])])
        order.append(cur)
        left[cur] = False
    return _translucent_first(palette, np.asarray(order, np.int64))


def _translucent_first(palette: np.ndarray, order: np.ndarray) -> np.ndarray:
    # PNG's tRNS chunk lists alpha up to the last entry that is not opaque: entries with alpha
    # first (stable, keeping the order among each group) make it as short as possible
    if palette.shape[1] != 4:
        return order
    opaque = palette[order, 3] == 255
    return np.concatenate([order[~opaque], order[opaque]])


def finish_palette(
    centroids: np.ndarray,
    X: np.ndarray,
    space: str,
    kernels: ModuleType,
    order: str = "luma",
    srgb: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Round the centroids to uint8 sRGB(A), drop duplicates and unused entries, order them, and
    label every distinct colour with its nearest stored entry in the clustering space.

    Parameters
    ----------
    centroids : (K, C) float64, in the clustering space
    X : (C, U) float32, the distinct colours in the clustering space
    space : "rgb" or "oklab"
    order : see :func:`order_palette`
    srgb : the centroids are already sRGB(A) values (e.g. the image's own colours), whatever
        the space: rounding them is then exact

    Returns
    -------
    palette : (P, C) uint8, P <= K, ordered
    labels : (U,) int32, index into ``palette`` of each colour's nearest entry
    entries : (P, C) float32, ``palette`` in the clustering space (for a later remap or dither)
    """
    values = np.asarray(centroids, np.float64) if srgb else centroids_to_srgb(centroids, space)
    pal = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    _, first = np.unique(pal, axis=0, return_index=True)
    pal = pal[np.sort(first)]
    entries = palette_to_space(pal, space, kernels)
    labels = nearest_in_space(X, entries, kernels)
    used = np.bincount(labels, minlength=pal.shape[0]) > 0
    if not used.all():
        pal, entries = pal[used], entries[used]
        labels = nearest_in_space(X, entries, kernels)
    perm = order_palette(pal, order)
    rank = np.empty_like(perm)
    rank[perm] = np.arange(perm.size)
    return np.ascontiguousarray(pal[perm]), rank[labels].astype(np.int32), np.ascontiguousarray(entries[perm])
