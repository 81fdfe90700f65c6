"""PNG bytes: the indexed-PNG encoder (unfiltered rows, parallel DEFLATE) and a header reader.

Writing a file (atomically) is :func:`kmpress.writing.write_png`'s job; this module only makes and
reads bytes. The encoder makes the rows of each DEFLATE block from the indices as the block is
compressed, a few blocks at a time: no whole-image copy of the scanlines (a 200 MP image's
would be 200 MB, twice: the array and its bytes).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from .limits import usable_cores
from .metrics import png_bit_depth

#: Raw bytes per DEFLATE block of the parallel encoder (fixed, so the file never depends on the
#: number of threads). 1 MiB: a 4 MP photo at 16 colours (2 MB of 4-bit scanlines) is already two
#: blocks, one per core; each further block costs some 100-300 bytes (0.03 % of that file).
DEFLATE_BLOCK = 1 << 20
#: Bytes of the previous block each block is primed with (DEFLATE's whole 32 KiB window).
_WINDOW = 1 << 15


def _row_bytes(width: int, depth: int) -> int:
    """Bytes of one scanline: the filter byte and the packed row."""
    return 1 + (width * depth + 7) // 8


def _scanlines(indices: np.ndarray, depth: int) -> np.ndarray:
    """PNG scanlines of palette indices: filter byte 0 ("None") + the packed row, (H, 1 + rowbytes).

    Filter type None on every row: with a palette the bytes are labels, not intensities, and
    PNG's prediction filters (Sub, Up, Average, Paeth, or libpng-style adaptive choice) made
    palette PNGs of photos 2-18 % larger in our measurements (bench/compare_pngquant.py).
    """
    h, w = indices.shape
    per = 8 // depth
    rowbytes = (w * depth + 7) // 8
    out = np.zeros((h, 1 + rowbytes), np.uint8)
    if depth == 8:
        out[:, 1:] = indices
        return out
    padded = np.zeros((h, rowbytes * per), np.uint8)
    padded[:, :w] = indices
    groups = padded.reshape(h, rowbytes, per)
    packed = np.zeros((h, rowbytes), np.uint8)
    for j in range(per):
        # first pixel in the most significant bits
        packed |= groups[:, :, j] << np.uint8(8 - depth * (j + 1))
    out[:, 1:] = packed
    return out


def _deflate_block(source: Callable[[int, int], Any], n: int, start: int, end: int, level: int) -> tuple[bytes, int]:
    """Bytes ``start:end`` of the ``n`` of ``source`` as raw DEFLATE, primed with the 32 KiB
    before them, and their Adler-32 (on their own)."""
    lo = max(0, start - _WINDOW)
    data = memoryview(source(lo, end)).cast("B")
    # raw DEFLATE (wbits -15): the zlib header and checksum are written once, around all blocks
    if start > 0:
        co = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, data[: start - lo])
    else:
        co = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    body = data[start - lo :]
    out = co.compress(body)
    # every block but the last ends on a byte boundary (sync flush) so the streams concatenate
    out += co.flush(zlib.Z_FINISH) if end == n else co.flush(zlib.Z_SYNC_FLUSH)
    return out, zlib.adler32(body)


_ADLER_BASE = 65521


def adler32_combine(a1: int, a2: int, len2: int) -> int:
    """The Adler-32 of ``A + B`` from that of ``A`` (``a1``), that of ``B`` (``a2``) and ``B``'s
    length (zlib's ``adler32_combine``, which Python's zlib does not offer)."""
    rem = len2 % _ADLER_BASE
    s1 = a1 & 0xFFFF
    s2 = (rem * s1) % _ADLER_BASE
    s1 = (s1 + (a2 & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    s2 = (s2 + (a1 >> 16) + (a2 >> 16) + _ADLER_BASE - rem) % _ADLER_BASE
    return s1 | (s2 << 16)


def deflate_parts(source: Callable[[int, int], Any], n: int, level: int, threads: int | None = None) -> list[bytes]:
    """The pieces of a zlib stream of ``n`` bytes that ``source(start, end)`` hands out (any
    buffer, made when asked), compressed in fixed blocks in parallel (like pigz).

    Each block of :data:`DEFLATE_BLOCK` bytes is compressed on its own, primed with the 32 KiB
    before it, so matches still reach back across block boundaries; the blocks are joined with
    sync flushes and the stream closed with the Adler-32 of all the data. The block split is
    fixed, so the bytes are the same at any thread count; zlib releases the GIL, so threads run
    in parallel, at most two blocks each in flight (only those blocks' data are ever made).
    Costs under 0.1 % in size against one stream.
    """
    header = bytes([0x78, {0: 0x01, 1: 0x01, 2: 0x5E, 3: 0x5E, 4: 0x5E, 5: 0x5E, 6: 0x9C}.get(level, 0xDA)])
    bounds = [(s, min(n, s + DEFLATE_BLOCK)) for s in range(0, max(n, 1), DEFLATE_BLOCK)]
    threads = usable_cores() if threads is None else threads
    parts, adler = [header], 1
    if threads > 1 and len(bounds) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(threads, len(bounds))) as pool:
            ahead: deque = deque()
            todo = iter(bounds)
            for b in todo:
                ahead.append((b, pool.submit(_deflate_block, source, n, b[0], b[1], level)))
                if len(ahead) >= 2 * threads:
                    break
            while ahead:
                (s, e), fut = ahead.popleft()
                body, a = fut.result()
                parts.append(body)
                adler = adler32_combine(adler, a, e - s)
                nxt = next(todo, None)
                if nxt is not None:
                    ahead.append((nxt, pool.submit(_deflate_block, source, n, nxt[0], nxt[1], level)))
    else:
        for s, e in bounds:
            body, a = _deflate_block(source, n, s, e, level)
            parts.append(body)
            adler = adler32_combine(adler, a, e - s)
    parts.append(struct.pack(">I", adler))
    return parts


def _scanline_source(indices: np.ndarray, depth: int) -> tuple[Callable[[int, int], np.ndarray], int]:
    """``(source, n)``: the ``n`` bytes of the image's scanlines (filter byte and packed row, row
    after row), ``source(start, end)`` making those of the rows they fall in."""
    h, w = indices.shape
    line = _row_bytes(w, depth)

    def source(start: int, end: int) -> np.ndarray:
        r0, r1 = start // line, min(h, -(-end // line))
        rows = _scanlines(indices[r0:r1], depth).reshape(-1)
        return rows[start - r0 * line : end - r0 * line]

    return source, h * line


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(
    palette: np.ndarray,
    indices: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    compress_level: int = 6,
    threads: int | None = None,
) -> bytes:
    """The bytes of an indexed PNG (see :func:`write_png` for the parameters; ``exif`` is a
    TIFF payload, see :mod:`kmpress.metadata`, written as the ``eXIf`` chunk).

    Written directly (IHDR, iCCP, eXIf, PLTE, tRNS, one IDAT, IEND) rather than through Pillow, to
    control the filter (None on every row; Pillow filters rows of 1/2/4-bit images, which cost
    about 2.5 % at 16 colours) and to compress in parallel.
    """
    h, w = indices.shape
    p = palette.shape[0]
    depth = png_bit_depth(p)
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, 3, 0, 0, 0))]
    if icc_profile:
        out.append(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    if exif:
        out.append(_chunk(b"eXIf", exif))
    out.append(_chunk(b"PLTE", np.ascontiguousarray(palette[:, :3], dtype=np.uint8).tobytes()))
    if palette.shape[1] == 4:
        opaque = palette[:, 3] == 255
        if not opaque.all():
            # entries after the last non-opaque one are opaque by default: leave them out
            last = int(np.flatnonzero(~opaque)[-1]) + 1
            out.append(_chunk(b"tRNS", palette[:last, 3].astype(np.uint8).tobytes()))
    source, n = _scanline_source(np.ascontiguousarray(indices, dtype=np.uint8), depth)
    idat = deflate_parts(source, n, int(compress_level), threads)
    crc = zlib.crc32(b"IDAT")
    for part in idat:
        crc = zlib.crc32(part, crc)
    size = sum(map(len, idat))
    out += [struct.pack(">I", size), b"IDAT", *idat, struct.pack(">I", crc), _chunk(b"IEND", b"")]
    return b"".join(out)


def png_header(path: str | os.PathLike) -> dict[str, Any] | None:
    """IHDR fields and palette length of a PNG file, read from its chunks (None if not a PNG).

    Returns
    -------
    dict: width, height, bit_depth, color_type and, with a PLTE chunk, palette_size
    """
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        out: dict[str, Any] = {}
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            length, ctype = struct.unpack(">I4s", head)
            if ctype == b"IHDR":
                w, h, depth, color_type = struct.unpack(">IIBB", f.read(10))
                out.update(width=w, height=h, bit_depth=depth, color_type=color_type)
                f.seek(length - 10 + 4, 1)
            elif ctype == b"PLTE":
                out["palette_size"] = length // 3
                f.seek(length + 4, 1)
            elif ctype in (b"IDAT", b"IEND"):
                break
            else:
                f.seek(length + 4, 1)
        return out if "bit_depth" in out else None
