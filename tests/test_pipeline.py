"""kmpress.pipeline: the stages composed (prepare once, fit, polish, score, finish), and the
image coercion at its edge."""

from __future__ import annotations

import numpy as np
import pytest

import kmpress
from kmpress.options import Options
from kmpress.pipeline import Pipeline, as_image


@pytest.fixture(scope="module")
def crop(photos) -> np.ndarray:
    return np.ascontiguousarray(photos["chelsea"][100:180, 150:270])


@pytest.mark.parametrize("opts", [{}, {"colorspace": "oklab"}, {"dither": "floyd-steinberg"}, {"smooth": 0.3}])
def test_pipeline_steps_are_quantize(crop, opts):
    """A cold fit through the shared pipeline is exactly kmpress.quantize (the search uses it)."""
    for k in (1, 9, 40):
        q = kmpress.quantize(crop, k, seed=3, **opts)
        pipe = Pipeline(crop, Options(**opts))
        f = pipe.fit(k, np.random.default_rng(3))
        score = pipe.score(f)
        q2 = pipe.finish(f)
        assert np.array_equal(q.palette, q2.palette) and np.array_equal(q.indices, q2.indices)
        assert q.psnr == q2.psnr == score and q.delta_e == q2.delta_e
        assert (q.n_iter, q.converged) == (q2.n_iter, q2.converged)


def test_warm_start_never_raises_the_cost(crop):
    pipe = Pipeline(crop, Options())
    prev = None
    for k in (2, 3, 5, 8, 13, 21):
        f = pipe.fit(k, np.random.default_rng(0), start=None if prev is None else prev.centroids)
        if prev is not None:
            assert f.inertia <= prev.inertia * (1 + 1e-9)
            # the warm start keeps the old centres as the first ones it starts from
        prev = f


def test_polish_only_lowers_the_cost(crop):
    pipe = Pipeline(crop, Options(tol=0))
    loose = pipe.fit(12, np.random.default_rng(1), tol=1e-2)
    polished = pipe.polish(loose)
    assert polished.inertia <= loose.inertia and polished.n_iter >= loose.n_iter
    full = pipe.fit(12, np.random.default_rng(1))
    assert polished.inertia == pytest.approx(full.inertia, rel=1e-3)


def test_as_image_copies_only_when_it_must(crop):
    assert as_image(crop) is crop
    ro = crop.copy()
    ro.flags.writeable = False
    assert as_image(ro) is ro  # read-only is fine: no stage writes to the image
    q = kmpress.quantize(ro, 8)
    assert np.array_equal(q.palette, kmpress.quantize(crop, 8).palette)
    f = np.asfortranarray(crop)
    assert as_image(f).flags.c_contiguous
    with pytest.raises(kmpress.InvalidParameterError, match="uint8"):
        as_image(crop.astype(np.float32))
