"""Files out: palette PNGs and other bytes written atomically, and standard output.

Writing goes to a temporary file beside the target and is renamed over it only once it is
complete, so an interrupted or failed write never leaves a partial file behind.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from .errors import ImageWriteError
from .png import encode_png


def temp_path(dst: Path) -> Path:
    """Return the hidden temporary file an atomic write of ``dst`` goes through.

    The name, ``.<name>.<pid>.<thread>.tmp`` beside ``dst``, is unique per process and thread.
    """
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


def remove_stale_temp_files(dst: str | os.PathLike, pids: list[int] | None = None) -> None:
    """Remove the :func:`stale_temp_files` of ``dst``.

    Those already gone, or that cannot be removed, are passed over.
    """
    for tmp in stale_temp_files(dst, pids):
        try:
            tmp.unlink()
        except OSError:
            pass


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
    compress_level : zlib level 0-9 (9: 1-4 % smaller, several times slower; see docs/how-it-works.md)

    The bit depth is the smallest PNG allows for P entries (1, 2, 4 or 8); rows are stored
    unfiltered and DEFLATE runs in parallel blocks (:func:`kmpress.png.deflate_parts`), the same bytes at any
    thread count. The data go to a hidden temporary file in the same folder, which is renamed
    over ``dst`` only when complete.
    """
    return write_bytes(dst, encode_png(palette, indices, icc_profile=icc_profile, compress_level=compress_level))


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
    """Write ``dst`` all or nothing.

    ``save(tmp)`` writes a hidden temporary file beside it, which is renamed over ``dst`` only
    once complete, and removed on any failure (or Ctrl-C).

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
