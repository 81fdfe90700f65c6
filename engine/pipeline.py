"""The stages composed: prepare an image once, then fit, polish, score and finish any K.

``quantize(image, k)`` is exactly ``Pipeline(image, options).finish(pipe.fit(k, rng))``; the
quality search (:mod:`kmpress.quality`) and the K sweep (:mod:`kmpress.ksweep`) reuse one prepared
image (histogram, points of the clustering space) for many K.

Prior validation of the options is assumed (an :class:`~kmpress.options.Options`); the image is
coerced here, once, by :func:`as_image`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from . import backends
from .clustering import LloydResult, initial_centroids, kmeans_plusplus, lloyd, spawn_seeds
from .colorspace import colors_to_space
from .contrast import (
    FEEDBACK_MAX_ITER,
    FEEDBACK_MAX_K,
    REACH_SAMPLE,
    REACH_WORK,
    color_weights,
    contrast_maps,
    feedback_weights,
    local_means,
    reach_palette,
)
from .errors import InvalidParameterError
from .figures import Figures, HasFigures
from .histogram import build_histogram
from .io import image_to_array
from .metrics import bit_accounting, delta_e_histogram, pixel_errors, psnr_from_mse, squared_error_sum
from .options import Options
from .palette import finish_palette
from .perceptual import ssimulacra2
from .remap import indexed_pixels, is_plain, remap
from .stages import Stages


def as_image(image: Any) -> np.ndarray:
    """An RGB(A) uint8 image as the stages want it: (H, W, 3|4), C-contiguous.

    ``image`` is an array or a ``PIL.Image.Image`` (any mode: converted by
    :func:`kmpress.io.image_to_array`, as a file's pixels are; taken as it holds them, without
    EXIF rotation).

    Raises
    ------
    InvalidParameterError
        Not uint8, not (H, W, 3|4), or empty. The caller's array is never modified, nor copied
        unless it is not C-contiguous.
    ImageReadError
        A Pillow image that cannot be decoded.
    """
    if isinstance(image, Image.Image):
        image = image_to_array(image)
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise InvalidParameterError(f"image must be uint8, not {a.dtype}")
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InvalidParameterError(f"image must have shape (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InvalidParameterError(f"image is empty: shape {a.shape}")
    # read-only is fine (no stage writes to the image); the kernels want C order
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    return a


@dataclass
class Quantized(HasFigures):
    """An image reduced to a palette.

    Attributes
    ----------
    palette : (colors, C) uint8; the distinct entries stored (fewer than ``k`` when the image has
        fewer colours)
    indices : (H, W) uint8; palette index of every pixel
    figures : Figures; K asked for (``k``) and entries stored (``colors``), MSE, PSNR, delta E,
        bits, iterations, stage times; each also reads as an attribute (``q.psnr``)
    n_colors_in : int; distinct colours of the input
    colorspace : "rgb" or "oklab"; the space the palette was clustered and matched in
    dither : "adaptive", "floyd-steinberg" or None
    target_quality : float or None; the perceptual target (SSIMULACRA 2) when the file was
        searched for (``target_quality=``); ``dither`` is then the remap the search chose
    target_psnr : float or None; the PSNR target (dB) when K was searched for (``target_psnr=``)
    target_reached : bool or None; whether the result reaches its target (False: even
        ``max_colors`` colours do not, and this is the ``max_colors`` result)
    search : list of kmpress.quality.Trial; the K values fitted by the search, in order
    """

    palette: np.ndarray
    indices: np.ndarray
    figures: Figures
    n_colors_in: int
    colorspace: str = "rgb"
    dither: str | None = "adaptive"
    target_psnr: float | None = None
    target_reached: bool | None = None
    search: list = field(default_factory=list, repr=False)
    target_quality: float | None = None

    def to_array(self) -> np.ndarray:
        """The reconstructed image, (H, W, C) uint8: exactly what the PNG decodes to."""
        # np.take gathers whole rows of the palette: 4x faster than palette[indices]
        return np.take(self.palette, self.indices, axis=0)

    def to_pil(self) -> Image.Image:
        """The result as a Pillow palette image: mode ``P``, the palette (an ``RGBA`` palette
        when it has an alpha channel, so ``convert("RGBA")`` and ``save`` keep the
        transparency) and the indices. ``to_pil().convert("RGB" or "RGBA")`` equals
        :meth:`to_array`."""
        h, w = self.indices.shape
        im = Image.frombytes("P", (w, h), np.ascontiguousarray(self.indices, dtype=np.uint8).tobytes())
        im.putpalette(
            np.ascontiguousarray(self.palette, dtype=np.uint8).tobytes(),
            "RGBA" if self.palette.shape[1] == 4 else "RGB",
        )
        return im


@dataclass
class Fit:
    """Centroids fitted for one K and their stored palette: a step of :class:`Pipeline`, whose
    figures :meth:`Pipeline.figures` measures.

    Attributes
    ----------
    k : int; colours asked for
    centroids : (k', D) float64 in the clustering space (k' = k, or the image's own colours)
    lossless : bool; the image has at most k colours (centroids are then those colours, sRGB)
    n_iter, converged, inertia : from Lloyd (0, True, 0.0 when lossless); inertia is the k-means
        cost at Lloyd's last assignment pass, in the clustering space, with the weights of its
        last run (the error-raised ones after the adaptive default's second fit); ``n_iter``
        counts both fits' iterations
    palette : (P, C) uint8; labels : (U,) int32 entry of each distinct colour;
    entries : (P, C) float32, the palette in the clustering space
    score : float; PSNR once :meth:`Pipeline.score` has run
    indices, sse, delta_e : the remap, filled by :meth:`Pipeline.finish` (or by ``score`` when
        the error needs the pixels); ssim2 : its SSIMULACRA 2 score, with them
    """

    k: int
    centroids: np.ndarray
    lossless: bool
    n_iter: int
    converged: bool
    inertia: float
    palette: np.ndarray
    labels: np.ndarray
    entries: np.ndarray
    score: float = math.nan
    indices: np.ndarray | None = None
    sse: int | None = None
    delta_e: float | None = None
    ssim2: float | None = None

    @property
    def colors(self) -> int:
        """Palette entries stored."""
        return int(self.palette.shape[0])

    def release(self) -> None:
        """Let go of the remap's pixel indices, an image's worth of memory, for a fit kept only
        for its centroids or figures; those stay (:meth:`Pipeline.finish` remaps again if the
        fit is finished after all)."""
        self.indices = None


class Pipeline:
    """:func:`kmpress.quantize` in reusable steps: prepare an image once (histogram, points of
    the clustering space), then :meth:`fit` any K (cold, or warm-started from the centroids of a
    smaller K), :meth:`score` it and :meth:`finish` it into a :class:`Quantized`.

    Parameters
    ----------
    image : (H, W, 3|4) uint8 array_like (coerced by :func:`as_image`)
    options : Options; the clustering and remap fields are used (K comes with each :meth:`fit`)
    k_hint : the largest K that will be fitted (default the options' ``k``, or ``max_colors``
        for a quality target): with ``backend="auto"`` it sizes the work for the backend pick
    stages : Stages, optional
        The job's stage recorder (:class:`kmpress.stages.Stages`): every step runs in its stage,
        which times it and tells the recorder's listener. Default: a recorder of its own.
    like : Pipeline, optional
        A pipeline of the same image and clustering options (another remap): its histogram,
        clustering points, backend and stage recorder are shared, not made again.
    """

    def __init__(
        self,
        image: Any,
        options: Options,
        k_hint: int | None = None,
        stages: Stages | None = None,
        like: Pipeline | None = None,
    ) -> None:
        self.options = options
        if like is not None:
            self._share(like)
            return
        self.stages = Stages() if stages is None else stages
        self.img = as_image(image)
        h, w, _ = self.img.shape
        k = k_hint or options.largest_k
        self.backend = backends.choose(options.backend, h * w, k, per_pixel=not is_plain(options, False))
        self.kern = backends.load(self.backend)
        #: the edges map, the pixels' colour indices and the colours in OKLab x 255, kept for
        #: the adaptive dither (None otherwise, and the OKLab colours until first needed)
        self.edges: np.ndarray | None = None
        self.inverse: np.ndarray | None = None
        self.lab: np.ndarray | None = None
        #: the image's local mean colours, the targets of the palette's reach, by the most taken
        #: (made when first needed)
        self.means: dict[int, np.ndarray] = {}
        # the clustering points and their weights; None once finish(last=True) has let them go
        self.X: np.ndarray | None
        self.weights: np.ndarray | None
        with self.stages("histogram"):
            self.hist = build_histogram(self.img, self.kern)
            if options.backend == "auto" and self.backend == "numpy":
                # the work is known now: the histogram's colours x K, and the pixels when the
                # remap works pixel by pixel (error diffusion, the rate-aware remap)
                plain = is_plain(options, self.hist.n_colors <= k)
                pick = backends.choose("auto", h * w, k, colors=self.hist.n_colors, per_pixel=not plain)
                if pick == "numba":
                    self.backend, self.kern = "numba", backends.load("numba")
            if options.dither == "adaptive":
                # the colours weighted by how flat their pixels' surroundings are (see
                # kmpress.contrast): the palette goes where banding would show
                noise, self.edges = contrast_maps(self.img, self.kern)
                self.inverse = self.hist.pixel_colors(self.img, self.kern)
                self.weights = color_weights(noise, self.inverse, self.hist.n_colors, self.kern)
                del noise
        if options.colorspace == "rgb":
            self.X = colors_to_space(self.hist.colors, options.colorspace, self.kern)
        else:
            with self.stages("colorspace"):
                self.X = colors_to_space(self.hist.colors, options.colorspace, self.kern)
        if self.edges is None:
            self.weights = self.hist.counts.astype(np.float64)

    def _share(self, like: Pipeline) -> None:
        """Take ``like``'s image, histogram, points and backend; the weights and maps are those
        of this pipeline's remap (the contrast maps are only shared between adaptive ones)."""
        o = self.options
        assert like.X is not None, "a pipeline finished with last=True cannot be shared"
        assert o.colorspace == like.options.colorspace, "shared points are of one colour space"
        self.stages, self.img, self.backend, self.kern = like.stages, like.img, like.backend, like.kern
        self.hist, self.X, self.lab, self.means = like.hist, like.X, like.lab, like.means
        self.inverse = like.inverse
        if o.dither == "adaptive":
            assert like.edges is not None, "the contrast maps come from an adaptive pipeline"
            self.edges, self.weights = like.edges, like.weights
        else:
            self.edges, self.weights = None, self.hist.counts.astype(np.float64)

    def _points(self) -> tuple[np.ndarray, np.ndarray]:
        """The clustering points ``X`` and their ``weights``, for a fit."""
        assert self.X is not None and self.weights is not None, "nothing is fitted after finish(last=True)"
        return self.X, self.weights

    @property
    def n_colors(self) -> int:
        """Distinct colours of the image."""
        return self.hist.n_colors

    def fit(self, k: int, rng: np.random.Generator, start: np.ndarray | None = None, tol: float | None = None) -> Fit:
        """Centroids for ``k`` colours (1 <= k <= 256) and their stored palette.

        Parameters
        ----------
        rng : the seeding randomness (``n_init`` starts are spawned from it)
        start : (m, D) float64 centroids of a smaller K (0 < m < k) to continue from: the k - m
            new centres are seeded by k-means++ against them (whatever ``init``), then Lloyd
            runs from all k. Ignored for a lossless fit.
        tol : overrides the options' tolerance for this fit
        """
        o, stages = self.options, self.stages
        hist, kern = self.hist, self.kern
        X, weights = self._points()
        n_iter, converged, inertia = 0, True, 0.0
        lossless = hist.n_colors <= k
        if lossless:
            # exactly the image's colours (as sRGB, whatever the space): lossless
            with stages("lloyd"):
                centroids = hist.colors.astype(np.float64)
        else:
            best = None
            for g in spawn_seeds(rng, o.n_init):
                with stages("init"):
                    if start is not None and 0 < start.shape[0] < k:
                        C0 = kmeans_plusplus(X, weights, True, k, g, kern, start=start)
                    else:
                        C0 = initial_centroids(o.init, X, weights, True, k, g, kern)
                with stages("lloyd"):
                    r = lloyd(X, weights, True, C0, o.max_iter, o.tol if tol is None else tol, kern, final_assign=False)
                # the lowest final inertia wins; ties: the earliest start
                if best is None or r.inertia < best.inertia:
                    best = r
            assert best is not None, "n_init >= 1 starts"
            centroids, n_iter, converged, inertia = self._refit(k, best, o.tol if tol is None else tol)
        with stages("remap"):
            palette, labels, entries = finish_palette(centroids, X, o.colorspace, kern, o.palette_order, srgb=lossless)
        return Fit(k, centroids, lossless, n_iter, converged, float(inertia), palette, labels, entries)

    def polish(self, f: Fit) -> Fit:
        """Continue Lloyd from a fit's centroids at the options' tolerance (after a fit at a
        looser one): the k-means cost can only go down. A lossless fit comes back as it is."""
        if f.lossless:
            return f
        o = self.options
        X, weights = self._points()
        with self.stages("lloyd"):
            r = lloyd(X, weights, True, f.centroids, o.max_iter, o.tol, self.kern, final_assign=False)
        centroids, n_iter, converged, inertia = self._refit(f.k, r, o.tol)
        with self.stages("remap"):
            palette, labels, entries = finish_palette(centroids, X, o.colorspace, self.kern, o.palette_order)
        return Fit(f.k, centroids, False, f.n_iter + n_iter, converged, float(inertia), palette, labels, entries)

    def feedback(self, k: int) -> bool:
        """Whether a fit of ``k`` colours is followed by a second one with error-raised weights
        (the adaptive default in RGB, from 2 to :data:`~kmpress.contrast.FEEDBACK_MAX_K` colours:
        :func:`kmpress.contrast.feedback_weights`; one colour stays the weighted mean)."""
        return self.reaches(k) and k <= FEEDBACK_MAX_K

    def reaches(self, k: int) -> bool:
        """Whether a fit of ``k`` colours ends with its entries moved out to the local colours the
        dither has to mix (the adaptive default in RGB, from 2 colours:
        :func:`kmpress.contrast.reach_palette`)."""
        o = self.options
        return o.dither == "adaptive" and o.colorspace == "rgb" and k >= 2

    def _refit(self, k: int, first: LloydResult, tol: float) -> tuple[np.ndarray, int, bool, float]:
        """The (centroids, iterations, converged, inertia) of a fit of ``k`` colours whose Lloyd
        run gave ``first``: those of ``first`` itself, or, where :meth:`feedback` applies and
        ``max_iter`` leaves room, of Lloyd run again from its centroids with each colour's weight
        raised by its error under them (iterations of both runs; the inertia of the second under
        the raised weights). Stopped by its own cap (:data:`~kmpress.contrast.FEEDBACK_MAX_ITER`)
        rather than by ``max_iter``, the second run counts as converged: the first reached the
        tolerance, and the cap is the design. Where :meth:`reaches` applies, the centroids are
        then moved out to the local colours the dither has to mix
        (:func:`kmpress.contrast.reach_palette`); the inertia stays Lloyd's."""
        o = self.options
        out = first.centroids, first.n_iter, first.converged, first.inertia
        if self.feedback(k) and first.n_iter < o.max_iter:
            X, weights = self._points()
            left = o.max_iter - first.n_iter
            cap = min(left, FEEDBACK_MAX_ITER)
            with self.stages("lloyd"):
                raised = feedback_weights(X, weights, first.centroids, self.kern)
                r = lloyd(X, raised, True, first.centroids, cap, tol, self.kern, final_assign=False)
            out = r.centroids, first.n_iter + r.n_iter, r.converged or cap < left, r.inertia
        if not self.reaches(k):
            return out
        with self.stages("lloyd"):
            limit = min(REACH_SAMPLE, REACH_WORK // k)
            if limit not in self.means:
                self.means[limit] = local_means(self.img, limit)
            means = self.means[limit]
            return reach_palette(means, np.ones(means.shape[1], np.int64), out[0], self.kern), *out[1:]

    def _remap(self, f: Fit, measure: bool = True) -> None:
        """Pixel indices of a fit, and (``measure``) its exact squared error, mean delta E and
        SSIMULACRA 2 score (kept on it). Without ``measure`` only the figures the histogram
        gives at no cost are kept (those of the plain remap)."""
        if f.indices is not None:
            return
        hist, kern = self.hist, self.kern
        plain = is_plain(self.options, f.lossless)
        with self.stages("remap"):
            # each pixel's colour index, for the remaps that work pixel by pixel and their errors
            # (made once: without the histogram's stored inverse it is a pass over every pixel)
            inverse = None if plain else self.inverse if self.inverse is not None else hist.pixel_colors(self.img, kern)
            if self.edges is not None and not plain and self.lab is None:
                self.lab = self.X if self.options.colorspace == "oklab" else colors_to_space(hist.colors, "oklab", kern)
            f.indices = remap(
                hist,
                self.X,
                f.labels,
                f.entries,
                self.img,
                inverse,
                self.options,
                f.lossless,
                kern,
                f.palette,
                self.edges,
                self.lab,
            )
            if plain and f.sse is None:
                f.sse = squared_error_sum(hist.colors, hist.counts, f.palette, f.labels)
        if not measure and not plain:
            return
        with self.stages("delta_e"):
            if plain:
                f.delta_e = delta_e_histogram(hist.colors, hist.counts, f.palette, f.labels, kern)
            else:
                assert inverse is not None, "made above for the remaps that are not plain"
                f.sse, f.delta_e = pixel_errors(hist.colors, inverse, f.indices, f.palette, kern)
            if measure:
                f.ssim2 = ssimulacra2(self.img, indexed_pixels(f.palette, f.indices, kern), kern)

    def score(self, f: Fit) -> float:
        """PSNR (dB) of what :meth:`finish` returns for ``f``: on the histogram for the plain
        nearest-entry remap (no per-pixel pass), on the pixels with dithering or ``smooth``."""
        h, w, c = self.img.shape
        if f.sse is None:
            if is_plain(self.options, f.lossless):
                f.sse = squared_error_sum(self.hist.colors, self.hist.counts, f.palette, f.labels)
            else:
                self._remap(f)
        f.score = psnr_from_mse(f.sse / (h * w * c))
        return f.score

    def ssim2(self, f: Fit) -> float:
        """SSIMULACRA 2 score of what :meth:`finish` returns for ``f`` (remaps its pixels if not
        done yet); NaN for an image under 8 pixels a side."""
        if f.indices is None or f.ssim2 is None:
            f.indices = None
            self._remap(f)
        assert f.ssim2 is not None, "set by _remap"
        return f.ssim2

    def figures(self, f: Fit, timings: dict[str, float]) -> Figures:
        """The :class:`~kmpress.figures.Figures` of a scored (or finished) fit: the one place
        where a result's figures are measured. ``delta_e`` and ``ssimulacra2`` are NaN until the
        fit is remapped.

        timings : dict of stage -> seconds; the stage times the figures report
        """
        h, w, c = self.img.shape
        mse = math.nan if f.sse is None else f.sse / (h * w * c)
        return Figures(
            k=f.k,
            colors=f.colors,
            mse=mse,
            psnr=math.nan if f.sse is None else psnr_from_mse(mse),
            delta_e=math.nan if f.delta_e is None else f.delta_e,
            bits=bit_accounting(h, w, c, f.colors),
            n_iter=f.n_iter,
            converged=f.converged,
            ssimulacra2=math.nan if f.ssim2 is None else f.ssim2,
            timings=dict(timings),
        )

    def finish(self, f: Fit, last: bool = False) -> Quantized:
        """The :class:`Quantized` of a fit (remaps the pixels if not done yet); its timings are
        those of the pipeline's stage recorder so far.

        ``last``: nothing more will be fitted on this pipeline (a one-shot compression): the
        clustering points and weights (some 20 bytes a colour) are let go before the pixels are
        remapped, when the remap does not use them (no dithering, no ``smooth``).
        """
        if last and f.indices is None and is_plain(self.options, f.lossless):
            self.X = self.weights = None
            self.means = {}
        self._remap(f, measure=self.options.measure)
        assert f.indices is not None, "set by _remap"
        return Quantized(
            palette=f.palette,
            indices=f.indices,
            figures=self.figures(f, self.stages.times),
            n_colors_in=self.hist.n_colors,
            colorspace=self.options.colorspace,
            dither=self.options.dither,
        )
