"""Benchmarks of single kernels and of the backend pick: numba against the NumPy baseline on the
same data, side by side in one pytest-benchmark group each.

- ``5a-nearest-labels K=..``: nearest-centroid labels of every distinct colour (the kernel
  ``nearest``, boxes computed outside the timing as a Lloyd fit does once) against Lloyd
  centroids, which are cluster means, not colours. NumPy's labels come from a float32 product
  with the near ties decided again exactly, so they must equal numba's.
- ``6a-color-index``: ``color_index``, each pixel's index among the distinct colours (the
  per-pixel inverse that the dense histogram spares, made when a dithered or smoothed remap needs
  it).
- ``6b-remap-codes``: ``remap_codes``, every pixel's palette index through a table of all 2^24
  colour codes (the plain remap of large RGB images).
- ``8a-auto-64px`` and ``8b-auto-4mp``: ``kmpress.quantize`` at K=16 with ``backend="auto"``
  next to forced numba and forced NumPy, on a 64x64 image (auto picks NumPy) and a 2560x1600 one
  (auto picks numba); in one warm process, so numba's start-up, which the pick is about, is not in
  these figures (see ``9-startup`` in ``bench_startup.py``). Plain ``pytest`` runs the large body
  on a 320x240 image, which auto also gives to numba.

Inputs come from ``bench/conftest.py`` (the suite's photo, its histogram, shared centroids); every
test checks its result, so a broken kernel fails here even untimed.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from bench.bench_engine import BACKENDS, KERNELS, _tag, measure
from bench.photos import make_photo
from bench.summary import KS
from kmpress import autopick, backends, quantize

#: K of the remap and auto groups (the default; a table lookup's cost does not depend on K).
K_AUTO = 16

#: (W, H) of the auto groups' images, timed and in plain ``pytest``; "backend": what auto picks
#: for the timed image (by its pixels for auto-large, by its colours x K for auto-small).
AUTO = {
    "auto-small": {"timed": (64, 64), "untimed": (64, 64), "backend": "numpy"},
    "auto-large": {"timed": (2560, 1600), "untimed": (320, 240), "backend": "numba"},
}

#: Fixed rounds of the slow bodies: NumPy's quantize of the 4 MP image takes seconds.
ROUNDS = {("auto-large", "numpy"): 1, ("auto-large", "numba"): 3, ("auto-large", "auto"): 3}


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("k", KS)
def test_nearest_labels(benchmark, inputs, k, impl):
    """Nearest of K centroids for every distinct colour; both backends give numba's labels."""
    kern = KERNELS[impl]
    X = inputs.hist_X
    C32 = inputs.centroids(k).astype(np.float32)
    boxes = kern.block_boxes(X)
    labels = np.full(X.shape[1], -1, np.int32)
    measure(benchmark, lambda: kern.nearest(X, C32, labels, boxes), stage="labels", k=k, impl=impl, **_tag(inputs))
    assert np.array_equal(labels, inputs.labels(k))
    # and they are nearest: on a sample, no centroid is closer than the chosen one (float64
    # distances; float32 rounding may swap only near ties)
    pick = np.random.default_rng(0).choice(X.shape[1], size=min(2000, X.shape[1]), replace=False)
    x = X[:, pick].T.astype(np.float64)
    d = ((x[:, None, :] - C32.astype(np.float64)[None, :, :]) ** 2).sum(axis=2)
    chosen = d[np.arange(pick.size), labels[pick]]
    assert np.all(chosen <= d.min(axis=1) * (1 + 1e-5) + 1e-3)


@pytest.mark.parametrize("impl", BACKENDS)
def test_color_index(benchmark, inputs, impl):
    """Each pixel's index among the distinct colours, from the histogram's sorted codes."""
    kern = KERNELS[impl]
    px = inputs.photo.reshape(-1, 3)
    idx = measure(
        benchmark,
        lambda: kern.color_index(px, inputs.hist.codes),
        stage="color-index",
        k=None,
        impl=impl,
        **_tag(inputs),
    )
    assert idx.dtype == np.int32 and idx.shape == (px.shape[0],)
    assert np.array_equal(inputs.hist.colors[idx], px)
    assert np.array_equal(idx, inputs.pixel_colors())
    if inputs.hist.inverse is not None:  # small images keep the inverse: the same thing
        assert np.array_equal(idx, inputs.hist.inverse)


