"""kmpress.pool: the task a worker runs, the local pool's crash recovery and its clean
interruption, temporary files of killed writes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers import gradient_photo as photo
from helpers import no_temp_files
from PIL import Image

from kmpress import Options
from kmpress.batch import compress_many, plan_batch
from kmpress.pool import run_local_pool
from kmpress.results import FileResult
from kmpress.workers import compress_file
from kmpress.writing import stale_temp_files, temp_path

# spawned workers import this module by name to find _crash_on_marker
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))


def test_compress_file_reports_instead_of_raising(tmp_path):
    r = compress_file(str(tmp_path / "missing.png"), str(tmp_path / "o.png"), Options(k=4))
    assert isinstance(r, FileResult) and r.status == "error" and "no such file" in r.message
    d = r.as_dict()
    assert d["status"] == "error" and d["src"].endswith("missing.png") and "width" not in d
    ok = compress_file(str(photo(tmp_path / "a.png")), str(tmp_path / "o.png"), Options(k=4, seed=1), threads=1)
    d = ok.as_dict()
    assert ok.status == "ok" and d["k"] == 4 and d["width"] == 96 and d["bits"]["ratio"] > 0


def _crash_on_marker(src, dst, options, threads):
    """A task that kills its worker process for files named crash*, like a segfault would."""
    if Path(src).name.startswith("crash"):
        os._exit(70)
    return compress_file(src, dst, options, threads)


def test_worker_crash_fails_only_its_file(tmp_path):
    srcs = [photo(tmp_path / f"ok{i}.png", seed=i) for i in range(3)] + [photo(tmp_path / "crash.png")]
    plan = plan_batch(srcs, Options(k=4), out_dir=tmp_path / "out")
    (tmp_path / "out").mkdir()  # compress_many's job; here the pool runner is called directly
    results = list(run_local_pool(plan.to_compress, plan.options, 2, 1, None, task=_crash_on_marker))
    by = {Path(r.src).name: r for r in results}
    assert len(results) == 4
    assert by["crash.png"].status == "error" and "worker process died" in by["crash.png"].message
    assert all(by[f"ok{i}.png"].status == "ok" for i in range(3))
    assert no_temp_files(tmp_path)


def test_stale_temp_files_are_found_by_pid(tmp_path):
    dst = tmp_path / "a-k16.png"
    mine = temp_path(dst)
    mine.write_bytes(b"partial")
    other = tmp_path / ".a-k16.png.999999999.1.tmp"
    other.write_bytes(b"someone else's")
    (tmp_path / ".b-k16.png.1.1.tmp").write_bytes(b"another file")
    assert stale_temp_files(dst, pids=[os.getpid()]) == [mine]
    assert sorted(stale_temp_files(dst)) == sorted([mine, other])


def test_interrupted_pool_leaves_no_partial_file(tmp_path):
    """Closing the generator mid-batch (what KeyboardInterrupt does) stops the workers and leaves
    only complete PNGs."""
    srcs = [photo(tmp_path / "in" / f"p{i}.png", size=(160, 120), seed=i) for i in range(8)]
    gen = compress_many(srcs, tmp_path / "out", 8, jobs=2)
    first = next(gen)
    gen.close()
    assert first.status == "ok"
    outs = list((tmp_path / "out").iterdir())
    assert no_temp_files(tmp_path)
    for p in outs:
        with Image.open(p) as im:
            im.load()  # complete, decodable files only


def test_memory_budget_lets_huge_files_run_one_after_the_other():
    from types import SimpleNamespace

    from kmpress.budget import BUDGET_SHARE, MemoryBudget

    b = MemoryBudget(total=int(1000 / BUDGET_SHARE) + 1)
    assert b.total == 1000
    b._need = {"big1": 800, "big2": 800, "s1": 100, "s2": 100, "s3": 150}
    queue = [SimpleNamespace(src=n) for n in ("big1", "big2", "s1", "s2", "s3")]
    started = []

    def start():
        i = b.pick(queue, len(started))
        if i is None:
            return None
        it = queue.pop(i)
        b.used += b.need(it.src)
        started.append(it.src)
        return it.src

    assert start() == "big1"
    assert start() == "s1"  # big2 waits: it does not fit beside big1; smaller files go ahead
    assert start() == "s2" and b.used == 1000
    assert start() is None  # s3 does not fit either now
    b.used -= b.need("big1")
    started.remove("big1")
    assert start() == "big2"  # now it fits beside the two small ones (1000)
    assert start() is None
    for name in ("s1", "s2", "big2"):
        b.used -= b.need(name)
        started.remove(name)
    assert start() == "s3" and b.used == 150
    # a file larger than the whole budget still runs, alone
    b2 = MemoryBudget(total=100)
    b2._need = {"huge": 10**12}
    assert b2.pick([SimpleNamespace(src="huge")], 0) == 0
    assert b2.pick([SimpleNamespace(src="huge")], 1) is None


def test_memory_budget_estimates_from_headers(tmp_path):
    from kmpress import limits
    from kmpress.budget import MemoryBudget

    a = photo(tmp_path / "a.png", size=(300, 200))
    (tmp_path / "bad.png").write_text("not an image")
    b = MemoryBudget(total=1 << 40)
    assert b.need(str(a)) == limits.job_bytes(300 * 200, 4)
    assert b.need(str(tmp_path / "bad.png")) == limits.RUNTIME_BYTES


# --------------------------------------------------------------------------------------------
# signals inside C callbacks: numba's compiler calls back into Python from C (llvmlite's object
# cache); an exception raised by a signal handler there is printed as "Exception ignored on
# calling ctypes callback" and lost. The handlers are run from inside a real ctypes callback
# (the main process's in test_interrupts.py).
# --------------------------------------------------------------------------------------------

_IN_A_CALLBACK = r"""
import ctypes, os, signal, sys, time
from kmpress import interrupts, process
{setup}
CALLBACK = ctypes.CFUNCTYPE(None)
ns = {{"os": os, "signal": signal, "time": time}}
# the callback's code claims to be llvmlite's, as the compiler's object-cache callbacks are
exec(compile("def body():\n    os.kill(os.getpid(), signal.{sig})\n    t = time.monotonic()\n"
             "    while time.monotonic() - t < 0.3:\n        pass\n", "{fake}", "exec"), ns)
