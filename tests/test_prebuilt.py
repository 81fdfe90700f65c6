"""The prebuilt portable kernel cache: current with the sources, chosen only where its code runs
and numba's own cache lacks kernels, unpacked once (also by concurrent first runs), and never a
failure where nothing can be written (the native tier then runs, as without it)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from kmpress import backends, prebuilt
from kmpress.kernels_numba import prebuild

pytestmark = pytest.mark.needs_jit


def test_the_shipped_archive_is_current():
    why = prebuild.stale()
    assert not why, f"the prebuilt kernels are stale, rebuild them: {prebuild.COMMAND}\n" + "\n".join(why[:12])
    # every registered kernel, and its index and data files, are in it
    doc = prebuilt.read_manifest(prebuilt.archive_path(_host({})["numba"]))
    assert doc is not None
    assert {k["key"] for k in doc["kernels"]} == {k.key for k in backends.load("numba").all_kernels()}


def test_a_kernel_edit_makes_the_archive_stale(monkeypatch):
    stamps = prebuilt.source_stamps()
    monkeypatch.setattr(prebuilt, "source_stamps", lambda: {**stamps, "_color.py": "0" * 64})
    why = prebuild.stale()
    assert why and all("_color:" in line and "stamp" in line for line in why), why


def _host(over: dict, tmp: Path | None = None) -> dict:
    host = backends._host()
    host["leave"] = False  # this process made numba's code generator long ago: pretend it is a new one
    if tmp is not None:
        host.update(cache_dir=str(tmp / "cache"), folder_of=lambda source: str(tmp / "native"))
    host.update(over)
    return host


@pytest.fixture
def facts(monkeypatch):
    monkeypatch.setattr(backends, "_facts", {})
    monkeypatch.setattr(backends, "_tier_wanted", None)
    return backends._facts


def _subpath() -> str:
    return backends._host()["subpath_of"](str(prebuilt.SOURCES / "_color.py"))


def test_an_empty_cache_takes_the_portable_tier_which_holds_every_kernel(tmp_path, facts):
    root = backends._portable_root(prebuilt, _host({}, tmp_path))
    assert root is not None and root.parent == tmp_path / "cache" / prebuilt.FOLDER
    folder = root / _subpath()
    assert str(folder) == facts["portable_dir"]
    doc = prebuilt.read_manifest(prebuilt.archive_path(_host({})["numba"]))
    assert doc is not None
    host = _host({})
    assert prebuilt.missing(folder, doc, (host["triple"], prebuilt.PORTABLE_CPU, "")) == []
    assert len(facts["native_missing"]) == len(doc["kernels"])
    # again: the folder unpacked before is used as it is
    (folder / "marker").write_text("")
    assert backends._portable_root(prebuilt, _host({}, tmp_path)) == root and (folder / "marker").exists()


@pytest.mark.parametrize(
    "over",
    [
        {"features": {"avx": True, "sse4.2": True}},  # a CPU below x86-64-v3
        {"numba": "0.0.1"},  # a numba the package has no archive for
        {"triple": "x86_64-apple-darwin"},  # another platform's archive
        {"leave": True},  # NUMBA_CPU_NAME / NUMBA_CPU_FEATURES set by the user, or numba already set up
    ],
    ids=["old-cpu", "other-numba", "other-platform", "user-cpu"],
)
def test_never_where_the_portable_code_does_not_belong(tmp_path, facts, over):
    assert backends._portable_root(prebuilt, _host(over, tmp_path)) is None
    assert not (tmp_path / "cache").exists()  # nothing unpacked


def test_never_once_numbas_own_cache_holds_every_kernel(tmp_path, facts):
    root = backends._portable_root(prebuilt, _host({}, tmp_path))
    assert root is not None
    # a "native" cache holding every kernel for this (pretended) CPU: the portable tier is not used
    native = tmp_path / "complete"
    shutil.copytree(root / _subpath(), native)
    over = {"cpu_name": prebuilt.PORTABLE_CPU, "cpu_features": "", "folder_of": lambda source: str(native)}
    assert backends._portable_root(prebuilt, _host(over, tmp_path)) is None
    assert facts["native_missing"] == []
    # one kernel missing from it: the portable tier again
    next(native.glob("_ssim2.ssim2_rows_u8-*.nbi")).unlink()
    assert backends._portable_root(prebuilt, _host(over, tmp_path)) == root
    assert facts["native_missing"] == ["kmpress.kernels_numba._ssim2:ssim2_rows_u8"]


def test_nowhere_to_unpack_means_the_native_tier_without_a_failure(tmp_path, facts, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    blocked = tmp_path / "a-file" / "x"
    monkeypatch.setattr(prebuilt.tempfile, "gettempdir", lambda: str(blocked))
    over = {"cache_dir": str(blocked / "cache"), "folder_of": lambda source: str(blocked / "native")}
    assert backends._portable_root(prebuilt, _host(over)) is None
    assert prebuilt.cache_root(str(blocked), None) is None
    # no folder numba would cache in at all: every kernel is missing, still no failure
    assert backends._portable_root(prebuilt, _host({**over, "folder_of": lambda s: None})) is None


def test_concurrent_first_runs_unpack_once(tmp_path):
    archive = prebuilt.archive_path(_host({})["numba"])
    doc = prebuilt.read_manifest(archive)
    assert doc is not None
    got: list = []
    gate = threading.Barrier(6)

    def run() -> None:
        gate.wait()
        got.append(prebuilt.unpack(archive, doc, tmp_path, "kernels_numba_x"))

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6 and len(set(got)) == 1 and got[0] is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == [got[0].name]  # no temporary folder left
    files = sorted(p.name for p in (got[0] / "kernels_numba_x").iterdir())
    assert files == sorted(_members(archive))


def _members(archive: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(archive) as z:
        return z.namelist()


def test_every_shipped_archive_matches_the_sources():
    # the archives of other Pythons too (their bytecode hashes are checked under their own Python)
    here = {e["key"]: e for e in prebuild.entries()}
    archives = sorted(prebuilt.ARCHIVES.glob("numba-*.zip"))
    assert prebuilt.archive_path(_host({})["numba"]) in archives
    for archive in archives:
        doc = prebuilt.read_manifest(archive)
        assert doc is not None, archive.name
        assert archive.name == f"numba-{doc['numba']}-{doc['python']}-{prebuilt.PORTABLE_CPU}.zip"
        got = {k["key"]: k for k in doc["kernels"]}
        rebuild = f"{archive.name} is stale: rebuild it with {prebuild.COMMAND} (under {doc['python']})"
        assert set(got) == set(here), rebuild
        for key, want in here.items():
            have = got[key]
            fields = ("source", "stamp", "sig")
            assert [have[f] for f in fields] == [want[f] for f in fields], rebuild
            assert have["index"].rsplit(".py", 1)[0] == want["index"].rsplit(".py", 1)[0], rebuild


def test_a_package_reached_through_a_symlink_loads_its_prebuilt_kernels(tmp_path):
    # numba names its cache folder after the modules' path as imported, not the resolved one
    import os
    import subprocess
    import sys

    import kmpress

    (tmp_path / "path").mkdir()
    (tmp_path / "path" / "kmpress").symlink_to(Path(kmpress.__file__).parent, target_is_directory=True)
    code = (
        "from kmpress import backends; backends.own_process(); kn = backends.load('numba'); "
        "ks = kn.all_kernels(); print(backends.tier()['tier'], sum(k.cached() for k in ks), len(ks))"
    )
    drop = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PYTHONPATH=str(tmp_path / "path"), NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    tier, cached, kernels = r.stdout.split()
    host = _host({})
    if prebuilt.runs_here(host["features"]):
        assert tier == "portable" and cached == kernels, r.stdout
