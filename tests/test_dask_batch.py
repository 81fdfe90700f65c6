"""kmpress.dask_batch: batches on a Dask LocalCluster (processes, 2 workers, 1 thread each).

Small images only; two clusters for the whole module (one healthy, one whose workers get killed),
always closed by their fixtures. Skipped only when ``dask.distributed`` is not installed (the
``test`` extra installs it), except the tests that simulate its absence.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 127 // (w + h - 2)], axis=2)
    img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def _local_cluster(**config):
    import dask
    from distributed import Client, LocalCluster

    # the scheduler of a LocalCluster lives in this process and reads the config when it starts
    with dask.config.set(config):
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
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
    """A cluster whose workers the tests kill. One task per worker at a time (worker-saturation
    1.0), so a dying worker holds only the file that kills it; a file is given up after its
    second dead worker (allowed-failures 1) to keep the test short."""
    if not HAVE_DASK:
        pytest.skip("dask.distributed not installed")
    cluster, client = _local_cluster(
        **{"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}
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
    """What the issue promises: compress_many(executor=client.get_executor())."""
    srcs = [photo(tmp_path / f"p{i}.png", seed=i) for i in range(3)]
    results = list(compress_many(srcs, tmp_path / "out", 4, executor=dask_client.get_executor(pure=False)))
    assert sorted(r.status for r in results) == ["ok"] * 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0-k4.png", "p1-k4.png", "p2-k4.png"]


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
    from kmpress.pool import compress_file

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
    from kmpress.io import temp_path

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
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ok0-k5.png", "ok1-k5.png", "ok2-k5.png"]
    assert not temp_files(tmp_path)
    fragile_client.wait_for_workers(2, timeout=30)  # the nannies restart the dead workers


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


def kmpress(*args, cwd=None):
    """Run the CLI in this process (typer's CliRunner); stdout and stderr apart."""
    from typer.testing import CliRunner

    from kmpress.cli.main import app

    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        return CliRunner().invoke(app, [str(a) for a in args], prog_name="kmpress")
    finally:
        os.chdir(old)


@needs_dask
def test_cli_scheduler_batch_matches_local_and_exit_codes(dask_client, tmp_path):
    import json

    srcs = [photo(tmp_path / f"p{i}.png", seed=i) for i in range(3)]
    local = kmpress("compress", *srcs, "-k", 5, "-o", tmp_path / "local", "--json")
    assert local.exit_code == 0, local.stderr
    r = kmpress("compress", *[s.name for s in srcs], "-k", 5, "-o", "dask", "--json", "--scheduler", dask_client.scheduler.address, cwd=tmp_path)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [f["status"] for f in doc["files"]] == ["ok"] * 3 and doc["exit_code"] == 0
    for s in srcs:
        name = f"{s.stem}-k5.png"
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    # a bad file among good ones: the others are written, exit code 1, the file named with its reason
    (tmp_path / "bad.jpg").write_text("not an image")
    r = kmpress("compress", srcs[0], tmp_path / "bad.jpg", "-o", tmp_path / "mixed", "--quiet", "--scheduler", dask_client.scheduler.address)
    assert r.exit_code == 1
    assert "bad.jpg" in r.stderr and "not an image" in r.stderr and "Traceback" not in r.stderr
    assert [p.name for p in (tmp_path / "mixed").iterdir()] == ["p0-k16.png"]


@needs_dask
def test_cli_unreachable_scheduler_is_a_usage_error(tmp_path, monkeypatch):
    from kmpress import dask_batch

    monkeypatch.setattr(dask_batch, "CONNECT_TIMEOUT", 1.0)  # default 10 s
    a = photo(tmp_path / "a.png")
    r = kmpress("compress", a, "--scheduler", "tcp://127.0.0.1:9")
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the Dask scheduler tcp://127.0.0.1:9" in lines[0], lines
    assert not (tmp_path / "a-k16.png").exists()


def test_cli_without_dask_says_how_to_install(monkeypatch, tmp_path):
    a = photo(tmp_path / "a.png")
    monkeypatch.setitem(sys.modules, "distributed", None)
    r = kmpress("compress", a, "--scheduler", "tcp://127.0.0.1:8786")
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [f"kmpress: running on a Dask cluster needs Dask: {DASK_INSTALL_HINT}"]
    assert not (tmp_path / "a-k16.png").exists()
