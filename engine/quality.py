"""A quality target instead of K: the smallest file reaching a SSIMULACRA 2 score, or the
smallest palette reaching a PSNR.

:func:`quantize_to_quality` takes either target:

- ``target_quality`` (0-100, SSIMULACRA 2: :mod:`kmpress.perceptual`, the score every report
  shows): the smallest file whose score reaches the target. With the default dither both remaps
  compete: the adaptive dither and no dithering, each at the smallest K reaching the target under
  its own search; the one whose encoded file is smaller wins (ties: the smaller K, then the
  dither). An undithered file is smaller at the same K, so its search stops as soon as a K that
  misses the target already encodes to at least the dithered winner's bytes (file size grows with
  K). ``min_quality`` is pngquant's MIN: a result below it is refused.
- ``target_psnr`` (dB): the smallest K reaching the PSNR, with the options' remap.

Each candidate is measured on exactly what the file would hold (after rounding to the uint8
palette, the remap and any dithering), on the whole image. Work is reused between candidates:

- the image goes through :class:`kmpress.pipeline.Pipeline` (the steps of :func:`kmpress.quantize`)
  once: one histogram, one colour-space conversion, shared by every candidate K (and by both
  remaps: the undithered pipeline is made ``like`` the adaptive one);
- each candidate K is warm-started: k-means++ *continues* from the centroids already fitted for
  the largest smaller K (:func:`kmpress.clustering.kmeans_plusplus` with ``start=``), so Lloyd begins
  close to a solution and converges in a few iterations. Along such a chain the k-means cost never
  increases with K, which keeps the search well behaved;
- PSNR candidates are scored on the histogram (no per-pixel pass) unless dithering or the
  rate-aware remap is on; a SSIMULACRA 2 score always needs the remapped pixels.

The search gallops (K = 1, 2, 4, ... up to the first K that reaches the target) and then bisects
between the last K that failed and the first that reached, each midpoint warm-started from the
failing end. It returns K such that K reaches the target and K - 1 was fitted and does not (or
K = 1): the smallest K under this warm-started chain, exact when the score grows with K along
the chain (PSNR does; SSIMULACRA 2 almost always does, see the tests). k-means finds local
optima, so an independent run at some K can land slightly differently; see the tests (brute
force agrees on images with a clear structure).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Unpack

import numpy as np

from .errors import InvalidParameterError, TargetNotReachedError
from .figures import Figures, HasFigures
from .fixedmath import exp2, log2
from .formats import encode
from .options import DEFAULT_DITHER, MAX_K, Options, QualityFields, check_number, make_options, quality_text
from .pipeline import Fit, Pipeline, Quantized
from .stages import Stages


@dataclass(frozen=True)
class Trial(HasFigures):
    """One candidate K fitted during the search.

    Attributes
    ----------
    figures : Figures; of the candidate as fitted (``k`` asked for, ``colors`` kept, ``psnr``,
        ``n_iter``, the stages it ran; ``delta_e`` NaN unless the pixels were needed to score it)
    start_k : int; K whose centroids it was warm-started from (0: a cold start)
    seconds : float; fitting and scoring
    dither : "adaptive", "floyd-steinberg" or None; the remap it was scored with
    """

    figures: Figures
    start_k: int
    seconds: float
    dither: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the figures' keys (:meth:`Figures.as_dict`), ``start_k``, ``seconds`` and ``dither``."""
        return {**self.figures.as_dict(), "start_k": self.start_k, "seconds": self.seconds, "dither": self.dither}


@dataclass
class QualityResult(HasFigures):
    """What :func:`quantize_to_quality` found.

    Attributes
    ----------
    quantized : Quantized; the chosen result (the ``max_colors`` one when the target is out of
        reach); its figures are the result's (``figures``, and ``k``: the K chosen, ``psnr``,
        ``ssimulacra2``, ...), its ``dither`` the remap chosen
    target_psnr : float or None; dB (a PSNR target)
    max_colors : int
    reached : bool; False when even ``max_colors`` colours stay below the target
    trials : list of Trial, in the order they were fitted (with both remaps: the adaptive
        dither's search, then the undithered one's)
    seconds : float; wall time of the whole search
    target_quality, min_quality : float or None; the SSIMULACRA 2 target and minimum
    output_bytes : int or None; the chosen file's size as the search encoded it (without
        metadata), for a perceptual target
    """

    quantized: Quantized
    target_psnr: float | None
    max_colors: int
    reached: bool
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0
    target_quality: float | None = None
    min_quality: float | None = None
    output_bytes: int | None = None

    @property
    def target(self) -> float:
        """The target searched for: the SSIMULACRA 2 score, or the PSNR in dB."""
        t = self.target_quality if self.target_quality is not None else self.target_psnr
        assert t is not None, "a search has a target"
        return t

    @property
    def figures(self) -> Figures:
        """The chosen result's figures (``quantized.figures``)."""
        return self.quantized.figures


