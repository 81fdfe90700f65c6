"""kmpress: k-means colour quantization with Numba kernels, and indexed-PNG output.

The public API::

    from kmpress import compress, quantize, kmeans, read_image, Options

- :func:`kmeans` - weighted Lloyd k-means on (N, 3|4) points, numba or NumPy backend
- :func:`quantize` - an RGB(A) uint8 image or a Pillow image to a palette and indices
  (:class:`Quantized`; ``to_pil()`` gives it back as a Pillow ``P`` image)
- :func:`compress` - a file (or a stream, or a Pillow image) to an indexed PNG or a lossless WebP,
  atomically, with a :class:`CompressReport`
- :func:`compress_many` - many files at once, yielding a :class:`FileResult` per file as each
  finishes, on a local process pool or any :class:`concurrent.futures.Executor`
- :func:`quantize_to_quality` - the smallest file reaching a SSIMULACRA 2 target, or K reaching a PSNR
- :func:`sweep` - one image at many K in one warm-started pass (the elbow study)
- :class:`Options` - every setting of a job, checked once (the keyword arguments of the above)
- :class:`Figures` - the figures every result carries (K asked for, colours stored, MSE, PSNR, ...)
- :func:`read_image` / :func:`write_png` - the I/O stages on their own
- :class:`KmpressError` - the base of every error raised on purpose

Importing kmpress is light: each name is imported from its module on first use, and numba only
when a numba kernel first runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the module (of this package) that defines it
_EXPORTS = {
    "Bits": "metrics",
    "CompressReport": "api",
    "DEFAULT_K": "options",
    "DEFAULT_MAX_ITER": "options",
    "DEFAULT_MAX_PIXELS": "options",
    "DEFAULT_TOL": "options",
    "DaskNotInstalledError": "errors",
    "FileResult": "results",
    "Figures": "figures",
    "HeifUnavailableError": "errors",
    "ImageReadError": "errors",
    "ImageTooLargeError": "errors",
    "ImageWriteError": "errors",
    "InvalidParameterError": "errors",
    "KMeansResult": "api",
    "KmpressError": "errors",
    "MAX_K": "options",
    "MissingExtraError": "errors",
    "Options": "options",
    "OutputCollisionError": "errors",
    "PlotUnavailableError": "errors",
    "QualityResult": "quality",
    "Quantized": "pipeline",
    "SchedulerError": "errors",
    "SchedulerLostError": "errors",
    "SweepRow": "ksweep",
    "TargetNotReachedError": "errors",
    "UnguardedMainError": "errors",
    "bit_accounting": "metrics",
    "compress": "api",
    "compress_many": "batch",
    "kmeans": "api",
    "load_image": "io",
    "plan_batch": "batch",
    "psnr": "metrics",
    "quantize": "api",
    "quantize_to_quality": "quality",
    "read_image": "io",
    "sample_path": "io",
    "sweep": "ksweep",
    "write_png": "writing",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("kmpress")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
            value = "0+unknown"
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'kmpress' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load on first use
    from .api import CompressReport, KMeansResult, compress, kmeans, quantize
    from .batch import compress_many, plan_batch
    from .errors import (
        DaskNotInstalledError,
        HeifUnavailableError,
        ImageReadError,
        ImageTooLargeError,
        ImageWriteError,
        InvalidParameterError,
        KmpressError,
        MissingExtraError,
        OutputCollisionError,
        PlotUnavailableError,
        SchedulerError,
        SchedulerLostError,
        TargetNotReachedError,
        UnguardedMainError,
    )
    from .figures import Figures
    from .io import load_image, read_image, sample_path
    from .ksweep import SweepRow, sweep
    from .metrics import Bits, bit_accounting, psnr
    from .options import DEFAULT_K, DEFAULT_MAX_ITER, DEFAULT_MAX_PIXELS, DEFAULT_TOL, MAX_K, Options
    from .pipeline import Quantized
    from .quality import QualityResult, quantize_to_quality
    from .results import FileResult
    from .writing import write_png

    __version__: str
