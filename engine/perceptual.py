"""SSIMULACRA 2, the perceptual score of a result.

100 for identical images, about 90 visually lossless, 70 high quality, 50 medium, 30 low; it
can go below 0.

The metric of Jon Sneyers (Cloudinary, 2022-2023), as libjxl's ``tools/ssimulacra2.cc`` defines
it: both images in linear light are converted to XYB (the opsin absorbance matrix and a cube
root, rescaled to about 0..1 with B-Y); at 6 scales (1:1 to 1:32, each a 2x2 box average of the
last in linear light, a scale computed while the previous one is at least 8 pixels both ways) a
Gaussian blur (sigma 1.5) gives the local means and variances, from which come three error maps
per channel: SSIM without its luminance denominator, the "artefact" map (the output has edges
where the input is smooth: banding, ringing) and the "detail lost" map (the reverse: blurring).
Each map's mean and 4-norm (108 numbers) are weighted and mapped to the score.

The Gaussian is libjxl's own: its recursive filter (Charalampidis 2016, truncated cosines, radius
5) is exactly a 9-tap filter with zero padding, whose taps :data:`TAPS` are stored here
(``tests/test_perceptual.py`` derives them again from libjxl's recursion). The filter runs in
float32 as libjxl's does, without its recursion's rounding drift. The ``ssimulacra2`` port on
PyPI blurs with SciPy instead, reflecting at the left and right edges, which moves its scores by
up to 8 points on photos; with libjxl's filter put in its place the two agree within 0.035
(mean 0.0013 on 154 pairs). libjxl's own C++ tool scores up to 1 point lower on near-lossless
pairs (mean 0.058): the float32 drift of its recursion; with the 9-tap filter in its place it
agrees within 0.011 (``python -m bench.ssim2_agreement``, docs/quality.md).

Determinism: the cube root is :func:`kmpress.fixedmath.cbrt_unit`, the final power
:func:`kmpress.fixedmath.exp2` of :func:`~kmpress.fixedmath.log2`; each map is summed row by
row from the left, the rows from the top; both backends do the same operations in the same
order, so the score is the same bits on any CPU and at any thread count.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np

from . import kernels_numpy
from .colorspace import LINEAR_LUT
from .fixedmath import cbrt, exp2, log2

#: Scales at most (1:1 to 1:32).
SCALES = 6
#: Smallest width and height measured (the metric is undefined below).
MIN_SIDE = 8

#: The opsin absorbance matrix of XYB (libjxl's ``kOpsinAbsorbanceMatrix``) and its bias.
OPSIN = np.array(
    [
        [0.30, 1.0 - 0.078 - 0.30, 0.078, 0.0037930732552754493],
        [0.23, 1.0 - 0.078 - 0.23, 0.078, 0.0037930732552754493],
        [
            0.24342268924547819,
            0.20476744424496821,
            1.0 - 0.24342268924547819 - 0.20476744424496821,
            0.0037930732552754493,
        ],
    ]
)
#: The cube root of the bias, subtracted after the cube root.
CBRT_BIAS = float(cbrt(np.array([OPSIN[0, 3]]))[0])

#: libjxl's recursive Gaussian (sigma 1.5) as the filter it computes: taps at distance 0..4
#: (distance 5 is exactly 0), summing to 1.
TAPS = np.array([0.2646211054881985, 0.2129285920104222, 0.1093353727774603, 0.0360111146583644, 0.00941436780965374])
TAPS32 = TAPS.astype(np.float32)
#: The linear-light value of each 8-bit sRGB code, float32 (libjxl's images are float32).
LINEAR_LUT32 = LINEAR_LUT.astype(np.float32)

#: The 108 weights of libjxl, in its order: channel X, Y, B; scale; norm 1, 4; SSIM, artefact,
#: detail lost.
WEIGHTS = np.array(
    [
        0.0, 0.0007376606707406586, 0.0, 0.0, 0.0007793481682867309, 0.0, 0.0, 0.0004371155730107379,
        0.0, 1.1041726426657346, 0.00066284834129271, 0.00015231632783718752, 0.0, 0.0016406437456599754,
        0.0, 1.8422455520539298, 11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653,
        0.0, 1.8787594979546387, 10.94906990605142, 0.0, 0.0007289346991508072, 0.9677937080626833,
        0.0, 0.00014003424285435884, 0.9981766977854967, 0.00031949755934435053, 0.0004550992113792063,
        0.0, 0.0, 0.0013648766163243398, 0.0, 0.0, 0.0, 0.0, 0.0, 7.466890328078848, 0.0,
        17.445833984131262, 0.0006235601634041466, 0.0, 0.0, 6.683678146179332, 0.00037724407979611296,
        1.027889937768264, 225.20515300849274, 0.0, 0.0, 19.213238186143016, 0.0011401524586618361,
        0.001237755635509985, 176.39317598450694, 0.0, 0.0, 24.43300999870476, 0.28520802612117757,
        0.0004485436923833408, 0.0, 0.0, 0.0, 34.77906344483772, 44.835625328877896, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0008680556573291698, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0005313191874358747,
        0.0, 0.00016533814161379112, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0004179171803251336,
        0.0017290828234722833, 0.0, 0.0020827005846636437, 0.0, 0.0, 8.826982764996862,
        23.19243343998926, 0.0, 95.1080498811086, 0.9863978034400682, 0.9834382792465353,
        0.0012286405048278493, 171.2667255897307, 0.9807858872435379, 0.0, 0.0, 0.0,
        0.0005130064588990679, 0.0, 0.00010854057858411537,
    ]
)  # fmt: skip


def ssimulacra2(original: np.ndarray, distorted: np.ndarray, kernels: ModuleType | None = None) -> float:
    """SSIMULACRA 2 score of ``distorted`` against ``original`` (see the module).

    Parameters
    ----------
    original, distorted : (H, W, 3) uint8, the same shape (a 4th channel, alpha, is not read)
    kernels : a backend module (:mod:`kmpress.kernels_numba` or :mod:`kmpress.kernels_numpy`);
        default NumPy. Both give the same score.

    Returns
    -------
    float; 100.0 for identical images, NaN when a side is under :data:`MIN_SIDE` pixels.
    """
    if original.shape != distorted.shape:
        raise ValueError(f"shapes differ: {original.shape} vs {distorted.shape}")
    if kernels is None:
        kernels = kernels_numpy
    H, W = original.shape[:2]
    if H < MIN_SIDE or W < MIN_SIDE:
        return math.nan
    a = np.ascontiguousarray(original, dtype=np.uint8)
    b = np.ascontiguousarray(distorted, dtype=np.uint8)
    norms = []
    sums = np.empty((3, H, 6), np.float64)
    kernels.ssim2_rows_u8(a, b, LINEAR_LUT32, OPSIN, CBRT_BIAS, TAPS32, sums)
    norms.append(_norms(sums, W))
    lin1 = lin2 = None
    while len(norms) < SCALES and H >= MIN_SIDE and W >= MIN_SIDE:
        h, w = (H + 1) // 2, (W + 1) // 2
        n1, n2 = np.empty((3, h, w), np.float32), np.empty((3, h, w), np.float32)
        if lin1 is None:
            kernels.ssim2_half_u8(a, LINEAR_LUT32, n1)
            kernels.ssim2_half_u8(b, LINEAR_LUT32, n2)
        else:
            kernels.ssim2_half(lin1, n1)
            kernels.ssim2_half(lin2, n2)
        lin1, lin2, H, W = n1, n2, h, w
        sums = np.empty((3, H, 6), np.float64)
        kernels.ssim2_rows(lin1, lin2, OPSIN, CBRT_BIAS, TAPS32, sums)
        norms.append(_norms(sums, W))
    return score(norms)


def _norms(sums: np.ndarray, width: int) -> np.ndarray:
    """Reduce (3, H, 6) per-row sums to (3, 6): the maps' means (1-norms) and 4-norms.

    The rows are added
    from the top (np.add.accumulate adds in order).
    """
    one = 1.0 / (sums.shape[1] * width)
    tot = np.add.accumulate(sums, axis=1)[:, -1, :] * one
    tot[:, 1::2] = np.sqrt(np.sqrt(tot[:, 1::2]))
    return tot


def score(norms: list[np.ndarray]) -> float:
    """Score each scale's (3, 6) norms.

    Per channel: SSIM, SSIM 4-norm, artefact,
    artefact 4-norm, detail lost, detail lost 4-norm), as libjxl's ``Msssim::Score``.
    """
    s = 0.0
    i = 0
    for c in range(3):
        for n in norms:
            for p in range(2):
                for m in range(3):  # SSIM, artefact, detail lost
                    s += WEIGHTS[i] * abs(float(n[c, 2 * m + p]))
                    i += 1
    s *= 0.9562382616834844
    s = 2.326765642916932 * s - 0.020884521182843837 * s * s + 6.248496625763138e-05 * s * s * s
    return 100.0 - 10.0 * exp2(0.6276336467831387 * log2(s)) if s > 0 else 100.0
