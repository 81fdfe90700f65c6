"""The kernel tests again with NUMBA_DISABLE_JIT=1, on small cases: every numba kernel then runs
as plain Python, which bounds-checks every index (compiled code does not)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from helpers import ROOT

#: kernel-level tests that are small enough in plain Python (test_kernels.py shrinks its photo)
SELECTION = [
    "tests/test_kernels.py",
    "tests/test_histogram.py::test_histogram_equals_the_counting_oracle",
    "tests/test_histogram.py::test_histogram_edge_cases",
    "tests/test_clustering.py::test_kmeans_plus_plus_equals_the_oracle",
    "tests/test_remap.py::test_floyd_steinberg_equals_the_oracle",
    "tests/test_remap.py::test_kernel_output_is_a_true_error_diffusion",
    "tests/test_palette.py::test_nearest_entry_equals_the_oracle",
    "tests/test_metrics.py::test_pixel_errors_of_an_arbitrary_remap",
]


def test_kernel_tests_pass_without_the_jit():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not needs_jit", *SELECTION]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = r.stdout[-3000:] + r.stderr[-2000:]
    assert r.returncode == 0, tail
    passed = re.search(r"(\d+) passed", r.stdout)
    assert passed and int(passed.group(1)) >= 40, tail
    assert " failed" not in r.stdout and "error" not in r.stdout.lower().split("passed")[-1], tail
