"""kmpress engine: k-means colour quantization with Numba kernels, and indexed-PNG output.

The public API::

    from kmpress import compress, quantize, kmeans, read_image, write_png

- :func:`kmeans` - weighted Lloyd k-means on (N, 3|4) points, numba or NumPy backend
- :func:`quantize` - an RGB(A) uint8 image to a palette and indices (:class:`Quantized`)
- :func:`compress` - a file to an indexed PNG, atomically, with a :class:`CompressReport`
- :func:`read_image` / :func:`write_png` - the I/O stages on their own
- :func:`compress_many` - many files at once, yielding a report per file as each finishes, on a
  local process pool or any :class:`concurrent.futures.Executor` (e.g. a Dask client's)
- :func:`quantize_to_quality` - the smallest K whose result reaches a PSNR target (warm-started search)
- :func:`sweep` - one image at many K in one warm-started pass (the elbow study)
- :class:`KmpressError` - the base of every error raised on purpose
"""

from .api import (
    DEFAULT_MAX_ITER,
    DEFAULT_TOL,
    MAX_K,
    CompressReport,
    KMeansResult,
    Quantized,
    compress,
    kmeans,
    quantize,
)
from .batch import FileResult, compress_many
from .errors import (
    ImageReadError,
    ImageTooLargeError,
    ImageWriteError,
    InvalidParameterError,
    KmpressError,
)
from .io import DEFAULT_MAX_PIXELS, load_image, read_image, write_png
from .metrics import Bits, bit_accounting, psnr
from .quality import QualityResult, TargetNotReachedError, quantize_to_quality
from .sample import sample_path
from .ksweep import SweepRow, sweep

__version__ = "0.1.0"

__all__ = [
    "Bits",
    "CompressReport",
    "DEFAULT_MAX_ITER",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_TOL",
    "FileResult",
    "ImageReadError",
    "ImageTooLargeError",
    "ImageWriteError",
    "InvalidParameterError",
    "KMeansResult",
    "KmpressError",
    "MAX_K",
    "QualityResult",
    "Quantized",
    "SweepRow",
    "TargetNotReachedError",
    "bit_accounting",
    "compress",
    "compress_many",
    "kmeans",
    "load_image",
    "psnr",
    "quantize",
    "quantize_to_quality",
    "read_image",
    "sample_path",
    "sweep",
    "write_png",
]
