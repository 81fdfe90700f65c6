"""K sweeps: the elbow study of the k-means image-compression articles.

:func:`sweep` quantizes one image at many K in one pass: the image is prepared once (histogram,
clustering-space points) and each K is warm-started from the centroids fitted for the K before
it (k-means++ continues from them), so the sweep costs far less than separate runs. Per K it
reports the k-means cost (inertia), PSNR, mean delta E, the bytes of the PNG (encoded in memory
with :func:`kmpress.io.encode_png`, the writer's own encoder and settings) and the time.

:func:`kmpress.report.write_sweep` is the file-level job behind ``kmpress sweep`` (CSV, plot,
contact sheet). Nothing here prints or writes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Unpack

import numpy as np

from .errors import InvalidParameterError
from .figures import Figures, HasFigures
from .options import MAX_K, OptionFields, Options, check_int, make_options
from .pipeline import Pipeline
from .png import encode_png


@dataclass
class SweepRow(HasFigures):
    """One K of a sweep.

    Attributes
    ----------
    figures : Figures; ``k`` asked for, ``colors`` kept, PSNR, mean delta E, iterations, ..., and
        the stages this K ran (``timings``); each also reads as an attribute (``row.psnr``)
    inertia : float; k-means cost: weighted sum of squared distances of the pixels to their
        centroids in the clustering space, at Lloyd's last assignment pass
    bytes : int; size of the PNG this result writes
    seconds : float; fitting and remapping (warm-started)
    encode_seconds : float; encoding the PNG
    thumbnail : (h, w, C) uint8 or None; a small copy of the reconstructed image
    """

    figures: Figures
    inertia: float
    bytes: int
    seconds: float
    encode_seconds: float
    thumbnail: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the figures' keys (:meth:`Figures.as_dict`) and the row's own."""
        return {
            **self.figures.as_dict(),
            "inertia": self.inertia,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "encode_seconds": self.encode_seconds,
        }


def parse_ks(spec: str, step: int = 1) -> list[int]:
    """The K values of a sweep from text: ``"2..64"`` (every ``step``-th from 2 to 64, 64 always
    included), ``"4,16,64"``, or a mix (``"2..8,16,32"``).

    Raises
    ------
    InvalidParameterError
        Malformed text, a K outside 1..256, or ``step`` < 1.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise InvalidParameterError(f"step must be an integer >= 1, got {step!r}")
    ks: set[int] = set()
    for part in str(spec).replace(" ", "").split(","):
        m = re.fullmatch(r"(\d+)(?:(?:\.\.|-|:)(\d+))?", part)
        if not m:
            raise InvalidParameterError(f"K values must look like 2..64 or 4,16,64, not {spec!r}")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) else a
        if a > b:
            raise InvalidParameterError(f"empty K range {part!r}: the first K is larger than the last")
        for v in (a, b):
            if not 1 <= v <= MAX_K:
                raise InvalidParameterError(f"K must be from 1 to {MAX_K}, got {v}")
        ks.update(range(a, b + 1, step))
        ks.add(b)
    return sorted(ks)


def _thumbnail(pixels: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    h, w = pixels.shape[:2]
    scale = min(1.0, size / max(h, w))
    if scale >= 1.0:
        return pixels.copy()
    im = Image.fromarray(pixels)
    # nearest keeps the palette's colours (a resampled copy would blend new ones in)
    return np.asarray(im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.NEAREST))


def sweep(
    image: Any,
    ks: Iterable[int],
    *,
    options: Options | None = None,
    thumbnail: int | None = None,
    on_row: Callable[[SweepRow], None] | None = None,
    **kwargs: Unpack[OptionFields],
) -> list[SweepRow]:
    """Quantize one image at each K, warm-starting each K from the one before.

    Parameters
    ----------
    image : (H, W, 3) or (H, W, 4) uint8 array_like; never modified
    ks : K values, each 1..256 (sorted and de-duplicated here)
    options, **kwargs : as for :func:`kmpress.quantize` (``seed`` seeds every K's k-means++: the
        same seed, the same rows; ``compress_level`` is the zlib level of the in-memory PNG);
        ``k`` and ``target_psnr`` do not apply
    thumbnail : int, optional; keep a copy of each reconstruction at most this many pixels wide
        and high (for a contact sheet)
    on_row : callable(SweepRow), optional; called as each K finishes (progress)

    Returns
    -------
    list of SweepRow, by increasing K. The smallest K is a cold start, exactly
    ``kmpress.quantize(image, k, seed=seed, ...)``; each later K continues from the previous
    centroids, so its k-means cost is never above the previous K's.
    """
    opts = make_options(options, **kwargs)
    if opts.searches_k:
        raise InvalidParameterError("a sweep takes K values, not target_psnr")
    if thumbnail is not None:
        thumbnail = check_int("thumbnail", thumbnail, 1)
    try:
        values = sorted({check_int("k", k, 1, MAX_K) for k in ks})
    except TypeError:
        raise InvalidParameterError("ks must be a sequence of integers") from None
    if not values:
        raise InvalidParameterError("ks is empty: give at least one K")
    pipe = Pipeline(image, opts, k_hint=values[-1])
    rows: list[SweepRow] = []
    prev = None
    for k in values:
        t, mark = time.perf_counter(), dict(pipe.stages.times)
        start = prev.centroids if prev is not None and not prev.lossless else None
        f = pipe.fit(k, np.random.default_rng(opts.seed), start=start)
        q = pipe.finish(f)
        seconds = time.perf_counter() - t
        t = time.perf_counter()
        size = len(encode_png(q.palette, q.indices, compress_level=opts.compress_level))
        enc = time.perf_counter() - t
        figures = pipe.figures(f, pipe.stages.since(mark))
        row = SweepRow(
            figures, float(f.inertia), size, seconds, enc, _thumbnail(q.to_array(), thumbnail) if thumbnail else None
        )
        rows.append(row)
        if on_row is not None:
            on_row(row)
        prev = f
        f.release()  # the pixels are in the row's thumbnail if wanted
    return rows