@pytest.mark.parametrize("impl", BACKENDS)
def test_remap_codes(benchmark, inputs, impl):
    """Every pixel's palette index through the table of all 2^24 colour codes, as the plain remap
    of a large RGB image does; equal to gathering each colour's index through ``color_index``."""
    kern = KERNELS[impl]
    px = inputs.photo.reshape(-1, 3)
    lab8 = (np.arange(inputs.hist.n_colors) % K_AUTO).astype(np.uint8)  # any palette index per colour
    lab8 = np.random.default_rng(0).permutation(lab8)
    lut = np.zeros(1 << 24, np.uint8)
    lut[inputs.hist.codes] = lab8
    out = np.empty(px.shape[0], np.uint8)
    measure(benchmark, lambda: kern.remap_codes(px, lut, out), stage="remap-codes", k=None, impl=impl, **_tag(inputs))
    assert np.array_equal(out, lab8[inputs.pixel_colors()])


@cache
def _auto_image(wh: tuple[int, int]) -> np.ndarray:
    return make_photo(wh)


@cache
def _auto_reference(wh: tuple[int, int]):
    return quantize(_auto_image(wh), K_AUTO, seed=0, backend="numba", dither=None)


def _auto_pick(img: np.ndarray) -> str:
    """What ``backend="auto"`` runs for ``img`` at K_AUTO, in this process as it is now."""
    pixels = img.shape[0] * img.shape[1]
    pick = backends.choose("auto", pixels, K_AUTO)
    if pick == "numpy":  # the histogram's colours decide
        colors = np.unique(img.reshape(-1, img.shape[2]), axis=0).shape[0]
        pick = backends.choose("auto", pixels, K_AUTO, colors=colors)
    return pick


@pytest.mark.parametrize("impl", ("auto", *BACKENDS))
@pytest.mark.parametrize("stage", tuple(AUTO))
def test_auto_backend(benchmark, bench_size, monkeypatch, stage, impl):
    """``kmpress.quantize`` at K=16 with the backend auto picks, and each backend forced.

    Undithered: the pick weighs the clustering's work (a per-pixel remap over its own limit always
    goes to numba, see ``kmpress.backends.choose``).
    """
    spec = AUTO[stage]
    wh = spec["untimed" if bench_size == "tiny" else "timed"]
    img = _auto_image(wh)
    pixels = wh[0] * wh[1]
    # the pick of a fresh process: this session may have loaded every kernel, and auto then
    # always runs numba
    monkeypatch.setattr(autopick, "numba_is_warm", lambda: False)
    pick = _auto_pick(img)
    if wh == spec["timed"]:
        assert pick == spec["backend"]  # the image is on its side
    q = measure(
        benchmark,
        lambda: quantize(img, K_AUTO, seed=0, backend=impl, dither=None),
        stage=stage,
        k=None,
        impl=impl,
        rounds=ROUNDS.get((stage, impl)),
        pixels=pixels,
        auto_picks=pick,
    )
    ref = _auto_reference(wh)  # the backends give the same result
    assert np.array_equal(q.palette, ref.palette) and np.array_equal(q.indices, ref.indices)
    if impl == "auto":  # once more, untimed, watching which backend the pipeline loads
        loaded = []
        load = backends.load
        monkeypatch.setattr(backends, "load", lambda name: (loaded.append(name), load(name))[1])
        quantize(img, K_AUTO, seed=0, dither=None)
        pick = _auto_pick(img)  # numba may be imported by now, which lowers the bar for it
        assert loaded[-1] == pick and loaded in (["numpy"], ["numba"], ["numpy", "numba"])
