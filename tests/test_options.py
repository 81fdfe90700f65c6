"""kmpress.options: every default and every rule in one frozen, picklable object, checked once."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys

import numpy as np
import pytest

from kmpress.errors import InvalidParameterError
from kmpress.options import DEFAULT_K, MAX_K, Options, default, make_options, parse_quality


def test_defaults():
    o = Options()
    assert (o.k, o.target_psnr, o.max_colors, o.strict, o.seed) == (DEFAULT_K, None, MAX_K, False, 0)
    assert (o.max_iter, o.tol, o.init, o.backend, o.colorspace) == (300, 3e-5, "k-means++", "auto", "rgb")
    assert (o.dither, o.dither_strength, o.smooth, o.n_init, o.palette_order) == ("adaptive", None, 0.0, 1, "luma")
    assert (o.compress_level, o.max_pixels) == (6, "auto")
    assert not o.searches_k and default("tol") == 3e-5


def test_each_dither_has_its_own_default_strength():
    # adaptive: half up to 64 colours, rising linearly to 0.7 at 256
    assert [Options().diffusion_strength(k) for k in (2, 16, 64, 160, 256)] == [0.5, 0.5, 0.5, 0.6, 0.7]
    assert Options(dither="floyd-steinberg").diffusion_strength(16) == 0.75
    assert Options(dither=None).diffusion_strength(16) == 0.0
    assert Options(dither_strength=1).diffusion_strength(16) == 1.0
    assert Options(dither="floyd-steinberg", dither_strength=0.2).diffusion_strength(256) == 0.2
    # a search that also tries no dithering drops the strength with the dither
    assert Options(dither_strength=0.8).replace(dither=None, dither_strength=None).diffusion_strength(16) == 0.0


def test_frozen_picklable_comparable():
    o = Options(k=8, colorspace="oklab", smooth=0.3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.k = 9
    assert pickle.loads(pickle.dumps(o)) == o
    assert o.as_dict()["colorspace"] == "oklab"


@pytest.mark.parametrize(
    "kwargs, fields",
    [
        (dict(k=0), ("k",)),
        (dict(k=257), ("k",)),
        (dict(k=2.0), ("k",)),
        (dict(k=True), ("k",)),
        (dict(k=8, target_psnr=30), ("k", "target_psnr")),
        (dict(target_psnr=0), ("target_psnr",)),
        (dict(target_psnr=float("inf")), ("target_psnr",)),
        (dict(max_colors=64), ("max_colors", "strict", "target_quality", "target_psnr")),
        (dict(strict=True), ("max_colors", "strict", "target_quality", "target_psnr")),
        (dict(k=8, target_quality=70), ("k", "target_quality")),
        (dict(target_quality=70, target_psnr=30), ("target_quality", "target_psnr")),
        (dict(target_quality=100.5), ("target_quality",)),
        (dict(target_quality=-1), ("target_quality",)),
        (dict(target_quality=float("nan")), ("target_quality",)),
        (dict(min_quality=50), ("min_quality", "target_quality")),
        (dict(target_quality=70, min_quality=80), ("min_quality", "target_quality")),
        (dict(target_quality=70, min_quality=-1), ("min_quality",)),
        (dict(target_quality=70, min_quality=50, strict=True), ("strict", "min_quality")),
        (dict(target_psnr=30, strict="yes"), ("strict",)),
        (dict(seed=-1), ("seed",)),
        (dict(max_iter=-1), ("max_iter",)),
        (dict(tol=float("nan")), ("tol",)),
        (dict(init="kmeans++"), ("init",)),
        (dict(backend="gpu"), ("backend",)),
        (dict(colorspace="lab"), ("colorspace",)),
        (dict(n_init=0), ("n_init",)),
        (dict(n_init=33), ("n_init",)),
        (dict(dither="none"), ("dither",)),
        (dict(dither=False), ("dither",)),
        (dict(dither_strength=0), ("dither_strength",)),
        (dict(dither_strength=1.5), ("dither_strength",)),
        (dict(dither=None, dither_strength=0.5), ("dither_strength",)),
        (dict(smooth=0.3, dither_strength=0.5), ("dither_strength",)),
        (dict(smooth=-0.1), ("smooth",)),
        (dict(smooth=0.3, dither="floyd-steinberg"), ("smooth", "dither")),
        (dict(palette_order="hue"), ("palette_order",)),
        (dict(compress_level=10), ("compress_level",)),
        (dict(max_pixels=0), ("max_pixels",)),
    ],
)
def test_each_rule_once_with_the_fields_it_is_about(kwargs, fields):
    with pytest.raises(InvalidParameterError) as info:
        Options(**kwargs)
    assert info.value.fields == fields
    assert "\n" not in str(info.value)


def test_k_and_target_rules():
    t = Options(target_psnr=35, max_colors=64, strict=True)
    assert t.k is None and t.searches_k and t.max_colors == 64
    # a target replaces the default K; a fixed K must be given up explicitly
    assert Options().replace(target_psnr=30).k is None
    assert Options(k=8).replace(target_psnr=30).k is None
    assert t.replace(target_psnr=None, max_colors=256, strict=False).k == DEFAULT_K
    with pytest.raises(InvalidParameterError):
        t.replace(k=8)
    # one target replaces the other (and its minimum)
    q = Options(target_quality=80, min_quality=60, max_colors=64)
    assert q.searches_k and q.k is None and q.quality_floor == 60 and q.quality_tag == "60-80"
    assert q.replace(target_psnr=30) == Options(target_psnr=30, max_colors=64)
    assert t.replace(target_quality=70).target_psnr is None
    assert Options(target_quality=70, strict=True).quality_floor == 70
    assert Options(target_quality=70).quality_floor is None and Options(target_quality=70).quality_tag == "70"
    assert Options(target_psnr=37.5).quality_tag == "37.5" and Options(target_psnr=37.5).quality_floor is None


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("70", (None, 70.0)),
        (" 65.5 ", (None, 65.5)),
        ("60-80", (60.0, 80.0)),
        ("60-", (60.0, 100.0)),
        ("-80", (None, 80.0)),
        ("0-100", (0.0, 100.0)),
        ("70-70", (70.0, 70.0)),
    ],
)
def test_parse_quality_takes_pngquants_forms(text, parsed):
    assert parse_quality(text) == parsed


@pytest.mark.parametrize("text", ["", "high", "80-60", "101", "50-101", "1-2-3", "--5", "nan"])
def test_parse_quality_refuses(text):
    with pytest.raises(InvalidParameterError) as info:
        parse_quality(text)
    assert "target_quality" in info.value.fields or "min_quality" in info.value.fields


def test_numpy_scalars_are_accepted_and_normalised():
    o = Options(k=np.uint16(40), seed=np.int64(3), tol=np.float32(1e-4), strict=False)
    assert type(o.k) is int and o.k == 40 and type(o.seed) is int and type(o.tol) is float


def test_make_options_is_the_edge():
    base = Options(k=8)
    assert make_options() == Options()
    assert make_options(base) is base
    assert make_options(base, seed=4) == Options(k=8, seed=4)
    with pytest.raises(InvalidParameterError, match="unknown option 'colour'"):
        make_options(colour="red")
    with pytest.raises(InvalidParameterError, match="options must be"):
        make_options({"k": 8})


def test_importing_the_options_loads_nothing_heavy():
    code = (
        "import sys, kmpress.options; print(sorted(m for m in ('numpy', 'numba', 'PIL', 'typer') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"
