"""Photo metadata carried from an input to its output: the EXIF block, as bytes.

A camera's EXIF (date, camera and lens, exposure, GPS position...) is kept byte for byte, except
the orientation tag, which is set to 1 ("as stored"): kmpress writes the pixels already rotated
(:func:`kmpress.io.load_image` applies the orientation), so a viewer must not rotate them again;
and the embedded thumbnail (IFD1, a small full-colour JPEG of the original), which shows colours
the output no longer has: it is unlinked, and cut off when it lies after everything else kept
(as cameras write it), else its bytes are zeroed. Patching in place, rather than re-serialising
the block, keeps everything else exact (maker notes and the offsets inside them included).

Pure bytes: no Pillow, no numpy. The ICC profile needs no such care and travels as it is.
"""

from __future__ import annotations

import struct

#: The prefix of an EXIF block in a JPEG APP1 segment (and in Pillow's ``info["exif"]``); a
#: PNG ``eXIf`` chunk and a WebP ``EXIF`` chunk hold the TIFF structure without it.
EXIF_PREFIX = b"Exif\x00\x00"
#: The TIFF tag of the orientation.
ORIENTATION = 0x0112
_SHORT = 3


def tiff_payload(raw: bytes | None) -> bytes | None:
    """The TIFF structure of an EXIF block (``Exif\\0\\0`` prefix removed), or None when ``raw``
    is empty or not EXIF (it must start with a TIFF header, ``II*\\0`` or ``MM\\0*``)."""
    if not raw:
        return None
    data = bytes(raw)
    if data.startswith(EXIF_PREFIX):
        data = data[len(EXIF_PREFIX) :]
    if data[:4] not in (b"II*\x00", b"MM\x00*") or len(data) < 8:
        return None
    return data


def orientation(payload: bytes) -> int | None:
    """The orientation value (1-8) in IFD0 of a TIFF payload, or None when there is none."""
    found = _orientation_entry(payload)
    if found is None:
        return None
    end, pos = found
    return struct.unpack_from(end + "H", payload, pos)[0]


def _orientation_entry(payload: bytes) -> tuple[str, int] | None:
    """(byte order, offset of the value) of IFD0's orientation entry, if well formed."""
    end = "<" if payload[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(end + "I", payload, 4)
    if ifd + 2 > len(payload):
        return None
    (count,) = struct.unpack_from(end + "H", payload, ifd)
    for i in range(count):
        pos = ifd + 2 + 12 * i
        if pos + 12 > len(payload):
            return None
        tag, typ, n = struct.unpack_from(end + "HHI", payload, pos)
        if tag == ORIENTATION:
            # one SHORT, stored in the first two bytes of the entry's value field
            return (end, pos + 8) if typ == _SHORT and n == 1 else None
    return None


def exif_for_output(raw: bytes | None) -> bytes | None:
    """The EXIF to write beside already-rotated pixels: the TIFF payload of ``raw`` with its
    orientation set to 1 and its thumbnail dropped (see :func:`drop_thumbnail`), everything else
    unchanged; None when ``raw`` is not EXIF."""
    payload = tiff_payload(raw)
    if payload is None:
        return None
    payload = drop_thumbnail(payload)
    found = _orientation_entry(payload)
    if found is None:
        return payload
    end, pos = found
    out = bytearray(payload)
    struct.pack_into(end + "H", out, pos, 1)
    return bytes(out)


#: Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE,
#: UNDEFINED, SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE).
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
#: Tags pointing at a sub-IFD that stays: the Exif IFD, the GPS IFD, the Interoperability IFD.
_SUB_IFDS = (0x8769, 0x8825, 0xA005)
#: IFD1's tags of the thumbnail: where its JPEG starts, and its length.
_THUMB_OFFSET, _THUMB_LENGTH = 0x0201, 0x0202


def _entries(payload: bytes, end: str, ifd: int):
    """(tag, type, count, value or offset field, its position) of each entry of the IFD at ``ifd``."""
    (count,) = struct.unpack_from(end + "H", payload, ifd)
    for i in range(count):
        pos = ifd + 2 + 12 * i
        tag, typ, n, value = struct.unpack_from(end + "HHII", payload, pos)
        yield tag, typ, n, value, pos + 8


def _extent(payload: bytes, end: str, ifd: int, depth: int = 0) -> int:
    """Where the IFD at ``ifd``, the values it points at and its sub-IFDs' end (the largest)."""
    (count,) = struct.unpack_from(end + "H", payload, ifd)
    last = ifd + 2 + 12 * count + 4
    for tag, typ, n, value, _ in _entries(payload, end, ifd):
        size = _TYPE_SIZES.get(typ, 1) * n
        if size > 4:
            last = max(last, value + size)
        if tag in _SUB_IFDS and depth < 4 and 8 <= value < len(payload):
            last = max(last, _extent(payload, end, value, depth + 1))
    return last


def drop_thumbnail(payload: bytes) -> bytes:
    """A TIFF payload without its thumbnail (IFD1): IFD0 no longer links to it, and its bytes
    are cut off when they lie after everything IFD0 and its sub-IFDs hold (as cameras write
    them), else the thumbnail's JPEG is zeroed. A payload without IFD1, or one too malformed to
    follow, comes back unchanged."""
    end = "<" if payload[:2] == b"II" else ">"
    try:
        (ifd0,) = struct.unpack_from(end + "I", payload, 4)
        (count,) = struct.unpack_from(end + "H", payload, ifd0)
        link = ifd0 + 2 + 12 * count
        (ifd1,) = struct.unpack_from(end + "I", payload, link)
        if ifd1 == 0 or ifd1 + 2 > len(payload):
            return payload
        thumb = {tag: value for tag, _, _, value, _ in _entries(payload, end, ifd1)}
        kept_end = _extent(payload, end, ifd0)
    except struct.error:
        return payload
    out = bytearray(payload)
    struct.pack_into(end + "I", out, link, 0)
    start, length = thumb.get(_THUMB_OFFSET), thumb.get(_THUMB_LENGTH)
    first = min(ifd1, start) if start is not None else ifd1
    if first >= kept_end:
        return bytes(out[:first])
    if start is not None and length is not None and start >= kept_end:
        out[start : start + length] = bytes(min(length, max(0, len(out) - start)))
    return bytes(out)
