"""Fixtures of the benchmark suite: the test photo, its histogram and pixels, shared starting
centroids, and the JIT warm-up. Everything here runs once per session, outside every timing.

The size of the photo is "tiny" unless ``--benchmark`` is given (see the root ``conftest.py``):
plain ``pytest`` then runs each benchmark body once, untimed, in a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path

import numpy as np
import pytest

from bench.photos import SIZES, photo_file

#: The seed of the shared k-means++ starting centroids.
SEED = 0


@pytest.fixture(scope="session")
def bench_size(pytestconfig: pytest.Config) -> str:
    """ "full" or "small" with ``--benchmark`` (``--bench-size``), else "tiny"."""
    # the same test as the root conftest's benchmark_mode (not imported: tests/ has a conftest too)
    if pytestconfig.getoption("kmpress_benchmark", False) or pytestconfig.getoption("benchmark_only", False):
        return pytestconfig.getoption("kmpress_bench_size")
    return "tiny"


@pytest.fixture(scope="session")
def photo_path(bench_size: str) -> Path:
    """The cached JPEG (quality 92) of the benchmark photo; made on first use (~20 s at 24 MP)."""
    return photo_file(bench_size, "jpg")


@pytest.fixture(scope="session")
def photo(bench_size: str) -> np.ndarray:
    """(H, W, 3) uint8, writable and C-contiguous: the photo as made, from its lossless PNG cache.

    Its ~1.4 M distinct colours at 24 MP are what a camera image has (the reference photo had 1.7 M);
    the JPEG round trip that the whole-``compress`` benchmark reads smooths the noise down to
    ~0.4 M colours, which would flatter the histogram-path kernels.
    """
    from kmpress import read_image

    path = photo_file(bench_size, "png")
    img = read_image(path)
    assert (img.shape[1], img.shape[0]) == SIZES[_size_of(path)]
    return img


def _size_of(path: Path) -> str:
    for name, (w, h) in SIZES.items():
        if path.name.startswith(f"photo-{w}x{h}."):
            return name
    raise AssertionError(f"not a benchmark photo: {path}")


def per_instance(method: Callable) -> Callable:
    """Compute ``method(self, *args)`` once per instance and arguments; the values live on the
    instance (a session's :class:`Inputs`), not in a cache that outlives it."""

    @wraps(method)
    def memo(self, *args):
        values = self.__dict__.setdefault("_memo", {})
        key = (method.__name__, *args)
        if key not in values:
            values[key] = method(self, *args)
        return values[key]

    return memo


class Inputs:
    """Data derived from the photo, computed lazily once per session (with numba).

    Attributes
    ----------
    hist : kmpress.histogram.Histogram of the photo
    hist_X : (3, U) float32 planar distinct colours
    hist_w : (U,) float64 their counts
    pixels : (3, H*W) float32 planar, every pixel
    seed : the seed of the shared k-means++ starting centroids (:data:`SEED`)
    """

    seed = SEED

    def __init__(self, photo: np.ndarray) -> None:
        from kmpress import kernels_numba
        from kmpress.histogram import build_histogram

        self.photo = photo
        self.hist = build_histogram(photo, kernels_numba)
        self.hist_X = np.ascontiguousarray(self.hist.colors.T, dtype=np.float32)
        self.hist_w = self.hist.counts.astype(np.float64)
        self.pixels = np.ascontiguousarray(photo.reshape(-1, 3).T, dtype=np.float32)

    @property
    def n_pixels(self) -> int:
        return int(self.photo.shape[0] * self.photo.shape[1])

    @per_instance
    def c0(self, k: int) -> np.ndarray:
        """(k, 3) float64 starting centroids shared by every implementation: weighted k-means++
        on the histogram (numba, seed :data:`SEED`), as ``quantize`` computes them."""
        from kmpress import kernels_numba
        from kmpress.clustering import kmeans_plusplus

        return kmeans_plusplus(self.hist_X, self.hist_w, True, k, np.random.default_rng(SEED), kernels_numba)

    @per_instance
    def converged_iters(self, k: int) -> int:
        """Lloyd iterations numba needs from :meth:`c0` with the default tolerance (the iteration
        count given to scikit-learn in the to-convergence group)."""
        from kmpress import DEFAULT_MAX_ITER, DEFAULT_TOL, kernels_numba
        from kmpress.clustering import lloyd

        r = lloyd(
            self.hist_X, self.hist_w, True, self.c0(k), DEFAULT_MAX_ITER, DEFAULT_TOL, kernels_numba, final_assign=False
        )
        return max(1, r.n_iter)

    @per_instance
    def quantized(self, k: int):
        """kmpress.quantize of the photo at ``k`` (numba): the palette and indices the PNG encode
        and the remap work on."""
        from kmpress import quantize

        return quantize(self.photo, k, seed=SEED)

    @per_instance
    def centroids(self, k: int) -> np.ndarray:
        """(k, 3) float64 centroids after 3 Lloyd iterations from :meth:`c0` (numba): cluster
        means, not colours of the image, as the Lloyd loop's assignments see them."""
        from kmpress import kernels_numba
        from kmpress.clustering import lloyd

        return lloyd(self.hist_X, self.hist_w, True, self.c0(k), 3, 0.0, kernels_numba, final_assign=False).centroids

    @per_instance
    def labels(self, k: int) -> np.ndarray:
        """(U,) int32 nearest of :meth:`centroids` for every distinct colour, by the numba kernel."""
        from kmpress import kernels_numba as kn

        out = np.empty(self.hist_X.shape[1], np.int32)
        kn.nearest(self.hist_X, self.centroids(k).astype(np.float32), out, kn.block_boxes(self.hist_X))
        return out

    @per_instance
    def pixel_colors(self) -> np.ndarray:
        """(H*W,) int32 index into ``hist.colors`` of every pixel (numba's ``color_index``)."""
        from kmpress import kernels_numba

        return kernels_numba.color_index(self.photo.reshape(-1, 3), self.hist.codes)

    @per_instance
    def pixel_rows(self) -> np.ndarray:
        """(H*W, 3) float32: every pixel as scikit-learn wants it."""
        return np.ascontiguousarray(self.photo.reshape(-1, 3), dtype=np.float32)

    @per_instance
    def hist_rows(self) -> np.ndarray:
        """(U, 3) float32 distinct colours for scikit-learn."""
        return np.ascontiguousarray(self.hist_X.T)


@pytest.fixture(scope="session")
def inputs(photo: np.ndarray) -> Inputs:
    return Inputs(photo)


@pytest.fixture(scope="session")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the PNGs the encode and compress benchmarks write."""
    return tmp_path_factory.mktemp("bench-out")


@pytest.fixture(scope="session", autouse=True)
def jit(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Compile (or load from numba's cache) every kernel the benchmarks call, and start the
    thread pools of numba, BLAS and scikit-learn, on small random images.

    Every driver runs at every K of the suite (a kernel may be specialised by K), on arrays of
    the benchmarks' types (writable, C-contiguous), and the histogram also on an image large
    enough for numba's dense path, so nothing compiles inside a timing.
    """
    from bench import peers
    from bench.summary import KS
    from kmpress import kernels_numba, kernels_numpy, quantize, write_png
    from kmpress.clustering import lloyd
    from kmpress.histogram import build_histogram

    # the twins whose parallel variant only large inputs reach (the suite's "full" photo), and
    # the table behind color_index: loaded here, so the first timed round does not
    for twin in (kernels_numba.nearest, kernels_numba.remap_codes):
        _ = twin.serial.dispatcher, twin.parallel.dispatcher  # reading the property loads each
    kernels_numba.color_index(np.zeros((1, 3), np.uint8), np.zeros(1, np.uint32))
    rng = np.random.default_rng(1)
    dense_min = int(getattr(kernels_numba, "DENSE_MIN_PIXELS", 1 << 19))
    big = rng.integers(0, 256, size=(-(-dense_min // 1024), 1024, 3), dtype=np.uint8)
    small = np.ascontiguousarray(big[:8])  # 8192 pixels, all distinct-ish: K=256 fits
    out = tmp_path_factory.mktemp("jit")
    X = np.ascontiguousarray(small.reshape(-1, 3).T, dtype=np.float32)
    rows = np.ascontiguousarray(X.T)
    empty = np.empty(0, np.float64)
    for kern in (kernels_numba, kernels_numpy):
        build_histogram(big, kern)  # the dense path (numba) ...
        build_histogram(small, kern)  # ... and the small-image path
        for k in KS:
            # seeding, weighted Lloyd and the remap, as in quantize
            q = quantize(small, k, max_iter=2, backend=kern.NAME)
            if kern is kernels_numba:
                write_png(out / f"warm-{k}.png", q.palette, q.indices)
            # unweighted Lloyd, and a far-away centroid that ends empty (the relocation path)
            C = np.vstack([X[:, : k - 1].T.astype(np.float64), np.full((1, 3), 1e4)])
            lloyd(X, empty, False, C, 2, 0.0, kern, final_assign=True)
            if kern is kernels_numpy and peers.HAVE_SKLEARN:
                peers.sklearn_fit(rows, None, C[:-1], max_iter=1, tol=0.0)
            if kern is kernels_numpy and peers.HAVE_SKLEARN_ITER:
                peers.sklearn_one_iteration(rows, peers.sklearn_weights(rows, None), C)
