"""kmpress.dask_batch: batches on a Dask LocalCluster (processes, 2 workers, 1 thread each), and
on a cluster of separate processes (``dask scheduler``, two ``dask worker --nthreads 1``) whose
scheduler dies or freezes mid-batch under a ``kmpress`` process.

Small images only; two LocalClusters for the whole module (one healthy, one whose workers get
killed), and one process cluster per test that loses its scheduler, always stopped by their
fixtures. Skipped only when ``dask.distributed`` is not installed (the ``test`` extra installs
it), except the tests that simulate its absence.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import DATA, gradient_photo, run

from kmpress import compress_many  # the public export
from kmpress.dask_batch import (
    DASK_INSTALL_HINT,
    DaskNotInstalledError,
    SchedulerError,
    compress_many_dask,
    dask_executor,
    import_distributed,
    run_task,
    worker_threads,
)

try:
    import distributed  # noqa: F401

    HAVE_DASK = True
except ImportError:  # pragma: no cover - CI installs the extra
    HAVE_DASK = False

needs_dask = pytest.mark.skipif(not HAVE_DASK, reason='dask.distributed not installed (pip install "kmpress[dask]")')

# the workers import this module by name to find the crashing tasks below
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))


def photo(path: Path, size=(80, 60), seed=0) -> Path:
    """A small noisy gradient photo (many colours)."""
    return gradient_photo(path, size, seed)


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def settled(client, folder: Path, timeout: float = 30.0) -> Path:
    """``folder`` once the cluster has no task left (Dask may run a task a second time on another
    worker when one dies; that copy writes the same bytes through its own temporary file), so
    what is on disk is final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(client.processing().values()):
            break
        time.sleep(0.1)
    while temp_files(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    return folder


def _local_cluster(**config):
    import dask
    from distributed import Client, LocalCluster

    # the scheduler of a LocalCluster lives in this process and reads the config when it starts
    with dask.config.set(config):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster, set_as_default=False)
    return cluster, client


@pytest.fixture(scope="module")
def dask_client():
    if not HAVE_DASK:
        pytest.skip("dask.distributed not installed")
    cluster, client = _local_cluster()
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def fragile_client():
    """A cluster whose workers the tests kill. Each file goes to a worker as soon as it is
    submitted (worker-saturation inf: no queue on the scheduler) and stays there (no work
    stealing), so a dying worker also holds the files queued behind the one it runs, in an order
    set by their priority (the first submitted first); Dask gives a file up after its second dead
    worker (allowed-failures 1), to keep the tests short."""
    if not HAVE_DASK:
        pytest.skip("dask.distributed not installed")
    cluster, client = _local_cluster(
        **{
            "distributed.scheduler.allowed-failures": 1,
            "distributed.scheduler.worker-saturation": float("inf"),
            "distributed.scheduler.work-stealing": False,
        }
    )
    try:
        yield client
    finally:
        client.close()
        cluster.close()


# --------------------------------------------------------------------------------------------
# a healthy cluster
# --------------------------------------------------------------------------------------------


@needs_dask
def test_cluster_batch_is_byte_identical_to_local(dask_client, tmp_path):
    srcs = [photo(tmp_path / "in" / f"p{i}.png", seed=i) for i in range(5)]
    local = {Path(r.src).name: Path(r.dst).read_bytes() for r in compress_many(srcs, tmp_path / "local", 6, jobs=1)}
    results = list(compress_many_dask(srcs, tmp_path / "dask", 6, scheduler=dask_client))
    assert sorted(r.status for r in results) == ["ok"] * 5
    remote = {Path(r.src).name: Path(r.dst).read_bytes() for r in results}
    assert remote == local and len(local) == 5
    assert all(r.report.k == 6 and r.report.colors <= 6 and r.seconds > 0 for r in results)


@needs_dask
def test_plain_client_executor_works_unchanged(dask_client, tmp_path):
    """The documented route: compress_many(executor=client.get_executor()), nothing else."""
    srcs = [photo(tmp_path / f"p{i}.png", seed=i) for i in range(3)]
    results = list(compress_many(srcs, tmp_path / "out", 4, executor=dask_client.get_executor(pure=False)))
    assert sorted(r.status for r in results) == ["ok"] * 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0-k4.png", "p1-k4.png", "p2-k4.png"]


