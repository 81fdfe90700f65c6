"""The same results on every x86-64 CPU, checked on this one: the probe of ``tests/e2e/cpu_probe.py``
(OKLab conversions, error figures, whole compressions on both backends) computed here, then again
in a child process where NumPy runs without any of its run-time SIMD targets (no AVX2, FMA or
AVX-512 code paths: ``NPY_DISABLE_CPU_FEATURES``), its OpenBLAS uses the kernels of a CPU without
FMA (``OPENBLAS_CORETYPE=Nehalem``) and numba compiles for a generic x86-64
(``NUMBA_CPU_NAME=generic``, into an empty cache of its own); and in a child process that loads the
prebuilt portable kernels shipped with the package (compiled for x86-64-v3, from an empty cache).
Every hash and every figure must be equal, and equal between the backends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cpu_probe
import llvmlite.binding as ll
import numba
import pytest

from kmpress import prebuilt

TESTS = Path(__file__).resolve().parent


def _without_backend(doc: dict) -> dict:
    # "photo/kK/mode/backend" -> {"photo/kK/mode": {backend: figures}}
    out: dict = {}
    for key, figures in doc.items():
        case, backend = key.rsplit("/", 1)
        out.setdefault(case, {})[backend] = figures
    return out


def _diff(a: dict, b: dict, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{path}/{k}")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.fixture(scope="module")
def here() -> dict:
    """The probe in this process, on numba's own kernels for this CPU (the test session compiled them)."""
    doc = cpu_probe.probe()
    assert cpu_probe.cpu_paths()["numba_tier"] == "native"
    return doc


def _child(env: dict[str, str]) -> dict:
    r = subprocess.run(
        [sys.executable, str(TESTS / "cpu_probe.py")], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_same_bytes_and_figures_under_other_cpu_code_paths(tmp_path, here):
    # both backends agree, in this process
    for figures in here["kernels"].values():
        assert figures == here["kernels"]["numba"], _diff(figures, here["kernels"]["numba"])[:5]
    for case, by_backend in _without_backend(here["compressions"]).items():
        assert by_backend["numpy"] == by_backend["numba"], (case, _diff(by_backend["numpy"], by_backend["numba"])[:5])

    disabled = cpu_probe.cpu_paths()["numpy_dispatch_on"]
    env = dict(
        os.environ, NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), OPENBLAS_CORETYPE="Nehalem"
    )
    env["NPY_DISABLE_CPU_FEATURES"] = " ".join([os.environ.get("NPY_DISABLE_CPU_FEATURES", ""), *disabled]).strip()
    child = _child(env)
    # the child really ran other code paths
    want = {"numpy_dispatch_on": [], "numba_cpu_name": "generic", "numba_tier": "native"}
    assert child["paths"] == want, child["paths"]
    diffs = _diff(child["probe"], here)
    assert not diffs, f"{len(diffs)} differences without {disabled} and for a generic CPU, e.g. " + "; ".join(diffs[:6])


def test_same_bytes_and_figures_from_the_prebuilt_portable_kernels(tmp_path, here):
    drop = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")  # empty: numba's own cache lacks every kernel
    child = _child(env)
    # the child loaded the prebuilt kernels (where this CPU runs them)
    portable = prebuilt.runs_here(ll.get_host_cpu_features()) and prebuilt.archive_path(numba.__version__).exists()
    assert child["paths"]["numba_tier"] == ("portable" if portable else "native"), child["paths"]
    assert child["paths"]["numba_cpu_name"] == (prebuilt.PORTABLE_CPU if portable else None), child["paths"]
    diffs = _diff(child["probe"], here)
    assert not diffs, f"{len(diffs)} differences with the prebuilt kernels, e.g. " + "; ".join(diffs[:6])