#: Candidates are fitted at this many times the final tolerance; only the chosen K is then run to
#: the full tolerance. Measured on the test photos: Lloyd's long tail moves PSNR by 0.02-0.1 dB
#: (about one K near the answer) and costs most of the iterations.
SEARCH_TOL_FACTOR = 30.0


def search_pipeline(
    pipe: Any,
    target: float,
    max_colors: int,
    rng_for,
    search_tol: float | None = None,
    score: Callable[[Fit], float] | None = None,
    give_up: Callable[[Fit], bool] | None = None,
) -> tuple[int, Any, list[Trial], bool]:
    """The search itself, on a prepared :class:`kmpress.pipeline.Pipeline`.

    Parameters
    ----------
    pipe : Pipeline; the image prepared once (histogram, clustering-space points)
    target : float; in the unit of ``score``
    max_colors : int, 1..256
    rng_for : callable(k) -> numpy Generator; the seeding randomness of candidate k
    search_tol : tolerance of the candidates' Lloyd runs (default: the pipeline's)
    score : callable(Fit) -> float, optional; a candidate's score (default: its PSNR,
        :meth:`Pipeline.score`)
    give_up : callable(Fit) -> bool, optional; asked of each gallop candidate that misses the
        target (its pixels still remapped): True ends the search there, unreached, with that
        candidate's fit (no larger K can be of use)

    Returns
    -------
    (k, Fit of k, trials, reached); the fit is the candidate's, not yet polished
    """
    kmax = min(max_colors, pipe.n_colors)  # from n_colors on every K is lossless
    fits: dict[int, Any] = {}
    trials: list[Trial] = []
    measure = pipe.score if score is None else score
    stopped = False

    def fit(k: int, start_k: int) -> Any:
        nonlocal stopped
        t, mark = time.perf_counter(), dict(pipe.stages.times)
        start = fits[start_k].centroids if start_k else None
        f = pipe.fit(k, rng_for(k), start=start, tol=search_tol)
        f.score = measure(f)
        figures = pipe.figures(f, pipe.stages.since(mark))
        trials.append(Trial(figures, start_k, time.perf_counter() - t, pipe.options.dither))
        if f.score < target:
            stopped = give_up is not None and give_up(f)
            f.release()  # a failing fit is only ever a warm start: keep its centroids alone
        fits[k] = f
        return f

    # gallop: 1, 2, 4, ... each warm-started from the one before; steps of up to 4x once the
    # score-against-log2(K) line predicts the target is far, and straight to kmax when the line
    # says it is out of reach (saves the expensive fits just below kmax)
    lo, k = 0, 1
    while True:
        f = fit(k, lo)
        if f.score >= target:
            hi = k
            break
        if k >= kmax or stopped:
            return k, f, trials, False
        step = 2
        if lo:
            pred = _predict(lo, fits[lo].score, k, f.score, target)
            step = 4 if pred > 8 * k else 2
            if pred > 2 * kmax:
                step = kmax  # clamped below
        lo, k = k, min(step * k, kmax)

    # narrow the bracket (lo fails, hi reaches) in rounds: guess where the line crosses the
    # target, probe the guess's neighbour on the far side (the answer is usually next to a good
    # guess), and bisect once when the round has not halved the bracket (the line can mislead on
    # a plateau). Every fit continues from lo, the largest fitted K below it.
    def probe(g: int) -> int:
        nonlocal lo, hi
        if fit(g, lo).score >= target:
            fits[hi].release()
            hi = g
            return g - 1
        lo = g
        return g + 1

    while hi - lo > 1:
        width = hi - lo
        g = int(round(_predict(lo, fits[lo].score, hi, fits[hi].score, target)))
        nxt = probe(min(max(g, lo + 1), hi - 1))
        if lo < nxt < hi:
            probe(nxt)
        if hi - lo > 1 and 2 * (hi - lo) > width:
            probe((lo + hi) // 2)
    return hi, fits[hi], trials, True


def _predict(k1: int, p1: float, k2: int, p2: float, target: float) -> float:
    """K where the line through (log2 k1, p1) and (log2 k2, p2) reaches ``target`` (PSNR grows
    about linearly in log K: some 2-4 dB per doubling; SSIMULACRA 2 some 7-15 points). Halfway
    (geometrically) when the line is useless (flat, or a lossless end at inf dB). The logarithms and the power are
    :mod:`kmpress.fixedmath`'s, so the K tried is the same on every machine."""
    if not (math.isfinite(p1) and math.isfinite(p2)) or p2 <= p1:
        return math.sqrt(k1 * k2)
    # a nearly flat line aims far beyond any K: capped at 2^20 (K is at most 256) before exp2,
    # which would overflow past 2^1024
    return exp2(min(log2(k1) + (target - p1) * (log2(k2) - log2(k1)) / (p2 - p1), 20.0))


def quantize_to_quality(
    image: Any,
    target_psnr: float | None = None,
    *,
    options: Options | None = None,
    search_tol: float | None = None,
    on_stage: Callable[[str], None] | None = None,
    **kwargs: Unpack[QualityFields],
) -> QualityResult:
    """The smallest file reaching ``target_quality`` (SSIMULACRA 2), or the smallest K
    (1..``max_colors``) whose quantized image reaches ``target_psnr``.

    Parameters
    ----------
    image : (H, W, 3) or (H, W, 4) uint8 array_like; never modified
    target_psnr : float > 0, dB (PSNR over the RGB(A) channels, as reported by
        :func:`kmpress.quantize`); or given in ``options``. Not with ``target_quality``.
    options, **kwargs : as for :func:`kmpress.quantize`: ``target_quality`` (a SSIMULACRA 2
        score, 0-100: the smallest file reaching it, K and dithering chosen) and
        ``min_quality`` (below it the result is refused), ``max_colors`` (the largest K tried),
        ``strict`` (raise :class:`TargetNotReachedError` instead of returning the ``max_colors``
        result when the target is out of reach), ``seed`` (the same seed gives the same result)
        and every other option: the candidates go through exactly quantize's pipeline. ``init``
        applies to the first (cold) candidate; warm-started ones continue with k-means++.
    search_tol : float >= 0, optional
        Lloyd tolerance of the candidate fits; default :data:`SEARCH_TOL_FACTOR` x ``tol``. The
        chosen K is then run on to ``tol`` (its score can only move a little, and it is kept
        only if it still reaches the target). ``search_tol=tol`` fits every candidate fully.
    on_stage : callable(stage), optional; told when each stage begins (see
        :class:`kmpress.stages.Stages`), for every candidate K in turn

    Returns
    -------
    QualityResult
        ``reached`` is False when ``max_colors`` colours stay below the target; ``quantized`` is
        then the ``max_colors`` result (of the remap that scores higher).

    Raises
    ------
    InvalidParameterError
        A bad parameter (or no target at all).
    TargetNotReachedError
        ``strict`` and the target is out of reach, or the result is below ``min_quality``.
    """
    changes: dict[str, Any] = dict(kwargs)
    if target_psnr is not None:
        changes["target_psnr"] = target_psnr
    opts = make_options(options, **changes)
    if not opts.searches_k:
        raise InvalidParameterError("a target is required: target_quality (SSIMULACRA 2, 0-100) or target_psnr (dB)")
    if search_tol is not None:
        search_tol = check_number("search_tol", search_tol, 0.0)
    return search_quality(image, opts, Stages(on_stage), search_tol)


def search_quality(image: Any, opts: Options, stages: Stages, search_tol: float | None = None) -> QualityResult:
    """:func:`quantize_to_quality` under checked options (with a target), its stages timed and
    told by ``stages``."""
    if opts.target_quality is not None:
        return search_perceptual(image, opts, stages, search_tol)
    t0 = time.perf_counter()
    target, max_colors = opts.target_psnr, opts.max_colors
    assert target is not None, "search_quality takes options with a target"
    pipe = Pipeline(image, opts, stages=stages)
    if search_tol is None:
        search_tol = opts.tol * SEARCH_TOL_FACTOR
    _, f, trials, reached = search_pipeline(
        pipe, target, max_colors, lambda k: np.random.default_rng(opts.seed), search_tol
    )
    if search_tol != pipe.options.tol:
        polished = pipe.polish(f)
        if not reached or pipe.score(polished) >= target:
            f = polished
    q = pipe.finish(f)
    q.target_psnr, q.target_reached, q.search = target, reached, trials
    res = QualityResult(q, target, max_colors, reached, trials, time.perf_counter() - t0)
    if not reached and opts.strict:
        raise TargetNotReachedError(unreached_message(res), result=res, fields=unreached_remedies(res))
    return res


def perceptual_score(pipe: Pipeline, f: Fit) -> float:
    """The SSIMULACRA 2 score a search compares for a fit (its pixels remapped): 100 for a
    lossless fit; -inf when the image is too small to be scored (only lossless reaches then)."""
    s = pipe.ssim2(f)
    if f.lossless:
        return 100.0
    return -math.inf if math.isnan(s) else s


def encoded_size(pipe: Pipeline, f: Fit) -> int:
    """Bytes of a remapped fit's file in the job's format and compression level (no metadata:
    the same for every candidate)."""
    assert f.indices is not None, "a fit is remapped before it is encoded"
    o = pipe.options
    with pipe.stages("write"):
        return len(encode(f.palette, f.indices, o.format, compress_level=o.compress_level))


def search_perceptual(image: Any, opts: Options, stages: Stages, search_tol: float | None = None) -> QualityResult:
    """The smallest file whose SSIMULACRA 2 score reaches ``opts.target_quality``: see the module.

    With the default dither, the adaptive dither's search runs first and its file's size bounds
    the undithered search. The chosen result is polished (run on to ``tol``) and its figures
    measured on the whole image.
    """
    t0 = time.perf_counter()
    target = opts.target_quality
    assert target is not None, "search_perceptual takes options with a perceptual target"
    if search_tol is None:
        search_tol = opts.tol * SEARCH_TOL_FACTOR
    first = Pipeline(image, opts, stages=stages)
    pipes = [first]
    if opts.dither == DEFAULT_DITHER:
        pipes.append(Pipeline(image, opts.replace(dither=None, dither_strength=None), like=first))
    trials: list[Trial] = []
    # (bytes, k, order) of each remap's smallest K reaching the target; (score, order) otherwise
    reached: list[tuple[int, int, int, Pipeline, Fit]] = []
    missed: list[tuple[float, int, Pipeline, Fit]] = []
    for order, pipe in enumerate(pipes):
        bound = min((r[0] for r in reached), default=None)

        def score(f: Fit, pipe: Pipeline = pipe) -> float:
            return perceptual_score(pipe, f)

        def give_up(f: Fit, pipe: Pipeline = pipe, bound: int | None = bound) -> bool:
            return bound is not None and encoded_size(pipe, f) >= bound

        k, f, found, ok = search_pipeline(
            pipe, target, opts.max_colors, lambda k: np.random.default_rng(opts.seed), search_tol, score, give_up
        )
        trials.extend(found)
        if search_tol != opts.tol:
            polished = pipe.polish(f)
            if not ok or score(polished) >= target:
                f = polished
        if ok:
            pipe.ssim2(f)  # remapped again if released
            reached.append((encoded_size(pipe, f), f.k, order, pipe, f))
        elif k >= min(opts.max_colors, pipe.n_colors):  # not a search that gave up early
            missed.append((score(f), -order, pipe, f))
    if reached:
        nbytes, _, _, pipe, f = min(reached, key=lambda r: r[:3])
    else:
        _, _, pipe, f = max(missed, key=lambda r: r[:2])
        nbytes = None
    q = pipe.finish(f)
    q.target_quality, q.target_reached, q.search = target, bool(reached), trials
    res = QualityResult(
        q, None, opts.max_colors, bool(reached), trials, time.perf_counter() - t0, target, opts.min_quality, nbytes
    )
    floor = opts.quality_floor
    if floor is not None and not perceptual_score(pipe, f) >= floor:
        raise TargetNotReachedError(unreached_message(res, floor), result=res, fields=unreached_remedies(res))
    return res


#: What to do with each option that may bring a missed target within reach.
_REMEDY = {
    "max_colors": "raise",
    "target_psnr": "lower",
    "target_quality": "lower",
    "min_quality": "lower the minimum of",
    "strict": "drop",
}


def unreached_remedies(res: QualityResult) -> tuple[str, ...]:
    """Return the options whose change would help a missed target.

    ``max_colors`` only below its largest value; then the target and ``strict``, or for a
    ``MIN-MAX`` target its minimum.
    """
    more = ("max_colors",) if res.max_colors < MAX_K else ()
    if res.target_quality is None:
        return (*more, "target_psnr", "strict")
    if res.min_quality is not None:
        return (*more, "min_quality")
    return (*more, "target_quality", "strict")


def unreached_message(res: QualityResult, floor: float | None = None) -> str:
    """Return one line: the target (or the minimum ``floor`` missed), what ``max_colors`` colours reach, what helps.

    The options that would help are named by their option names: a front end names its own flags
    (see ``TargetNotReachedError.fields``).
    """
    q = res.quantized
    fixes = [f"{_REMEDY[f]} {f}" for f in unreached_remedies(res)]
    how = fixes[0] if len(fixes) == 1 else f"{fixes[0]} or {fixes[1]}" if len(fixes) == 2 else ""
    if len(fixes) > 2:
        how = f"{', '.join(fixes[:-1])}, or {fixes[-1]}"
    if res.target_quality is None:
        return f"PSNR target {res.target:g} dB not reached: {res.max_colors} colours give {q.psnr:.2f} dB ({how})"
    got = f"{res.max_colors} colours give SSIMULACRA 2 {q.figures.ssimulacra2:.1f}"
    if res.min_quality is not None:
        wanted = quality_text(res.target_quality, res.min_quality)
        return f"quality {wanted}: the minimum {floor:g} not reached: {got} ({how})"
    return f"quality target {res.target:g} not reached: {got} ({how})"
