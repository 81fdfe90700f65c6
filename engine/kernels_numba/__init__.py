"""Backend "numba": the compiled hot paths of every stage.

Contract shared with :mod:`kmpress.kernels_numpy` (same names, same arguments, same meaning), and
enforced here by numba signatures (a wrong dtype or layout raises ``TypeError``):

- points are stored channel-planar, ``X`` of shape (D, N) float32, C-contiguous, so the inner
  loop over pixels is unit-stride and vectorises; D is 3 or 4;
- weights ``w`` are (N,) float64, used only when ``weighted`` is true (otherwise pass an empty
  array: a 24 MP image would need 192 MB of ones);
- labels are int32, centroids (K, D) float64 and their float32 copy ``C32`` for distances;
- OUT arguments are buffers the caller owns; kernels allocate nothing per pixel.

Each kernel is compiled (or loaded from numba's on-disk cache) at its first call, so a run pays
only for what it uses (:mod:`._jit`). Determinism: work is split in fixed chunks of :data:`CHUNK`
points, each chunk writes its own partial results, the caller merges them in chunk order: the
result is bitwise identical with 1 or 2 (or 64) threads.

Modules, in pipeline order: :mod:`._histogram` and :mod:`._contrast` (stage 1: the colours, and
the adaptive dither's contrast maps and palette weights), :mod:`._color` (stage 2),
:mod:`._nearest` and :mod:`._seeding` (stage 3), :mod:`._remap` and :mod:`._dither` (stage 5:
the remaps, and the adaptive dither's map and error diffusion), then the perceptual score's
:mod:`._ssim2`; :mod:`._compile` compiles kernels ahead, in several processes (a first run,
``kmpress warm``).
"""

from __future__ import annotations

from collections.abc import Sequence

from . import _histogram, _remap
from ._color import colors_to_lab, colors_to_lab64, delta_e_colors
from ._compile import all_kernels, cache_writable, compile_in_processes
from ._compile import serve as serve_compiles
from ._contrast import color_weights, contrast_maps
from ._dither import adaptive_dither, dither_map
from ._histogram import DENSE_MIN_PIXELS, color_index, histogram, remap_codes, unpack_codes
from ._jit import BLOCK, CHUNK, SERIAL_WORK
from ._nearest import assign_accumulate, block_boxes, dist_to_assigned, nearest, reach_sums
from ._remap import STATS_CHUNK, expand, floyd_steinberg, gather, pixel_stats, smooth
from ._seeding import pp_sample, pp_state, pp_trials, pp_update
from ._ssim2 import ssim2_half, ssim2_half_u8, ssim2_rows, ssim2_rows_u8


