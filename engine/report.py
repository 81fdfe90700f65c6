"""The CLI's file products, apart from the compressed images themselves: ``kmpress info``'s facts
(and PSNR against an original), the demo and its comparison sheet, the sweep's CSV, plot and
contact sheet, and palette swatches. Every file is written atomically; nothing here prints.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Unpack

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import backends
from .api import warm_up_hints
from .batch import compress_many
from .errors import ImageReadError, ImageWriteError, InvalidParameterError, PlotUnavailableError
from .io import decoding, load_image, open_image, read_image, reading, sample_path
from .ksweep import SweepRow, sweep
from .metrics import mse, psnr_from_mse
from .notes import gathering_notes
from .options import DEFAULT_DITHER, DEFAULT_MAX_PIXELS, OptionFields, Options, make_options
from .perceptual import ssimulacra2
from .png import png_header
from .results import FileResult
from .writing import atomic_write

#: What to tell a user without matplotlib.
PLOT_HINT = 'the sweep plot needs matplotlib: pip install "kmpress[plot]"'


# --------------------------------------------------------------------------------------------
# info
# --------------------------------------------------------------------------------------------


def describe_image(
    path: str | os.PathLike,
    against: str | os.PathLike | None = None,
    *,
    max_pixels: int | str | None = DEFAULT_MAX_PIXELS,
) -> dict[str, Any]:
    """Facts about an image file, and its PSNR against an original.

    Parameters
    ----------
    max_pixels : refuse larger images, as :func:`kmpress.compress` does (None: no limit)

    Returns
    -------
    dict
        path, format, width, height, mode, bytes, bit_depth (bits per sample; PNG: from IHDR),
        exif (bool: an EXIF block is present),
        palette_size (entries stored, None without a palette), colors_used (distinct colours, None
        when over 256), icc_profile (bool), warnings (what the decoder warned about, one line
        each), and with ``against``: against, psnr (dB, None when identical), mse, ssimulacra2
        (the SSIMULACRA 2 score, None under 8 pixels a side).

    Raises
    ------
    ImageReadError
        A file is missing, not an image or corrupt; or the two images differ in size.
    ImageTooLargeError
        It has more than ``max_pixels`` pixels (the same refusal as compress).
    """
    p = Path(path)
    with gathering_notes() as notes:
        im = open_image(p, max_pixels)
        with reading(p, max_pixels), im, decoding(max_pixels):
            info: dict[str, Any] = {
                "path": str(p),
                "format": im.format,
                "width": im.width,
                "height": im.height,
                "mode": im.mode,
                "bytes": p.stat().st_size,
                "icc_profile": bool(im.info.get("icc_profile")),
                "exif": bool(im.info.get("exif")),
            }
            pal = im.getpalette() if im.mode in ("P", "PA") else None
            info["palette_size"] = len(pal) // 3 if pal is not None else None
            info["colors_used"] = _colors_used(im)
            bits = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32}.get(im.mode, 8)
    info["warnings"] = list(dict.fromkeys(notes))
    hdr = png_header(p) if info["format"] == "PNG" else None
    if hdr is not None:
        bits = hdr["bit_depth"]
        if "palette_size" in hdr:
            info["palette_size"] = hdr["palette_size"]
    info["bit_depth"] = bits
    if against is not None:
        info.update(compare_images(p, against, max_pixels=max_pixels))
    return info


def _colors_used(im: Image.Image) -> int | None:
    """Distinct colours of an open image, None when over 256."""
    try:
        colors = im.getcolors(maxcolors=256)
    except ValueError:  # a mode Pillow's getcolors refuses (16-bit greyscale "I;16", ...)
        a = np.asarray(im)
        n = len(np.unique(a.reshape(a.shape[0] * a.shape[1], -1), axis=0))
        return n if n <= 256 else None
    return len(colors) if colors is not None else None


def compare_images(
    image: str | os.PathLike, original: str | os.PathLike, *, max_pixels: int | str | None = DEFAULT_MAX_PIXELS
) -> dict[str, Any]:
    """PSNR, MSE and SSIMULACRA 2 score of ``image`` against ``original`` (both decoded to 8-bit
    RGB or RGBA; each refused over ``max_pixels``).

    If only one has transparency, the colour channels alone are compared; the SSIMULACRA 2 score
    always compares the colour channels alone (None under 8 pixels a side).
    """
    a = read_image(image, max_pixels=max_pixels)
    b = read_image(original, max_pixels=max_pixels)
    if a.shape[:2] != b.shape[:2]:
        raise ImageReadError(
            f"sizes differ: {a.shape[1]}x{a.shape[0]} vs {b.shape[1]}x{b.shape[0]} ({original})", str(image)
        )
    if a.shape[2] != b.shape[2]:
        a, b = a[:, :, :3], b[:, :, :3]
    e = mse(a, b)
    p = psnr_from_mse(e)
    h, w = a.shape[:2]
    s2 = ssimulacra2(b, a, backends.load(backends.choose("auto", h * w, 16)))
    return {
        "against": str(original),
        "mse": e,
        "psnr": None if math.isinf(p) else p,
        "ssimulacra2": None if math.isnan(s2) else s2,
    }


# --------------------------------------------------------------------------------------------
# the demo
# --------------------------------------------------------------------------------------------


def comparison_sheet(panels: list[tuple[str | os.PathLike, str]], dst: str | os.PathLike, *, height: int = 384) -> Path:
    """Write a side-by-side picture of several images, each labelled underneath.

    Parameters
    ----------
    panels : list of (image path, label)
    dst : PNG to write (atomically: temporary file, then rename)
    height : pixel height every panel is scaled to

    Returns
    -------
    Path of the written file.
    """
    font = _font(20)
    gap, label_h = 8, 30
    tiles = []
    for path, label in panels:
        try:
            with Image.open(path) as opened:
                im = opened.convert("RGB")
                w = max(1, round(im.width * height / im.height))
                tiles.append((im.resize((w, height), Image.Resampling.LANCZOS), label))
        except (OSError, ValueError) as e:
            raise ImageReadError(f"cannot read: {e}", str(path)) from None
    width = sum(t.width for t, _ in tiles) + gap * (len(tiles) + 1)
    sheet = Image.new("RGB", (width, height + label_h + 2 * gap), "white")
    draw = ImageDraw.Draw(sheet)
    x = gap
    for tile, label in tiles:
        sheet.paste(tile, (x, gap))
        draw.text((x + 2, height + gap + 4), label, fill="black", font=font)
        x += tile.width + gap
    return atomic_write(dst, lambda tmp: sheet.save(tmp, format="PNG"))


#: The colour counts ``kmpress demo`` shows.
DEMO_KS = (4, 16, 64)


def run_demo(
    out_dir: str | os.PathLike,
    ks: Iterable[int] = DEMO_KS,
    *,
    options: Options | None = None,
    on_start: Callable[[str], None] | None = None,
) -> tuple[list[FileResult], Path | None]:
    """Compress the bundled sample at each K into ``out_dir`` and write ``comparison.png``.

    Outputs are ``<sample stem>-k<K>.png`` (replaced if present: the folder is the demo's own)
    and ``comparison.png`` beside them: the original and each result side by side, labelled with
    K and the PSNR.

    options : Options, optional; the job's settings (its K is replaced by each of ``ks``)

    Returns
    -------
    (results, comparison path or None when a K failed)
    """
    base = make_options(options)
    src = sample_path()
    out = Path(out_dir)
    results: list[FileResult] = []
    ks = list(ks)
    with Image.open(src) as im:  # reads the header only
        pixels = im.size[0] * im.size[1]
    # the kernels of every K at once: on a first run they compile together, in several processes
    compiled = [k for k in ks if backends.choose(base.backend, pixels, k) == "numba"]
    if compiled:
        backends.warm_up(pixels, compiled, **warm_up_hints(base))
    for k in ks:
        # one small file per K: compress_many runs it in this process, no pool start-up
        results.extend(compress_many([src], out, options=base.replace(k=k), force=True, on_start=on_start))
    if any(r.status != "ok" for r in results):
        return results, None
    panels: list[tuple[str | os.PathLike, str]] = [(src, "original")]
    for r in results:
        assert r.dst is not None, "an ok result of a batch into a folder names its output"
        p = r.report.psnr
        quality = "lossless" if math.isinf(p) else f"PSNR {p:.1f} dB"
        panels.append((r.dst, f"K={r.report.k}  {quality}"))
    return results, comparison_sheet(panels, out / "comparison.png")


#: Colours of the gradient demo: few enough that an undithered sky shows its bands.
GRADIENT_K = 8
#: (width, height) of the gradient demo's synthetic sky.
GRADIENT_SIZE = (384, 256)


def sky_gradient(width: int = GRADIENT_SIZE[0], height: int = GRADIENT_SIZE[1]) -> np.ndarray:
    """A smooth synthetic sky, (height, width, 3) uint8: deep blue at the top easing into a warm
    horizon (quadratically), a little lighter to the right. Integer arithmetic only: the same
    bytes on every machine.
    """
    top = np.array([24, 60, 140], np.int64)
    horizon = np.array([250, 186, 128], np.int64)
    y = np.arange(height, dtype=np.int64)[:, None, None]
    x = np.arange(width, dtype=np.int64)[None, :, None]
    den = max(height - 1, 1) ** 2
    sky = top + ((horizon - top) * y * y + den // 2) // den
    sky = sky + (24 * x + max(width - 1, 1) // 2) // max(width - 1, 1)
    return np.clip(sky, 0, 255).astype(np.uint8)


def run_gradient_demo(
    out_dir: str | os.PathLike,
    k: int = GRADIENT_K,
    *,
    options: Options | None = None,
    on_start: Callable[[str], None] | None = None,
) -> tuple[list[FileResult], Path | None]:
    """What dithering does to a gradient: :func:`sky_gradient` at ``k`` colours, dithered and not.

    Writes ``sky.png`` (the gradient, lossless), ``sky-k<K>-dither.png`` (the options' dither,
    the default adaptive one when they have none), ``sky-k<K>-nodither.png`` and
    ``dithering.png``: the three side by side, labelled with the SSIMULACRA 2 score and bytes.

    Returns
    -------
    (results: the dithered one, then the undithered one; the sheet's path, None when one failed)
    """
    base = make_options(options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = atomic_write(out / "sky.png", lambda tmp: Image.fromarray(sky_gradient()).save(tmp, format="PNG"))
    dither = base.dither or DEFAULT_DITHER
    results: list[FileResult] = []
    for d, suffix in ((dither, "-k{k}-dither"), (None, "-k{k}-nodither")):
        opts = base.replace(k=k, dither=d, smooth=0.0, dither_strength=base.dither_strength if d else None)
        results.extend(compress_many([src], out, options=opts, suffix=suffix, force=True, on_start=on_start))
    if any(r.status != "ok" for r in results):
        return results, None
    panels: list[tuple[str | os.PathLike, str]] = [(src, "gradient")]
    for r in results:
        assert r.dst is not None, "an ok result of a batch into a folder names its output"
        how = f"{r.report.dither} dither" if r.report.dither else "no dither"
        panels.append((r.dst, f"K={k} {how}  SSIM2 {r.report.ssimulacra2:.0f}  {r.report.output_bytes / 1000:.1f} kB"))
    return results, comparison_sheet(panels, out / "dithering.png", height=GRADIENT_SIZE[1])


# --------------------------------------------------------------------------------------------
# sweep files: table, plot, contact sheet
# --------------------------------------------------------------------------------------------


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

    return atomic_write(Path(dst), save)


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
        return atomic_write(Path(dst), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except (TypeError, OSError, ImportError):  # pragma: no cover - old Pillow or no FreeType
        return ImageFont.load_default()


def contact_sheet(rows: list[SweepRow], dst: str | os.PathLike, *, columns: int | None = None) -> Path:
    """A grid of the rows' thumbnails, each labelled with K and PSNR, as a PNG.

    The rows must carry thumbnails (:func:`sweep` with ``thumbnail=``).
    """
    tiles = [(r, r.thumbnail) for r in rows if r.thumbnail is not None]
    if not tiles:
        raise InvalidParameterError("no thumbnails to draw: run the sweep with thumbnail=")
    n = len(tiles)
    cols = columns or min(n, max(1, math.ceil(math.sqrt(n * 1.5))))
    rws = math.ceil(n / cols)
    tw = max(thumb.shape[1] for _, thumb in tiles)
    th = max(thumb.shape[0] for _, thumb in tiles)
    gap, label_h = 6, 22
    sheet = Image.new("RGB", (cols * (tw + gap) + gap, rws * (th + label_h + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(15)
    for i, (r, thumb) in enumerate(tiles):
        x = gap + (i % cols) * (tw + gap)
        y = gap + (i // cols) * (th + label_h + gap)
        im = Image.fromarray(thumb)
        if im.mode == "RGBA":
            bg = Image.new("RGBA", im.size, "white")
            im = Image.alpha_composite(bg, im)
        sheet.paste(im.convert("RGB"), (x, y))
        q = "lossless" if math.isinf(r.psnr) else f"{r.psnr:.1f} dB"
        draw.text((x + 2, y + th + 3), f"K={r.k}  {q}", fill="black", font=font)
    return atomic_write(Path(dst), lambda tmp: sheet.save(tmp, format="PNG"))


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
    options: Options | None = None,
    thumbnail: int = 200,
    on_row: Callable[[SweepRow], None] | None = None,
    **kwargs: Unpack[OptionFields],
) -> SweepFiles:
    """Sweep an image file and write ``<stem>-sweep.csv``, ``<stem>-sweep.png`` (the plot) and
    ``<stem>-contact.png`` into ``out_dir`` (created if missing).

    ``options`` and ``kwargs`` are the job's, as for :func:`kmpress.ksweep.sweep` (``seed``,
    ``colorspace``, ``dither``, ``max_iter``, ``tol``, ``max_pixels``, ...). Without matplotlib
    the table and the contact sheet are still written and ``plot_error`` says how to get the plot.
    """
    opts = make_options(options, **kwargs)
    t0 = time.perf_counter()
    src_p = Path(src)
    loaded = load_image(src_p, max_pixels=opts.max_pixels)
    rows = sweep(loaded.pixels, ks, options=opts, thumbnail=thumbnail, on_row=on_row)
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
    p = Path(path)
    with reading(p):
        with Image.open(p) as im:
            if im.mode in ("P", "PA"):
                assert im.palette is not None, "Pillow gives a P or PA image its palette"
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
            colors = rgba.getcolors(maxcolors=256)
    if colors is None:
        raise ImageReadError("has no palette and more than 256 colours (compress it with kmpress first)", str(p))
    colors.sort(key=lambda c: (-c[0], c[1]))
    entries = np.array([c[1] for c in colors], np.uint8)
    return entries if np.any(entries[:, 3] != 255) else np.ascontiguousarray(entries[:, :3])


def _stored_palette_size(path: Path) -> int | None:
    try:
        hdr = png_header(path)
    except OSError:
        return None
    return None if hdr is None else hdr.get("palette_size")


#: Swatch layout: squares of this many pixels, at most this many per row.
SWATCH_SIZE = 32
SWATCH_COLUMNS = 16
SWATCH_GAP = 2


def swatch_image(
    palette: np.ndarray, *, size: int = SWATCH_SIZE, columns: int = SWATCH_COLUMNS, gap: int = SWATCH_GAP
) -> np.ndarray:
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
    src_p, dst_p = Path(src), Path(dst)
    if dst_p.is_dir():
        raise ImageWriteError("palette output is a folder", str(dst_p))
    if src_p.exists() and dst_p.exists() and os.path.samefile(src_p, dst_p):
        raise ImageWriteError("palette output would overwrite the input", str(dst_p))
    pal = image_palette(src_p)
    img = swatch_image(pal)
    atomic_write(dst_p, lambda tmp: Image.fromarray(img).save(tmp, format="PNG"))
    return {"palette_path": str(dst_p), "palette_entries": int(pal.shape[0])}
