"""The benchmark suite: every stage of the engine, numba against the NumPy backend (and
scikit-learn when it is installed), at K = 16, 64 and 256.

The Lloyd iterations also time ``numpy-plain`` (:func:`bench.peers.numpy_plain_iteration`: per
8192-point chunk one float32 matrix product for the distances, ``argmin``, ``np.bincount``), the
yardstick of the NumPy backend, which must stay within 1.2x of it while giving numba's labels.

Run ``pytest --benchmark`` (24 MP) or ``pytest --benchmark --bench-size small`` (2 MP); plain
``pytest`` runs each body once on a tiny image. One pytest-benchmark table per stage and K.
The inputs (photo, histogram, starting centroids) come from ``bench/conftest.py`` and are the
same for every implementation; the JIT is warmed there too, outside every timing.

Slow bodies run a fixed small number of rounds (pedantic mode) so a full run stays within
minutes; fast ones use pytest-benchmark's calibrated rounds. Each test also checks its result,
so a broken stage fails here even untimed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from bench import peers
from bench.summary import KS, group_name
from kmpress import DEFAULT_MAX_ITER, DEFAULT_TOL, compress, kernels_numba, kernels_numpy, write_png
from kmpress.clustering import Lloyd, kmeans_plusplus, lloyd
from kmpress.histogram import build_histogram
from kmpress.palette import nearest_in_space
from kmpress.remap import gather_indices

KERNELS = {"numba": kernels_numba, "numpy": kernels_numpy}
BACKENDS = tuple(KERNELS)
#: The Lloyd groups also time scikit-learn when it imports.
LLOYD_IMPLS = (
    BACKENDS
    + ("numpy-plain",)
    + (("sklearn",) if peers.HAVE_SKLEARN else ())
    + (("sklearn-iter",) if peers.HAVE_SKLEARN_ITER else ())
)
CONVERGE_IMPLS = BACKENDS + (("sklearn",) if peers.HAVE_SKLEARN else ())

#: Fixed rounds for the bodies that take seconds at 24 MP (NumPy per-pixel iterations, the
#: NumPy seeding and to-convergence runs, a whole compress); anything not listed uses
#: pytest-benchmark's calibration (at least 5 rounds, up to ~1 s).
ROUNDS = {
    ("histogram", "numpy"): 3,
    ("seeding", "numpy"): 1,
    ("iter-pixels", "numpy"): 3,
    ("iter-pixels", "numpy-plain"): 3,
    ("iter-pixels", "sklearn"): 1,  # each fit spends seconds checking and copying 24 MP first
    ("iter-pixels", "sklearn-iter"): 3,
    ("converge", "numba"): 3,
    ("converge", "numpy"): 1,
    ("converge", "sklearn"): 1,
    ("compress", "numba"): 3,
    ("compress", "numpy"): 1,
}

EMPTY = np.empty(0, np.float64)


def measure(
    benchmark,
    fn: Callable[..., Any],
    *,
    stage: str,
    k: int | None,
    impl: str,
    group_by_k: bool = True,
    setup: Callable[[], tuple] | None = None,
    rounds: int | None = None,
    warmup_rounds: int = 0,
    **info: Any,
) -> Any:
    """Time ``fn`` in the group of (stage, k), tagged for the speed-up table; returns its result.

    ``group_by_k=False`` puts every K of the stage in one table. ``setup`` (untimed, before every
    round) returns the ``(args, kwargs)`` of ``fn``. ``rounds`` (default :data:`ROUNDS`, else
    calibrated) and ``warmup_rounds`` fix pedantic rounds. Untimed (plain ``pytest``),
    pytest-benchmark calls ``fn`` exactly once.
    """
    benchmark.group = group_name(stage, k if group_by_k else None)
    benchmark.extra_info.update(stage=stage, K=k, impl=impl, **info)
    rounds = rounds or ROUNDS.get((stage, impl))
    if setup is not None:
        return benchmark.pedantic(fn, setup=setup, rounds=rounds or 7, iterations=1, warmup_rounds=warmup_rounds)
    if rounds is None:
        return benchmark(fn)
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)


def _tag(inputs) -> dict[str, Any]:
    h, w = inputs.photo.shape[:2]
    return {"pixels": h * w, "colors": inputs.hist.n_colors, "threads": kernels_numba_threads()}


def kernels_numba_threads() -> int:
    from numba import get_num_threads

    return int(get_num_threads())


@pytest.mark.parametrize("impl", BACKENDS)
def test_histogram(benchmark, inputs, impl):
    hist = measure(
        benchmark,
        lambda: build_histogram(inputs.photo, KERNELS[impl]),
        stage="histogram",
        k=None,
        impl=impl,
        **_tag(inputs),
    )
    assert int(hist.counts.sum()) == inputs.n_pixels
    assert np.array_equal(hist.colors, inputs.hist.colors)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("k", KS)
def test_seeding(benchmark, inputs, k, impl):
    """Greedy weighted k-means++ on the histogram, as ``quantize`` seeds. The NumPy kernels form
    the numba kernels' sums in the same order, so both pick the same centres from the same draws."""
    kern = KERNELS[impl]

    def run():
        return kmeans_plusplus(inputs.hist_X, inputs.hist_w, True, k, np.random.default_rng(inputs.seed), kern)

    c = measure(benchmark, run, stage="seeding", k=k, impl=impl, **_tag(inputs))
    assert c.shape == (k, 3) and np.all(np.isfinite(c))
    assert np.array_equal(c, inputs.c0(k))  # numba's seeds from the same seed, bit for bit
    # centres are distinct colours of the image
    assert np.unique(c, axis=0).shape[0] == k and np.isin(_codes(c), _codes(inputs.hist.colors)).all()


