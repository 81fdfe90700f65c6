"""Files: Pillow in, palette PNG out, atomically. No maths here and no floats.

Reading normalises whatever Pillow opens (RGB, RGBA, L, LA, P, 1, CMYK, YCbCr, 16-bit and float
greyscale...) to a writable C-contiguous uint8 array of 3 or 4 channels, with the EXIF orientation
applied. Writing goes to a temporary file beside the target and is renamed over it only once it is
complete, so an interrupted or failed write never leaves a partial PNG behind.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import ImageReadError, ImageTooLargeError, ImageWriteError, KmpressError
from .options import DEFAULT_MAX_PIXELS
from .png import encode_png, png_header

_PIL_LIMIT_LOCK = threading.Lock()
_DATA = Path(__file__).resolve().parent / "data"

#: Most bytes of an ICC profile carried to the output: Pillow's PNG reader refuses an iCCP chunk
#: that inflates to more (``PngImagePlugin.MAX_TEXT_CHUNK``, 1 MiB), and every output must open.
MAX_ICC_BYTES = 1 << 20
#: Most notes kept per file, and most characters per note (they end up on one line).
_MAX_NOTES = 20
_NOTE_CHARS = 200


def sample_path() -> Path:
    """Path of the bundled sample photo (the astronaut Eileen Collins, 512x512 JPEG, NASA, public
    domain; see data/SOURCES.md)."""
    return _DATA / "astronaut.jpg"


@dataclass
class LoadedImage:
    """An image read from disk.

    Attributes
    ----------
    pixels : (H, W, 3 or 4) uint8, writable and C-contiguous; 4 channels only when some pixel is
        not fully opaque (an alpha channel, a palette's or a colour key's transparency)
    icc_profile : bytes or None; an RGB colour profile worth carrying to the output
    source_mode : Pillow mode of the file ("RGB", "CMYK", "I;16", ...)
    format : Pillow format name ("JPEG", "PNG", ...)
    notes : tuple of str; what the decoders warned about while reading (Pillow's warnings and, in
        a process kmpress owns, what its C libraries such as libtiff printed), and what was dropped
        (an oversized ICC profile), one line each, in order
    """

    pixels: np.ndarray
    icc_profile: bytes | None
    source_mode: str
    format: str | None
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# what the decoders say: Python warnings and the C libraries' stderr, gathered per file
# --------------------------------------------------------------------------------------------

_collector = threading.local()
_ROUTER_LOCK = threading.Lock()
_capture_native = False
_NATIVE_LOCK = threading.RLock()


def capture_native_messages(enabled: bool = True) -> None:
    """Gather what the C libraries under Pillow (libtiff...) print on the stderr file descriptor
    while a file is read, into that file's notes, instead of letting it reach the terminal.

    For processes that run only kmpress (the CLI and its workers): the descriptor is swapped for
    the whole process while a file is decoded, so another thread's output would land there too.
    """
    global _capture_native
    _capture_native = bool(enabled)


def _route_warning(message, category, filename, lineno, file=None, line=None):
    notes = getattr(_collector, "notes", None)
    if notes is None:
        return _previous_hook(message, category, filename, lineno, file, line)
    if not issubclass(category, Image.DecompressionBombWarning):  # kmpress's own limit applies
        notes.append(_one_line(str(message)))
    return None


_previous_hook = warnings.showwarning


def _install_router() -> None:
    # warnings.catch_warnings swaps process-wide state and is not safe across threads; a
    # showwarning hook that hands a warning to the reading thread's list, or else to the hook it
    # replaced, is. Installed again if something (catch_warnings on exit) put another back.
    global _previous_hook
    with _ROUTER_LOCK:
        if warnings.showwarning is not _route_warning:
            _previous_hook = warnings.showwarning
            warnings.showwarning = _route_warning


class _LogRouter(logging.Filter):
    """On Pillow's loggers: a record of warning level or above logged while this thread reads a
    file goes to that file's notes instead of the handlers (Python's last resort prints it on
    stderr otherwise: libtiff's "More samples per pixel than can be decoded")."""

    def filter(self, record: logging.LogRecord) -> bool:
        notes = getattr(_collector, "notes", None)
        if notes is None or record.levelno < logging.WARNING:
            return True
        notes.append(_one_line(record.getMessage()))
        return False


