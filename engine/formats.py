"""File formats beyond the indexed PNG: lossless WebP out; AVIF and HEIC/HEIF in.

Output: :func:`encode` makes the bytes of a palette image in the job's format, with the
metadata to keep. PNG is kmpress's own encoder (:mod:`kmpress.png`); WebP is libwebp's lossless
mode through Pillow, with ``exact`` so that even the colour of fully transparent pixels is kept:
the decoded WebP equals :meth:`kmpress.Quantized.to_array` pixel for pixel.

Input: Pillow reads AVIF itself when it is built with libavif (Pillow 11.3+ wheels are). HEIC and
HEIF, the format of iPhone photos, need pillow-heif (the optional extra ``kmpress[heif]``), which
:func:`pil_open` registers as a Pillow opener the first time such a file turns up; without it
the file gets a one-line hint naming the extra, instead of "not an image".
"""

from __future__ import annotations

import importlib.util
import os
from io import BytesIO
from typing import IO, Any

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from .errors import HeifUnavailableError, ImageReadError, ImageWriteError
from .notes import route_pillow_logs
from .png import encode_png

#: What to tell a user without pillow-heif.
HEIF_HINT = 'HEIC/HEIF images need pillow-heif: pip install "kmpress[heif]"'
#: File extensions of HEIC/HEIF images (what pillow-heif registers).
HEIF_EXTENSIONS = frozenset({".heic", ".heics", ".heif", ".heifs", ".hif"})
#: ISO-BMFF ``ftyp`` brands of HEIF images (HEVC-coded, and the generic image brands) and of AVIF.
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1", b"mif2"}
)
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
#: Largest width or height a WebP image can have (libwebp's limit).
WEBP_MAX_SIDE = 16383

_heif_registered = False
_FORMATS: tuple[str, ...] | None = None


# --------------------------------------------------------------------------------------------
# input
# --------------------------------------------------------------------------------------------


def heif_installed() -> bool:
    """Whether pillow-heif can be imported here (without importing it)."""
    return importlib.util.find_spec("pillow_heif") is not None


def register_heif() -> bool:
    """Register pillow-heif's HEIC/HEIF opener with Pillow (once); False when it is missing or
    cannot be loaded."""
    global _heif_registered
    if not _heif_registered:
        try:
            import pillow_heif
        except ImportError:
            return False
        pillow_heif.register_heif_opener()
        _heif_registered = True
        _forget_formats()
    return True


def pillow_formats() -> tuple[str, ...]:
    """Every format Pillow reads, in one fixed order: formats with a signature check first,
    those without one (TGA, ...: they accept almost any bytes) last.

    Pillow 12+ tries first the plugins loaded so far, in the order they were loaded, and loads a
    plugin on first sight of its file extension: once a ``.tga`` file had been opened, a valid
    ``.ico`` was taken for a TGA and failed ("cannot load this image"). The verdict on a file
    must not depend on the files read before it.
    """
    global _FORMATS
    if _FORMATS is None:
        Image.init()  # every plugin module (and its logger) is imported now
        route_pillow_logs()
        ids = [f for f in Image.ID if f in Image.OPEN]
        _FORMATS = tuple(
            [f for f in ids if Image.OPEN[f][1] is not None] + [f for f in ids if Image.OPEN[f][1] is None]
        )
    return _FORMATS


def _forget_formats() -> None:
    global _FORMATS
    _FORMATS = None  # a newly registered opener (pillow-heif) joins the list


def readable_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) of every format this installation can open:
    Pillow's (AVIF only when Pillow has AVIF support) and, with pillow-heif, HEIC/HEIF."""
    Image.init()  # registers every plugin, not only the common ones
    exts = {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return frozenset(exts | HEIF_EXTENSIONS if heif_installed() else exts - HEIF_EXTENSIONS)


def sniff(head: bytes) -> str | None:
    """Return "HEIF" or "AVIF" for the first bytes of an ISO-BMFF image file, else None.

    The format is told by the file's ``ftyp`` brands.
    """
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[:4], "big")
    end = min(len(head), size if 16 <= size else 16)
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "AVIF"
    if brands & _HEIF_BRANDS:
        return "HEIF"
    return None


