"""The set-up sums around the Lloyd iterations (the frame's centring and planar points, the
inertia in the caller's units, the points' moments) are computed along planar rows and equal,
bit for bit, the plain reductions over (N, D) arrays they stand for."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kmpress import clustering, points
from kmpress.points import PIECE, STEP, centre, frame_points, make_frame, pairwise, squared_norms


def plain_centre(a, w, weighted):
    """The shift and magnitudes, reduced over the first axis of (n, D) chunks."""
    N, D = a.shape
    top = np.zeros(D)
    for s in range(0, N, STEP):
        top = np.maximum(top, np.abs(a[s : s + STEP].astype(np.float64)).max(axis=0))
    e = -math.frexp(float(top.max()))[1] if a.dtype.kind == "f" and top.max() > 2.0**64 else 0
    total = np.zeros(D)
    for s in range(0, N, STEP):
        x = np.ldexp(a[s : s + STEP].astype(np.float64), e)
        total += (x * w[s : s + STEP, None]).sum(axis=0) if weighted else x.sum(axis=0)
    mean = total / (float(w.sum()) if weighted else float(N))
    if a.dtype.kind in "iu":
        mean = np.round(mean)
    spread = np.zeros(D)
    for s in range(0, N, STEP):
        spread = np.maximum(spread, np.abs(np.ldexp(a[s : s + STEP].astype(np.float64), e) - mean).max(axis=0))
    centred = np.ldexp(top, e) > points.CENTRE_GAIN * spread
    return np.where(centred, np.ldexp(mean, -e), 0.0), np.where(centred, np.ldexp(spread, -e), top)


def plain_planar(f, a):
    X = np.empty(a.shape[::-1], np.float32)
    for s in range(0, a.shape[0], STEP):
        X[:, s : s + STEP] = np.ldexp(a[s : s + STEP].astype(np.float64) - f.shift, f.e).T
    return X


def plain_inertia(f, a, w, weighted, C, labels):
    total = 0.0
    for s in range(0, a.shape[0], STEP):
        d = np.ldexp(a[s : s + STEP].astype(np.float64) - f.shift, f.e) - C[labels[s : s + STEP]]
        sq = np.einsum("nd,nd->n", d, d)
        total += float((sq * w[s : s + STEP]).sum() if weighted else sq.sum())
    return total


def plain_moments(X, w, weighted):
    D, N = X.shape
    step = 1 << 20
    total_w = float(w.sum()) if weighted else float(N)
    mean, var, sum_sq = np.zeros(D), np.zeros(D), 0.0
    for s in range(0, N, step):
        xb = X[:, s : s + step].astype(np.float64)
        mean += np.einsum("dn,n->d", xb, w[s : s + step]) if weighted else xb.sum(axis=1)
        sq = np.einsum("dn,dn->n", xb, xb)
        sum_sq += float(np.einsum("n,n->", sq, w[s : s + step])) if weighted else float(sq.sum())
    mean /= total_w
    for s in range(0, N, step):
        xb = X[:, s : s + step].astype(np.float64) - mean[:, None]
        xb *= xb
        var += np.einsum("dn,n->d", xb, w[s : s + step]) if weighted else xb.sum(axis=1)
    return sum_sq, float(var.mean() / total_w)


def dataset(kind, n, d, rng):
    x = rng.normal(size=(n, d)) * 10.0 ** rng.integers(-3, 4, d)
    return {
        "origin": lambda: x,
        "offset": lambda: x + 1e6,
        "huge": lambda: x * 1e300,
        "tiny": lambda: x * 1e-300,
        "int64": lambda: (3e7 + x * 100).astype(np.int64),
        "uint8": lambda: rng.integers(0, 256, (n, d)).astype(np.uint8),
        "float32": lambda: x.astype(np.float32) + 1000,
        "signed zeros": lambda: np.where(rng.random((n, d)) < 0.5, -0.0, 0.0),
        # integers as floats: summed along rows, exactly; then too large for that, or one not an integer
        "integers": lambda: rng.integers(-300, 300, (n, d)).astype(np.float64),
        # far from the origin, centred: their sums reach 2^52 (times the weights', too) and run in order
        "big integers": lambda: 2.0**50 + rng.integers(0, 2**20, (n, d)),
        "2^37 integers": lambda: 1.5 * 2.0**37 + rng.integers(0, 2**20, (n, d)),
        # not float32's (beyond 2^24), or float32's with squares whose sums reach 2^52
        "wide integers": lambda: rng.integers(-(2**30), 2**30, (n, d)).astype(np.float64),
        "float32 integers": lambda: rng.integers(-(2**24), 2**24, (n, d)).astype(np.float64),
        "one fraction": lambda: with_fraction(rng.integers(0, 256, (n, d)).astype(np.float64)),
    }[kind]()


def with_fraction(a):
    a[3 * PIECE + 5, 0] += 0.5  # within the first chunk, after whole pieces of integers
    return a


def weights_of(kind, n, rng):
    return {"none": np.empty(0), "float": rng.random(n) * 7, "counts": rng.integers(0, 9, n).astype(np.float64)}[kind]


KINDS = (
    "origin",
    "offset",
    "huge",
    "tiny",
    "int64",
    "uint8",
    "float32",
    "signed zeros",
    "integers",
    "big integers",
    "2^37 integers",
    "wide integers",
    "float32 integers",
    "one fraction",
)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", [1, 2, 3, 4, 7, 8, 9])
@pytest.mark.parametrize("wkind", ["none", "float", "counts"])
def test_centre_and_inertia_equal_the_plain_reductions(kind, d, wkind):
    rng = np.random.default_rng(d * 31 + len(kind))
    n = STEP + 12345  # two chunks, the second partial
    a = dataset(kind, n, d, rng)
    weighted = wkind != "none"
    w = weights_of(wkind, n, rng)
    shift, mags = centre(a, w, weighted)
    s0, m0 = plain_centre(a, w, weighted)
    assert shift.tobytes() == s0.tobytes() and mags.tobytes() == m0.tobytes()
    f = make_frame(a, w, weighted, 0)
    assert f.planar(a).tobytes() == plain_planar(f, a).tobytes()
    C = rng.normal(size=(5, d)) * max(f.top * 2.0**f.e, 1.0)
    labels = rng.integers(0, 5, n).astype(np.int32)
    want = plain_inertia(f, a, w, weighted, C, labels)
    assert f.inertia(a, w, weighted, C, labels) == want
    # from the float32 points when they hold the frame's points exactly, else from a: the same sum
    g, X, _ = frame_points(a, w, weighted, 0)
    assert g.exact == bool(np.array_equal(X.astype(np.float64), np.ldexp(a.astype(np.float64) - f.shift, f.e).T))
    assert g.inertia(a, w, weighted, C, labels, X) == want


@pytest.mark.parametrize("kind", ["origin", "offset", "huge", "int64", "uint8"])
def test_frame_points_equal_frame_then_planar(kind):
    rng = np.random.default_rng(7)
    a = dataset(kind, 5000, 3, rng)
    w = np.empty(0)
    f, X, _ = frame_points(a, w, False, 0)
    g = make_frame(a, w, False, 0)
    assert (f.shift.tobytes(), f.e, f.top) == (g.shift.tobytes(), g.e, g.top)
    assert X.flags.c_contiguous and X.tobytes() == plain_planar(g, a).tobytes()


@pytest.mark.parametrize(
    ("kind", "exact"),
    [("uint8", True), ("int64", True), ("signed zeros", True), ("origin", False), ("offset", False), ("huge", False)],
)
def test_frame_points_say_whether_float32_holds_them(kind, exact):
    rng = np.random.default_rng(11)
    a = dataset(kind, 3000, 3, rng)
    f, X, _ = frame_points(a, np.empty(0), False, 0)
    assert f.exact is exact
    if exact:
        assert np.array_equal(X.T.astype(np.float64), np.ldexp(a.astype(np.float64) - f.shift, f.e))


def test_inertia_reads_the_float32_points_only_when_they_are_exact():
    # one point off float32's grid: the frame is not exact, and the inertia keeps its float64 bits
    a = np.random.default_rng(5).integers(0, 256, (5000, 3)).astype(np.float64)
    a[1234, 1] += 2.0**-30
    f, X, _ = frame_points(a, np.empty(0), False, 0)
    assert not f.exact
    C = np.array([[10.0, 20.0, 30.0], [200.0, 100.0, 50.0]])
    labels = (np.arange(5000) % 2).astype(np.int32)
    want = plain_inertia(f, a, np.empty(0), False, C, labels)
    assert f.inertia(a, np.empty(0), False, C, labels, X) == want
    assert want != plain_inertia(f, X.T.astype(np.float64), np.empty(0), False, C, labels)


@pytest.mark.parametrize("d", range(1, 8))
def test_squared_norms_equal_einsum(d):
    x = np.random.default_rng(d).normal(size=(d, 4099)) * 1e3
    want = np.einsum("nd,nd->n", np.ascontiguousarray(x.T), np.ascontiguousarray(x.T))
    assert squared_norms(x.copy()).tobytes() == want.tobytes()


@pytest.mark.parametrize("n", [1, 7, 8, 129, PIECE, PIECE + 1, STEP - 9, STEP, 3 * STEP + 777, (1 << 20) - 8])
def test_pairwise_pieces_sum_as_numpy_sums_a_row(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(2, n)) * 10.0 ** rng.integers(-8, 9, (2, n))
    assert pairwise(0, n, lambda s, m: x[0, s : s + m].sum()) == x[0].sum()
    got = pairwise(0, n, lambda s, m: x[:, s : s + m].sum(axis=1))
    assert got.tobytes() == x.sum(axis=1).tobytes()


SUM_KINDS = (
    "uint8",
    "integers",
    "one fraction",
    "wide integers",
    "float32 integers",
    "origin",
    "offset",
    "huge",
    "int64",
    "float32",
    "signed zeros",
)


@pytest.mark.parametrize("kind", SUM_KINDS)
@pytest.mark.parametrize("d", [3, 4])
@pytest.mark.parametrize("wkind", ["none", "float", "counts"])
def test_frame_points_measure_the_moments_and_norm_bounds_of_their_points(kind, d, wkind):
    from kmpress import kernels_numpy

    rng = np.random.default_rng(d * 7 + len(kind))
    n = clustering.MOMENT_STEP + STEP + 12345 if kind in ("uint8", "origin") else 3 * PIECE + 1000
    a = dataset(kind, n, d, rng)
    weighted = wkind != "none"
    w = weights_of(wkind, n, rng)
    f, X, sums = frame_points(a, w, weighted, 0)
    if weighted:
        assert sums.first is None
    else:
        assert sums.first is not None
        sum_sq, mean, total_w = sums.first
        want = clustering.first_moments(X, w, weighted)
        assert (sum_sq, mean.tobytes(), total_w) == (want[0], want[1].tobytes(), want[2])
    got = kernels_numpy.block_boxes(X, sums.reach).block_norm
    assert got.tobytes() == kernels_numpy.block_boxes(X).block_norm.tobytes()


def test_the_frame_pass_refuses_points_that_are_not_finite():
    from kmpress.errors import InvalidParameterError

    a = np.random.default_rng(2).integers(0, 256, (3 * PIECE, 3)).astype(np.float64)
    for bad in (np.nan, np.inf, -np.inf):
        b = a.copy()
        b[2 * PIECE + 7, 1] = bad
        with pytest.raises(InvalidParameterError, match="NaN or infinity"):
            frame_points(b, np.empty(0), False, 0)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n", [1, 1000, (1 << 20) + 777])
def test_moments_equal_the_plain_sums(weighted, n):
    rng = np.random.default_rng(n)
    X = (rng.normal(size=(3, n)) * [[1.0], [50.0], [1e4]] + 3.0).astype(np.float32)
    w = rng.random(n) * 5 if weighted else np.empty(0)
    assert clustering.moments(X, w, weighted) == plain_moments(X, w, weighted)
    assert clustering.moments(X, w, weighted, variance=False) == (plain_moments(X, w, weighted)[0], 0.0)


def test_setup_costs_script_times_every_step():
    from bench.setup_costs import measure

    a = np.random.default_rng(3).integers(0, 256, (5000, 3)).astype(np.float64)
    m = measure(a, 4, 1)
    assert set(m) == {
        "frame + planar",
        "moments",
        "variance",
        "norm bounds",
        "last labels",
        "inertia",
        "kmeans max_iter=1",
        "iteration",
        "plain iteration",
        "numba iteration",
    }
    assert all(t >= 0.0 for t in m.values())


def test_numpy_baseline_script_reports_both_calls_and_the_yardstick(capsys):
    import json

    from bench.numpy_baseline import main

    main(["numpy", "4", "--plain", "--size", "tiny"])
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "numpy" and out["k"] == 4
    assert all(out[key] >= 0.0 for key in ("1", "2", "plain"))
    assert out["inertia2"] <= out["inertia1"]  # a Lloyd update never raises the cost


def moment_sets():
    rng = np.random.default_rng(17)
    n = 3000
    base = rng.normal(size=(3, n))
    yield "colours", rng.integers(0, 256, (3, n)).astype(np.float32), np.empty(0), False
    yield "weighted", (base * 40 + 100).astype(np.float32), rng.random(n) * 9, True
    yield "4-D", (rng.normal(size=(4, n)) * [[1.0], [1e3], [1e-2], [5.0]]).astype(np.float32), np.empty(0), False
    # a variance 1e-9 of the squared mean: the bounds cannot decide, the pass is taken
    yield "off the origin", (1e4 + base * 0.3).astype(np.float32), np.empty(0), False
    yield "one point", np.array([[1.0], [2.0], [3.0]], np.float32), np.empty(0), False
    yield "all equal", np.full((3, 50), 7.0, np.float32), rng.random(50), True
    yield "zero weights", (base * 3).astype(np.float32), np.where(rng.random(n) < 0.5, 0.0, rng.random(n)), True


@pytest.mark.parametrize(("name", "X", "w", "weighted"), list(moment_sets()), ids=[m[0] for m in moment_sets()])
def test_variance_bounds_hold_the_measured_variance(name, X, w, weighted):
    sum_sq, mean, total_w = clustering.first_moments(X, w, weighted)
    var = clustering.moments(X, w, weighted)[1]
    lo, hi = clustering.variance_bounds(sum_sq, mean, total_w)
    assert lo <= var <= hi
    assert (sum_sq, var) == plain_moments(X, w, weighted)


@pytest.mark.parametrize(("name", "X", "w", "weighted"), list(moment_sets()), ids=[m[0] for m in moment_sets()])
@pytest.mark.parametrize("tol", [0.0, 1e-4, 1e-2, 0.5])
def test_the_stopping_test_decides_as_with_the_measured_variance(name, X, w, weighted, tol):
    from kmpress import kernels_numpy

    var = plain_moments(X, w, weighted)[1]
    t = tol * var
    shifts = [0.0, t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf), t * (1 + 2**-21), t * (1 - 2**-21), 2 * t]
    for shift in shifts:
        run = clustering.Lloyd(X, w, weighted, X[:, :1].T.astype(np.float64), kernels_numpy)
        assert run.small_shift(float(shift), tol) == (shift <= t), shift


def plain_lloyd(X, w, weighted, init, max_iter, tol, kern):
    """The loop with the variance measured up front, as a plain threshold."""
    run = clustering.Lloyd(X, w, weighted, init, kern)
    threshold = tol * plain_moments(X, w, weighted)[1] if tol > 0 else 0.0
    converged = stable = False
    for _ in range(max_iter):
        stable, shift = run.step()
        if stable or shift <= threshold:
            converged = True
            break
    if not stable:
        run.assign()
    return run, converged


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_lloyd_stops_where_the_measured_variance_stops_it(backend):
    from kmpress import backends

    kern = backends.load(backend)
    rng = np.random.default_rng(4)
    X = rng.integers(0, 256, (3, 4000)).astype(np.float32)
    w = rng.random(4000) * 3
    init = X[:, :8].T.astype(np.float64)
    var = plain_moments(X, w, True)[1]
    # tolerances that put the threshold on the shift of one of the first updates, to the bit
    probe = clustering.Lloyd(X, w, True, init, kern)
    tols = [0.0, 1e-4]
    for _ in range(6):
        stable, shift = probe.step()
        if stable:
            break
        tols += [shift / var, np.nextafter(shift / var, 0.0), np.nextafter(shift / var, 1.0)]
    for tol in tols:
        r = clustering.lloyd(X, w, True, init, 50, tol, kern)
        p, converged = plain_lloyd(X, w, True, init, 50, tol, kern)
        assert (r.n_iter, r.converged) == (p.n_iter, converged)
        assert (r.labels.tobytes(), r.centroids.tobytes()) == (p.labels.tobytes(), p.C.tobytes())
        assert r.inertia_history == p.history