_LOG_ROUTER = _LogRouter()


def _route_pillow_logs() -> None:
    # a logger's filters see only its own records, not its children's: one per plugin module
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name == "PIL" or name.startswith("PIL.")) and isinstance(logger, logging.Logger) and _LOG_ROUTER not in logger.filters:
            logger.addFilter(_LOG_ROUTER)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _NOTE_CHARS else text[: _NOTE_CHARS - 3] + "..."


class Notes(list):
    """What was said while one file was read, one line each; ``native`` holds the lines a C
    library printed (the likely reason when its decoder failed)."""

    def __init__(self) -> None:
        super().__init__()
        self.native: list[str] = []


@contextmanager
def gathering_notes() -> Iterator[Notes]:
    """Collect into a list what the decoders say while one file is read (see
    :class:`LoadedImage`): nothing of it reaches the terminal."""
    _install_router()
    notes = Notes()
    outer = getattr(_collector, "notes", None)
    _collector.notes = notes
    try:
        if _capture_native:
            with _NATIVE_LOCK, _native_stderr(notes):
                yield notes
        else:
            yield notes
    finally:
        _collector.notes = outer


def _flush_stderr() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass


@contextmanager
def _native_stderr(notes: Notes) -> Iterator[None]:
    _flush_stderr()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read(1 << 16).decode("utf-8", errors="replace")
            notes.native.extend(_one_line(t) for t in text.splitlines() if t.strip())
            notes.extend(notes.native)


def _tidy(notes: list[str]) -> tuple[str, ...]:
    """Distinct notes in order, at most :data:`_MAX_NOTES`."""
    return tuple(dict.fromkeys(notes))[:_MAX_NOTES]


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------

_FORMATS: tuple[str, ...] | None = None


def _formats() -> tuple[str, ...]:
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
        _route_pillow_logs()
        ids = [f for f in Image.ID if f in Image.OPEN]
        _FORMATS = tuple([f for f in ids if Image.OPEN[f][1] is not None] + [f for f in ids if Image.OPEN[f][1] is None])
    return _FORMATS


def _too_large(pixels: int, limit: int | None, size: str = "") -> str:
    what = f"{size} = {pixels:,} pixels" if size else f"{pixels:,} pixels"
    shown = limit if limit is not None else 2 * (Image.MAX_IMAGE_PIXELS or 0)  # Pillow's own guard
    return f"image has {what}, over the limit of {shown:,} (raise it with max_pixels / --max-pixels if you trust this file)"


