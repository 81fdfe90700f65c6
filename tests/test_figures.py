"""The one record of a result's figures (kmpress.figures.Figures): every result type carries it,
``k`` is the K asked for and ``colors`` the entries stored everywhere, and each ``as_dict`` (the
CLI's ``--json``) holds its keys flat, inf and NaN as null."""

from __future__ import annotations

import json
import math
from dataclasses import FrozenInstanceError, fields

import numpy as np
import pytest
from helpers import gradient_photo

import kmpress
from kmpress.figures import NAMES, Figures
from kmpress.metrics import bit_accounting

#: The figures' keys in every result's JSON: a public contract (the CLI's --json).
FIGURE_KEYS = {
    "k",
    "colors",
    "mse",
    "psnr",
    "delta_e",
    "ssimulacra2",
    "bits",
    "bit_depth",
    "n_iter",
    "converged",
    "timings",
}

#: A compressed file's JSON object: its own keys and the figures' (FileResult adds status, message,
#: seconds and drops src/dst, see tests/cli/test_compress.py).
REPORT_KEYS = FIGURE_KEYS | {
    "src",
    "dst",
    "width",
    "height",
    "pixels",
    "input_bytes",
    "output_bytes",
    "file_ratio",
    "colorspace",
    "dither",
    "target_quality",
    "target_psnr",
    "target_reached",
    "search",
    "format",
    "written",
    "warnings",
}


def _five_colors(shape=(30, 40)) -> np.ndarray:
    rng = np.random.default_rng(5)
    pal = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    idx = rng.integers(0, 5, shape)
    idx.flat[:5] = np.arange(5)
    return np.ascontiguousarray(pal[idx])


def test_the_record_names_each_figure_once():
    assert set(NAMES) == FIGURE_KEYS
    f = Figures(
        k=16,
        colors=5,
        mse=0.0,
        psnr=math.inf,
        delta_e=math.nan,
        bits=bit_accounting(2, 3, 3, 5),
        n_iter=0,
        converged=True,
    )
    assert f.bit_depth == 4  # derived from the entries stored, not from K
    d = f.as_dict()
    assert set(d) == FIGURE_KEYS
    assert d["psnr"] is None and d["delta_e"] is None  # inf and NaN: null in JSON
    assert d["bits"] == f.bits.as_dict() and d["timings"] == {}
    json.dumps(d, allow_nan=False)
    with pytest.raises(FrozenInstanceError):
        f.psnr = 3.0
    # the times are not a figure of the result's quality: equal records may have taken longer
    assert f == Figures(16, 5, 0.0, math.inf, f.delta_e, f.bits, 0, True, timings={"lloyd": 1.0})


def test_k_is_asked_for_and_colors_stored_in_every_result(tmp_path):
    img = _five_colors()
    q = kmpress.quantize(img, 16)
    assert (q.k, q.colors, q.palette.shape[0]) == (16, 5, 5)
    assert q.bits == bit_accounting(30, 40, 3, 5) and q.bit_depth == 4
    src = tmp_path / "five.png"
    from PIL import Image

    Image.fromarray(img).save(src)
    rep = kmpress.compress(src, tmp_path / "out.png", 16)
    assert (rep.k, rep.colors) == (16, 5) and rep.figures == q.figures
    [row] = kmpress.sweep(img, [16])
    assert (row.k, row.colors) == (16, 5) and row.figures == q.figures
    found = kmpress.quantize_to_quality(img, target_psnr=60)
    assert found.k == found.quantized.k == 5 in [t.k for t in found.trials] and found.colors == 5
    assert all(t.colors <= t.k for t in found.trials)


def test_every_result_reads_its_figures_as_attributes(photos):
    img = np.ascontiguousarray(photos["chelsea"][:60, :80])
    q = kmpress.quantize(img, 8)
    [row] = kmpress.sweep(img, [8])
    found = kmpress.quantize_to_quality(img, target_psnr=25)
    for r in (q, row, found, found.trials[0]):
        for name in NAMES:
            assert getattr(r, name) is getattr(r.figures, name), (type(r).__name__, name)
    assert found.figures is found.quantized.figures
    assert row.figures == q.figures  # the sweep's first K is quantize's


