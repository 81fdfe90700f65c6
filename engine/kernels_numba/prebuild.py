"""Build the prebuilt kernel cache shipped with the package (a maintainers' step).

``python -m kmpress.kernels_numba.prebuild`` compiles every kernel (:func:`._compile.all_kernels`)
for numba's CPU name :data:`kmpress.prebuilt.PORTABLE_CPU` with no extra features, in worker
processes, into an empty cache folder, and packs the folder's files with a manifest into one
archive, ``kernels_numba/prebuilt/numba-<version>-py<XY>-x86-64-v3.zip`` (see
:mod:`kmpress.prebuilt`). Run it in an editable install (the archive is written into the
sources) after any change to a kernel, to numba's version or to the Python it is built for;
``--check`` only says whether the archive is current (the test suite checks it too).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import pickle
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from .. import prebuilt
from ._compile import all_kernels, compile_in_processes
from ._jit import Kernel

#: The command that rebuilds the archive (named in every message about a stale one).
COMMAND = "python -m kmpress.kernels_numba.prebuild"


def index_name(kernel: Kernel) -> str:
    """Return the name of the index file numba caches ``kernel`` under (numba.core.caching's rule)."""
    f = kernel.py_func
    module = os.path.splitext(os.path.basename(inspect.getfile(f)))[0]
    fullname = f"{module}.{f.__qualname__}".replace("<", "").replace(">", "")
    return f"{fullname}-{f.__code__.co_firstlineno}.{prebuilt.python_tag()}.nbi"


def code_hashes(kernel: Kernel) -> list[str]:
    """Return the bytecode hashes numba puts in ``kernel``'s index key (its code, its closure)."""
    f = kernel.py_func
    closure = b""
    if f.__closure__ is not None:
        from numba.core.serialize import dumps

        closure = dumps(tuple(c.cell_contents for c in f.__closure__))
    return [hashlib.sha256(f.__code__.co_code).hexdigest(), hashlib.sha256(closure).hexdigest()]


def entries() -> list[dict[str, Any]]:
    """Return the manifest's entry of every kernel, computed from the current sources."""
    stamps = prebuilt.source_stamps()
    out = []
    for k in all_kernels():
        source = os.path.basename(inspect.getfile(k.py_func))
        out.append(
            {
                "key": k.key,
                "source": source,
                "stamp": stamps[source],
                "index": index_name(k),
                "sig": k.sig,
                "code": code_hashes(k),
            }
        )
    return out


def stale(archive: Path | None = None) -> list[str]:
    """Return why the archive of this numba and Python is not current (empty when it is).

    Current: it exists, was built by this numba version for this Python and triple, and its
    manifest names every registered kernel with the sha256 of its module's current source, its
    index file, signature and bytecode hashes.
    """
    import llvmlite.binding as ll
    import numba

    archive = archive or prebuilt.archive_path(numba.__version__)
    doc = prebuilt.read_manifest(archive)
    if doc is None:
        return [f"no readable archive {archive.name}"]
    why = []
    facts = {"numba": numba.__version__, "python": prebuilt.python_tag(), "triple": ll.get_process_triple()}
    why += [f"{name}: built for {doc.get(name)!r}, this is {v!r}" for name, v in facts.items() if doc.get(name) != v]
    have = {k["key"]: k for k in doc["kernels"]}
    for want in entries():
        got = have.pop(want["key"], None)
        if got is None:
            why.append(f"{want['key']}: not in the archive")
        elif got != want:
            fields = [f for f in want if got.get(f) != want[f]]
            why.append(f"{want['key']}: changed ({', '.join(fields)})")
    why += [f"{key}: in the archive, no longer a kernel" for key in have]
    return why


def build(out: Path | None = None, processes: int = 2) -> Path:
    """Compile every kernel for the portable CPU and write the archive; return its path.

    Raises
    ------
    SystemExit
        A kernel did not compile, or a compiled kernel is not where its manifest entry says.
    """
    import llvmlite.binding as ll
    import numba

    archive = out or prebuilt.archive_path(numba.__version__)
    triple = ll.get_process_triple()
    magic = (triple, prebuilt.PORTABLE_CPU, "")
    kernels = all_kernels()
    with tempfile.TemporaryDirectory(prefix="kmpress-prebuild-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_DISABLE_JIT", "NUMBA_CACHE_LOCATOR_CLASSES")}
        # the magic tuple's CPU name and features; no Intel SVML calls (a library the user may lack)
        env.update(NUMBA_CPU_NAME=magic[1], NUMBA_CPU_FEATURES=magic[2], NUMBA_DISABLE_INTEL_SVML="1")
        env["NUMBA_CACHE_DIR"] = tmp
        command = [sys.executable, "-c", "from kmpress.kernels_numba._compile import serve; serve()"]
        failed = compile_in_processes(kernels, processes, command, env=env, expect=False)
        if failed:
            raise SystemExit(f"prebuild: {len(failed)} kernels did not compile: {', '.join(k.key for k in failed)}")
        [folder] = [p for p in Path(tmp).iterdir() if p.is_dir()]
        manifest_kernels = entries()
        for e in manifest_kernels:
            key = (e["sig"], magic, tuple(e["code"]))
            with open(folder / e["index"], "rb") as f:
                pickle.load(f)
                _, overloads = pickle.loads(f.read())
            if key not in overloads:
                raise SystemExit(f"prebuild: {e['key']}: no entry {key} in {e['index']}")
        files = sorted(p for p in folder.iterdir() if p.suffix in (".nbi", ".nbc"))
        digest = hashlib.sha256()
        for p in files:
            digest.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
        manifest = {
            "numba": numba.__version__,
            "python": prebuilt.python_tag(),
            "triple": triple,
            "cpu_name": magic[1],
            "cpu_features": magic[2],
            "id": digest.hexdigest(),
            "kernels": manifest_kernels,
        }
        archive.parent.mkdir(parents=True, exist_ok=True)
        part = archive.with_name(archive.name + ".part")
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            for p in files:  # a fixed date: the archive changes only with its content
                z.writestr(zipfile.ZipInfo(p.name, (2020, 1, 1, 0, 0, 0)), p.read_bytes(), zipfile.ZIP_DEFLATED)
            z.writestr(zipfile.ZipInfo(prebuilt.MANIFEST, (2020, 1, 1, 0, 0, 0)), json.dumps(manifest, indent=1))
        os.replace(part, archive)
    return archive


def main(argv: list[str] | None = None) -> None:
    """Run the build (or the check) from the command line."""
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--check", action="store_true", help="only say whether the archive is current (exit 1 if not)")
    ap.add_argument("-j", "--processes", type=int, default=2, help="worker processes compiling at once")
    opts = ap.parse_args(argv)
    if opts.check:
        why = stale()
        for line in why:
            print(f"stale: {line}")
        sys.exit(1 if why else 0)
    archive = build(processes=max(1, opts.processes))
    print(f"{archive} ({archive.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