def open_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` with Pillow (header only: nothing is decoded) and check its size; decode it
    within :func:`decoding`.

    Raises
    ------
    ImageReadError, ImageTooLargeError
        As :func:`load_image`.
    """
    p = Path(path)
    with reading(p, max_pixels):
        return _open(p, max_pixels)


def _open(path: Path, max_pixels: int | None) -> Image.Image:
    # Pillow's global guard is set to our limit while the header is read: some plugins (ICO)
    # decode already, and must refuse a bomb then (over 2x the limit); below that, our own check
    # on the header's size speaks, and Pillow's warning between 1x and 2x is ignored.
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            im = Image.open(path, formats=_formats())
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    w, h = im.size
    if max_pixels is not None and w * h > max_pixels:
        im.close()
        raise ImageTooLargeError(_too_large(w * h, max_pixels, f"{w}x{h}"), str(path))
    if w * h == 0:
        im.close()
        raise ImageReadError("image is empty (0 pixels)", str(path))
    return im


@contextmanager
def decoding(max_pixels: int | None) -> Iterator[None]:
    """Pillow's own guard while decoding: some formats (ICO, ICNS, GIF frames, TIFF tiles) learn
    their true size only then. Within its default it is left alone (ours is checked after
    decoding too); a limit raised above it, or none, lifts it for this decode (under a lock, as
    it is a process-wide setting)."""
    pil = Image.MAX_IMAGE_PIXELS
    if pil is None or (max_pixels is not None and max_pixels <= pil):
        yield
        return
    with _PIL_LIMIT_LOCK:
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = pil


def _gray_to_u8(arr: np.ndarray, mode: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if mode.startswith("I;16") or (arr.dtype.kind in "iu" and arr.max(initial=0) > 255):
        # 16-bit samples: keep the top 8 bits with rounding
        return ((arr.astype(np.uint32) * 255 + 32767) // 65535).clip(0, 255).astype(np.uint8)
    if arr.dtype.kind == "f":
        scale = 255.0 if np.nanmax(arr, initial=0.0) <= 1.0 else 1.0
        return np.nan_to_num(np.rint(arr * scale), nan=0.0).clip(0, 255).astype(np.uint8)
    return arr.clip(0, 255).astype(np.uint8)


def _grey_key(im: Image.Image, path: Path, fmt: str | None) -> int | None:
    """The colour key (tRNS) of a greyscale image, on the scale of its decoded samples.

    Pillow keeps a PNG's key as stored, but scales 1-, 2- and 4-bit samples up to 0..255; a
    key within the bit depth is scaled the same way (PngSuite tbbn0g04.png).
    """
    key = im.info.get("transparency")
    if isinstance(key, bool) or not isinstance(key, int):
        return None
    if fmt == "PNG" and im.mode in ("1", "L"):
        depth = (png_header(path) or {}).get("bit_depth", 8)
        top = (1 << depth) - 1
        if depth < 8 and key <= top:
            key = key * 255 // top
    return key


def _to_rgb_or_rgba(im: Image.Image, path: Path, fmt: str | None) -> tuple[np.ndarray, bool]:
    """Pixels as uint8 (H, W, 3|4) and whether an RGB ICC profile still describes them (``fmt``:
    the file's format; ``im`` may be an oriented copy, which has none)."""
    mode = im.mode
    keyed = "transparency" in im.info
    if mode == "RGB":
        # a colour key (tRNS of an RGB PNG) becomes alpha: Pillow applies it converting to RGBA
        key = im.info.get("transparency")
        return np.array(im.convert("RGBA") if isinstance(key, tuple) and len(key) == 3 else im), True
    if mode == "RGBA":
        return np.array(im), True
    if mode == "RGBa":
        return np.array(im.convert("RGBA")), True
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or keyed or (im.palette is not None and im.palette.mode == "RGBA")
        return np.array(im.convert("RGBA" if has_alpha else "RGB")), True
    if mode in ("LA", "La"):
        return np.array(im.convert("RGBA")), False
    if mode in ("L", "1") or mode.startswith("I") or mode == "F":
        raw = np.array(im)
        g = _gray_to_u8(raw, mode)
        key = _grey_key(im, path, fmt) if keyed and mode != "F" else None
        if key is None:
            return np.repeat(g[:, :, None], 3, axis=2), False
        # the key is compared with the samples as stored (16-bit ones before reduction)
        stored = raw.astype(np.int64) * 255 if raw.dtype == np.bool_ else raw
        alpha = np.where(stored == key, 0, 255).astype(np.uint8)
        return np.dstack([g, g, g, alpha]), False
    if mode == "CMYK":
        icc = im.info.get("icc_profile")
        if icc:
            try:
                src = ImageCms.ImageCmsProfile(BytesIO(icc))
                out = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
                if out is not None:
                    return np.array(out), False
            except (ImageCms.PyCMSError, OSError, ValueError):
                pass
        return np.array(im.convert("RGB")), False
    return np.array(im.convert("RGB")), False


@contextmanager
def reading(path: Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Iterator[None]:
    """Turn what opening or reading ``path`` can raise (from the OS or Pillow) into one-line
    :class:`ImageReadError` s naming the file (``max_pixels``: the limit a refusal names).
    Errors of kmpress's own pass through."""
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
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImageReadError("symbolic link loop (too many levels of symbolic links)", str(path)) from None
        raise ImageReadError(f"cannot read: {_one_line(str(e))}", str(path)) from None
    except Exception as e:
        raise _decode_error(e, path, max_pixels, "cannot read") from None


def _decode_error(e: Exception, path: Path, max_pixels: int | None, what: str, native: list[str] = ()) -> ImageReadError:
    """The one-line error of a file Pillow failed on (``native``: what its C library said)."""
    if isinstance(e, ImageReadError):
        err = e
    elif isinstance(e, Image.DecompressionBombError):
        m = re.search(r"\((\d+) pixels\)", str(e))
        return ImageTooLargeError(_too_large(int(m.group(1)), max_pixels) if m else _one_line(str(e)), str(path))
    elif isinstance(e, NotImplementedError):  # e.g. DDS pixel formats Pillow knows but does not decode
        err = ImageReadError(f"a variant of the format Pillow cannot decode: {_one_line(str(e))}", str(path))
    elif isinstance(e, MemoryError):
        err = ImageReadError("not enough memory to decode this image", str(path))
    elif isinstance(e, (OSError, ValueError, SyntaxError, IndexError, EOFError)):
        err = ImageReadError(f"{what}: {_one_line(str(e))}", str(path))
    else:  # a plugin's own bug on a broken file: still that file's error, in one line
        err = ImageReadError(f"{what}: {type(e).__name__}: {_one_line(str(e))}", str(path))
    if native and not isinstance(err, ImageTooLargeError):  # "decoder error -2" says little more
        err = ImageReadError(_one_line(f"{err.message} ({native[0]})"), err.path)
    return err


def load_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read any image Pillow can read; see :class:`LoadedImage`.

    Raises
    ------
    ImageReadError
        The file is missing, a folder, unreadable, not an image, truncated or corrupt. Whatever
        Pillow raises on a file (fuzzed files make its plugins raise anything) is this, in one line.
    ImageTooLargeError
        It has more than ``max_pixels`` pixels (checked before decoding, and after for formats
        whose header does not tell).
    """
    p = Path(path)
    failure: Exception | None = None
    with gathering_notes() as notes:
        with reading(p, max_pixels):
            im = _open(p, max_pixels)
        try:
            with im, decoding(max_pixels):
                fmt = im.format
                mode = im.mode
                icc = im.info.get("icc_profile")
                im.load()
                oriented = ImageOps.exif_transpose(im)
                pixels, keeps_icc = _to_rgb_or_rgba(oriented, p, fmt)
        except Exception as e:
            failure = e  # raised once the notes are complete (the C library's words are in them)
    if failure is not None:
        raise _decode_error(failure, p, max_pixels, "corrupt or truncated image", notes.native) from None
    h, w = pixels.shape[:2]
    if max_pixels is not None and w * h > max_pixels:
        raise ImageTooLargeError(_too_large(w * h, max_pixels, f"{w}x{h}"), str(p))
    if pixels.shape[2] == 4 and bool(np.all(pixels[:, :, 3] == 255)):
        pixels = pixels[:, :, :3]
    pixels = np.ascontiguousarray(pixels)
    if not pixels.flags.writeable:
        pixels = pixels.copy()
    if icc and keeps_icc and len(icc) > MAX_ICC_BYTES:
        notes.append(f"ICC profile of {len(icc):,} bytes dropped (a PNG reader accepts at most {MAX_ICC_BYTES:,})")
        icc = None
    return LoadedImage(pixels, icc if (icc and keeps_icc) else None, mode, fmt, _tidy(notes))


def read_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3) or, when it has transparency, (H, W, 4).

    The EXIF orientation is applied; 16-bit and float images are reduced to 8 bits; greyscale,
    palette and CMYK images become RGB; a colour key (tRNS) becomes alpha. See
    :func:`load_image` for the errors.
    """
    return load_image(path, max_pixels=max_pixels).pixels


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
