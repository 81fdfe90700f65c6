"""Files: Pillow in, palette PNG out, atomically. No maths here and no floats.

Reading normalises whatever Pillow opens (RGB, RGBA, L, LA, P, 1, CMYK, YCbCr, 16-bit and float
greyscale...) to a writable C-contiguous uint8 array of 3 or 4 channels, with the EXIF orientation
applied. Writing goes to a temporary file beside the target and is renamed over it only once it is
complete, so an interrupted or failed write never leaves a partial PNG behind.
"""

from __future__ import annotations

import os
import threading
import warnings
from contextlib import contextmanager
from io import BytesIO
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageReadError, ImageTooLargeError, ImageWriteError, KmpressError
from .formats import open_image
from .limits import size_refusal
from .options import DEFAULT_MAX_PIXELS
from .png import encode_png

_PIL_LIMIT_LOCK = threading.Lock()
_DATA = Path(__file__).resolve().parent / "data"


def sample_path() -> Path:
    """Path of the bundled sample photo (the astronaut Eileen Collins, 512x512 JPEG, NASA, public
    domain; see data/SOURCES.md)."""
    return _DATA / "astronaut.jpg"


@dataclass
class LoadedImage:
    """An image read from disk.

    Attributes
    ----------
    pixels : (H, W, 3 or 4) uint8, C-contiguous; 4 channels only when some pixel is not fully
        opaque
    icc_profile : bytes or None; an RGB colour profile worth carrying to the output
    source_mode : Pillow mode of the file ("RGB", "CMYK", "I;16", ...)
    format : Pillow format name ("JPEG", "PNG", ...)
    exif : bytes or None; the file's EXIF block as Pillow gives it (``info["exif"]``), with the
        orientation the pixels were rotated by (see :func:`kmpress.metadata.exif_for_output`)
    """

    pixels: np.ndarray
    icc_profile: bytes | None
    source_mode: str
    format: str | None
    exif: bytes | None = None


def _open(path: Path | IO[bytes], max_pixels: int | None, label: str | None = None) -> Image.Image:
    # Pillow's global guard would refuse images over 2x its limit before ours can speak, and would
    # warn between 1x and 2x; our own limit (checked below, on the header alone) replaces it.
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = open_image(path, label or str(path))
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    w, h = im.size
    reason = size_refusal(w, h, _bytes_per_pixel(im.mode), _file_size(path), max_pixels)
    if reason is not None:
        im.close()
        raise ImageTooLargeError(reason, label or str(path))
    if w * h == 0:
        im.close()
        raise ImageReadError("image is empty (0 pixels)", label or str(path))
    return im


#: Bytes a pixel of each Pillow mode takes once decoded (4 for modes not listed).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}


def _bytes_per_pixel(mode: str) -> int:
    return _MODE_BYTES.get(mode, 4)


def _file_size(path: Path | IO[bytes]) -> int | None:
    try:
        if hasattr(path, "getbuffer"):
            return path.getbuffer().nbytes
        return None if hasattr(path, "read") else os.stat(path).st_size
    except OSError:
        return None


def _gray_to_u8(arr: np.ndarray, mode: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if mode.startswith("I;16") or (arr.dtype.kind in "iu" and arr.max(initial=0) > 255):
        # 16-bit samples: keep the top 8 bits with rounding
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).clip(0, 255).astype(np.uint8)
    if arr.dtype.kind == "f":
        scale = 255.0 if np.nanmax(arr, initial=0.0) <= 1.0 else 1.0
        return np.nan_to_num(np.rint(arr * scale), nan=0.0).clip(0, 255).astype(np.uint8)
    return arr.clip(0, 255).astype(np.uint8)


#: Rows converted at a time from a Pillow image to the pixel array (see :func:`_array`).
STRIP_ROWS = 256


