"""kmpress.fixedmath against exact rational arithmetic, its numba twin against it bit for bit, and
the stored sRGB table against exact decimal arithmetic."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest

from kmpress import fixedmath
from kmpress.colorspace import LINEAR_LUT, M1, lab_of_linear, oklab_of_colors, srgb_to_oklab


def _correctly_rounded_cbrt(x: float, y: float) -> bool:
    # y is the double nearest to x^(1/3): x lies between the cubes of the two midpoints around y
    half = Fraction(math.ulp(y)) / 2
    lo, hi = (Fraction(y) - half) ** 3, (Fraction(y) + half) ** 3
    return lo <= Fraction(x) <= hi


def _cbrt_inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    # the values the colour conversion takes the cube root of (M1 x linear light), and any others
    lin = LINEAR_LUT[rng.integers(0, 256, (4000, 3))]
    lms = (lin @ M1.T).ravel()
    return np.concatenate(
        [
            lms,
            rng.random(3000),
            np.exp(rng.uniform(-700, 700, 3000)),
            rng.random(300) * 1e-310,
            -rng.random(1000),
            [1.0, 8.0, 27.0, 0.125],
        ]
    )


def test_cbrt_is_correctly_rounded():
    x = _cbrt_inputs()
    y = fixedmath.cbrt(x)
    bad = [(a, b) for a, b in zip(x.tolist(), y.tolist(), strict=True) if not _correctly_rounded_cbrt(a, b)]
    assert not bad, bad[:5]
    np.testing.assert_array_equal(fixedmath.cbrt(np.array([1.0, 8.0, -27.0, 0.125])), [1.0, 2.0, -3.0, 0.5])


def test_cbrt_keeps_zeros_infinities_nan_and_shape():
    y = fixedmath.cbrt(np.array([[0.0, -0.0, np.inf], [-np.inf, np.nan, 1e-320]]))
    assert y.shape == (2, 3)
    assert y[0, 0] == 0 and not np.signbit(y[0, 0]) and y[0, 1] == 0 and np.signbit(y[0, 1])
    assert y[0, 2] == np.inf and y[1, 0] == -np.inf and np.isnan(y[1, 1])
    assert _correctly_rounded_cbrt(1e-320, float(y[1, 2]))


def test_numba_cube_root_is_fixedmath_bit_for_bit():
    from kmpress.kernels_numba._color import _cbrt

    x = _cbrt_inputs()[::7]
    got = np.array([_cbrt(float(v)) for v in x])
    np.testing.assert_array_equal(got.view(np.int64), fixedmath.cbrt(x).view(np.int64))


def test_cube_is_the_exact_cube_rounded_once():
    x = np.random.default_rng(1).uniform(-2.0, 2.0, 5000)
    y = fixedmath.cube(x)
    assert all(float(Fraction(a) ** 3) == b for a, b in zip(x.tolist(), y.tolist(), strict=True))


def test_pow_5_12_within_two_ulps():
    x = np.concatenate([np.random.default_rng(2).random(5000), [0.0, 1.0, 0.0031308]])
    y = fixedmath.pow_5_12(x)
    with localcontext() as ctx:
        ctx.prec = 40
        exact = np.array([float(Decimal(v) ** (Decimal(5) / Decimal(12))) if v > 0 else 0.0 for v in x.tolist()])
    assert np.max(np.abs(y - exact) / np.spacing(np.maximum(exact, 1e-300))) <= 2


@pytest.mark.parametrize(
    "fn,exact",
    [
        (fixedmath.log10, lambda d: d.log10()),
        (fixedmath.log2, lambda d: d.ln() / Decimal(2).ln()),
    ],
)
def test_logarithms_within_an_ulp(fn, exact):
    rng = np.random.default_rng(3)
    xs = [*rng.uniform(1e-3, 1e7, 3000).tolist(), 0.5, 1.0, 2.0, 10.0, 1000.0, 65025.0, 256.0]
    with localcontext() as ctx:
        ctx.prec = 40
        for x in xs:
            want = exact(Decimal(x))
            got = fn(x)
            assert abs(Decimal(got) - want) <= Decimal(math.ulp(float(want))), x
    assert fixedmath.log10(1000.0) == 3.0 and fixedmath.log10(1.0) == 0.0 and fixedmath.log2(256.0) == 8.0


def test_exp2_within_two_ulps():
    xs = np.random.default_rng(4).uniform(-20.0, 20.0, 3000).tolist()
    with localcontext() as ctx:
        ctx.prec = 40
        for x in xs:
            want = float((Decimal(x) * Decimal(2).ln()).exp())
            assert abs(fixedmath.exp2(x) - want) <= 2 * math.ulp(want), x
    assert [fixedmath.exp2(v) for v in (0.0, 1.0, 8.0, -1.0)] == [1.0, 2.0, 256.0, 0.5]


def test_linear_table_is_the_transfer_function_correctly_rounded():
    # each step in float64 as the formula reads, the power (of the double 2.4) correctly rounded
    with localcontext() as ctx:
        ctx.prec = 60
        for i in range(256):
            c = i / 255.0
            if c <= 0.04045:
                want = c / 12.92
            else:
                want = float(Decimal((c + 0.055) / 1.055) ** Decimal(2.4))
            assert LINEAR_LUT[i] == want, i


def test_srgb_to_oklab_equals_both_kernels_bit_for_bit(kern):
    cols = np.random.default_rng(5).integers(0, 256, (3000, 3), dtype=np.uint8)
    ref = srgb_to_oklab(cols)
    np.testing.assert_array_equal(oklab_of_colors(cols, kern).view(np.int64), ref.view(np.int64))
    lin = LINEAR_LUT[cols.astype(np.int64)]
    np.testing.assert_array_equal(np.stack(lab_of_linear(lin[:, 0], lin[:, 1], lin[:, 2]), -1), ref)


def test_srgb_to_oklab_refuses_values_that_are_not_8_bit_codes():
    with pytest.raises(ValueError, match="8-bit"):
        srgb_to_oklab(np.array([0.5, 1.0, 2.0]))
    with pytest.raises(ValueError, match="8-bit"):
        srgb_to_oklab(np.array([0, 256, 3]))
    np.testing.assert_array_equal(
        srgb_to_oklab(np.array([1.0, 2.0, 3.0])), srgb_to_oklab(np.array([1, 2, 3], np.uint8))
    )
