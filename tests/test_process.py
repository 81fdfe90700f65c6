"""kmpress.process: the process-wide switches of a process that runs only kmpress (the
collector's; the signals' are in test_interrupts.py and test_pool.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import gc, json, sys
from kmpress.process import kmpress_process, writing

if sys.argv[1] == "off":
    gc.disable()
seen = {"before": gc.isenabled()}
with kmpress_process("worker"):
    seen["start"] = gc.isenabled()
    for i in range(int(sys.argv[2])):
        with writing(f"out{i}.png"):
            seen[f"file {i}"] = [gc.isenabled(), gc.get_freeze_count() > 0]
seen["after"] = [gc.isenabled(), gc.get_freeze_count()]
print(json.dumps(seen))
"""


def _run(collector: str, files: int) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, collector, str(files)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_the_collector_waits_for_the_second_file_then_scans_only_new_objects():
    seen = _run("on", 3)
    assert seen["before"] is True and seen["start"] is False
    # the first file runs with the collector off; from the second on it runs, the objects made
    # before frozen out of its scans
    assert seen["file 0"] == [False, False]
    assert seen["file 1"] == [True, True]
    assert seen["file 2"] == [True, True]
    assert seen["after"] == [True, 0]  # as it was: on, nothing frozen


def test_one_file_never_pays_for_a_collection():
    seen = _run("on", 1)
    assert seen["file 0"] == [False, False]
    assert seen["after"] == [True, 0]


@pytest.mark.parametrize("files", [1, 2])
def test_a_collector_switched_off_by_the_caller_stays_off(files):
    seen = _run("off", files)
    assert seen["before"] is False and seen["start"] is False
    assert all(seen[f"file {i}"] == [False, False] for i in range(files))
    assert seen["after"] == [False, 0]