def _array(im: Image.Image, mode: str | None = None) -> np.ndarray:
    """The pixels of ``im`` (converted to ``mode``, a pointwise conversion), as a new writable
    uint8 array, made strip by strip: one copy in all. (``np.asarray(im)`` goes through
    ``tobytes``, whose chunks and joined result are two more copies of a whole image.)"""
    w, h = im.size
    out = None
    for y in range(0, h, STRIP_ROWS):
        strip = im.crop((0, y, w, min(h, y + STRIP_ROWS)))
        if mode is not None and strip.mode != mode:
            strip = strip.convert(mode)
        a = np.asarray(strip)
        if out is None:
            out = np.empty((h, *a.shape[1:]), a.dtype)
        out[y : y + a.shape[0]] = a
    return out


def _opaque_rgba(im: Image.Image) -> bool:
    """An RGBA image whose every pixel is opaque (checked by Pillow, without a copy)."""
    return im.mode == "RGBA" and im.getextrema()[3][0] == 255


def _to_rgb_or_rgba(im: Image.Image, opaque_as_rgb: bool = False) -> tuple[np.ndarray, bool]:
    """Pixels as uint8 (H, W, 3|4) and whether an RGB ICC profile still describes them;
    ``opaque_as_rgb``: an RGBA image whose pixels are all opaque comes as RGB (without a copy
    with 4 channels first)."""
    mode = im.mode
    if mode == "RGB":
        return _array(im), True
    if mode == "RGBA":
        return _array(im, "RGB" if opaque_as_rgb and _opaque_rgba(im) else None), True
    if mode == "RGBa":
        return _array(im, "RGBA"), True
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        return _array(im, "RGBA" if has_alpha else "RGB"), True
    if mode in ("L", "1"):
        return _array(im, "RGB"), False
    if mode in ("LA", "La"):
        return _array(im, "RGBA"), False
    if mode.startswith("I") or mode == "F":
        g = _gray_to_u8(np.asarray(im), mode)
        return np.repeat(g[:, :, None], 3, axis=2), False
    if mode == "CMYK":
        icc = im.info.get("icc_profile")
        if icc:
            from PIL import ImageCms  # CMYK only: its colour engine costs 4 ms of start-up

            try:
                src = ImageCms.ImageCmsProfile(BytesIO(icc))
                out = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
                if out is not None:
                    return _array(out), False
            except (ImageCms.PyCMSError, OSError, ValueError):
                pass
        return _array(im, "RGB"), False
    return _array(im, "RGB"), False


def _oriented(im: Image.Image) -> Image.Image:
    """``im`` turned as its EXIF orientation says; itself when there is nothing to turn (Pillow's
    ``exif_transpose`` would return a copy then: a whole image of memory for nothing)."""
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block: leave the pixels as stored
        return im
    return ImageOps.exif_transpose(im) if orientation in (2, 3, 4, 5, 6, 7, 8) else im


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn what opening or reading ``path`` can raise (from the OS or Pillow) into one-line
    :class:`ImageReadError` s naming the file. Errors of kmpress's own pass through."""
    try:
        yield
    except KmpressError:
        raise
    except FileNotFoundError:
        raise ImageReadError("no such file", str(path)) from None
    except IsADirectoryError:
        raise ImageReadError("is a folder, not an image", str(path)) from None
    except PermissionError:
        raise ImageReadError("permission denied", str(path)) from None
    except UnidentifiedImageError:
        raise ImageReadError("not an image (or a format Pillow cannot read)", str(path)) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"cannot read: {e}", str(path)) from None


