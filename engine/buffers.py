"""Pixel memory: a decoded image held once, not twice.

Pillow keeps an RGB or RGBA image at 4 bytes a pixel in its own memory; copying it into a NumPy
array of kmpress's (3 bytes a pixel) held both at once, 7 bytes a pixel at the peak of reading
(1.4 GB for a 200 MP photo). Here Pillow decodes straight into memory kmpress owns, laid out as
Pillow lays it out (an anonymous mapping, :func:`decode_into_array`); the pixels are then packed
from 4 bytes to 3 in place, row block by row block, and the freed quarter is given back to the
system (``madvise``), so the peak is the 4 bytes a pixel of the decoded image itself. Any image
this does not suit (other modes, an orientation to apply, an animation, a colour key, formats
not vetted here) is copied from Pillow strip by strip instead (:func:`pillow_to_array`).

Pure memory handling: the pixels are exactly the decoder's either way.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable

import numpy as np
from PIL import Image

#: Rows converted at a time from a Pillow image to the pixel array (see :func:`pillow_to_array`).
STRIP_ROWS = 256
#: Pixels packed or checked at a time (a few MB of temporaries).
BLOCK_PIXELS = 1 << 20
#: Formats whose Pillow plugin decodes into the image memory it is given (checked after the
#: decode as well: a plugin that made its own is copied from as usual).
OWN_BUFFER_FORMATS = frozenset({"JPEG", "PNG"})


def pillow_to_array(im: Image.Image, mode: str | None = None) -> np.ndarray:
    """The pixels of ``im`` (converted to ``mode``, a pointwise conversion), as a new writable
    uint8 array, made strip by strip: one copy in all. (``np.asarray(im)`` goes through
    ``tobytes``, whose chunks and joined result are two more copies of a whole image.)"""
    w, h = im.size
    out: np.ndarray | None = None
    for y in range(0, h, STRIP_ROWS):
        strip = im.crop((0, y, w, min(h, y + STRIP_ROWS)))  # keeps im.info: a colour key too
        if mode is not None and strip.mode != mode:
            strip = strip.convert(mode)
        a = np.asarray(strip)
        if out is None:
            out = np.empty((h, *a.shape[1:]), a.dtype)
        out[y : y + a.shape[0]] = a
    assert out is not None  # an image has at least one row
    return out


def all_opaque(rgba: np.ndarray) -> bool:
    """Whether every pixel of an (..., 4) uint8 image has alpha 255 (checked in blocks: no
    temporary of a byte per pixel)."""
    flat = rgba.reshape(-1, 4)
    for s in range(0, flat.shape[0], BLOCK_PIXELS):
        if flat[s : s + BLOCK_PIXELS, 3].min(initial=255) != 255:
            return False
    return True


def pack_rgb(px4: np.ndarray) -> np.ndarray:
    """(N, 4) uint8 pixels packed in place to (N, 3): the RGB of each, in the first 3/4 of the
    same memory (a view). The 4th byte of every pixel is lost.

    Four pixels at a time as 32-bit words (RGBX RGBX RGBX RGBX -> RGBR GBRG BRGB), block by block
    from the start: a block's words are made in a temporary and never land beyond the bytes they
    were read from, so no later pixel is overwritten before it is read. (A plain strided copy of
    3 bytes out of 4 costs 3x the time.)"""
    n = px4.shape[0]
    flat = px4.reshape(-1)
    g = n // 4
    src = flat[: 16 * g].view("<u4").reshape(g, 4)
    dst = flat[: 12 * g].view("<u4").reshape(g, 3)
    step = max(1, BLOCK_PIXELS // 4)
    low24, s8, s16, s24 = np.uint32(0xFFFFFF), np.uint32(8), np.uint32(16), np.uint32(24)
    for s in range(0, g, step):
        e = min(g, s + step)
        p = src[s:e] & low24
        words = np.empty((e - s, 3), np.uint32)
        np.bitwise_or(p[:, 0], p[:, 1] << s24, out=words[:, 0])
        np.bitwise_or(p[:, 1] >> s8, p[:, 2] << s16, out=words[:, 1])
        np.bitwise_or(p[:, 2] >> s16, p[:, 3] << s8, out=words[:, 2])
        dst[s:e] = words
    out = flat[: 3 * n].reshape(n, 3)
    if n > 4 * g:  # the last 1-3 pixels (their bytes are read before any is written)
        out[4 * g :] = px4[4 * g :, :3].copy()
    return out


def _release_after(mem: mmap.mmap, used: int) -> None:
    """Give the pages of ``mem`` after its first ``used`` bytes back to the system."""
    start = -(-used // mmap.PAGESIZE) * mmap.PAGESIZE
    if start < len(mem):
        mem.madvise(mmap.MADV_DONTNEED, start, len(mem) - start)


def own_buffer_suits(im: Image.Image) -> bool:
    """Whether :func:`decode_into_array` can take ``im`` (opened, not yet loaded): an RGB or RGBA
    JPEG or PNG, still, without a colour key."""
    return (
        im.format in OWN_BUFFER_FORMATS
        and im.mode in ("RGB", "RGBA")
        and "transparency" not in im.info
        and bool(getattr(im, "tile", None))  # something to decode (not a broken APNG's nothing)
        and not getattr(im, "is_animated", False)
        and getattr(im, "_im", None) is None  # not decoded yet
        and hasattr(mmap, "MADV_DONTNEED")
        and hasattr(Image.core, "map_buffer")
    )


def decode_into_array(im: Image.Image, orientation: Callable[[Image.Image], int]) -> np.ndarray | None:
    """Decode ``im`` (see :func:`own_buffer_suits`) into memory of our own and return its pixels:
    (H, W, 3) uint8, or (H, W, 4) for an RGBA image with some pixel not opaque; writable,
    C-contiguous. None when, once decoded, the image turns out to need turning
    (``orientation(im)``, read after decoding as a PNG's EXIF may follow its pixels, is not 1),
    or Pillow did not decode into that memory after all: ``im`` is then loaded, intact, for the
    usual conversion. None as well, ``im`` not loaded, when this Pillow's private
    ``Image.core.map_buffer`` does not take the call (the caller then loads it as usual).

    Pillow's decode errors propagate as they would from ``im.load()``.
    """
    w, h = im.size
    n = w * h
    mem = mmap.mmap(-1, 4 * n, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    # an image of Pillow's own kind (mode, 4 bytes a pixel, rows one after the other) whose
    # rows are our memory: ImageFile.load decodes into the image it finds in place
    try:
        core = Image.core.map_buffer(mem, (w, h), "raw", 0, (im.mode, 4 * w, 1))
    except (TypeError, ValueError, AttributeError):  # a Pillow whose private call differs
        return None
    im.im = core
    im.load()
    if im.im is not core or orientation(im) != 1:
        return None
    flat = np.frombuffer(mem, np.uint8)
    if im.mode == "RGBA" and not all_opaque(flat.reshape(n, 4)):
        return flat.reshape(h, w, 4)
    _pack_rows(im, flat)
    _release_after(mem, 3 * n)
    return flat[: 3 * n].reshape(h, w, 3)


def _pack_rows(im: Image.Image, flat: np.ndarray) -> None:
    """Pack the RGB of the image ``im`` (decoded into ``flat``, 4 bytes a pixel) to the start
    of ``flat``, 3 bytes a pixel, strip by strip with Pillow's packer (faster than NumPy's
    :func:`pack_rgb` here): each strip is read whole before its RGB is written, and never lands
    beyond the bytes it was read from."""
    w, h = im.size
    rows = max(1, BLOCK_PIXELS // w)
    for y in range(0, h, rows):
        y1 = min(h, y + rows)
        rgb = im.crop((0, y, w, y1)).tobytes("raw", "RGB")
        flat[3 * w * y : 3 * w * y1] = np.frombuffer(rgb, np.uint8)
