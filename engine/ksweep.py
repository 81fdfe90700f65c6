"""K sweeps (the elbow study of the k-means image-compression articles) and palette pictures.

:func:`sweep` quantizes one image at many K in one pass: the image is prepared once (histogram,
clustering-space points) and each K is warm-started from the centroids fitted for the K before
it (k-means++ continues from them), so the sweep costs far less than separate runs. Per K it
reports the k-means cost (inertia), PSNR, mean delta E, the bytes of the PNG (encoded in memory
with :func:`kmpress.io.encode_png`, the writer's own encoder and settings) and the time.

:func:`write_sweep` is the file-level job behind ``kmpress sweep``: the table as CSV, a plot of
cost and time against K (needs matplotlib: ``pip install "kmpress[plot]"``) and a contact sheet
of the reconstructed images. :func:`palette_swatch` draws an image's palette (``kmpress info
--palette``). Nothing here prints.
"""

from __future__ import annotations

import csv
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ImageReadError, ImageWriteError, InvalidParameterError

#: What to tell a user without matplotlib.
PLOT_HINT = 'the sweep plot needs matplotlib: pip install "kmpress[plot]"'


class PlotUnavailableError(ImportError):
    """matplotlib is not installed (the optional extra ``kmpress[plot]``)."""


@dataclass
class SweepRow:
    """One K of a sweep.

    Attributes
    ----------
    k : int; colours asked for
    colors : int; palette entries kept (<= k)
    inertia : float; k-means cost: weighted sum of squared distances of the pixels to their
        centroids in the clustering space, at Lloyd's last assignment pass
    psnr : float; dB (inf when lossless)
    delta_e : float; mean OKLab distance
    bytes : int; size of the PNG this result writes
    seconds : float; fitting and remapping (warm-started)
    encode_seconds : float; encoding the PNG
    n_iter : int; converged : bool
    thumbnail : (h, w, C) uint8 or None; a small copy of the reconstructed image
    """

    k: int
    colors: int
    inertia: float
    psnr: float
    delta_e: float
    bytes: int
    seconds: float
    encode_seconds: float
    n_iter: int
    converged: bool
    thumbnail: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "colors": self.colors,
            "inertia": self.inertia,
            "psnr": None if math.isinf(self.psnr) else self.psnr,
            "delta_e": self.delta_e,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "encode_seconds": self.encode_seconds,
            "n_iter": self.n_iter,
            "converged": self.converged,
        }


def parse_ks(spec: str, step: int = 1) -> list[int]:
    """The K values of a sweep from text: ``"2..64"`` (every ``step``-th from 2 to 64, 64 always
    included), ``"4,16,64"``, or a mix (``"2..8,16,32"``).

    Raises
    ------
    InvalidParameterError
        Malformed text, a K outside 1..256, or ``step`` < 1.
    """
    from .api import MAX_K

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
    seed: int = 0,
    compress_level: int = 6,
    thumbnail: int | None = None,
    on_row: Callable[[SweepRow], None] | None = None,
    **options: Any,
) -> list[SweepRow]:
    """Quantize one image at each K, warm-starting each K from the one before.

    Parameters
    ----------
    image : (H, W, 3) or (H, W, 4) uint8 array_like; never modified
    ks : K values, each 1..256 (sorted and de-duplicated here)
    seed : int >= 0; seeds every K's k-means++ (the same seed, the same rows)
    compress_level : zlib level of the in-memory PNG, 0-9 (as :func:`kmpress.compress`)
    thumbnail : int, optional; keep a copy of each reconstruction at most this many pixels wide
        and high (for a contact sheet)
    on_row : callable(SweepRow), optional; called as each K finishes (progress)
    **options : the other options of :func:`kmpress.quantize` (``colorspace``, ``dither``,
        ``max_iter``, ``tol``, ``init``, ``backend``, ``n_init``, ``palette_order``, ``smooth``)

    Returns
    -------
    list of SweepRow, by increasing K. The smallest K is a cold start, exactly
    ``kmpress.quantize(image, k, seed=seed, ...)``; each later K continues from the previous
    centroids, so its k-means cost is never above the previous K's.
    """
    from .api import MAX_K, _check_int
    from .io import encode_png
    from .api import Pipeline

    seed = _check_int("seed", seed, 0)
    compress_level = _check_int("compress_level", compress_level, 0, 9)
    if thumbnail is not None:
        thumbnail = _check_int("thumbnail", thumbnail, 1)
    try:
        values = sorted({_check_int("k", k, 1, MAX_K) for k in ks})
    except TypeError:
        raise InvalidParameterError("ks must be a sequence of integers") from None
    if not values:
        raise InvalidParameterError("ks is empty: give at least one K")
    pipe = Pipeline(image, **options)
    rows: list[SweepRow] = []
    prev = None
    for k in values:
        t = time.perf_counter()
        start = prev.centroids if prev is not None and not prev.lossless else None
        f = pipe.fit(k, np.random.default_rng(seed), start=start)
        q = pipe.finish(f)
        seconds = time.perf_counter() - t
        t = time.perf_counter()
        size = len(encode_png(q.palette, q.indices, compress_level=compress_level))
        enc = time.perf_counter() - t
        row = SweepRow(
            k, q.k, float(f.inertia), q.psnr, float(q.delta_e), size, seconds, enc, q.n_iter, q.converged,
            _thumbnail(q.to_array(), thumbnail) if thumbnail else None,
        )
        rows.append(row)
        if on_row is not None:
            on_row(row)
        prev = f
        f.indices = None  # the pixels are in the row's thumbnail if wanted; free them
    return rows