def _codes(colors: np.ndarray) -> np.ndarray:
    c = np.asarray(colors, np.int64)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def _one_iteration(stage: str, X, w, weighted: bool, rows_fn, inputs, k: int, impl: str, benchmark):
    c0 = inputs.c0(k)
    if impl in KERNELS:
        kern = KERNELS[impl]

        def after_first():
            # the first iteration assigns every point afresh and sets up the fit's buffers: time
            # the second, a typical iteration of the loop (assign + update), as the peers' is
            run = Lloyd(X, w, weighted, c0, kern)
            run.step()
            return (run,), {}

        def iteration(run):
            run.step()
            return run

        run = measure(benchmark, iteration, setup=after_first, stage=stage, k=k, impl=impl, **_tag(inputs))
        assert run.n_iter == 2 and len(run.history) == 2
        return run.C
    weights = w if weighted else None
    if impl == "numpy-plain":
        return measure(
            benchmark, lambda: peers.numpy_plain_iteration(X, weights, c0), stage=stage, k=k, impl=impl, **_tag(inputs)
        )
    rows = rows_fn()
    if impl == "sklearn":
        km = measure(
            benchmark,
            lambda: peers.sklearn_fit(rows, weights, c0, max_iter=1, tol=0.0),
            stage=stage,
            k=k,
            impl=impl,
            **_tag(inputs),
        )
        assert km.n_iter_ == 1
        return km.cluster_centers_
    sw = peers.sklearn_weights(rows, weights)
    return measure(
        benchmark, lambda: peers.sklearn_one_iteration(rows, sw, c0), stage=stage, k=k, impl=impl, **_tag(inputs)
    )


@pytest.mark.parametrize("impl", LLOYD_IMPLS)
@pytest.mark.parametrize("k", KS)
def test_lloyd_iteration_pixels(benchmark, inputs, k, impl):
    """One Lloyd iteration (assign + update) over every pixel, unweighted."""
    c = _one_iteration("iter-pixels", inputs.pixels, EMPTY, False, inputs.pixel_rows, inputs, k, impl, benchmark)
    assert c.shape == (k, 3) and np.all(np.isfinite(c))