@needs_dask
def test_a_scheduler_that_answers_is_never_given_up(dask_client, tmp_path, monkeypatch):
    from kmpress import dask_batch

    monkeypatch.setattr(dask_batch, "PING_INTERVAL", 0.01)  # many checks during the batch
    srcs = [photo(tmp_path / f"p{i}.png", seed=i) for i in range(4)]
    results = list(compress_many_dask(srcs, tmp_path / "out", 4, scheduler=dask_client, scheduler_timeout=2))
    assert sorted(r.status for r in results) == ["ok"] * 4


@needs_dask
def test_relative_paths_resolve_against_the_client_folder(dask_client, tmp_path, monkeypatch):
    photo(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    results = list(compress_many_dask(["a.png"], "out", 4, scheduler=dask_client))
    assert [(r.status, r.src, r.dst) for r in results] == [("ok", "a.png", os.path.join("out", "a-k4.png"))]
    assert (tmp_path / "out" / "a-k4.png").is_file()


@needs_dask
def test_skips_and_bad_files_as_in_a_local_batch(dask_client, tmp_path):
    good = photo(tmp_path / "good.png")
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "done-k4.png").write_bytes(b"existing")
    photo(tmp_path / "done.png", seed=3)
    results = list(
        compress_many_dask(
            [good, tmp_path / "text.jpg", tmp_path / "missing.png", tmp_path / "done.png"],
            tmp_path / "out",
            4,
            scheduler=dask_client,
        )
    )
    by = {Path(r.src).name: r for r in results}
    assert by["good.png"].status == "ok"
    assert by["text.jpg"].status == "error" and "not an image" in by["text.jpg"].message
    assert by["missing.png"].status == "error" and "no such file" in by["missing.png"].message
    assert by["done.png"].status == "skipped"
    assert (tmp_path / "out" / "done-k4.png").read_bytes() == b"existing"
    assert not (tmp_path / "out" / "text-k4.png").exists() and not temp_files(tmp_path)


def _threads_in_task(src, dst):
    """numba's thread count in the task's own thread after the plain batch task (what a
    ``client.get_executor()`` runs) set it."""
    import numba

    from kmpress.options import Options
    from kmpress.workers import compress_file

    assert compress_file(src, dst, Options(k=4)).status == "ok"
    return worker_threads(), numba.get_num_threads()


@needs_dask
def test_each_task_uses_its_workers_threads(dask_client, tmp_path):
    src = photo(tmp_path / "a.png")
    # 1 thread per worker: the task must run numba on 1 thread whatever the machine has
    assert dask_client.submit(_threads_in_task, str(src), str(tmp_path / "a-k4.png"), pure=False).result() == (1, 1)
    assert worker_threads() is None  # not on a worker


# --------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------


def _die_mid_write(dst: str) -> None:
    """Leave a half-written temporary file of ``dst``, then kill this worker process."""
    from kmpress.writing import temp_path

    temp_path(Path(dst)).write_bytes(b"\x89PNG half")
    os._exit(70)