# --------------------------------------------------------------------------------------------
# files: table, plot, contact sheet
# --------------------------------------------------------------------------------------------


def _atomic_save(dst: Path, save: Callable[[Path], None]) -> Path:
    from .io import atomic_write

    return atomic_write(dst, save)


CSV_FIELDS = ("k", "colors", "inertia", "psnr", "delta_e", "bytes", "seconds", "encode_seconds", "n_iter", "converged")


def write_table(rows: list[SweepRow], dst: str | os.PathLike) -> Path:
    """The sweep as CSV (one row per K, the fields of :meth:`SweepRow.as_dict`; PSNR empty when lossless)."""

    def save(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            w.writeheader()
            for r in rows:
                d = r.as_dict()
                w.writerow({f: ("" if d[f] is None else d[f]) for f in CSV_FIELDS})

    return _atomic_save(Path(dst), save)


def write_plot(rows: list[SweepRow], dst: str | os.PathLike, title: str | None = None) -> Path:
    """Cost (inertia) and time against K, as a PNG; with PSNR on a second panel.

    Raises
    ------
    PlotUnavailableError
        matplotlib is not installed (the extra ``kmpress[plot]``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)  # files only: never a window, works without a display
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailableError(PLOT_HINT) from None

    ks = [r.k for r in rows]
    fig, (ax1, ax3) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    try:
        ax1.plot(ks, [r.inertia for r in rows], "o-", color="tab:blue", label="k-means cost (inertia)")
        ax1.set_ylabel("inertia", color="tab:blue")
        ax1.set_yscale("log")
        ax2 = ax1.twinx()
        ax2.plot(ks, [r.seconds for r in rows], "s--", color="tab:red", label="seconds (warm-started)")
        ax2.set_ylabel("seconds", color="tab:red")
        ax1.set_title(title or "kmpress sweep: cost and time against K")
        ax3.plot(ks, [r.psnr if math.isfinite(r.psnr) else np.nan for r in rows], "o-", color="tab:green")
        ax3.set_ylabel("PSNR (dB)", color="tab:green")
        ax4 = ax3.twinx()
        ax4.plot(ks, [r.bytes / 1000 for r in rows], "^:", color="tab:purple")
        ax4.set_ylabel("PNG kB", color="tab:purple")
        ax3.set_xlabel("K (colours)")
        for ax in (ax1, ax3):
            ax.grid(True, alpha=0.3)
        fig.tight_layout()
        return _atomic_save(Path(dst), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except (TypeError, OSError, ImportError):  # pragma: no cover - old Pillow or no FreeType
        return ImageFont.load_default()


def contact_sheet(rows: list[SweepRow], dst: str | os.PathLike, *, columns: int | None = None) -> Path:
    """A grid of the rows' thumbnails, each labelled with K and PSNR, as a PNG.

    The rows must carry thumbnails (:func:`sweep` with ``thumbnail=``).
    """
    from PIL import Image, ImageDraw

    tiles = [r for r in rows if r.thumbnail is not None]
    if not tiles:
        raise InvalidParameterError("no thumbnails to draw: run the sweep with thumbnail=")
    n = len(tiles)
    cols = columns or min(n, max(1, math.ceil(math.sqrt(n * 1.5))))
    rws = math.ceil(n / cols)
    tw = max(r.thumbnail.shape[1] for r in tiles)
    th = max(r.thumbnail.shape[0] for r in tiles)
    gap, label_h = 6, 22
    sheet = Image.new("RGB", (cols * (tw + gap) + gap, rws * (th + label_h + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(15)
    for i, r in enumerate(tiles):
        x = gap + (i % cols) * (tw + gap)
        y = gap + (i // cols) * (th + label_h + gap)
        im = Image.fromarray(r.thumbnail)
        if im.mode == "RGBA":
            bg = Image.new("RGBA", im.size, "white")
            im = Image.alpha_composite(bg, im)
        sheet.paste(im.convert("RGB"), (x, y))
        q = "lossless" if math.isinf(r.psnr) else f"{r.psnr:.1f} dB"
        draw.text((x + 2, y + th + 3), f"K={r.k}  {q}", fill="black", font=font)
    return _atomic_save(Path(dst), lambda tmp: sheet.save(tmp, format="PNG"))


@dataclass
class SweepFiles:
    """What :func:`write_sweep` wrote.

    Attributes
    ----------
    rows : list of SweepRow
    table, contact : Path; plot : Path or None (None without matplotlib: see ``plot_error``)
    plot_error : str or None; why there is no plot
    width, height : int; seconds : float (whole job)
    """

    rows: list[SweepRow]
    table: Path
    contact: Path
    plot: Path | None
    plot_error: str | None
    width: int
    height: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "rows": [r.as_dict() for r in self.rows],
            "table": str(self.table),
            "contact_sheet": str(self.contact),
            "plot": None if self.plot is None else str(self.plot),
            "plot_error": self.plot_error,
            "seconds": self.seconds,
        }


def write_sweep(
    src: str | os.PathLike,
    out_dir: str | os.PathLike,
    ks: Iterable[int],
    *,
    thumbnail: int = 200,
    max_pixels: int | None = None,
    on_row: Callable[[SweepRow], None] | None = None,
    **options: Any,
) -> SweepFiles:
    """Sweep an image file and write ``<stem>-sweep.csv``, ``<stem>-sweep.png`` (the plot) and
    ``<stem>-contact.png`` into ``out_dir`` (created if missing).

    ``options`` go to :func:`sweep` (``seed``, ``colorspace``, ``dither``, ``max_iter``, ``tol``,
    ...). Without matplotlib the table and the contact sheet are still written and ``plot_error``
    says how to get the plot.
    """
    from .io import DEFAULT_MAX_PIXELS, load_image

    t0 = time.perf_counter()
    src_p = Path(src)
    loaded = load_image(src_p, max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
    rows = sweep(loaded.pixels, ks, thumbnail=thumbnail, on_row=on_row, **options)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ImageWriteError("output folder is a file", str(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageWriteError(f"cannot create output folder: {e.strerror or e}", str(out)) from None
    stem = src_p.stem
    table = write_table(rows, out / f"{stem}-sweep.csv")
    contact = contact_sheet(rows, out / f"{stem}-contact.png")
    plot, err = None, None
    try:
        plot = write_plot(rows, out / f"{stem}-sweep.png", title=f"{src_p.name}: cost and time against K")
    except PlotUnavailableError as e:
        err = str(e)
    h, w = loaded.pixels.shape[:2]
    return SweepFiles(rows, table, contact, plot, err, w, h, time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# palette swatches
# --------------------------------------------------------------------------------------------


def image_palette(path: str | os.PathLike) -> np.ndarray:
    """The palette of an image file, (P, 3 or 4) uint8.

    A palette image gives its stored entries (with their alpha when it has a tRNS chunk), in
    stored order; any other image with at most 256 distinct colours gives those colours (by
    decreasing pixel count).

    Raises
    ------
    ImageReadError
        The file is missing, not an image, or has no palette and more than 256 colours.
    """
    from PIL import Image

    from .io import reading

    p = Path(path)
    with reading(p):
        with Image.open(p) as im:
            if im.mode in ("P", "PA"):
                pal = np.frombuffer(im.palette.tobytes(), np.uint8)
                mode = im.palette.mode
                ch = 4 if mode == "RGBA" else 3
                entries = pal.reshape(-1, ch)[:, :ch].copy()
                stored = _stored_palette_size(p)
                if stored is not None:
                    entries = entries[:stored]
                trns = im.info.get("transparency")
                if ch == 3 and isinstance(trns, (bytes, bytearray)):
                    a = np.full(entries.shape[0], 255, np.uint8)
                    t = np.frombuffer(bytes(trns), np.uint8)[: entries.shape[0]]
                    a[: t.size] = t
                    entries = np.hstack([entries, a[:, None]])
                return entries
            rgba = im.convert("RGBA")
            colours = rgba.getcolors(maxcolors=256)
    if colours is None:
        raise ImageReadError("has no palette and more than 256 colours (compress it with kmpress first)", str(p))
    colours.sort(key=lambda c: (-c[0], c[1]))
    entries = np.array([c[1] for c in colours], np.uint8)
    return entries if np.any(entries[:, 3] != 255) else np.ascontiguousarray(entries[:, :3])


def _stored_palette_size(path: Path) -> int | None:
    from .batch import _png_header

    try:
        hdr = _png_header(path)
    except OSError:
        return None
    return None if hdr is None else hdr.get("palette_size")


#: Swatch layout: squares of this many pixels, at most this many per row.
SWATCH_SIZE = 32
SWATCH_COLUMNS = 16
SWATCH_GAP = 2


def swatch_image(palette: np.ndarray, *, size: int = SWATCH_SIZE, columns: int = SWATCH_COLUMNS, gap: int = SWATCH_GAP) -> np.ndarray:
    """Palette entries as a grid of squares on a grey background, (H, W, 3|4) uint8.

    Entry ``i`` fills the square in row ``i // columns``, column ``i % columns``, whose top-left
    corner is at ``(gap + row * (size + gap), gap + col * (size + gap))``. With alpha, the image is
    RGBA and each square keeps its entry's alpha.
    """
    pal = np.asarray(palette, np.uint8)
    n, c = pal.shape
    cols = max(1, min(columns, n))
    rows = math.ceil(n / cols)
    out = np.empty((gap + rows * (size + gap), gap + cols * (size + gap), c), np.uint8)
    out[...] = 128
    if c == 4:
        out[..., 3] = 255
    for i in range(n):
        y = gap + (i // cols) * (size + gap)
        x = gap + (i % cols) * (size + gap)
        out[y : y + size, x : x + size] = pal[i]
    return out


def palette_swatch(src: str | os.PathLike, dst: str | os.PathLike) -> dict[str, Any]:
    """Write the palette of ``src`` as a swatch PNG (see :func:`swatch_image`); never over ``src``.

    Returns
    -------
    dict: palette_path (dst), palette_entries (int)
    """
    from PIL import Image

    src_p, dst_p = Path(src), Path(dst)
    if dst_p.is_dir():
        raise ImageWriteError("palette output is a folder", str(dst_p))
    if src_p.exists() and dst_p.exists() and os.path.samefile(src_p, dst_p):
        raise ImageWriteError("palette output would overwrite the input", str(dst_p))
    pal = image_palette(src_p)
    img = swatch_image(pal)
    _atomic_save(dst_p, lambda tmp: Image.fromarray(img).save(tmp, format="PNG"))
    return {"palette_path": str(dst_p), "palette_entries": int(pal.shape[0])}
