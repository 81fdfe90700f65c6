"""Photo metadata carried from an input to its output: the EXIF block, as bytes.

A camera's EXIF (date, camera and lens, exposure, GPS position...) is kept byte for byte, except
the orientation tag, which is set to 1 ("as stored"): kmpress writes the pixels already rotated
(:func:`kmpress.io.load_image` applies the orientation), so a viewer must not rotate them again.
Patching the one value in place, rather than re-serialising the block, keeps everything else
exact (maker notes and the offsets inside them included).

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
    orientation set to 1, everything else unchanged; None when ``raw`` is not EXIF."""
    payload = tiff_payload(raw)
    if payload is None:
        return None
    found = _orientation_entry(payload)
    if found is None:
        return payload
    end, pos = found
    out = bytearray(payload)
    struct.pack_into(end + "H", out, pos, 1)
    return bytes(out)