@pytest.mark.parametrize("impl", LLOYD_IMPLS)
@pytest.mark.parametrize("k", KS)
def test_lloyd_iteration_histogram(benchmark, inputs, k, impl):
    """One Lloyd iteration over the distinct colours weighted by their counts (the same iterate
    as over every pixel)."""
    c = _one_iteration("iter-hist", inputs.hist_X, inputs.hist_w, True, inputs.hist_rows, inputs, k, impl, benchmark)
    assert c.shape == (k, 3) and np.all(np.isfinite(c))


@pytest.mark.parametrize("impl", CONVERGE_IMPLS)
@pytest.mark.parametrize("k", KS)
def test_lloyd_to_convergence(benchmark, inputs, k, impl):
    """Lloyd on the histogram from the shared centroids with the engine's defaults (tolerance and
    iteration cap), as ``quantize`` runs it; scikit-learn gets numba's iteration count."""
    c0 = inputs.c0(k)
    if impl in KERNELS:
        kern = KERNELS[impl]

        def run():
            return lloyd(
                inputs.hist_X, inputs.hist_w, True, c0, DEFAULT_MAX_ITER, DEFAULT_TOL, kern, final_assign=False
            )

        benchmark.extra_info["n_iter"] = None
        r = measure(benchmark, run, stage="converge", k=k, impl=impl, **_tag(inputs))
        benchmark.extra_info["n_iter"] = r.n_iter
        assert 1 <= r.n_iter <= DEFAULT_MAX_ITER
        return
    n_iter = inputs.converged_iters(k)
    rows = inputs.hist_rows()
    km = measure(
        benchmark,
        lambda: peers.sklearn_fit(rows, inputs.hist_w, c0, max_iter=n_iter, tol=0.0),
        stage="converge",
        k=k,
        impl=impl,
        **_tag(inputs),
    )
    benchmark.extra_info["n_iter"] = int(km.n_iter_)
    assert 1 <= km.n_iter_ <= n_iter


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("k", KS)
def test_remap(benchmark, inputs, k, impl):
    """Every pixel to its nearest palette entry: nearest entry per distinct colour, then one pass
    over the pixels (through the histogram's inverse, or a table of colour codes for large RGB)."""
    kern = KERNELS[impl]
    palette = inputs.quantized(k).palette
    shape = inputs.photo.shape[:2]

    def run():
        labels = nearest_in_space(inputs.hist_X, palette.astype(np.float32), kern)
        return gather_indices(inputs.hist, labels, inputs.photo, kern)

    idx = measure(benchmark, run, stage="remap", k=k, impl=impl, **_tag(inputs))
    assert idx.shape == shape and int(idx.max()) < palette.shape[0]


@pytest.mark.parametrize("k", KS)
def test_png_encode(benchmark, inputs, out_dir, k):
    """kmpress.write_png of the quantized photo at the default zlib level (atomic write included)."""
    q = inputs.quantized(k)
    dst = out_dir / f"encode-{k}.png"
    size = measure(
        benchmark,
        lambda: write_png(dst, q.palette, q.indices),
        stage="png",
        k=k,
        impl="numba",
        group_by_k=False,
        **_tag(inputs),
    )
    benchmark.extra_info["bytes"] = size
    assert size == dst.stat().st_size > 0


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("k", KS)
def test_compress(benchmark, photo_path, inputs, out_dir, k, impl):
    """kmpress.compress of the JPEG to an indexed PNG: decode, histogram, seeding, Lloyd, remap, encode."""
    dst = out_dir / f"compress-{impl}-{k}.png"
    rep = measure(
        benchmark, lambda: compress(photo_path, dst, k, backend=impl), stage="compress", k=k, impl=impl, **_tag(inputs)
    )
    benchmark.extra_info.update(n_iter=rep.n_iter, bytes=rep.output_bytes, psnr=rep.psnr, stages=rep.timings)
    assert rep.colors <= k and dst.stat().st_size == rep.output_bytes