cb = CALLBACK(ns["body"])
try:
{run}
except KeyboardInterrupt:
    print("interrupted after the callback", interrupts.received() == signal.{sig})
    sys.exit(0)
print("callback returned without the interrupt")
"""


def _run_in_callback(
    tmp_path, setup, sig, run, fake=f"{os.sep}site-packages{os.sep}llvmlite{os.sep}binding{os.sep}x.py"
):
    import subprocess
    import textwrap

    code = _IN_A_CALLBACK.format(setup=setup, sig=sig, run=textwrap.indent(run, "    "), fake=fake)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_worker_sigterm_inside_a_c_callback_exits_cleanly(tmp_path):
    dst = tmp_path / "out.png"
    setup = (
        "import kmpress.writing as kw\nfrom pathlib import Path\n"
        f"process._CURRENT_DST = {str(dst)!r}\nkw.temp_path(Path({str(dst)!r})).write_bytes(b'partial')\n"
        "signal.signal(signal.SIGTERM, process._on_sigterm)"
    )
    r = _run_in_callback(tmp_path, setup, "SIGTERM", "cb()")
    assert r.returncode == 128 + 15, (r.stdout, r.stderr)
    assert r.stderr == "" and r.stdout == ""  # nothing "ignored", no traceback
    assert list(tmp_path.iterdir()) == []  # the temporary file of the write in progress is gone


def test_every_file_of_a_breaking_pool_gets_its_result(tmp_path):
    """Files still queued when the pool breaks are not lost: each input yields one result."""
    srcs = [photo(tmp_path / f"crash{i}.png", seed=i) for i in range(3)]
    plan = plan_batch(srcs, Options(k=4), out_dir=tmp_path / "out")
    (tmp_path / "out").mkdir()
    results = list(run_local_pool(plan.to_compress, plan.options, 2, 1, None, task=_crash_on_marker))
    assert sorted(Path(r.src).name for r in results) == ["crash0.png", "crash1.png", "crash2.png"]
    assert all(r.status == "error" and "worker process died while compressing" in r.message for r in results)


def test_an_executor_that_refuses_work_fails_each_file(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    srcs = [photo(tmp_path / f"p{i}.png", seed=i) for i in range(3)]
    ex = ThreadPoolExecutor(1)
    ex.shutdown()  # submit now raises RuntimeError
    results = list(compress_many(srcs, tmp_path / "out", 4, executor=ex))
    assert sorted(Path(r.src).name for r in results) == ["p0.png", "p1.png", "p2.png"]
    assert all(r.status == "error" and "refused" in r.message and "RuntimeError" in r.message for r in results)


def test_batch_refused_in_a_worker_that_is_starting(tmp_path, monkeypatch):
    """What a spawned worker re-importing an unguarded script meets: an error naming the guard,
    before any work (no output folder made, nothing planned)."""
    import multiprocessing.process

    from kmpress import UnguardedMainError

    src = photo(tmp_path / "a.png")
    monkeypatch.setattr(multiprocessing.process.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(UnguardedMainError, match='__name__ == "__main__"'):
        next(compress_many([src], tmp_path / "out", 4))
    assert not (tmp_path / "out").exists()


UNGUARDED = """\
from kmpress import compress_many
n = 0
for r in compress_many(["a.png", "photos/"], out_dir="small", k=4, jobs=2):
    print(r.src, r.status, r.message or "done")
    n += 1
