"""How large an image may be, and how much memory a job needs: the decompression-bomb guard and
the batch's memory budget. Pure arithmetic on a header's numbers and the machine's memory figures;
nothing here decodes or writes.

The default limit (``max_pixels="auto"``) lets any real photo through, up to stitched panoramas
of hundreds of megapixels, and refuses, before anything is decoded, an image that declares

- more than :data:`AUTO_MAX_PIXELS` pixels, or
- more pixels than its file could hold (under one byte per :data:`BOMB_PIXELS_PER_BYTE` pixels:
  a few kilobytes declaring 100,000 x 100,000 is a bomb, a real 100 MP photo is megabytes), or
- a decode that would need more memory than the machine has available now.

A fixed ``max_pixels=N`` replaces all three with a plain cap; ``None`` checks nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The largest image "auto" accepts: 2^30 pixels (a 40,000 x 26,000 panorama).
AUTO_MAX_PIXELS = 1 << 30
#: "auto" refuses an image with more pixels than this many per byte of its file. zlib expands at
#: most ~1032:1, so even a flat single-colour palette PNG has one byte per ~1000 pixels; JPEG
#: and real photos have far more. Only images over :data:`BOMB_MIN_PIXELS` are judged so.
BOMB_PIXELS_PER_BYTE = 4000
BOMB_MIN_PIXELS = 16_000_000
#: What a kmpress process needs besides the image: Python, NumPy, Pillow, numba and its kernels.
RUNTIME_BYTES = 160 << 20
#: The dense colour table of the histogram and the remap's table of codes.
TABLE_BYTES = (64 << 20) + (16 << 20)


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def job_bytes(pixels: int, bands: int = 3) -> int:
    """Peak memory (bytes) of compressing an image of ``pixels`` pixels whose file decodes to
    ``bands`` bytes per pixel: the decoder's image and kmpress's pixel array (at most 4 bytes a
    pixel each), the indices (1), the colour tables, the distinct colours and the runtime."""
    per_pixel = max(bands, 1) + 4 + 1
    colors = min(pixels, 16 << 20) * 32  # up to 2^24 distinct colours, ~32 bytes each in the fit
    return pixels * per_pixel + TABLE_BYTES + colors + RUNTIME_BYTES


def available_memory() -> int | None:
    """Bytes this process may still allocate: the system's available memory, capped by the
    cgroup limit of a container; None when neither can be read (then nothing is refused for it)."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    cg = Path("/sys/fs/cgroup")
    try:
        limit = (cg / "memory.max").read_text().strip()
        if limit != "max":
            left = int(limit) - int((cg / "memory.current").read_text())
            avail = left if avail is None else min(avail, left)
    except (OSError, ValueError):
        pass
    return avail


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB"


#: How every refusal of an image's size ends.
OVERRIDE = "(--max-pixels N / max_pixels=N to allow it if you trust this file)"


def over_cap(what: str, max_pixels: int | str) -> str:
    """The refusal of an image of ``what`` (``"6000x4000 = 24,000,000 pixels"``) over a plain
    cap: "auto"'s :data:`AUTO_MAX_PIXELS`, or the fixed ``max_pixels``."""
    if max_pixels == "auto":
        return f"image declares {what}, over the {AUTO_MAX_PIXELS:,} kmpress accepts by default {OVERRIDE}"
    return f"image has {what}, over the limit of {max_pixels:,} {OVERRIDE}"


#: Bytes of a pixel's bands in each Pillow mode (4 for modes not listed).
_BAND_BYTES = {
    "1": 1,
    "L": 1,
    "P": 1,
    "LA": 2,
    "La": 2,
    "PA": 2,
    "I;16": 2,
    "I;16B": 2,
    "I;16L": 2,
    "I;16N": 2,
    "RGB": 3,
    "YCbCr": 3,
    "LAB": 3,
    "HSV": 3,
}
#: Bytes a pixel of each Pillow mode takes in a decoded image, as Pillow (and kmpress's own
#: decoding buffer, :mod:`kmpress.buffers`) lays it out: 8-bit single-band modes one, 16-bit
#: ones two, every other mode four (RGB too: Pillow pads it to 32 bits).
_DECODED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}


def band_bytes(mode: str) -> int:
    """Bytes of one pixel's bands in Pillow's ``mode`` (3 for RGB): what a file decodes to."""
    return _BAND_BYTES.get(mode, 4)


def out_of_memory(width: int | None, height: int | None, mode: str | None) -> str:
    """The failure of a decode that ran out of memory: the image's size, from its header, and
    the bytes its decoded pixels take (``mode``: Pillow's mode of the image; None when unknown)."""
    if not width or not height:
        return "out of memory while decoding the image"
    pixels = width * height
    need = pixels * _DECODED_BYTES.get(mode or "", 4)
    return (
        f"out of memory while decoding the image: its header declares {width}x{height} = {pixels:,} pixels, "
        f"{need:,} bytes ({_gb(need) if need >= 2**30 else f'{need / 2**20:.1f} MB'}) decoded"
    )


def size_refusal(
    width: int, height: int, bands: int, file_bytes: int | None, max_pixels: int | str | None
) -> str | None:
    """Why an image of this declared size must not be decoded, or None when it may be.

    Parameters
    ----------
    bands : bytes per pixel the file decodes to (from its mode: 3 for RGB, 4 for RGBA, ...)
    file_bytes : the file's size, None for a stream of unknown length
    max_pixels : "auto", a fixed cap, or None (no limit)
    """
    pixels = width * height
    size = f"{width}x{height} = {pixels:,} pixels"
    if max_pixels is None:
        return None
    if not isinstance(max_pixels, str):  # a fixed cap; the one str the options accept is "auto"
        return over_cap(size, max_pixels) if pixels > max_pixels else None
    if pixels > AUTO_MAX_PIXELS:
        return over_cap(size, "auto")
    if file_bytes is not None and pixels > BOMB_MIN_PIXELS and file_bytes * BOMB_PIXELS_PER_BYTE < pixels:
        return (
            f"image declares {size} in a file of {file_bytes:,} bytes, far too small to hold them: "
            f"refused as a decompression bomb {OVERRIDE}"
        )
    need = job_bytes(pixels, bands)
    avail = available_memory()
    if avail is not None and need > avail:
        return (
            f"image declares {size}: compressing it would need about {_gb(need)} of memory, "
            f"{_gb(avail)} are available {OVERRIDE}"
        )
    return None