def _crashing_task(src, dst, options, threads=None, cwd=None):
    """run_task, except that ``once*`` files kill their worker on the first attempt (a marker
    file, created exclusively, remembers it across processes) and ``always*`` files on every
    attempt, each after leaving a partial temporary file."""
    name = Path(src).name
    if name.startswith("always"):
        _die_mid_write(dst)
    if name.startswith("once"):
        try:
            fd = os.open(str(Path(dst).parent.parent / f"{name}.crashed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            _die_mid_write(dst)
    return run_task(src, dst, options, threads, cwd)


def _files_queued_beside_this_task() -> int:
    """How many other tasks this task's Dask worker holds, waiting for its thread."""
    from distributed import get_worker

    return sum(1 for ts in list(get_worker().state.tasks.values()) if ts.state in ("ready", "constrained"))


def _crowded_killer(src, dst, options, threads=None, cwd=None):
    """run_task, except that ``crowd*`` files kill their worker on every attempt, each time once
    another file is queued on that worker (or after 1.5 s alone there), after leaving a partial
    temporary file, and ``slow*`` files take 0.5 s more. Each death leaves a marker
    ``crowd*.death.PID`` holding how many files were queued beside it."""
    name = Path(src).name
    if name.startswith("crowd"):
        deadline = time.monotonic() + 1.5
        while (queued := _files_queued_beside_this_task()) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        (Path(dst).parent.parent / f"{name}.death.{os.getpid()}").write_text(str(queued))
        _die_mid_write(dst)
    if name.startswith("slow"):
        time.sleep(0.5)
    return run_task(src, dst, options, threads, cwd)


@needs_dask
def test_dead_worker_loses_no_file(fragile_client, tmp_path):
    srcs = [photo(tmp_path / "in" / f"ok{i}.png", seed=i) for i in range(4)]
    srcs.append(photo(tmp_path / "in" / "once.png", seed=9))
    local = {Path(r.src).name: Path(r.dst).read_bytes() for r in compress_many(srcs, tmp_path / "local", 5, jobs=1)}
    results = list(compress_many_dask(srcs, tmp_path / "out", 5, scheduler=fragile_client, task=_crashing_task))
    assert (tmp_path / "once.png.crashed").exists()  # a worker really died on it
    assert sorted(r.status for r in results) == ["ok"] * 5  # and it was retried on another
    assert {Path(r.src).name: Path(r.dst).read_bytes() for r in results} == local
    assert not temp_files(tmp_path)


@needs_dask
def test_file_that_kills_every_worker_is_reported(fragile_client, tmp_path):
    srcs = [photo(tmp_path / "in" / f"ok{i}.png", seed=i) for i in range(3)]
    srcs.append(photo(tmp_path / "in" / "always.png"))
    results = list(compress_many_dask(srcs, tmp_path / "out", 5, scheduler=fragile_client, task=_crashing_task))
    by = {Path(r.src).name: r for r in results}
    assert len(results) == 4
    assert by["always.png"].status == "error" and "died" in by["always.png"].message
    assert "\n" not in by["always.png"].message
    assert all(by[f"ok{i}.png"].status == "ok" for i in range(3))
    assert sorted(p.name for p in settled(fragile_client, tmp_path / "out").iterdir()) == [
        "ok0-k5.png",
        "ok1-k5.png",
        "ok2-k5.png",
    ]
    assert not temp_files(tmp_path)
    fragile_client.wait_for_workers(2, timeout=30)  # the nannies restart the dead workers


@needs_dask
def test_innocent_files_queued_on_dying_workers_get_their_true_result(fragile_client, tmp_path):
    """The killing file runs first and kills each worker only once other files are queued there:
    those are on every worker it kills (Dask counts them as suspects too), yet each is compressed
    and reported ok, and the killing file is reported failed, once."""
    srcs = [photo(tmp_path / "in" / "crowd.png", seed=7)]
    srcs += [photo(tmp_path / "in" / f"slow{i}.png", seed=i) for i in range(3)]
    local = {Path(r.dst).name: Path(r.dst).read_bytes() for r in compress_many(srcs[1:], tmp_path / "local", 5, jobs=1)}
    results = list(compress_many_dask(srcs, tmp_path / "out", 5, scheduler=fragile_client, task=_crowded_killer))
    deaths = sorted(int(p.read_text()) for p in tmp_path.glob("crowd.png.death.*"))
    assert sum(1 for n in deaths if n > 0) >= 2, deaths  # innocent files were queued on dying workers
    assert sorted(Path(r.src).name for r in results) == sorted(p.name for p in srcs)  # each input once
    by = {Path(r.src).name: r for r in results}
    assert by["crowd.png"].status == "error" and "died" in by["crowd.png"].message, by["crowd.png"]
    assert "\n" not in by["crowd.png"].message
    assert {n: r.status for n, r in by.items() if n != "crowd.png"} == {f"slow{i}.png": "ok" for i in range(3)}
    assert all(r.report is not None for n, r in by.items() if n != "crowd.png")
    out = settled(fragile_client, tmp_path / "out")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == local  # and no output of the killing file
    assert not temp_files(tmp_path)
    fragile_client.wait_for_workers(2, timeout=60)  # the nannies restart the dead workers


# --------------------------------------------------------------------------------------------
# no cluster
# --------------------------------------------------------------------------------------------


@needs_dask
def test_unreachable_scheduler_is_one_clear_error(tmp_path):
    a = photo(tmp_path / "a.png")
    with pytest.raises(SchedulerError, match="cannot connect to the Dask scheduler tcp://127.0.0.1:9") as e:
        list(compress_many_dask([a], None, 4, scheduler="tcp://127.0.0.1:9", timeout=1))
    assert "\n" not in str(e.value)
    assert not list(tmp_path.glob("*.png"))[1:]  # only the input


def test_a_plan_with_options_beside_it_is_refused_before_any_work(tmp_path):
    # as compress_many: a BatchPlan carries its options, and k= beside it would be ignored
    from kmpress import InvalidParameterError, plan_batch

    plan = plan_batch([photo(tmp_path / "a.png")])
    with pytest.raises(InvalidParameterError, match="a BatchPlan carries its options"):
        list(compress_many_dask(plan, k=8, scheduler="tcp://127.0.0.1:9", timeout=1))
    assert not list(tmp_path.glob("*-k*.png"))


def test_without_dask_the_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(DaskNotInstalledError, match="kmpress\\[dask\\]") as e:
        import_distributed()
    assert DASK_INSTALL_HINT in str(e.value)
    with pytest.raises(DaskNotInstalledError):
        with dask_executor("tcp://127.0.0.1:8786"):
            pass
    assert worker_threads() is None


# --------------------------------------------------------------------------------------------
# the CLI: kmpress compress --scheduler
# --------------------------------------------------------------------------------------------


@needs_dask
def test_cli_scheduler_batch_matches_local_and_exit_codes(dask_client, tmp_path):
    import json

    srcs = [photo(tmp_path / f"p{i}.png", seed=i) for i in range(3)]
    local = run("compress", *srcs, "-k", 5, "-o", tmp_path / "local", "--json")
    assert local.exit_code == 0, local.stderr
    r = run(
        "compress",
        *[s.name for s in srcs],
        "-k",
        5,
        "-o",
        "dask",
        "--json",
        "--scheduler",
        dask_client.scheduler.address,
        cwd=tmp_path,
    )
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [f["status"] for f in doc["files"]] == ["ok"] * 3 and doc["exit_code"] == 0
    for s in srcs:
        name = f"{s.stem}-k5.png"
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    # a bad file among good ones: the others are written, exit code 1, the file named with its reason
    (tmp_path / "bad.jpg").write_text("not an image")
    r = run(
        "compress",
        srcs[0],
        tmp_path / "bad.jpg",
        "-o",
        tmp_path / "mixed",
        "--quiet",
        "--scheduler",
        dask_client.scheduler.address,
    )
    assert r.exit_code == 1
    assert "bad.jpg" in r.stderr and "not an image" in r.stderr and "Traceback" not in r.stderr
    assert [p.name for p in (tmp_path / "mixed").iterdir()] == ["p0-k16.png"]


@needs_dask
def test_cli_unreachable_scheduler_is_a_usage_error(tmp_path, monkeypatch):
    from kmpress import dask_batch

    monkeypatch.setattr(dask_batch, "CONNECT_TIMEOUT", 1.0)  # default 10 s
    a = photo(tmp_path / "a.png")
    r = run("compress", a, "--scheduler", "tcp://127.0.0.1:9")
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the Dask scheduler tcp://127.0.0.1:9" in lines[0], lines
    assert not (tmp_path / "a-k16.png").exists()


def test_cli_without_dask_says_how_to_install(monkeypatch, tmp_path):
    a = photo(tmp_path / "a.png")
    monkeypatch.setitem(sys.modules, "distributed", None)
    r = run("compress", a, "--scheduler", "tcp://127.0.0.1:8786")
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [f"kmpress: running on a Dask cluster needs Dask: {DASK_INSTALL_HINT}"]
    assert not (tmp_path / "a-k16.png").exists()


# --------------------------------------------------------------------------------------------
# a cluster of separate processes on loopback, and a scheduler lost mid-batch
# --------------------------------------------------------------------------------------------

PHOTOS = ("astronaut", "chelsea", "coffee")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessCluster:
    """``dask scheduler`` and two ``dask worker --nthreads 1``, as separate process groups on
    127.0.0.1, logging to files in ``folder``. Without nannies (which restart dead workers, not
    needed here): a worker then starts and, once its scheduler is lost, exits seconds sooner."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.procs: list[subprocess.Popen] = []
        self.scheduler = self._start(
            "scheduler", "distributed.cli.dask_scheduler", "--port", self.address.rsplit(":", 1)[1]
        )
        self.workers = [
            self._start(
                f"worker{i}",
                "distributed.cli.dask_worker",
                self.address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--local-directory",
                str(folder),
            )
            for i in range(2)
        ]

    def _start(self, name: str, module: str, *args: str) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "wb") as log:
            p = subprocess.Popen(
                [sys.executable, "-m", module, "--host", "127.0.0.1", "--no-dashboard", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                start_new_session=True,
            )
        self.procs.append(p)
        return p

    def wait_ready(self, timeout: float = 90) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=timeout)

    def wait_workers_gone(self, timeout: float = 30) -> None:
        """Workers close when they lose their scheduler: wait for that (then nothing writes)."""
        for p in self.workers:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pytest.fail("a Dask worker did not close after losing its scheduler")

    def stop(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # its group: whatever it started too
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def process_cluster(tmp_path):
    """A fresh process cluster: the test takes its scheduler down. Always stopped."""
    if not HAVE_DASK:
        pytest.skip("dask.distributed not installed")
    folder = tmp_path / "cluster"
    folder.mkdir()
    cluster = ProcessCluster(folder)
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()


def many_photos(folder: Path, n: int = 24) -> Path:
    """``n`` copies of the test photos (0.26 MP: at K=4 NumPy's work, so the workers need not
    load numba; about 0.2 s each on a worker thread)."""
    folder.mkdir(parents=True)
    for i in range(n):
        name = PHOTOS[i % len(PHOTOS)]
        shutil.copyfile(DATA / f"{name}.png", folder / f"{name}{i:02d}.png")
    return folder


def local_outputs(tmp_path: Path) -> dict[str, bytes]:
    """The bytes of a local run on each distinct test photo, K=4."""
    from kmpress import compress

    out = {}
    for name in PHOTOS:
        dst = tmp_path / "local" / f"{name}.png"
        dst.parent.mkdir(exist_ok=True)
        compress(DATA / f"{name}.png", dst, k=4)
        out[name] = dst.read_bytes()
    return out


def kmpress_process(*args, cwd, cluster: ProcessCluster | None = None) -> subprocess.Popen:
    """The CLI as a user runs it: its own process, stdout and stderr apart (stopped with the
    ``cluster``, if any, whatever the test's outcome)."""
    p = subprocess.Popen(
        [sys.executable, "-m", "kmpress", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    if cluster is not None:
        cluster.procs.insert(0, p)
    return p


def signal_scheduler_mid_batch(
    cluster: ProcessCluster, proc: subprocess.Popen, out: Path, sig: int, after: int = 3
) -> None:
    """Send ``sig`` to the scheduler once ``after`` outputs exist (the batch is running)."""
    deadline = time.monotonic() + 120
    while len(list(out.glob("*.png"))) < after:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the batch did not get going: {proc.communicate()}")
        time.sleep(0.02)
    os.kill(cluster.scheduler.pid, sig)


@needs_dask
def test_scheduler_killed_mid_batch_is_one_line_and_written_files_are_reported(process_cluster, tmp_path):
    photos = many_photos(tmp_path / "many")
    proc = kmpress_process(
        "compress",
        photos,
        "-o",
        "out",
        "-k",
        4,
        "--scheduler",
        process_cluster.address,
        cwd=tmp_path,
        cluster=process_cluster,
    )
    signal_scheduler_mid_batch(process_cluster, proc, tmp_path / "out", signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 75, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert re.fullmatch(
        rf"kmpress: the Dask scheduler {process_cluster.address} was lost \(its connection closed\): "
        r"\d+ of 24 files not done \(run the same command again to do them\)",
        lines[0],
    ), lines[0]
    written, not_done = map(int, re.search(r"(\d+) written, 0 skipped, 0 failed, (\d+) not done", stdout).groups())
    assert written + not_done == 24 and written >= 3 and not_done > 0
    assert lines[0].split(": ")[2].startswith(f"{not_done} of 24")
    local = local_outputs(tmp_path)
    process_cluster.wait_workers_gone()  # nothing can be written any more
    on_disk = sorted((tmp_path / "out").glob("*.png"))
    assert len(on_disk) == written  # a file written is reported written, and only such a file
    assert all(p.read_bytes() == local[re.sub(r"\d+-k4$", "", p.stem)] for p in on_disk)
    assert not temp_files(tmp_path / "out")


@needs_dask
def test_scheduler_terminated_mid_batch_in_json(process_cluster, tmp_path):
    photos = many_photos(tmp_path / "many")
    proc = kmpress_process(
        "compress",
        photos,
        "-o",
        "out",
        "-k",
        4,
        "--json",
        "--scheduler",
        process_cluster.address,
        cwd=tmp_path,
        cluster=process_cluster,
    )
    signal_scheduler_mid_batch(process_cluster, proc, tmp_path / "out", signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 75, stderr
    doc = json.loads(stdout)
    assert doc["exit_code"] == 75 and len(doc["files"]) == 24
    assert doc["error"].startswith(f"the Dask scheduler {process_cluster.address} was lost")
    assert stderr.strip().splitlines() == [f"kmpress: {doc['error']}"]
    ok = [f for f in doc["files"] if f["status"] == "ok"]
    not_done = [f for f in doc["files"] if f["status"] != "ok"]
    assert not_done and all(
        f["error_type"] == "SchedulerLostError" and f["message"].startswith("not done: the Dask scheduler")
        for f in not_done
    )
    assert doc["summary"]["not_done"] == len(not_done) and doc["summary"]["ok"] == len(ok)
    process_cluster.wait_workers_gone()
    on_disk = {p.name for p in (tmp_path / "out").glob("*.png")}
    assert on_disk == {Path(f["dst"]).name for f in ok}
    assert not temp_files(tmp_path / "out")


@needs_dask
def test_frozen_scheduler_is_given_up_after_scheduler_timeout(process_cluster, tmp_path):
    """SIGSTOP: the scheduler's connections stay open and nothing answers (a network partition
    looks the same). Without --scheduler-timeout the batch would wait for as long as it lasts."""
    photos = many_photos(tmp_path / "many")
    proc = kmpress_process(
        "compress",
        photos,
        "-o",
        "out",
        "-k",
        4,
        "--scheduler",
        process_cluster.address,
        "--scheduler-timeout",
        2,
        cwd=tmp_path,
        cluster=process_cluster,
    )
    signal_scheduler_mid_batch(process_cluster, proc, tmp_path / "out", signal.SIGSTOP)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        os.kill(process_cluster.scheduler.pid, signal.SIGKILL)
    assert proc.returncode == 75, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "was lost (it did not answer for 2 s)" in lines[0], stderr
    written = int(re.search(r"(\d+) written, 0 skipped, 0 failed, \d+ not done", stdout).group(1))
    # every file reported written is there (workers that kept going may add more later)
    assert written >= 3 and len(list((tmp_path / "out").glob("*.png"))) >= written


@pytest.mark.parametrize("address", ["tcp://127.0.0.1", "http://127.0.0.1:8786"])
@needs_dask
def test_malformed_scheduler_address_is_one_line_and_exits_at_once(tmp_path, address):
    """Refused before a Dask Client exists: one that failed to connect would hold the process
    20 s at exit and print a traceback ("Exception ignored in: Client.__del__")."""
    photo(tmp_path / "a.png")
    proc = kmpress_process("compress", "a.png", "--json", "--scheduler", address, cwd=tmp_path)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    msg = f"not a Dask scheduler address: '{address}'"
    assert stderr.strip().splitlines()[0].startswith(f"kmpress: {msg}") and len(stderr.strip().splitlines()) == 1, (
        stderr
    )
    assert json.loads(stdout)["error"].startswith(msg)
    assert not (tmp_path / "a-k16.png").exists()


def test_scheduler_timeout_is_checked_by_the_options():
    from kmpress import InvalidParameterError, Options

    assert Options(scheduler_timeout=2).scheduler_timeout == 2.0 and Options().scheduler_timeout is None
    for bad in (0, -1, "soon", float("nan")):
        with pytest.raises(InvalidParameterError, match="scheduler_timeout"):
            Options(scheduler_timeout=bad)
    r = run("compress", "a.png", "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", 0)
    assert r.exit_code == 2 and "--scheduler-timeout must be" in r.stderr
