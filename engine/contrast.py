"""Where an image is noisy and where it has edges: the maps that steer the adaptive default.

Dithering hides banding in smooth areas (skies, skin, bokeh) but only adds grain where the image
is already textured, and k-means spends palette entries on texture that no one can tell apart.
libimagequant measures both with two maps, made here the same way, in integers:

- for every pixel, the second differences along the row and the column,
  ``|p[x-1] + p[x+1] - 2 p[x]|``, of its RGB channels weighted (10, 20, 9) (libimagequant's
  0.5, 1, 0.45, as integers), the largest channel of each; ``edge`` is the larger of the two,
  and the combined contrast ``z = max(2 edge - |h - v|, 2 min(h, v))``;
- ``noise = 80 + 176 (1 - z / 10200)^4`` (80: busy, 255: flat) and
  ``edges = 256 (1 - edge / 5100)`` clipped to 0..255 (tables: :data:`NOISE_LUT`, :data:`EDGE_LUT`);
- noise is spread by two 3x3 maxima, a 7x7 mean (rounded), a 3x3 maximum and three 3x3 minima;
  edges by a 3x3 minimum then maximum, then capped by noise (borders replicated).

Every value is a uint8 and every filter an integer one, so the maps are exact on both backends
and at any thread count.

Palette weights (:func:`color_weights`): a distinct colour weighs the sum of ``noise`` over its
pixels, so a pixel in texture counts less than one in a flat area (down to 80/255): k-means then
spends more of the palette on the smooth areas, where a missing shade shows as a band. (On 14
photos, the sum of ``noise^2``, a stronger weighting, scored the same at K = 64 and 256 and lower
at K = 16: SSIMULACRA 2 38.4 against 39.8, butteraugli 5.12 against 4.74; no weighting 39.0 and
4.75.) The palette is then fitted once more with each colour's weight raised by its error under
the first palette (:func:`feedback_weights`), so that small areas of a colour no entry is near
get one.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

#: Integer weights of the R, G, B second differences (libimagequant's 0.5, 1, 0.45, times 20).
CHANNEL_WEIGHTS = np.array([10, 20, 9], np.int64)
#: A weighted second difference of one full step (255) of the green channel.
UNIT = 255 * 20


def _noise_lut() -> np.ndarray:
    z = 1.0 - np.arange(4 * UNIT + 1, dtype=np.float64) / (2.0 * UNIT)
    z2 = z * z
    return np.minimum(np.floor(z2 * z2 * 176.0 + 80.0), 255.0).astype(np.uint8)


def _edge_lut() -> np.ndarray:
    e = np.arange(2 * UNIT + 1, dtype=np.float64) / UNIT
    return np.floor(np.clip((1.0 - e) * 256.0, 0.0, 255.0)).astype(np.uint8)


#: Noise value of each combined contrast ``z`` (0 .. 4 UNIT), uint8 80..255.
NOISE_LUT = _noise_lut()
#: Edge value of each largest second difference (0 .. 2 UNIT), uint8 0..255.
EDGE_LUT = _edge_lut()


def contrast_maps(image: np.ndarray, kernels: ModuleType) -> tuple[np.ndarray, np.ndarray]:
    """Make the noise and edge maps of an image (see the module docstring).

    Parameters
    ----------
    image : (H, W, C) uint8, C-contiguous, C = 3 or 4 (alpha is not looked at)
    kernels : the backend module

    Returns
    -------
    noise, edges : (H, W) uint8 each
    """
    h, w = image.shape[:2]
    noise = np.empty((h, w), np.uint8)
    edges = np.empty((h, w), np.uint8)
    kernels.contrast_maps(
        image,
        CHANNEL_WEIGHTS,
        NOISE_LUT,
        EDGE_LUT,
        noise,
        edges,
        np.empty((h, w), np.uint8),
        np.empty((h, w), np.uint16),
    )
    return noise, edges


def color_weights(noise: np.ndarray, inverse: np.ndarray, n_colors: int, kernels: ModuleType) -> np.ndarray:
    """Weigh each distinct colour by the sum of ``noise`` over its pixels.

    The weights are (U,) float64 integers below 2^53, so exact in any order.

    noise : (H, W) uint8; inverse : (H*W,) int32 each pixel's colour index
    """
    out = np.zeros(n_colors, np.float64)
    kernels.color_weights(np.ascontiguousarray(inverse, dtype=np.int32), noise.reshape(-1), out)
    return out


#: Squared RGB distance (summed over the channels) from its nearest centroid at which a colour's
#: weight is raised by sqrt(2) for the palette's second fit (see :func:`feedback_weights`).
FEEDBACK_ERROR = 300.0
#: Most Lloyd iterations of the second fit: it starts from the first fit's centroids, and on 14
#: photos at K = 16 scored as well capped at 30 as run to the tolerance (some 100 more iterations).
FEEDBACK_MAX_ITER = 30
#: Largest K given a second fit: at K = 256 it changed the scores by under 0.1 (SSIMULACRA 2) and
#: 0.01 (butteraugli) on the same photos, where at K = 16 and 64 it gained 2.8 and 0.9 points.
FEEDBACK_MAX_K = 64


def feedback_weights(X: np.ndarray, w: np.ndarray, C: np.ndarray, kernels: ModuleType) -> np.ndarray:
    """Return the weights of the palette's second fit, ``w * sqrt(1 + e / FEEDBACK_ERROR)`` rounded.

    ``e`` is each colour's squared distance to its nearest centroid of the first fit. A colour the
    first palette serves badly, often a small saturated or bright area (a red leaf, a white
    highlight) outweighed by large smooth ones, then pulls an entry towards it, as
    libimagequant's feedback loop does between its median cuts. Scaled in RGB units: the weights
    barely change where every colour is near an entry (K = 256: errors of some tens). Rounded, as
    the first weights (:func:`color_weights`) are integers: every weighted sum of the fit stays
    exact in any order, so both backends and every CPU give the same centroids and inertia
    (``sqrt`` is correctly rounded everywhere). A weight grows at most 25.5 times (``e`` is at
    most 3 x 255^2).

    Parameters
    ----------
    X : (3, N) float32, the colours (RGB, 0..255), planar
    w : (N,) float64, the first fit's weights
    C : (K, 3) float64, the first fit's centroids
    kernels : the backend's kernels (labels and distances are the same on both)

    Returns
    -------
    (N,) float64 integers
    """
    N = X.shape[1]
    labels = np.empty(N, np.int32)
    kernels.nearest(X, np.ascontiguousarray(C, dtype=np.float32), labels, kernels.block_boxes(X))
    e = np.empty(N, np.float64)
    kernels.dist_to_assigned(X, np.ascontiguousarray(C), labels, e)
    return np.rint(w * np.sqrt(1.0 + e / FEEDBACK_ERROR))


#: Passes of :func:`reach_palette` (a third changed SSIMULACRA 2 and blurred ΔE2000 by little).
REACH_PASSES = 2
#: Most points :func:`reach_palette` looks at, and most blocks :func:`local_means` averages:
#: beyond it every n-th point (or row of blocks), so the sample spans the whole image.
REACH_SAMPLE = 1 << 18
#: Most points x centroids of a pass of :func:`reach_palette` (each point is compared with every
#: centroid): the fit takes at most ``REACH_WORK // K`` local colours, 2^18 up to K = 64 and
#: 2^16 at K = 256, some 0.02-0.1 s for any photo of 1 MP or more.
REACH_WORK = 1 << 24


def local_means(img: np.ndarray, limit: int = REACH_SAMPLE) -> np.ndarray:
    """Return the mean colours of the image's 2 x 2 blocks: what the eye averages, noise left out.

    The palette's reach (:func:`reach_palette`) aims at these rather than at single pixels: a
    noisy photo's pixels scatter around their local colour, and an entry moved out to them
    would only make the dither copy the noise, in larger files. Blocks of every n-th pair of
    rows, so that at most ``limit`` blocks are taken (n = 1 up to 1 MP; at least one row of
    blocks); an image of a single row or column gives its pixels. Sums of four uint8 values,
    divided by 4: exact.

    Parameters
    ----------
    img : (H, W, C) uint8, C-contiguous
    limit : most blocks taken

    Returns
    -------
    (C, M) float32, planar, C-contiguous
    """
    h, w, c = img.shape
    hb, wb = h // 2, w // 2
    if hb == 0 or wb == 0:
        return np.ascontiguousarray(img.reshape(-1, c).T.astype(np.float32))
    step = -(-hb // max(1, limit // wb))
    rows = np.arange(0, hb, step) * 2
    top = img[rows, : 2 * wb].astype(np.uint16)
    bottom = img[rows + 1, : 2 * wb].astype(np.uint16)
    sums = top[:, 0::2] + top[:, 1::2] + bottom[:, 0::2] + bottom[:, 1::2]
    return np.ascontiguousarray(sums.reshape(-1, c).T.astype(np.float32) * np.float32(0.25))


def reach_palette(X: np.ndarray, counts: np.ndarray, C: np.ndarray, kernels: ModuleType) -> np.ndarray:
    """Return the centroids moved out to the colours the error diffusion has to mix from them.

    Lloyd puts each centroid at the mean of its colours, inside their hull: a colour beyond every
    pair of nearby entries (a saturated sky between two duller ones, off the line that joins
    them) cannot be reached by dithering, and the blurred picture loses chroma. Each pass takes
    every point's two nearest centroids, the part of the point that no mix of the two gives
    (:func:`kmpress.kernels_numba.reach_sums`), and moves each centroid by the count-weighted
    mean of its points' parts, shared between the pair by how near the point lies to each.
    The sums are integers (steps of 1/256), the update one division per centroid: the same bits
    on both backends, at any thread count, on any CPU. The fit passes the image's local mean
    colours (:func:`local_means`), each counted once.

    Parameters
    ----------
    X : (D, N) float32, the points (RGB(A), 0..255), planar
    counts : (N,) int64, their weights (pixel counts)
    C : (K, D) float64, K >= 2, the fitted centroids
    kernels : the backend's kernels

    Returns
    -------
    (K, D) float64, within 0..255; an alpha channel (D = 4) as in ``C``
    """
    N = X.shape[1]
    K, D = C.shape
    stride = max(1, -(-N // REACH_SAMPLE))
    acc = np.empty((K, D), np.int64)
    den = np.empty(K, np.int64)
    out = np.array(C, dtype=np.float64, order="C")
    for _ in range(REACH_PASSES):
        kernels.reach_sums(X, counts, out, stride, acc, den)
        some = np.flatnonzero(den > 0)
        # the colour channels only: an alpha moved beyond the image's would open holes
        out[some, :3] += acc[some, :3] / (256.0 * den[some, None])
        np.clip(out, 0.0, 255.0, out=out)
    return out
