"""General points for the float32 kernels: :func:`kmpress.kmeans` on data of any dtype and
magnitude, not only colours.

The kernels cluster (D, N) float32 points. A :class:`Frame` says how the caller's points are
brought there with float32's full precision, and how results go back:

- centring: a coordinate far from the origin compared with its spread (its largest magnitude
  more than :data:`CENTRE_GAIN` times its largest distance from its mean) is centred on its
  weighted mean, as scikit-learn does, so that its values carry float32's relative rounding of
  their distance from the mean, not of their magnitude;
- scaling: points whose largest (centred) magnitude lies outside [2^-SCALE_SPAN, 2^SCALE_SPAN]
  are multiplied by one power of two, all coordinates alike, into [0.5, 1), so that float32's
  squared distances neither overflow nor sink below its normal numbers. A power of two is exact:
  the same run as at any other scale, to the bit, in other units;
- weights far from 1 are likewise multiplied by a power of two (a common factor of all weights
  changes no label or centroid); their sum may then even overflow float64.

Points near the origin, every 8-bit colour set among them, are clustered exactly as given
(quantize and compress never come here). What cannot be held is refused with
:class:`~kmpress.errors.InvalidParameterError`: coordinates whose ranges are more than
2^COORD_RANGE apart, an init array beyond float32, an inertia beyond float64 in the caller's
units. All sums are chunk sums in a fixed order without BLAS: the same bits at any thread count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .clustering import MOMENT_STEP
from .errors import InvalidParameterError

#: Points per chunk of the centring sums and of the inertia (their order: the chunks' sums added
#: one after another).
STEP = 1 << 18
#: Points per piece of a pass over the points: a piece's float64 columns (at most 512 KB) stay in
#: the L2 cache for every reduction that reads them. A power of two: it divides :data:`STEP` and
#: the moments' chunks, and holds whole :data:`BLOCK`\ s.
PIECE = 1 << 14
#: Points per block of the norm bounds measured in the frame pass (as the NumPy search's blocks,
#: ``kmpress.kernels_numpy`` ``NORM_BLOCK``).
BLOCK = 256
#: Values below this magnitude that are integers add exactly, in any order.
EXACT_SUM = 2.0**52
#: A coordinate is centred when that makes its largest magnitude more than this many times
#: smaller (over 4 bits of float32 precision gained); closer to the origin its values are kept
#: exactly as given.
CENTRE_GAIN = 16.0
#: Points and weights whose largest magnitude (after centring) lies in [2^-SCALE_SPAN,
#: 2^SCALE_SPAN] are clustered as given; others are first scaled by a power of two into
#: [0.5, 1). Within this span the kernels' float32 squared distances, and weights times them,
#: neither overflow (< 2^128) nor sink below float32's normal range (2^-126) where points differ.
SCALE_SPAN = 32
#: Every coordinate that varies must vary within at least 2^-COORD_RANGE of the widest one's
#: range: scaled with it, its values stay normal float32 numbers (>= 2^-126) to float32's
#: relative precision, and so do the centroids' means of them.
COORD_RANGE = 100


def scale_exponent(m: float) -> int:
    """The exponent e such that multiplying by 2^e brings a largest magnitude ``m`` into
    [0.5, 1), or 0 when ``m`` is 0 or already within [2^-SCALE_SPAN, 2^SCALE_SPAN]."""
    if m == 0.0 or 2.0**-SCALE_SPAN <= m <= 2.0**SCALE_SPAN:
        return 0
    return -math.frexp(m)[1]


def weight_exponent(w: np.ndarray) -> int:
    """:func:`scale_exponent` of (N,) float64 non-negative weights, not all 0."""
    return scale_exponent(float(w.max()))


def columns(a: np.ndarray, s: int, buf: np.ndarray | None = None, n: int = STEP) -> np.ndarray:
    """(D, m) float64 C-contiguous copy of rows ``s : s + n`` of (N, D) points ``a`` (m = n, or
    fewer at the end), in ``buf`` (D, >= m) float64 when given (one buffer for every chunk of a
    pass: a fresh array of that size per chunk costs its page faults every time).

    Reductions run along these rows: NumPy reduces an (n, D) array over its first axis D values
    at a time, many times slower than along a contiguous row."""
    if buf is None:
        return np.array(a[s : s + n].T, dtype=np.float64, order="C")
    x = buf[:, : min(n, a.shape[0] - s)]
    np.copyto(x, a[s : s + n].T, casting="unsafe")
    return x


def column_sums(x: np.ndarray) -> np.ndarray:
    """(D,) float64 sums of the rows of (D, n) float64 ``x`` (overwritten), bit for bit
    ``x.T.sum(axis=0)``: that sum over the first axis of an (n, D) array adds the values one
    after another from the first, for D >= 2, and pairwise (as along a row) for D = 1."""
    if x.shape[0] == 1:
        return x.sum(axis=1)
    return np.add.accumulate(x, axis=1, out=x)[:, -1] + 0.0  # (+ 0.0: an empty sum is +0, as NumPy's)


def pairwise(lo: int, n: int, part: Callable[[int, int], Any]) -> Any:
    """NumPy's sum of ``n`` values from ``lo`` along a contiguous row (its pairwise summation),
    from ``part(s, m)``, the sum of the ``m <= PIECE`` values from ``s``.

    NumPy halves a range (the first half rounded down to a multiple of 8) until it is at most
    128 values long, and adds the halves' sums: the ranges of at most :data:`PIECE` values that
    its halving reaches, each summed as a whole, give the same sum, bit for bit (tested), with
    each range in the cache while it is summed."""
    if n <= PIECE:
        return part(lo, n)
    half = n // 2
    half -= half % 8
    return pairwise(lo, half, part) + pairwise(lo + half, n - half, part)


def tree_sum(v: np.ndarray) -> np.ndarray:
    """:func:`pairwise` of 2^j ranges of :data:`PIECE` values, from their sums ``v`` (2^j, ...):
    such a range is halved into its pieces exactly, so their sums are added in pairs."""
    while v.shape[0] > 1:
        v = v[0::2] + v[1::2]
    return v[0]


@dataclass(frozen=True)
class PointSums:
    """What a Lloyd run reads of its (D, N) float32 points before its first pass, measured by
    :func:`frame_points` while it writes them (the points then stay in the cache).

    Attributes
    ----------
    first : ``kmpress.clustering.first_moments`` of the points (sum_sq, (D,) float64 mean,
        total_w), bit for bit; None when weighted (its weighted sums are einsum's, over whole
        chunks)
    reach : (n_blocks, D) float64 C-contiguous, the largest magnitude of each coordinate in each
        :data:`BLOCK` points: the NumPy search's norm bounds are made from it
        (``kernels_numpy.block_boxes(X, reach)``)
    """

    first: tuple[float, np.ndarray, float] | None
    reach: np.ndarray


class _Sums:
    """Gathers :class:`PointSums` from the float64 values of the points, piece by piece."""

    def __init__(self, D: int, N: int, moments: bool) -> None:
        nb = -(-N // BLOCK)
        self.bmax = np.empty((D, nb))
        self.bmin = np.empty((D, nb))
        self.moments = moments
        if moments:
            self.rows = np.empty((-(-N // PIECE), D))
            self.sq = np.empty(-(-N // PIECE))
            self._sq = np.empty(min(N, PIECE))

    def blocks(self, x: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Take the extremes of each block of ``x`` (D, m) float64, points ``s : s + m`` (``s`` on a
        block); return the piece's (D,) largest and smallest values."""
        D, m = x.shape
        b, full = s // BLOCK, m // BLOCK
        hi, lo = self.bmax[:, b : -(-(s + m) // BLOCK)], self.bmin[:, b : -(-(s + m) // BLOCK)]
        if full:
            v = x[:, : full * BLOCK].reshape(D, full, BLOCK)
            v.max(axis=2, out=hi[:, :full])
            v.min(axis=2, out=lo[:, :full])
        if full * BLOCK < m:
            hi[:, full] = x[:, full * BLOCK :].max(axis=1)
            lo[:, full] = x[:, full * BLOCK :].min(axis=1)
        return hi.max(axis=1), lo.min(axis=1)

    def piece(self, x: np.ndarray, s: int, rows: np.ndarray | None = None, top: float = math.inf) -> None:
        """Take the moments' sums of ``x`` (D, m) float64, points ``s : s + m`` (``s`` on a piece;
        ``rows``: ``x.sum(axis=1)`` when known, and then ``x`` holds integers up to ``top`` in
        magnitude)."""
        if self.moments:
            i = s // PIECE
            D, m = x.shape
            self.rows[i] = x.sum(axis=1) if rows is None else rows
            if rows is not None and m * D * top * top <= EXACT_SUM:
                # integer squares whose every sum is exact: any order gives the pairwise sum's bits
                self.sq[i] = np.einsum("dn,dn->", x, x)
            else:
                self.sq[i] = np.einsum("dn,dn->n", x, x, out=self._sq[:m]).sum()

    def result(self, X: np.ndarray) -> PointSums:
        """The :class:`PointSums` of the (D, N) float32 points ``X`` whose values were taken."""
        reach = np.ascontiguousarray(np.maximum(self.bmax, -self.bmin).T)
        if not self.moments:
            return PointSums(None, reach)
        D, N = X.shape
        # as first_moments: its chunks' sums added in order; a whole chunk's from its pieces'
        mean, sum_sq = np.zeros(D), 0.0
        per, full = MOMENT_STEP // PIECE, N // MOMENT_STEP
        for c in range(full):
            mean += tree_sum(self.rows[c * per : (c + 1) * per])
            sum_sq += float(tree_sum(self.sq[c * per : (c + 1) * per]))
        if full * MOMENT_STEP < N:
            # the last chunk is halved off the pieces: read again (at most MOMENT_STEP points)
            xb = X[:, full * MOMENT_STEP :].astype(np.float64)
            mean += xb.sum(axis=1)
            sum_sq += float(np.einsum("dn,dn->n", xb, xb).sum())
        mean /= float(N)
        return PointSums((sum_sq, mean, float(N)), reach)


def centre(
    a: np.ndarray, w: np.ndarray, weighted: bool, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return the (D,) float64 shift to subtract from (N, D) points ``a``, and (D,) float64 largest
    magnitude of each coordinate of the shifted points.

    The shift is, per coordinate, the weighted mean (rounded to an integer for integer points,
    whose centred values stay integers, exact in float32 up to 2^24) where centring gains float32
    precision (see :data:`CENTRE_GAIN`), else 0. Float points beyond 2^64 are summed in units of
    a power of two near their largest magnitude, so that no sum overflows.

    One pass over the points gives each coordinate's smallest and largest value and its sum;
    the largest distance from the mean follows from the two extremes, as rounding is monotonic
    (``x - mean`` rounded never decreases as ``x`` grows). Sums are those of the (N, D) array
    chunk by chunk (:func:`column_sums`). ``out``, when given, (D, N) float32, receives the
    points as they are (the kernels' points when neither shifted nor scaled).

    Raises
    ------
    InvalidParameterError
        Points that are not all finite.
    """
    shift, mags, _ = _centre(a, w, weighted, out, None)
    return shift, mags


def _centre(
    a: np.ndarray, w: np.ndarray, weighted: bool, out: np.ndarray | None, sums: _Sums | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """:func:`centre`, and whether ``out`` (when given) holds the points exactly (float32 loses
    none of their float64 bits); ``sums``, when given (with ``out``), takes the values ``out``
    holds.

    One pass, a :data:`PIECE` at a time. A chunk's sums (one after another, :func:`column_sums`)
    run on from piece to piece; a piece of integers whose sum cannot reach 2^52 adds exactly in
    any order, and is summed along its rows (pairwise, many times faster), which also gives its
    moments' sums; integers up to 2^24 are also float32's exactly."""
    N, D = a.shape
    exact = out is not None
    hi = np.full(D, -np.inf)
    lo = np.full(D, np.inf)
    total = np.zeros(D)
    m0 = min(N, PIECE)
    buf, tmp, run = np.empty((D, m0)), np.empty((D, m0)), np.empty((D, m0 + 1))
    ints = a.dtype.kind in "iu"
    # float values are tried for integers until a piece is not: then the rest is summed in order
    trying = True
    for c in range(0, N, STEP):
        carry = np.zeros(D)
        carry_int = whole = True
        for s in range(c, min(N, c + STEP), PIECE):
            x = columns(a, s, buf, PIECE)
            m = x.shape[1]
            phi, plo = sums.blocks(x, s) if sums is not None else (x.max(axis=1), x.min(axis=1))
            np.maximum(hi, phi, out=hi)
            np.minimum(lo, plo, out=lo)
            top = max(float(phi.max()), -float(plo.min()))  # NaN: every comparison below fails
            integral = ints or (trying and bool(np.array_equal(np.rint(x, out=tmp[:, :m]), x)))
            trying = trying and integral
            y = x
            if out is not None:
                o = out[:, s : s + m]
                with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: then scaled, and written again
                    np.copyto(o, x, casting="unsafe")
                same = (integral and top <= 2.0**24) or bool(np.array_equal(o, x))
                exact = exact and same
                if sums is not None and not same:
                    y = tmp[:, :m]
                    np.copyto(y, o)
                    sums.blocks(y, s)
            if weighted:
                x *= w[s : s + m]
                top *= float(w[s : s + m].max())
                integral = trying and bool(np.array_equal(np.rint(x, out=tmp[:, :m]), x))
                trying = trying and integral
            rows = None
            if integral and carry_int and float(np.abs(carry).max()) + m * top <= EXACT_SUM:
                rows = x.sum(axis=1)
                carry += rows
            else:
                r = run[:, : m + 1]
                r[:, 0] = carry
                r[:, 1:] = x
                carry = np.add.accumulate(r, axis=1, out=r)[:, m].copy()
                carry_int = bool(np.array_equal(np.rint(carry), carry))
                whole = False
            if sums is not None:
                with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32: summed again
                    if y is x and not weighted:
                        sums.piece(x, s, rows, top)
                    else:
                        sums.piece(y, s)
        if D == 1 and not whole:
            # one coordinate: the chunk's sum is pairwise, not in order
            carry = column_sums(np.multiply(columns(a, c), w[c : c + STEP]) if weighted else columns(a, c))
        total += carry + 0.0  # (+ 0.0: as column_sums)
    if a.dtype.kind == "f" and not (np.all(np.isfinite(hi)) and np.all(np.isfinite(lo))):
        raise InvalidParameterError("points contain NaN or infinity")
    top = np.maximum(np.abs(hi), np.abs(lo))
    # summing N values of up to 2^1023 (times weights up to 2^32) could overflow: in units of 2^e
    # (exact, as any power of two), only for such values, so that the rest keep their bits
    e = -math.frexp(float(top.max()))[1] if a.dtype.kind == "f" and top.max() > 2.0**64 else 0
    if e:
        total = np.zeros(D)
        for s in range(0, N, STEP):
            x = columns(a, s)
            np.ldexp(x, e, out=x)
            if weighted:
                x *= w[s : s + STEP]
            total += column_sums(x)
    mean = total / (float(w.sum()) if weighted else float(N))
    if a.dtype.kind in "iu":
        mean = np.round(mean)
    spread = np.maximum(np.maximum(np.ldexp(hi, e) - mean, mean - np.ldexp(lo, e)), 0.0)
    centred = np.ldexp(top, e) > CENTRE_GAIN * spread
    # a centred coordinate's spread is under top / 16: back in the caller's units it cannot overflow
    return np.where(centred, np.ldexp(mean, -e), 0.0), np.where(centred, np.ldexp(spread, -e), top), exact


def squared_norms(d: np.ndarray) -> np.ndarray:
    """(n,) float64 squared norms of the columns of (D, n) float64 ``d`` (overwritten), bit for
    bit ``np.einsum("nd,nd->n", d.T, d.T)``, whose two-lane loop adds the even coordinates'
    squares and the odd ones' apart, then the two (its order for D < 8; tested)."""
    D = d.shape[0]
    d *= d
    for j in range(2, D):
        d[j % 2] += d[j]
    if D > 1:
        d[0] += d[1]
    return d[0]


@dataclass(frozen=True)
class Frame:
    """The kernels' coordinates of a point set: ``(x - shift) * 2^e``, weights ``w * 2^ew``.

    Attributes
    ----------
    shift : (D,) float64, in the caller's units
    e : int; exponent of the points' scale (0: as given)
    ew : int; exponent of the weights' scale (0: as given)
    top : float; largest magnitude of a shifted coordinate, in the caller's units
    exact : bool; whether the (D, N) float32 points made with it (:func:`frame_points`) hold
        the float64 points of this frame exactly: then :meth:`inertia` reads them instead
    """

    shift: np.ndarray
    e: int
    ew: int
    top: float
    exact: bool = False

    def planar(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(D, N) float32 C-contiguous points of (N, D) ``a`` (in float64, rounded once), in
        ``out`` when given."""
        X = np.empty(a.shape[::-1], np.float32) if out is None else out
        self._planar(a, X)
        return X

    def _planar(self, a: np.ndarray, X: np.ndarray, sums: _Sums | None = None) -> bool:
        """Write :meth:`planar`'s points into ``X``; return whether float32 held them exactly.
        ``sums``, when given, takes the values written."""
        N, D = a.shape
        exact = True
        m0 = min(N, PIECE)
        buf, tmp = np.empty((D, m0)), np.empty((D, m0))
        shifted = bool(np.any(self.shift))
        for s in range(0, N, PIECE):
            x = columns(a, s, buf, PIECE)
            if shifted:
                x -= self.shift[:, None]
            if self.e:
                np.ldexp(x, self.e, out=x)
            o = X[:, s : s + PIECE]
            o[...] = x
            same = bool(np.array_equal(o, x))
            exact = exact and same
            if sums is not None:
                y = x if same else tmp[:, : x.shape[1]]
                if not same:
                    np.copyto(y, o)
                sums.blocks(y, s)
                sums.piece(y, s)
        return exact

    def to_frame(self, c: np.ndarray) -> np.ndarray:
        """(k, D) float64 centroids given in the caller's units, in this frame; refused when
        float32 could not compare them with the points."""
        out = np.ldexp(c - self.shift, self.e)
        if not np.all(np.abs(out) <= np.finfo(np.float32).max / 4):
            raise InvalidParameterError("init array lies too far from the points to be compared with them in float32")
        return out

    def from_frame(self, C: np.ndarray) -> np.ndarray:
        """(k, D) float64 centroids of this frame in the caller's units."""
        return np.ldexp(C, -self.e) + self.shift

    def inertia(
        self,
        a: np.ndarray,
        w: np.ndarray,
        weighted: bool,
        C: np.ndarray,
        labels: np.ndarray,
        X: np.ndarray | None = None,
    ) -> float:
        """sum_i w_i ||x_i - C[labels_i]||^2 of the original points ``a`` in float64, in this
        frame (``C`` and ``w`` too), chunk by chunk in a fixed order, without BLAS; each point's
        squared distance summed as ``np.einsum("nd,nd->n")`` sums it (:func:`squared_norms`).

        ``X``: the (D, N) float32 points of :func:`frame_points`; when this frame is
        :attr:`exact` they are read instead of ``a`` (the same float64 values: the same sum,
        without transposing ``a`` again)."""
        N, D = a.shape
        Ct = np.ascontiguousarray(C.T)
        planar = X if self.exact else None
        shifted = bool(np.any(self.shift))
        m0 = min(N, PIECE)
        buf, g, lab = np.empty((D, m0)), np.empty(m0), np.empty(m0, np.intp)

        def part(s: int, m: int) -> float:
            li = lab[:m]
            np.copyto(li, labels[s : s + m])  # (indices of the widths take wants, once per piece)
            if planar is not None:
                # float32 - float64: each value widened exactly, then the same subtraction
                d = buf[:, :m]
                for j in range(D):
                    np.subtract(planar[j, s : s + m], np.take(Ct[j], li, out=g[:m]), out=d[j])
            else:
                d = columns(a, s, buf, m)
                if shifted:
                    d -= self.shift[:, None]
                if self.e:
                    np.ldexp(d, self.e, out=d)
                for j in range(D):
                    d[j] -= np.take(Ct[j], li, out=g[:m])
            sq = squared_norms(d) if D < 8 else np.einsum("nd,nd->n", *[np.ascontiguousarray(d.T)] * 2)
            return float((sq * w[s : s + m]).sum() if weighted else sq.sum())

        # each chunk's sum is NumPy's pairwise sum of its points' values, in pieces that stay in the cache
        total = 0.0
        for s in range(0, N, STEP):
            total += pairwise(s, min(STEP, N - s), part)
        return total

    def inertia_back(self, values: list[float], w: np.ndarray) -> list[float]:
        """Inertias of this frame in the caller's units (exact: powers of two); refused when
        one is beyond float64 (``w``: the frame's weights, named in the message)."""
        back = -2 * self.e - self.ew
        try:
            return [math.ldexp(v, back) for v in values]
        except OverflowError:
            raise InvalidParameterError(
                f"the inertia overflows float64 (over 1.8e308): coordinates reach {self.top:.3g}"
                + (" from their mean" if np.any(self.shift) else "")
                + (f" with weights up to {math.ldexp(float(w.max()), -self.ew):.3g}" if w.size else "")
                + "; scale them down"
            ) from None


def make_frame(a: np.ndarray, w: np.ndarray, weighted: bool, ew: int, out: np.ndarray | None = None) -> Frame:
    """The :class:`Frame` of (N, D) points ``a`` with weights ``w`` (already scaled by 2^ew);
    ``out``, when given, (D, N) float32, receives the points as they are (see :func:`centre`).

    Raises
    ------
    InvalidParameterError
        Points that are not all finite; coordinates that vary within ranges more than
        2^COORD_RANGE apart.
    """
    return _make_frame(a, w, weighted, ew, out, None)


def _make_frame(
    a: np.ndarray, w: np.ndarray, weighted: bool, ew: int, out: np.ndarray | None, sums: _Sums | None
) -> Frame:
    shift, mags, exact = _centre(a, w, weighted, out, sums)
    top = float(mags.max())
    thin = np.flatnonzero((mags > 0) & (mags < math.ldexp(top, -COORD_RANGE)))
    if thin.size:
        j, i = int(thin[0]), int(np.argmax(mags))
        raise InvalidParameterError(
            f"points span too wide a range for float32: coordinate {j} varies within {mags[j]:.3g}, coordinate {i} "
            f"within {top:.3g} (more than 2^{COORD_RANGE} = {2.0**COORD_RANGE:.1e} apart); scale the coordinates first"
        )
    e = scale_exponent(top)
    # out holds the frame's points only when they are neither shifted nor scaled
    return Frame(shift, e, ew, top, exact and not (np.any(shift) or e))


def frame_points(a: np.ndarray, w: np.ndarray, weighted: bool, ew: int) -> tuple[Frame, np.ndarray, PointSums]:
    """The :class:`Frame` of (N, D) points ``a`` (see :func:`make_frame`), the (D, N) float32
    C-contiguous points in it, and their :class:`PointSums`.

    The points are made while the frame is measured when they need neither a shift nor a scale,
    as points near the origin (every colour) do; their sums too, piece by piece while the piece
    is in the cache. Others are written (and summed) in a second pass."""
    N, D = a.shape
    X = np.empty((D, N), np.float32)
    sums = _Sums(D, N, not weighted)
    frame = _make_frame(a, w, weighted, ew, X, sums)
    if np.any(frame.shift) or frame.e:
        sums = _Sums(D, N, not weighted)
        frame = replace(frame, exact=frame._planar(a, X, sums))
    return frame, X, sums.result(X)