print("results:", n)
"""


@pytest.mark.parametrize("guarded", [False, True])
def test_script_with_and_without_the_main_guard(tmp_path, guarded):
    """A script that starts a pool at its top level (which each spawned worker re-imports) still
    gets one result per input, every output written, a warning that names the guard and exit
    status 0; a guarded one runs on the pool without a word on stderr."""
    import subprocess

    photo(tmp_path / "a.png", seed=9)
    for i in range(3):
        photo(tmp_path / "photos" / f"p{i}.png", seed=i)
    body = UNGUARDED
    if guarded:
        body = body.splitlines(keepends=True)
        body = body[0] + 'if __name__ == "__main__":\n' + "".join("    " + line for line in body[1:])
    (tmp_path / "script.py").write_text(body)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    r = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "results: 4"
    assert sorted(line.split()[0] for line in lines[:-1]) == [
        "a.png",
        "photos/p0.png",
        "photos/p1.png",
        "photos/p2.png",
    ]
    assert all(line.split()[1] == "ok" for line in lines[:-1]), r.stdout
    assert sorted(p.name for p in (tmp_path / "small").iterdir()) == ["a-k4.png", "p0-k4.png", "p1-k4.png", "p2-k4.png"]
    if guarded:
        assert r.stderr == ""
    else:
        assert "memory" not in r.stderr
        assert "RuntimeWarning: kmpress: the batch's worker processes exited while starting" in r.stderr
        assert "outside 'if __name__ == \"__main__\":', start it under that guard" in r.stderr
        assert "UnguardedMainError" in r.stderr


def test_ctrl_c_inside_a_compiled_kernel_is_an_interrupt(monkeypatch, tmp_path):
    """numba turns a KeyboardInterrupt raised inside a kernel into a SystemError caused by it;
    a batch must treat that as the interrupt (exit 130), not as a failed file."""
    import kmpress.workers
    from kmpress.options import Options
    from kmpress.workers import compress_file

    def interrupted(*args, **kwargs):
        try:
            raise KeyboardInterrupt()
        except KeyboardInterrupt as e:
            raise SystemError("CPUDispatcher(...) returned a result with an exception set") from e

    monkeypatch.setattr(kmpress.workers, "compress", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compress_file(str(tmp_path / "a.png"), str(tmp_path / "b.png"), Options(k=8))

    def broken(*args, **kwargs):
        raise SystemError("a real bug")

    monkeypatch.setattr(kmpress.workers, "compress", broken)
    r = compress_file(str(tmp_path / "a.png"), str(tmp_path / "b.png"), Options(k=8))
    assert r.status == "error" and "SystemError: a real bug" in r.message


def test_stopping_a_pool_with_files_waiting_prints_nothing(monkeypatch):
    # files submitted but not yet handed to a worker are dropped without the pool's own thread
    # tripping over them as it finds its workers gone (Python 3.11 printed an InvalidStateError
    # traceback on the terminal when they had been cancelled from outside meanwhile)
    import threading
    import time

    from kmpress.pool import _new_pool, _stop_pool

    errors: list = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    pool, started = _new_pool(1, 1)
    futures = [pool.submit(time.sleep, 60) for _ in range(6)]  # 2 go to the worker's queue, 4 wait
    deadline = time.monotonic() + 240
    while not started.value and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.value and futures[0].running() and not futures[-1].running()
    manager = pool._executor_manager_thread
    _stop_pool(pool, [])
    assert manager is not None
    manager.join(120)
    assert not manager.is_alive()
    assert [e.exc_value for e in errors] == []
    assert all(f.done() for f in futures)