def warm_up_kernels(
    pixels: int,
    ks: int | Sequence[int],
    colorspace: str = "rgb",
    dither: str | None = None,
    smooth: bool = False,
    measure: bool = True,
) -> list:
    """The kernels (the variant of each twin) that a compression of ``pixels`` pixels at each K
    of ``ks`` will call, in the order it first calls them, for :func:`kmpress.backends.warm_up`
    to compile or load ahead of the first call. ``colorspace``, ``dither``, ``smooth`` and
    ``measure`` are the job's options (a clustering space other than RGB, the error diffusion's
    method or None, a smoothed remap, the figures measured pixel by pixel: the error of a
    dithered or smoothed remap and the perceptual score, which ``kmpress compress -q`` skips).
    The twins' variants are chosen for the usual share of distinct colours in a photo (a third of
    the pixels); a wrong guess only loads (or compiles) one more kernel later."""
    import math

    ks = [ks] if isinstance(ks, int) else list(ks)
    u = max(4096, pixels // 3)
    dense = pixels >= DENSE_MIN_PIXELS
    out: list = [
        *((_histogram._dense_count, _histogram._dense_extract) if dense else (_histogram._radix_histogram,)),
        unpack_codes,
    ]
    if dither == "adaptive" and not smooth:
        out += [contrast_maps, *((_histogram._dense_inverse,) if dense else ()), color_weights]
    if colorspace != "rgb":
        out.append(colors_to_lab)
    out += [block_boxes, pp_state.pick(u * 8), pp_update.pick(u * 8), pp_sample]
    for k in ks:
        trials = 2 + int(math.log(max(k, 1)))
        out += [pp_trials.pick(u * trials), assign_accumulate.pick(u * k), nearest.pick(u * k)]
        if dither == "adaptive" and not smooth and colorspace == "rgb" and k >= 2:
            out.append(reach_sums)
    if smooth:
        out += [*((_histogram._dense_inverse,) if dense else ()), dist_to_assigned, _remap.smooth]
    elif dither == "adaptive":
        out += [colors_to_lab, dist_to_assigned, gather, dither_map, adaptive_dither]
    elif dither is not None:
        out += [*((_histogram._dense_inverse,) if dense else ()), floyd_steinberg]
    else:
        out.append(remap_codes.pick(pixels) if dense else gather)
    plain = dither is None and not smooth
    if plain:
        # the undithered remap's error comes from the histogram, measured or not
        out.append(delta_e_colors)
    elif measure:
        out += [colors_to_lab64, pixel_stats]
    if measure:
        out += [expand, ssim2_rows_u8, ssim2_half_u8, ssim2_half, ssim2_rows]
    return list(dict.fromkeys(out))  # each once, in order


def kernels(parallel: bool) -> list:
    """Every kernel of this backend that runs serially (``parallel`` false: each twin's serial
    variant and the plain kernels) or every parallel variant, for a process that loads them ahead
    of its work (``kmpress serve``). Reading a kernel's ``dispatcher`` loads it; loading a
    parallel one starts numba's threading layer, which a process must not have before it forks.
    Every module of this package is searched (:func:`all_kernels`), so a new one's kernels are
    never left out."""
    return [k for k in all_kernels() if k.parallel == parallel]


NAME = "numba"

#: What every backend module provides (the same names in :mod:`kmpress.kernels_numpy`).
CONTRACT = (
    "CHUNK",
    "NAME",
    "STATS_CHUNK",
    "n_chunks",
    "histogram",
    "color_index",
    "unpack_codes",
    "remap_codes",
    "colors_to_lab",
    "colors_to_lab64",
    "delta_e_colors",
    "block_boxes",
    "assign_accumulate",
    "nearest",
    "dist_to_assigned",
    "pp_state",
    "pp_update",
    "pp_sample",
    "pp_trials",
    "gather",
    "expand",
    "floyd_steinberg",
    "smooth",
    "pixel_stats",
    "contrast_maps",
    "color_weights",
    "dither_map",
    "adaptive_dither",
    "ssim2_half_u8",
    "ssim2_half",
    "ssim2_rows_u8",
    "ssim2_rows",
)


def n_chunks(n: int) -> int:
    """Number of :data:`CHUNK`-sized chunks covering ``n`` points."""
    return (n + CHUNK - 1) // CHUNK


__all__ = [
    "BLOCK",
    "adaptive_dither",
    "color_weights",
    "contrast_maps",
    "dither_map",
    "CHUNK",
    "CONTRACT",
    "DENSE_MIN_PIXELS",
    "NAME",
    "SERIAL_WORK",
    "STATS_CHUNK",
    "all_kernels",
    "cache_writable",
    "compile_in_processes",
    "serve_compiles",
    "assign_accumulate",
    "block_boxes",
    "colors_to_lab",
    "color_index",
    "colors_to_lab64",
    "delta_e_colors",
    "dist_to_assigned",
    "expand",
    "floyd_steinberg",
    "gather",
    "histogram",
    "n_chunks",
    "remap_codes",
    "nearest",
    "pixel_stats",
    "pp_sample",
    "pp_state",
    "pp_trials",
    "pp_update",
    "smooth",
    "ssim2_half",
    "ssim2_half_u8",
    "ssim2_rows",
    "ssim2_rows_u8",
    "unpack_codes",
]