def image_size(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding it; the same errors as
    :func:`load_image` for a file that cannot be opened."""
    p = Path(path)
    with reading(p):
        with _open(p, max_pixels) as im:
            return im.size


def load_image(
    path: str | os.PathLike | IO[bytes], *, max_pixels: int | None = DEFAULT_MAX_PIXELS, name: str | None = None
) -> LoadedImage:
    """Read any image Pillow can read (and HEIC/HEIF with ``kmpress[heif]``); see
    :class:`LoadedImage`. ``path`` may also be a seekable binary file object (e.g. a
    ``BytesIO``), then ``name`` names it in error messages.

    Raises
    ------
    ImageReadError
        The file is missing, a folder, unreadable, not an image, truncated or corrupt.
    ImageTooLargeError
        It is larger than ``max_pixels`` allows ("auto": a decompression bomb, or more than
        this machine's memory can take; see :mod:`kmpress.limits`), checked before decoding.
    """
    p = path if hasattr(path, "read") else Path(path)
    label = name or ("<stream>" if hasattr(p, "read") else str(p))
    with reading(label):
        im = _open(p, max_pixels, label)
    try:
        with im:
            fmt = im.format
            mode = im.mode
            icc = im.info.get("icc_profile")
            exif = im.info.get("exif")
            im.load()
            pixels, keeps_icc = _to_rgb_or_rgba(_oriented(im), opaque_as_rgb=True)
    except (OSError, ValueError, SyntaxError, IndexError, EOFError) as e:
        raise ImageReadError(f"corrupt or truncated image: {e}", label) from None
    except Image.DecompressionBombError as e:  # pragma: no cover - guarded by _open already
        raise ImageTooLargeError(str(e), label) from None
    if pixels.shape[2] == 4 and bool(np.all(pixels[:, :, 3] == 255)):
        pixels = pixels[:, :, :3]
    pixels = np.ascontiguousarray(pixels)
    return LoadedImage(pixels, icc if (icc and keeps_icc) else None, mode, fmt, exif if isinstance(exif, bytes) else None)


def load_pil(im: Image.Image) -> LoadedImage:
    """What :func:`load_image` gives for a file, for an image already open in Pillow: the EXIF
    orientation applied, modes converted, an alpha channel kept only when some pixel is not
    opaque, the ICC profile and EXIF block from ``im.info``. ``im`` is not modified.

    Raises
    ------
    ImageReadError
        The image cannot be decoded.
    """
    label = getattr(im, "filename", None) or "<image>"
    try:
        im.load()
        icc, exif = im.info.get("icc_profile"), im.info.get("exif")
        pixels, keeps_icc = _to_rgb_or_rgba(_oriented(im), opaque_as_rgb=True)
    except (OSError, ValueError, SyntaxError, IndexError, EOFError) as e:
        raise ImageReadError(f"corrupt or truncated image: {e}", label) from None
    if pixels.shape[2] == 4 and bool(np.all(pixels[:, :, 3] == 255)):
        pixels = pixels[:, :, :3]
    pixels = np.ascontiguousarray(pixels)
    return LoadedImage(pixels, icc if (icc and keeps_icc) else None, im.mode, im.format, exif if isinstance(exif, bytes) else None)


def image_to_array(im: Image.Image) -> np.ndarray:
    """A Pillow image's pixels as kmpress works on them: uint8 (H, W, 3), or (H, W, 4) when the
    image has an alpha channel or a transparent palette entry, C-contiguous. Modes
    are converted as :func:`load_image` converts them (greyscale, palette, CMYK, 16-bit...); the
    pixels are taken as the image holds them (no EXIF rotation: ``ImageOps.exif_transpose``
    first for a camera photo).

    Raises
    ------
    ImageReadError
        The image cannot be decoded (e.g. a truncated file opened lazily).
    """
    try:
        im.load()
        pixels, _ = _to_rgb_or_rgba(im)
    except (OSError, ValueError, SyntaxError, IndexError, EOFError) as e:
        raise ImageReadError(f"corrupt or truncated image: {e}", getattr(im, "filename", None) or None) from None
    return np.ascontiguousarray(pixels)


def read_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as a writable uint8 (H, W, 3) or, when it has transparency, (H, W, 4).

    The EXIF orientation is applied; 16-bit and float images are reduced to 8 bits; greyscale,
    palette and CMYK images become RGB. See :func:`load_image` for the errors (and for the
    read-only pixels that :func:`kmpress.compress` works on without this copy).
    """
    pixels = load_image(path, max_pixels=max_pixels).pixels
    return pixels if pixels.flags.writeable else np.array(pixels)


def temp_path(dst: Path) -> Path:
    """The hidden temporary file an atomic write of ``dst`` goes through (unique per process and
    thread): ``.<name>.<pid>.<thread>.tmp`` beside it."""
    dst = Path(dst)
    return dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def stale_temp_files(dst: str | os.PathLike, pids: list[int] | None = None) -> list[Path]:
    """Temporary files of interrupted writes of ``dst`` (by the processes ``pids``, or any).

    For a batch runner that had to kill a worker in the middle of a write: the worker could not
    remove its temporary file itself.
    """
    dst = Path(dst)
    prefixes = [f".{dst.name}.{pid}." for pid in pids] if pids is not None else [f".{dst.name}."]
    try:
        names = os.listdir(dst.parent)
    except OSError:
        return []
    return [dst.parent / n for n in names if n.endswith(".tmp") and any(n.startswith(p) for p in prefixes)]


def write_png(
    dst: str | os.PathLike,
    palette: np.ndarray,
    indices: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    compress_level: int = 6,
) -> int:
    """Write an indexed PNG atomically and return its size in bytes.

    Parameters
    ----------
    palette : (P, 3 or 4) uint8, 1 <= P <= 256; a 4th channel is written as the tRNS chunk
        (up to the last entry that is not fully opaque)
    indices : (H, W) uint8, every value < P
    compress_level : zlib level 0-9 (9: 1-4 % smaller, several times slower; see the README)

    The bit depth is the smallest PNG allows for P entries (1, 2, 4 or 8); rows are stored
    unfiltered and DEFLATE runs in parallel blocks (:func:`kmpress.png.zlib_stream`), the same bytes at any
    thread count. The data go to a hidden temporary file in the same folder, which is renamed
    over ``dst`` only when complete.
    """
    data = encode_png(palette, indices, icc_profile=icc_profile, compress_level=compress_level)

    def save(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(dst, save).stat().st_size


def write_bytes(dst: str | os.PathLike, data: bytes) -> int:
    """Write ``data`` to ``dst`` atomically (see :func:`atomic_write`) and return its size."""

    def save(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(dst, save)
    return len(data)


def write_stream(stream: IO[bytes], data: bytes, label: str = "<stdout>") -> int:
    """Write all of ``data`` to a binary stream (standard output) in one go and flush it.

    A closed pipe (the reader went away) points the stream's descriptor at the null device, so
    that the interpreter's own flush at exit has nothing left to complain about.

    Raises
    ------
    ImageWriteError
        The stream cannot take the data (closed pipe, full disk...).
    """
    try:
        stream.write(data)
        stream.flush()
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        raise ImageWriteError("cannot write: the reading end of the pipe was closed", label) from None
    except (OSError, ValueError) as e:
        raise ImageWriteError(f"cannot write: {getattr(e, 'strerror', None) or e}", label) from None
    return len(data)


def atomic_write(dst: str | os.PathLike, save: Callable[[Path], None]) -> Path:
    """Write ``dst`` all or nothing: ``save(tmp)`` writes a hidden temporary file beside it, which
    is renamed over ``dst`` only once complete, and removed on any failure (or Ctrl-C).

    Raises
    ------
    ImageWriteError
        The folder is missing or not writable, the disk is full, ...; ``dst`` is then untouched.
    """
    dst = Path(dst)
    tmp = temp_path(dst)
    try:
        save(tmp)
        os.replace(tmp, dst)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, FileNotFoundError):
            raise ImageWriteError("output folder does not exist", str(dst)) from None
        if isinstance(e, PermissionError):
            raise ImageWriteError("permission denied (is the folder writable?)", str(dst)) from None
        if isinstance(e, OSError):
            raise ImageWriteError(f"cannot write: {e.strerror or e}", str(dst)) from None
        raise
    return dst
