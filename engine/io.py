"""Files in: Pillow images and files read to arrays. No maths here and no floats.

Reading normalises whatever Pillow opens (RGB, RGBA, L, LA, P, 1, CMYK, YCbCr, 16-bit and float
greyscale...) to a writable C-contiguous uint8 array of 3 or 4 channels, with the EXIF orientation
applied, and gathers what the decoders said (:mod:`kmpress.notes`). Writing is
:mod:`kmpress.writing`'s job.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .buffers import all_opaque, decode_into_array, own_buffer_suits, pack_rgb, pillow_to_array
from .errors import ImageReadError, ImageTooLargeError, KmpressError
from .formats import pil_open, read_head
from .limits import AUTO_MAX_PIXELS, band_bytes, out_of_memory, over_cap, size_refusal
from .notes import gathering_notes, one_line
from .options import DEFAULT_MAX_PIXELS, check_max_pixels
from .pngdata import BLOCK as DECODE_BLOCK
from .pngdata import JoinedPng, joined_png

_PIL_LIMIT_LOCK = threading.Lock()
_DATA = Path(__file__).resolve().parent / "data"

#: Most bytes of an ICC profile carried to the output: Pillow's PNG reader refuses an iCCP chunk
#: that inflates to more (``PngImagePlugin.MAX_TEXT_CHUNK``, 1 MiB), and every output must open.
MAX_ICC_BYTES = 1 << 20

Source = Path | IO[bytes]


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
    exif : bytes or None; the file's EXIF block as Pillow gives it (``info["exif"]``), with the
        orientation the pixels were rotated by (see :func:`kmpress.metadata.exif_for_output`)
    notes : tuple of str; what the decoders warned about while reading (Pillow's warnings and, in
        a process kmpress owns, what its C libraries such as libtiff printed), and what was dropped
        (an oversized ICC profile), one line each, in order
    """

    pixels: np.ndarray
    icc_profile: bytes | None
    source_mode: str
    format: str | None
    exif: bytes | None = None
    notes: tuple[str, ...] = ()


# --- opening: the header, and the size guard -----------------------------------------------


def _cap(max_pixels: int | str | None) -> int | None:
    """The plain pixel count ``max_pixels`` never lets through (None: no limit)."""
    return AUTO_MAX_PIXELS if max_pixels == "auto" else max_pixels  # type: ignore[return-value]


def _too_large(pixels: int, max_pixels: int | str | None, size: str = "") -> str:
    what = f"{size} = {pixels:,} pixels" if size else f"{pixels:,} pixels"
    shown = max_pixels if max_pixels is not None else 2 * (Image.MAX_IMAGE_PIXELS or 0)  # Pillow's own guard
    return over_cap(what, shown)