def read_head(source: Any, n: int = 64) -> bytes:
    """The first ``n`` bytes of a file (a path, or a seekable file object, left at its start)."""
    if hasattr(source, "read"):  # Pillow reads a file object from its start too
        source.seek(0)
        try:
            return source.read(n)
        finally:
            source.seek(0)
    with open(source, "rb") as f:
        return f.read(n)


def pil_open(source: str | os.PathLike | IO[bytes], label: str) -> Image.Image:
    """``PIL.Image.open(source)`` trying the formats in :func:`pillow_formats`' order, registering
    pillow-heif for a HEIC/HEIF file Pillow alone cannot identify.

    Raises
    ------
    HeifUnavailableError
        A HEIC/HEIF file without pillow-heif (the message names ``kmpress[heif]``).
    ImageReadError
        An AVIF file and a Pillow without AVIF support.
    PIL.UnidentifiedImageError, OSError
        As ``Image.open`` (for the caller to word).
    """
    try:
        return Image.open(source, formats=pillow_formats())
    except UnidentifiedImageError:
        kind = sniff(read_head(source))
        if kind == "HEIF":
            if register_heif():
                return Image.open(source, formats=pillow_formats())
            raise HeifUnavailableError(HEIF_HINT, label) from None
        if kind == "AVIF" and not features.check("avif"):
            raise ImageReadError(
                "AVIF image, but this Pillow has no AVIF support (upgrade Pillow: pip install -U pillow)", label
            ) from None
        raise


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------


def encode(
    palette: np.ndarray,
    indices: np.ndarray,
    fmt: str,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    compress_level: int = 6,
    label: str | None = None,
) -> bytes:
    """The bytes of a palette image in format ``fmt`` ("png" or "webp"), with the metadata given.

    Parameters
    ----------
    palette : (P, 3|4) uint8; indices : (H, W) uint8, every value < P (trusted)
    icc_profile : bytes or None; exif : TIFF payload (see :mod:`kmpress.metadata`) or None
    compress_level : zlib level of a PNG (WebP uses libwebp's default lossless effort)
    label : the output's name for error messages

    Raises
    ------
    ImageWriteError
        A WebP wider or taller than :data:`WEBP_MAX_SIDE` pixels (use PNG).
    """
    if fmt == "png":
        return encode_png(palette, indices, icc_profile=icc_profile, exif=exif, compress_level=compress_level)
    return encode_webp(palette, indices, icc_profile=icc_profile, exif=exif, label=label)


def encode_webp(
    palette: np.ndarray,
    indices: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    label: str | None = None,
) -> bytes:
    """Lossless WebP of a palette image: RGB, or RGBA with a 4-channel palette, every pixel's
    colour exactly the palette entry's (libwebp's ``exact`` mode: the colour of fully
    transparent pixels is kept as well). libwebp finds the palette itself (its colour-indexing
    transform), so the file is a palette image inside too. Method 4 at quality 80 (libwebp's
    lossless default): 10-17 % smaller than kmpress's PNG on the test photos; method 6 at
    quality 100 saves 2-8 % more for 50-100x the time (docs/quality.md, "WebP or PNG")."""
    h, w = indices.shape
    if max(h, w) > WEBP_MAX_SIDE:
        raise ImageWriteError(
            f"WebP holds at most {WEBP_MAX_SIDE}x{WEBP_MAX_SIDE} pixels, this image is {w}x{h}: use PNG", label
        )
    # np.take gathers whole rows of the palette: 4x faster than palette[indices]
    im = Image.fromarray(np.take(palette, indices, axis=0))
    extra: dict[str, Any] = {}
    if icc_profile:
        extra["icc_profile"] = icc_profile
    if exif:
        extra["exif"] = exif
    buf = BytesIO()
    im.save(buf, "WEBP", lossless=True, quality=80, method=4, exact=True, **extra)
    return buf.getvalue()
