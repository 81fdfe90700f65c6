"""The prebuilt kernel cache shipped with the package: numba's cache files for a portable CPU.

numba caches a compiled kernel in an index file (``.nbi``: numba's version, then the sha256 of
the module's source and a dict from ``(signature, (triple, CPU name, CPU features), bytecode
hashes)`` to a data file) beside its data files (``.nbc``). Compiled for the CPU name
:data:`PORTABLE_CPU` with no extra features, the code runs on every x86-64 CPU of that level
(AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE) and the key names no particular CPU, so the files can be
built once (``python -m kmpress.kernels_numba.prebuild``) and shipped in one archive per numba
version and Python (:func:`archive_path`), with a manifest naming every kernel's index file and key.

A first run on a machine whose own ("native") cache lacks kernels then unpacks the archive once
(:func:`unpack`) and loads the kernels from it instead of compiling them: the choice is made in
:mod:`kmpress.backends`, which passes numba's facts in. This module reads files and nothing of
numba, so it can decide before numba's code generator exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: The CPU the shipped kernels are compiled for (LLVM's name of the x86-64-v3 level).
PORTABLE_CPU = "x86-64-v3"
#: The features LLVM reports (``llvmlite.binding.get_host_cpu_features``) that a CPU must have to
#: run :data:`PORTABLE_CPU`'s code: those of x86-64-v1, v2 and v3 (XSAVE: the OS saves the AVX state).
PORTABLE_FEATURES = (
    *("cmov", "cx8", "fxsr", "mmx", "sse", "sse2"),
    *("cx16", "popcnt", "sahf", "sse3", "sse4.1", "sse4.2", "ssse3"),
    *("avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave"),
)
#: The kernels' sources, whose sha256 numba's index files record: their folder as imported (not
#: resolved: numba names its cache folder after the absolute path of the modules' own ``__file__``).
SOURCES = Path(os.path.abspath(os.path.dirname(__file__)), "kernels_numba")
#: Where the archives are, in the installed package.
ARCHIVES = SOURCES / "prebuilt"
#: The archive member that describes it (see :func:`read_manifest`).
MANIFEST = "manifest.json"
#: The sub-folder of a cache folder that holds the unpacked archives.
FOLDER = "kmpress-portable"


def python_tag() -> str:
    """Return this Python's tag in an archive's name and numba's file names ("py311")."""
    return f"py{sys.version_info[0]}{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"


def archive_path(numba_version: str, tag: str | None = None) -> Path:
    """Return the path of the archive for ``numba_version`` and the Python ``tag`` (default this one)."""
    return ARCHIVES / f"numba-{numba_version}-{tag or python_tag()}-{PORTABLE_CPU}.zip"


def read_manifest(archive: Path) -> dict[str, Any] | None:
    """Read an archive's manifest, or None when there is no readable archive.

    Returns
    -------
    dict with ``numba`` (the version that built it), ``python`` (:func:`python_tag`), ``triple``,
    ``cpu_name``, ``cpu_features`` (the codegen's magic tuple), ``id`` (a digest of every member)
    and ``kernels``: one dict per kernel, with ``key`` ("module:qualname"), ``source`` (its
    module's file name), ``stamp`` (that file's sha256, hex), ``index`` (its index file's name),
    ``sig`` and ``code`` (the bytecode hashes of its index key).
    """
    try:
        with zipfile.ZipFile(archive) as z:
            doc = json.loads(z.read(MANIFEST))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("kernels"), list) else None


def source_stamps() -> dict[str, str]:
    """Return the sha256 (hex) of each kernel module's source, by file name, as numba stamps them."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(SOURCES.glob("*.py"))}


def missing(folder: str | os.PathLike | None, manifest: Mapping[str, Any], magic: tuple) -> list[str]:
    """Return the keys of the manifest's kernels that numba's cache in ``folder`` does not hold.

    As numba reads an index: a kernel is held when its index file is of the manifest's numba
    version, stamped with the sha256 of the current source, and has the entry for the kernel's
    signature and bytecode with the codegen's ``magic`` tuple (triple, CPU name, features).
    Reads only the index files: nothing is compiled or loaded.
    """
    kernels = manifest["kernels"]
    if folder is None:
        return [k["key"] for k in kernels]
    stamps = source_stamps()
    out = []
    for k in kernels:
        key = (k["sig"], tuple(magic), tuple(k["code"]))
        if key not in _index(Path(folder, k["index"]), manifest["numba"], stamps.get(k["source"])):
            out.append(k["key"])
    return out


def _index(path: Path, version: str, stamp: str | None) -> dict:
    """Return the overloads of a numba index file (empty when it is absent, stale or unreadable)."""
    try:
        with open(path, "rb") as f:
            if pickle.load(f) != version:
                return {}
            found, overloads = pickle.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError, AttributeError, ImportError):
        return {}
    if stamp is None or not isinstance(found, bytes) or found.hex() != stamp:
        return {}
    return overloads if isinstance(overloads, dict) else {}


def runs_here(features: Mapping[str, bool]) -> bool:
    """Tell whether a CPU with LLVM's host ``features`` runs :data:`PORTABLE_CPU`'s code."""
    return all(features.get(f) for f in PORTABLE_FEATURES)


def cache_root(cache_dir: str | None, native_folder: str | None) -> Path | None:
    """Return a writable folder for the unpacked archives, or None when there is none.

    :data:`FOLDER` under the user's ``cache_dir`` (NUMBA_CACHE_DIR) when set, else beside numba's
    own cache of the kernels (``native_folder``), else in a per-user temporary folder: the first
    where a folder can be made and a file written.
    """
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    places = [Path(cache_dir) / FOLDER] if cache_dir else []
    if native_folder:
        places.append(Path(native_folder) / FOLDER)
    places.append(Path(tempfile.gettempdir(), f"kmpress-numba-portable-{uid}"))
    for place in places:
        try:
            place.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=place).close()
        except OSError:
            continue
        return place
    return None


def unpack(archive: Path, manifest: Mapping[str, Any], root: Path, subpath: str) -> Path | None:
    """Unpack ``archive`` (once) so that numba, with ``root`` as its cache folder, finds its files.

    numba keeps the files of a module's kernels in ``root / subpath`` (``subpath`` names the
    module's folder: numba's locator tells it), so the archive's files go there, in a folder named
    after the archive and its content. Concurrent first runs are safe: each unpacks into a
    temporary folder and renames it into place; the first rename wins and the others use its
    folder.

    Returns
    -------
    Path or None
        The cache folder to hand numba (``CACHE_DIR``), or None when it cannot be written (numba
        then compiles as without an archive).
    """
    base = root / f"{archive.stem}-{str(manifest.get('id', ''))[:16]}"
    folder = base / subpath
    if folder.is_dir():
        return base
    tmp = root / f".unpack-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        tmp.mkdir(parents=True)
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if name != os.path.basename(name):  # flat: a member never leaves the folder
                    raise ValueError(name)
                (tmp / name).write_bytes(z.read(name))
        base.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():  # not a concurrent run that was first
                raise
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return base