def open_image(path: str | os.PathLike, max_pixels: int | str | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` with Pillow (header only: nothing is decoded; HEIC/HEIF with
    ``kmpress[heif]``) and check its size; decode it within :func:`decoding`.

    Raises
    ------
    ImageReadError, ImageTooLargeError
        As :func:`load_image`.
    """
    p = Path(path)
    with reading(p, max_pixels):
        return _open(p, max_pixels, str(p))


def _open(source: Source, max_pixels: int | str | None, label: str) -> Image.Image:
    check_max_pixels(max_pixels)  # every reader opens here: read_image, info and the like too
    # Pillow's global guard is set to our cap while the header is read: some plugins (ICO)
    # decode already, and must refuse a bomb then (over 2x the cap); below that, our own check
    # on the header's size speaks (kmpress.limits), and Pillow's warning between 1x and 2x is
    # dropped by the notes' router.
    with _pillow_limit(_cap(max_pixels)):
        im = pil_open(source, label)
    w, h = im.size
    reason = size_refusal(w, h, band_bytes(im.mode), _file_size(source), max_pixels)
    if reason is not None:
        im.close()
        raise ImageTooLargeError(reason, label)
    if w * h == 0:
        im.close()
        raise ImageReadError("image is empty (0 pixels)", label)
    return im


def _file_size(source: Source) -> int | None:
    if isinstance(source, JoinedPng):
        return source.file_size
    try:
        if hasattr(source, "getbuffer"):
            return source.getbuffer().nbytes
        return None if hasattr(source, "read") else os.stat(source).st_size
    except OSError:
        return None


@contextmanager
def decoding(max_pixels: int | str | None) -> Iterator[None]:
    """Pillow's own guard while decoding: some formats (ICO, ICNS, GIF frames, TIFF tiles) learn
    their true size only then, and Pillow checks it before allocating. Within its default it is
    left alone (ours is checked after decoding too); a limit above it sets it to refuse just over
    ours (Pillow refuses over twice its setting), none lifts it, for this decode (under a lock:
    it is a process-wide setting)."""
    with _PIL_LIMIT_LOCK:  # not read while another thread has set it for a moment
        pil = Image.MAX_IMAGE_PIXELS
    cap = _cap(max_pixels)
    if pil is None or (cap is not None and cap <= pil):
        yield
        return
    with _pillow_limit(None if cap is None else (cap + 1) // 2):
        yield


@contextmanager
def _pillow_limit(value: int | None) -> Iterator[None]:
    """Pillow's guard (``Image.MAX_IMAGE_PIXELS``) set to ``value`` within the block, and then
    put back; a process-wide setting, so the threads that set it take turns (a lock)."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = value
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


@contextmanager
def reading(path: str | os.PathLike, max_pixels: int | str | None = DEFAULT_MAX_PIXELS) -> Iterator[None]:
    """Turn what opening or reading ``path`` (a path or a label) can raise (from the OS or
    Pillow) into one-line :class:`ImageReadError` s naming the file (``max_pixels``: the limit a
    refusal names). Errors of kmpress's own pass through."""
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
        if e.errno == errno.ENOMEM:
            raise ImageReadError(out_of_memory(None, None, None), str(path)) from None
        raise ImageReadError(f"cannot read: {one_line(str(e))}", str(path)) from None
    except Exception as e:
        raise _decode_error(e, str(path), max_pixels, "cannot read") from None


def _decode_error(
    e: Exception,
    label: str,
    max_pixels: int | str | None,
    what: str,
    native: Sequence[str] = (),
    size: tuple[int, int, str] | None = None,
) -> ImageReadError:
    """The one-line error of a file Pillow failed on (``native``: what its C library said;
    ``size``: the (width, height, mode) of its header, named when memory ran out)."""
    if isinstance(e, ImageReadError):
        err = e
    elif isinstance(e, Image.DecompressionBombError):
        m = re.search(r"\((\d+) pixels\)", str(e))
        return ImageTooLargeError(_too_large(int(m.group(1)), max_pixels) if m else one_line(str(e)), label)
    elif isinstance(e, NotImplementedError):  # e.g. DDS pixel formats Pillow knows but does not decode
        err = ImageReadError(f"a variant of the format Pillow cannot decode: {one_line(str(e))}", label)
    elif isinstance(e, MemoryError) or (isinstance(e, OSError) and e.errno == errno.ENOMEM):
        err = ImageReadError(out_of_memory(*(size or (None, None, None))), label)
    elif isinstance(e, (OSError, ValueError, SyntaxError, IndexError, EOFError)):
        err = ImageReadError(f"{what}: {one_line(str(e))}", label)
    else:  # a plugin's own bug on a broken file: still that file's error, in one line
        err = ImageReadError(f"{what}: {type(e).__name__}: {one_line(str(e))}", label)
    if native and not isinstance(err, ImageTooLargeError):  # "decoder error -2" says little more
        err = ImageReadError(one_line(f"{err.message} ({native[0]})"), err.path)
    return err


def image_size(path: str | os.PathLike, *, max_pixels: int | str | None = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding it; the same errors as
    :func:`load_image` for a file that cannot be opened."""
    with gathering_notes(), open_image(path, max_pixels) as im:
        return im.size


# --- decoding: Pillow's modes to uint8 RGB or RGBA -----------------------------------------


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


def _opaque_rgba(im: Image.Image) -> bool:
    """An RGBA image whose every pixel is opaque (checked by Pillow, without a copy)."""
    return im.mode == "RGBA" and cast(Any, im.getextrema())[3][0] == 255


def _png_bit_depth(source: Source | str | None) -> int:
    """The bit depth in a PNG's IHDR (the first chunk: byte 24); 8 when it cannot be read."""
    try:
        head = read_head(source, 25) if source else b""
    except (OSError, ValueError):
        return 8
    return head[24] if len(head) == 25 and head[12:16] == b"IHDR" else 8


def _grey_key(im: Image.Image, source: Source | str | None, fmt: str | None) -> int | None:
    """The colour key (tRNS) of a greyscale image, on the scale of its decoded samples.

    Pillow keeps a PNG's key as stored, but scales 1-, 2- and 4-bit samples up to 0..255; a
    key within the bit depth is scaled the same way (PngSuite tbbn0g04.png).
    """
    key = im.info.get("transparency")
    if isinstance(key, bool) or not isinstance(key, int):
        return None
    if fmt == "PNG" and im.mode in ("1", "L"):
        depth = _png_bit_depth(source)
        top = (1 << depth) - 1
        if depth < 8 and key <= top:
            key = key * 255 // top
    return key


def _to_rgb_or_rgba(
    im: Image.Image, source: Source | str | None = None, fmt: str | None = None, opaque_as_rgb: bool = False
) -> tuple[np.ndarray, bool]:
    """Pixels as uint8 (H, W, 3|4) and whether an RGB ICC profile still describes them.

    ``source`` and ``fmt``: the file and its format (``im`` may be an oriented copy, which has
    no format); ``opaque_as_rgb``: an RGBA image whose pixels are all opaque comes as RGB
    (without a copy with 4 channels first).
    """
    mode = im.mode
    keyed = "transparency" in im.info
    if mode == "RGB":
        # a colour key (tRNS of an RGB PNG) becomes alpha: Pillow applies it converting to RGBA
        key = im.info.get("transparency")
        return pillow_to_array(im, "RGBA" if isinstance(key, tuple) and len(key) == 3 else None), True
    if mode == "RGBA":
        return pillow_to_array(im, "RGB" if opaque_as_rgb and _opaque_rgba(im) else None), True
    if mode == "RGBa":
        return pillow_to_array(im, "RGBA"), True
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or keyed or (im.palette is not None and im.palette.mode == "RGBA")
        return pillow_to_array(im, "RGBA" if has_alpha else "RGB"), True
    if mode in ("LA", "La"):
        return pillow_to_array(im, "RGBA"), False
    key = _grey_key(im, source, fmt) if keyed and mode != "F" else None
    if mode in ("L", "1") and key is None:
        return pillow_to_array(im, "RGB"), False
    if mode in ("L", "1") or mode.startswith("I") or mode == "F":
        raw = np.asarray(im)
        g = _gray_to_u8(raw, mode)
        if key is None:
            return np.repeat(g[:, :, None], 3, axis=2), False
        # the key is compared with the samples as stored (16-bit ones before reduction)
        stored = raw.astype(np.int64) * 255 if raw.dtype == np.bool_ else raw
        alpha = np.where(stored == key, 0, 255).astype(np.uint8)
        return np.dstack([g, g, g, alpha]), False
    if mode == "CMYK":
        icc = im.info.get("icc_profile")
        if icc:
            from PIL import ImageCms  # CMYK only: its colour engine costs 4 ms of start-up

            try:
                src = ImageCms.ImageCmsProfile(BytesIO(icc))
                out = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
                if out is not None:
                    return pillow_to_array(out), False
            except (ImageCms.PyCMSError, OSError, ValueError):
                pass
        return pillow_to_array(im, "RGB"), False
    return pillow_to_array(im, "RGB"), False


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8) by which ``im`` must be turned; 1 (as stored) when none or broken."""
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block: leave the pixels as stored
        return 1
    return orientation if orientation in (2, 3, 4, 5, 6, 7, 8) else 1


def _oriented(im: Image.Image) -> Image.Image:
    """``im`` turned as its EXIF orientation says; itself when there is nothing to turn (Pillow's
    ``exif_transpose`` would return a copy then: a whole image of memory for nothing)."""
    return ImageOps.exif_transpose(im) if _orientation(im) != 1 else im


def _finish(pixels: np.ndarray) -> np.ndarray:
    """Alpha dropped when every pixel is opaque (in place in an array of our own); C-contiguous
    and writable."""
    if pixels.shape[2] == 4 and all_opaque(pixels):
        h, w, _ = pixels.shape
        own = pixels.flags.c_contiguous and pixels.flags.writeable and pixels.flags.owndata
        pixels = pack_rgb(pixels.reshape(-1, 4)).reshape(h, w, 3) if own else pixels[:, :, :3]
    pixels = np.ascontiguousarray(pixels)
    return pixels if pixels.flags.writeable else pixels.copy()


def _kept_icc(icc: object, keeps_icc: bool, notes: list[str]) -> bytes | None:
    if not (icc and keeps_icc and isinstance(icc, bytes)):
        return None
    if len(icc) > MAX_ICC_BYTES:
        notes.append(f"ICC profile of {len(icc):,} bytes dropped (a PNG reader accepts at most {MAX_ICC_BYTES:,})")
        return None
    return icc


def load_image(
    path: str | os.PathLike | IO[bytes],
    *,
    max_pixels: int | str | None = DEFAULT_MAX_PIXELS,
    name: str | None = None,
    on_open: Callable[[int, int], None] | None = None,
) -> LoadedImage:
    """Read any image Pillow can read (and HEIC/HEIF with ``kmpress[heif]``); see
    :class:`LoadedImage`. ``path`` may also be a seekable binary file object (e.g. a
    ``BytesIO``), then ``name`` names it in error messages. ``on_open(width, height)`` is
    called once the header has passed the size checks, before decoding (to start, meanwhile,
    what the work on the pixels will need).

    Raises
    ------
    ImageReadError
        The file is missing, a folder, unreadable, not an image, truncated or corrupt. Whatever
        Pillow raises on a file (fuzzed files make its plugins raise anything) is this, in one line.
    ImageTooLargeError
        It is larger than ``max_pixels`` allows ("auto": a decompression bomb, or more than
        this machine's memory can take; see :mod:`kmpress.limits`), checked before decoding, and
        after for formats whose header does not tell.
    """
    src: Source = path if hasattr(path, "read") else Path(path)  # type: ignore[assignment]
    label = name or ("<stream>" if hasattr(src, "read") else str(src))
    # a PNG's image data in many chunks is decoded in a few calls (see kmpress.pngdata)
    joined = joined_png(src) if isinstance(src, Path) else None
    with closing(joined) if joined is not None else nullcontext():
        return _load(src if joined is None else cast(IO[bytes], joined), label, max_pixels, on_open)


def _load(
    src: Source, label: str, max_pixels: int | str | None, on_open: Callable[[int, int], None] | None
) -> LoadedImage:
    failure: Exception | None = None
    with gathering_notes() as notes:
        with reading(label, max_pixels):
            im = _open(src, max_pixels, label)
        if isinstance(im, ImageFile.ImageFile):
            # the data handed to the decoder in blocks of 1 MiB, not 64 KiB: each call gives the
            # GIL back and waits for it again, behind the warm-up thread (JPEG; a PNG's chunks
            # are joined for it, see kmpress.pngdata)
            im.decodermaxblock = max(im.decodermaxblock, DECODE_BLOCK)
        size = (*im.size, im.mode)  # as declared (a decoder may learn another)
        if on_open is not None:
            on_open(*im.size)
        try:
            with im, decoding(max_pixels):
                fmt, mode = im.format, im.mode
                icc, exif = im.info.get("icc_profile"), im.info.get("exif")
                # RGB(A) JPEGs and PNGs: decoded into our own array, no copy (kmpress.buffers)
                pixels = decode_into_array(im, _orientation) if own_buffer_suits(im) else None
                keeps_icc = True
                if pixels is None:
                    im.load()
                    pixels, keeps_icc = _to_rgb_or_rgba(_oriented(im), src, fmt, opaque_as_rgb=True)
        except Exception as e:
            failure = e  # raised once the notes are complete (the C library's words are in them)
    if failure is not None:
        raise _decode_error(failure, label, max_pixels, "corrupt or truncated image", notes.native, size) from None
    assert pixels is not None  # decoded, or failure was raised above
    h, w = pixels.shape[:2]
    cap = _cap(max_pixels)
    if cap is not None and w * h > cap:
        raise ImageTooLargeError(_too_large(w * h, max_pixels, f"{w}x{h}"), label)
    pixels = _finish(pixels)
    icc = _kept_icc(icc, keeps_icc, notes)
    return LoadedImage(pixels, icc, mode, fmt, exif if isinstance(exif, bytes) else None, notes.tidy())


def load_pil(im: Image.Image) -> LoadedImage:
    """What :func:`load_image` gives for a file, for an image already open in Pillow: the EXIF
    orientation applied, modes converted, an alpha channel kept only when some pixel is not
    opaque, the ICC profile and EXIF block from ``im.info``. ``im`` is not modified.

    Raises
    ------
    ImageReadError
        The image cannot be decoded.
    """
    filename = getattr(im, "filename", None)
    label = filename or "<image>"
    size = (*im.size, im.mode)
    failure: Exception | None = None
    with gathering_notes() as notes:
        try:
            im.load()
            icc, exif = im.info.get("icc_profile"), im.info.get("exif")
            pixels, keeps_icc = _to_rgb_or_rgba(_oriented(im), filename, im.format, opaque_as_rgb=True)
        except Exception as e:
            failure = e
    if failure is not None:
        raise _decode_error(failure, label, None, "corrupt or truncated image", notes.native, size) from None
    pixels = _finish(pixels)
    icc = _kept_icc(icc, keeps_icc, notes)
    return LoadedImage(pixels, icc, im.mode, im.format, exif if isinstance(exif, bytes) else None, notes.tidy())


def image_to_array(im: Image.Image) -> np.ndarray:
    """A Pillow image's pixels as kmpress works on them: uint8 (H, W, 3), or (H, W, 4) when the
    image has an alpha channel, a transparent palette entry or a colour key, C-contiguous. Modes
    are converted as :func:`load_image` converts them (greyscale, palette, CMYK, 16-bit...); the
    pixels are taken as the image holds them (no EXIF rotation: ``ImageOps.exif_transpose``
    first for a camera photo).

    Raises
    ------
    ImageReadError
        The image cannot be decoded (e.g. a truncated file opened lazily).
    """
    label = getattr(im, "filename", None) or "<image>"
    size = (*im.size, im.mode)
    try:
        im.load()
        pixels, _ = _to_rgb_or_rgba(im, getattr(im, "filename", None), im.format)
    except Exception as e:
        raise _decode_error(e, label, None, "corrupt or truncated image", size=size) from None
    return np.ascontiguousarray(pixels)


def read_image(path: str | os.PathLike, *, max_pixels: int | str | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as a writable uint8 (H, W, 3) or, when it has transparency, (H, W, 4).

    The EXIF orientation is applied; 16-bit and float images are reduced to 8 bits; greyscale,
    palette and CMYK images become RGB; a colour key (tRNS) becomes alpha. See
    :func:`load_image` for the errors.
    """
    return load_image(path, max_pixels=max_pixels).pixels
