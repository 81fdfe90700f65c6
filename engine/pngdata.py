"""A PNG file's image data in a few pieces: the file seen with its IDAT chunks joined into one.

Pillow decodes a PNG one IDAT chunk at a time, at most 64 KiB a call (encoders write chunks of
8 to 64 KiB), and each call gives the GIL back and takes it again. A 24 MP photo takes some 600
calls; while another thread holds the GIL (kmpress's warm-up loading numba in Python, beside the
decode), each return waits for it: the decode took 0.75 s instead of 0.55. :class:`JoinedPng`
shows Pillow the same file with the run of IDAT chunks as one chunk (every other byte as it is),
which it then decodes in blocks of :data:`BLOCK` bytes: a few calls. The pixels are the same
(the image data is the same zlib stream); the joined chunk's CRC is the CRC of the joined data.
"""

from __future__ import annotations

import bisect
import io
import os
import struct
import zlib
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Most bytes of image data Pillow is given in one call: 1 MiB (a 24 MP photo in some 40 calls;
#: larger blocks decoded no faster, alone or beside the warm-up).
BLOCK = 1 << 20
#: Fewest IDAT chunks worth joining (a few calls gain nothing).
MIN_CHUNKS = 8
#: The largest chunk a PNG may hold.
MAX_CHUNK = (1 << 31) - 1


def idat_run(f: io.BufferedReader, size: int) -> tuple[int, list[tuple[int, int]], int] | None:
    """Find the run of IDAT chunks of a PNG file of ``size`` bytes.

    Returns ``(start, pieces, end)``: ``start`` the offset of the first chunk, ``pieces`` the
    (offset, length) of each chunk's data, ``end`` the offset after the last chunk. None for a
    file that is not a PNG, is cut short before the run ends, is animated (APNG: its frames
    follow in other chunks), or has fewer than :data:`MIN_CHUNKS` chunks in the run or more data
    than one chunk may hold: Pillow then reads it as usual.
    """
    f.seek(0)
    if f.read(8) != SIGNATURE:
        return None
    pos, pieces, start, end = 8, [], -1, -1
    while pos + 12 <= size:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            return None
        n, kind = struct.unpack(">I4s", head)
        nxt = pos + 12 + n
        if nxt > size or kind == b"acTL":
            return None
        if kind == b"IDAT":
            if start < 0:
                start = pos
            pieces.append((pos + 8, n))
            end = nxt
        elif start >= 0 or kind == b"IEND":
            break
        pos = nxt
    if len(pieces) < MIN_CHUNKS or sum(n for _, n in pieces) > MAX_CHUNK:
        return None
    return start, pieces, end


class JoinedPng(io.RawIOBase):
    """A PNG file, read only, seen with its run of IDAT chunks as one chunk (see the module).

    Parameters
    ----------
    path : the file
    run : its :func:`idat_run`
    size : its size in bytes
    """

    def __init__(self, path: Path, run: tuple[int, list[tuple[int, int]], int], size: int) -> None:
        super().__init__()
        self.name = str(path)
        self.file_size = size
        self._f = open(path, "rb")  # noqa: SIM115 - closed with this object
        start, pieces, end = run
        total = sum(n for _, n in pieces)
        # the view, piece by piece: (its first byte in the view, in the file (-1: made here),
        # its length, the bytes made here)
        segs: list[tuple[int, int, int, bytes]] = [(0, 0, start, b"")]
        v = start
        head = struct.pack(">I", total) + b"IDAT"
        segs.append((v, -1, 8, head))
        v += 8
        self._data = (v, v + total)  # where the joined data lies in the view
        for off, n in pieces:
            if n:
                segs.append((v, off, n, b""))
                v += n
        self._crc_at = v
        segs.append((v, -1, 4, b""))  # the CRC, known once the data has been read (or asked for)
        v += 4
        segs.append((v, end, size - end, b""))
        self._segs = segs
        self._starts = [s[0] for s in segs]
        self._len = v + size - end
        self._pos = 0
        # CRC of "IDAT" and the joined data, made as the data is read in order
        self._crc = zlib.crc32(b"IDAT")
        self._crc_upto = self._data[0]
        self._span: bytearray | None = None  # the file's bytes of the last data read (reused)

    def readable(self) -> bool:  # noqa: D102 - io.RawIOBase's
        return True

    def seekable(self) -> bool:  # noqa: D102
        return True

    def tell(self) -> int:  # noqa: D102
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:  # noqa: D102
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._len}[whence]
        if base + offset < 0:
            raise OSError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]  # noqa: D102
        out = memoryview(b).cast("B")
        done = 0
        while done < len(out) and self._pos < self._len:
            i = bisect.bisect_right(self._starts, self._pos) - 1
            v, off, n, made = self._segs[i]
            skip = self._pos - v
            want = min(len(out) - done, n - skip)
            if off < 0:
                if v == self._crc_at:
                    made = struct.pack(">I", self._data_crc())
                out[done : done + want] = made[skip : skip + want]
            else:
                lo, hi = self._data
                if lo <= self._pos < hi:
                    want = min(len(out) - done, hi - self._pos)
                    got = self._read_data(out[done : done + want])
                else:
                    self._f.seek(off + skip)
                    got = self._f.readinto(out[done : done + want])
                if not got:
                    break
                want = got
            done += want
            self._pos += want
        return done

    def read(self, size: int = -1) -> bytes:  # noqa: D102
        # the joined data as bytes made once (io.RawIOBase.read would fill a bytearray, then copy)
        lo, hi = self._data
        if lo <= self._pos < hi:
            want = hi - self._pos if size is None or size < 0 else min(size, hi - self._pos)
            pieces = self._data_pieces(self._pos, want)
            if pieces is not None:
                data = b"".join(pieces)
                self._follow(self._pos, memoryview(data))
                self._pos += len(data)
                if size is None or size < 0 or size > len(data):
                    data += super().read(-1 if size is None or size < 0 else size - len(data))
                return data
        return super().read(size)

    def _read_data(self, out: memoryview) -> int:
        # the joined data from the view's position on, into ``out``
        pieces = self._data_pieces(self._pos, len(out))
        if pieces is None:
            return 0
        done = 0
        for piece in pieces:
            out[done : done + len(piece)] = piece
            done += len(piece)
        self._follow(self._pos, out[:done])
        return done

    def _data_pieces(self, at: int, want: int) -> list[memoryview] | None:
        # ``want`` bytes of the joined data from view offset ``at``: the file's span read in one
        # call (one wait for the GIL, not one a chunk), as the views of the chunks' data in it
        # (the headers and CRCs between them left out); None if the file is shorter than it was
        i = bisect.bisect_right(self._starts, at) - 1
        k = bisect.bisect_right(self._starts, at + want - 1) - 1
        lo = self._segs[i][1] + at - self._segs[i][0]
        hi = self._segs[k][1] + at + want - self._segs[k][0]
        if self._span is None or len(self._span) < hi - lo:
            self._span = bytearray(hi - lo)
        view = memoryview(self._span)[: hi - lo]
        self._f.seek(lo)
        if self._f.readinto(view) != hi - lo:
            return None
        pieces = []
        for v, off, n, _ in self._segs[i : k + 1]:
            a = max(at, v)
            src = off + a - v - lo
            pieces.append(view[src : src + min(v + n, at + want) - a])
        return pieces

    def _follow(self, at: int, data: memoryview) -> None:
        # extend the running CRC by data read at view offset ``at``, when it continues it
        lo, hi = self._data
        if at == self._crc_upto and lo <= at < hi:
            part = data[: hi - at]
            self._crc = zlib.crc32(part, self._crc)
            self._crc_upto += len(part)

    def _data_crc(self) -> int:
        # the joined chunk's CRC: the rest of its data read now if it was not read in order
        hi = self._data[1]
        while self._crc_upto < hi:
            pieces = self._data_pieces(self._crc_upto, min(hi - self._crc_upto, BLOCK))
            if pieces is None:
                break
            for piece in pieces:
                self._follow(self._crc_upto, piece)
        return self._crc & 0xFFFFFFFF

    def close(self) -> None:  # noqa: D102
        if not self.closed:
            self._f.close()
        super().close()


def joined_png(path: Path) -> JoinedPng | None:
    """Return ``path`` as a :class:`JoinedPng` when it is a PNG whose image data is in many chunks.

    None otherwise, and whenever the file cannot be looked at (the caller then opens it as
    usual, and meets the same problem there).
    """
    if path.suffix.lower() != ".png":
        return None
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            run = idat_run(f, size)
        return None if run is None else JoinedPng(path, run, size)
    except (OSError, struct.error, ValueError):
        return None