def test_the_json_of_each_result_holds_the_figures_flat(tmp_path, photos):
    img = np.ascontiguousarray(photos["chelsea"][:60, :80])
    src = gradient_photo(tmp_path / "a.png")
    rep = kmpress.compress(src, tmp_path / "a8.png", target_psnr=30)
    d = rep.as_dict()
    assert set(d) == REPORT_KEYS
    assert {k: d[k] for k in FIGURE_KEYS} == rep.figures.as_dict()
    assert list(d["timings"])[-1] == "total" and "read" in d["timings"] and "write" in d["timings"]
    assert d["search"] and all(set(t) == FIGURE_KEYS | {"start_k", "seconds", "dither"} for t in d["search"])
    assert d["k"] in [t["k"] for t in d["search"]]  # the K chosen is one the search fitted
    json.dumps(d, allow_nan=False)
    [row] = kmpress.sweep(img, [4])
    rd = row.as_dict()
    assert set(rd) == FIGURE_KEYS | {"inertia", "bytes", "seconds", "encode_seconds"}
    assert {k: rd[k] for k in FIGURE_KEYS} == row.figures.as_dict()


def test_a_candidate_scored_on_the_histogram_has_no_delta_e(photos):
    img = np.ascontiguousarray(photos["chelsea"][:60, :80])
    plain = kmpress.quantize_to_quality(img, target_psnr=28, dither=None)
    assert all(math.isnan(t.delta_e) and t.as_dict()["delta_e"] is None for t in plain.trials)
    assert not math.isnan(plain.delta_e)  # the chosen K is remapped and measured
    for dither in ("floyd-steinberg", "adaptive"):
        dithered = kmpress.quantize_to_quality(img, target_psnr=28, dither=dither)
        assert all(t.delta_e > 0 for t in dithered.trials)  # scored on the pixels: measured


def test_result_types_declare_no_figure_of_their_own():
    """A figure lives in the record only: the result types hold it once, as ``figures``."""
    from kmpress.api import CompressReport
    from kmpress.ksweep import SweepRow
    from kmpress.pipeline import Quantized
    from kmpress.quality import QualityResult, Trial

    for cls in (Quantized, CompressReport, SweepRow, Trial, QualityResult):
        own = {f.name for f in fields(cls)}
        assert not own & set(NAMES), (cls.__name__, own & set(NAMES))


@pytest.mark.parametrize("dither", ["adaptive", "floyd-steinberg", None])
def test_measure_off_leaves_out_only_the_per_pixel_figures(tmp_path, photos, dither):
    """``measure=False`` writes the same file and keeps every figure the histogram gives for free;
    the per-pixel ones are NaN (null in the JSON), and their stage is not run."""
    img = np.ascontiguousarray(photos["chelsea"][:96, :128])
    on = kmpress.compress(img, tmp_path / "on.png", 16, dither=dither)
    off = kmpress.compress(img, tmp_path / "off.png", 16, dither=dither, measure=False)
    assert (tmp_path / "on.png").read_bytes() == (tmp_path / "off.png").read_bytes()
    assert math.isfinite(on.ssimulacra2) and math.isnan(off.ssimulacra2)
    assert "delta_e" in on.timings and "delta_e" not in off.timings or dither is None
    for name in ("mse", "psnr", "delta_e"):
        if dither is None:  # measured on the histogram: kept
            assert getattr(off, name) == getattr(on, name), name
        else:
            assert math.isfinite(getattr(on, name)) and math.isnan(getattr(off, name)), name
    assert (off.k, off.colors, off.n_iter, off.bits) == (on.k, on.colors, on.n_iter, on.bits)
    d = off.as_dict()
    assert d["ssimulacra2"] is None and (d["psnr"] is None) == (dither is not None)
    json.dumps(d, allow_nan=False)


def test_a_quality_target_measures_its_result_without_measure(photos):
    img = np.ascontiguousarray(photos["chelsea"][:96, :128])
    found = kmpress.quantize_to_quality(img, target_quality=60, measure=False)
    assert found.ssimulacra2 >= 60 and math.isfinite(found.psnr)


def test_measure_must_be_a_bool():
    with pytest.raises(kmpress.InvalidParameterError, match="measure must be True or False"):
        kmpress.Options(measure="no")
