"""kmpress.batch: planning outputs, and compress_many running a batch in-process, in a spawn
pool and on any executor. Small images only (CI time)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
from helpers import gradient_photo as photo
from helpers import no_temp_files, small_jpeg
from PIL import Image

import kmpress
from kmpress import InvalidParameterError, KmpressError, Options
from kmpress.batch import BatchPlan, compress_many, image_extensions, output_name, plan_batch, run_plan, summarize
from kmpress.results import FileResult
from kmpress.runs import BatchRun

# --------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------


def test_output_name_default_and_suffix():
    assert output_name("a/photo.jpg", 16) == "photo-k16.png"
    assert output_name("photo.tar.gz", 4) == "photo.tar-k4.png"
    assert output_name("x.jpg", 8, "_q{k}") == "x_q8.png"
    assert output_name("x.jpg", 8, "") == "x.png"
    with pytest.raises(InvalidParameterError):
        output_name("x.jpg", 8, "a/b")


def test_image_extensions_cover_common_formats():
    exts = image_extensions()
    assert {".jpg", ".jpeg", ".png", ".webp", ".tif", ".bmp"} <= exts
    assert ".txt" not in exts


def test_plan_names_beside_input_or_in_out_dir(tmp_path):
    a = photo(tmp_path / "in" / "a.jpg")
    plan = plan_batch([a], Options(k=16))
    assert [(it.src, it.dst, it.action) for it in plan.items] == [(a, a.with_name("a-k16.png"), "compress")]
    plan = plan_batch([a], Options(k=4), out_dir=tmp_path / "out", suffix=".small")
    assert plan.items[0].dst == tmp_path / "out" / "a.small.png"
    assert not (tmp_path / "out").exists()  # planning writes nothing


def test_plan_skips_existing_unless_force(tmp_path):
    a = photo(tmp_path / "a.jpg")
    a.with_name("a-k16.png").write_bytes(b"old")
    it = plan_batch([a], Options(k=16)).items[0]
    assert it.action == "skip" and "exists" in it.reason
    assert plan_batch([a], Options(k=16), force=True).items[0].action == "compress"


def test_plan_never_overwrites_an_input(tmp_path):
    a = photo(tmp_path / "a.png")
    it = plan_batch([a], Options(k=16), suffix="").items[0]
    assert it.action == "error" and "overwrite an input" in it.reason
    # another input of the same batch is protected too, even with --force
    b = photo(tmp_path / "b.jpg")
    b_out = photo(tmp_path / "b-k16.png")
    items = {it.src.name: it for it in plan_batch([b, b_out], Options(k=16), force=True).items}
    assert items["b.jpg"].action == "error" and "overwrite an input" in items["b.jpg"].reason
    assert items["b-k16.png"].action == "compress"


def test_a_collision_fails_only_the_inputs_involved(tmp_path):
    a = photo(tmp_path / "x" / "same.jpg")
    b = photo(tmp_path / "y" / "same.png")
    c = photo(tmp_path / "y" / "other.png", seed=3)
    plan = plan_batch([a, b, c], Options(k=16), out_dir=tmp_path / "out")
    by = {it.src: it for it in plan.items}
    for me, other in ((a, b), (b, a)):
        assert by[me].action == "error" and by[me].error_type == "OutputCollisionError"
        assert str(other) in by[me].reason and "same output" in by[me].reason and "\n" not in by[me].reason
    assert by[c].action == "compress"
    assert not (tmp_path / "out").exists()  # planning writes nothing
    # beside their inputs, a.jpg and a.png in one folder collide the same way; the rest is done
    d = tmp_path / "x"
    photo(d / "same.png", seed=1)
    photo(d / "lone.jpg", seed=2)
    results = {Path(r.src).name: r for r in compress_many([d], None, 4)}
    assert results["same.jpg"].status == results["same.png"].status == "error"
    assert "same.png" in results["same.jpg"].message and "same.jpg" in results["same.png"].message
    assert results["same.jpg"].error_type == "OutputCollisionError"
    assert results["lone.jpg"].status == "ok"
    assert sorted(p.name for p in d.iterdir()) == ["lone-k4.png", "lone.jpg", "same.jpg", "same.png"]


def test_folders_are_mirrored_under_out_dir(tmp_path):
    # a camera's card: the same names in several folders, and a.jpg beside a.png
    dcim = tmp_path / "DCIM"
    for i, rel in enumerate(
        [
            "100CANON/IMG_0001.JPG",
            "101CANON/IMG_0001.JPG",
            "IMG_0001.JPG",
            "101CANON/deep/IMG_0001.JPG",
            "101CANON/a.jpg",
            "101CANON/a.png",
        ]
    ):
        photo(dcim / rel, size=(24, 16), seed=i, fmt="JPEG" if rel.lower().endswith("jpg") else "PNG")
    out = tmp_path / "small"
    results = {str(Path(r.src).relative_to(dcim)): r for r in compress_many([dcim], out, 4, recursive=True, jobs=1)}
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == [
        "100CANON/IMG_0001-k4.png",
        "101CANON/IMG_0001-k4.png",
        "101CANON/deep/IMG_0001-k4.png",
        "IMG_0001-k4.png",
    ]
    for rel in ("100CANON/IMG_0001.JPG", "101CANON/IMG_0001.JPG", "IMG_0001.JPG", "101CANON/deep/IMG_0001.JPG"):
        assert results[rel].status == "ok" and Path(results[rel].dst).relative_to(out).parent == Path(rel).parent
    for mine, theirs in (("101CANON/a.jpg", "a.png"), ("101CANON/a.png", "a.jpg")):
        assert results[mine].status == "error" and theirs in results[mine].message
    assert no_temp_files(tmp_path)
    # without -r only the top folder's files; a re-run skips what exists
    assert [Path(it.src).name for it in plan_batch([dcim], Options(k=4), out_dir=out).items] == ["IMG_0001.JPG"]
    again = list(compress_many([dcim], out, 4, recursive=True, jobs=1))
    assert sorted(r.status for r in again) == ["error", "error", "skipped", "skipped", "skipped", "skipped"]


def test_several_folders_each_get_a_sub_folder_of_their_name(tmp_path):
    """As cp -r puts them: two folders of the same file names into one out_dir, with files named
    themselves at its top; one folder (even named twice) keeps its contents directly there."""
    lib = tmp_path / "photos"
    for season in ("2023-summer", "2023-autumn"):
        for i in range(3):
            photo(lib / season / f"DSC_000{i}.jpg", size=(24, 16), seed=i, fmt="JPEG")
        photo(lib / season / "sub" / "DSC_0000.jpg", size=(24, 16), fmt="JPEG")
    loose = photo(tmp_path / "loose.png", size=(24, 16))
    out = tmp_path / "sel"
    summer, autumn = lib / "2023-summer", lib / "2023-autumn"
    results = list(compress_many([summer, autumn, loose], out, 4, recursive=True, jobs=1))
    assert len(results) == 9 and all(r.status == "ok" for r in results)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == [
        "2023-autumn/DSC_0000-k4.png",
        "2023-autumn/DSC_0001-k4.png",
        "2023-autumn/DSC_0002-k4.png",
        "2023-autumn/sub/DSC_0000-k4.png",
        "2023-summer/DSC_0000-k4.png",
        "2023-summer/DSC_0001-k4.png",
        "2023-summer/DSC_0002-k4.png",
        "2023-summer/sub/DSC_0000-k4.png",
        "loose-k4.png",
    ]
    for r in results:  # each result names its own paths
        src, dst = Path(r.src), Path(r.dst)
        if src != loose:
            assert dst.relative_to(out).parts[0] == src.relative_to(lib).parts[0]
    # one folder, however often it is named: its contents directly under out_dir
    plan = plan_batch(
        [summer, str(summer) + "/", tmp_path / "photos" / ".." / "photos" / "2023-summer"],
        Options(k=4),
        out_dir=tmp_path / "one",
    )
    assert [str(it.dst.relative_to(tmp_path / "one")) for it in plan.items] == [
        "DSC_0000-k4.png",
        "DSC_0001-k4.png",
        "DSC_0002-k4.png",
    ]
    # without out_dir nothing changes: beside each input
    assert all(it.dst.parent == it.src.parent for it in plan_batch([summer, autumn], Options(k=4)).items)


def test_folders_of_the_same_name_are_told_apart_by_their_parents(tmp_path, monkeypatch):
    from kmpress.batch import folder_labels

    monkeypatch.chdir(tmp_path)
    for parent in ("a", "b", "."):
        photo(tmp_path / parent / "photos" / "IMG_1.jpg", size=(24, 16), fmt="JPEG")
    photo(tmp_path / "misc" / "IMG_1.jpg", size=(24, 16), fmt="JPEG")
    plan = plan_batch(["a/photos", "b/photos", "photos", "misc"], Options(k=4), out_dir="sel")
    assert [str(it.dst) for it in plan.items] == [
        "sel/a/photos/IMG_1-k4.png",
        "sel/b/photos/IMG_1-k4.png",
        f"sel/{tmp_path.name}/photos/IMG_1-k4.png",
        "sel/misc/IMG_1-k4.png",
    ]
    assert all(it.action == "compress" for it in plan.items)
    # the labels: distinct for distinct folders, the shortest tail of the path that is
    deep = [Path("x/y/photos"), Path("z/y/photos"), Path("y/photos"), Path("/"), Path("photos")]
    labels = folder_labels(deep)
    assert labels == {
        Path("x/y/photos"): Path("x/y/photos"),
        Path("z/y/photos"): Path("z/y/photos"),
        Path("y/photos"): Path(f"{tmp_path.name}/y/photos"),
        Path("/"): Path("."),
        Path("photos"): Path(f"{tmp_path.name}/photos"),
    }
    assert len(set(labels.values())) == len(deep)


def test_a_collision_left_between_folders_fails_only_its_inputs(tmp_path):
    """The sub-folder 2023/q of one folder and the folder m/2023/q (labelled 2023/q beside n/q)
    write the same outputs: those inputs fail, each naming the other; the rest is done."""
    photo(tmp_path / "p" / "2023" / "q" / "IMG.jpg", size=(24, 16), fmt="JPEG")
    photo(tmp_path / "p" / "2023" / "fine.jpg", size=(24, 16), fmt="JPEG")
    photo(tmp_path / "m" / "2023" / "q" / "IMG.jpg", size=(24, 16), seed=1, fmt="JPEG")
    photo(tmp_path / "n" / "q" / "IMG.jpg", size=(24, 16), seed=2, fmt="JPEG")
    folders = [tmp_path / "p" / "2023", tmp_path / "m" / "2023" / "q", tmp_path / "n" / "q"]
    out = tmp_path / "sel"
    by = {str(Path(r.src).relative_to(tmp_path)): r for r in compress_many(folders, out, 4, recursive=True, jobs=1)}
    assert len(by) == 4
    for mine, theirs in (("p/2023/q/IMG.jpg", "m/2023/q/IMG.jpg"), ("m/2023/q/IMG.jpg", "p/2023/q/IMG.jpg")):
        assert by[mine].status == "error" and str(tmp_path / theirs) in by[mine].message
        assert by[mine].error_type == "OutputCollisionError"
    assert by["p/2023/fine.jpg"].status == "ok" and Path(by["p/2023/fine.jpg"].dst) == out / "2023" / "fine-k4.png"
    assert by["n/q/IMG.jpg"].status == "ok" and Path(by["n/q/IMG.jpg"].dst) == out / "n" / "q" / "IMG-k4.png"
    assert not (out / "2023" / "q").exists()


def test_an_output_folder_that_cannot_be_made_fails_only_its_files(tmp_path):
    d = tmp_path / "in"
    photo(d / "top.png")
    photo(d / "sub" / "low.png", seed=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("a file where a folder should go")
    by = {Path(r.src).name: r for r in compress_many([d], out, 4, recursive=True, jobs=1)}
    assert by["top.png"].status == "ok"
    assert by["low.png"].status == "error" and "cannot create output folder" in by["low.png"].message


def test_symbolic_link_loops_and_broken_links_are_failed_inputs(tmp_path):
    d = tmp_path / "d"
    good = photo(d / "good.png")
    os.symlink("loop.jpg", d / "loop.jpg")  # a file that links to itself
    os.symlink("gone.png", d / "broken.png")
    (tmp_path / "fa").symlink_to(tmp_path / "fb")  # two folders that link to each other
    (tmp_path / "fb").symlink_to(tmp_path / "fa")
    (d / "sub").mkdir()
    (d / "sub" / "up").symlink_to(d)  # a folder link back up: never followed
    photo(d / "sub" / "deep.png", seed=1)
    for recursive in (False, True):
        plan = plan_batch(
            [tmp_path / "fa", d / "loop.jpg", d], Options(k=4), recursive=recursive, out_dir=tmp_path / "o"
        )
        by = {it.src.name: it for it in plan.items}
        assert by["fa"].action == by["loop.jpg"].action == by["broken.png"].action == "error"
        assert "symbolic link loop" in by["fa"].reason and "symbolic link loop" in by["loop.jpg"].reason
        assert "broken symbolic link" in by["broken.png"].reason
        assert by["good.png"].action == "compress"
        assert ("deep.png" in by) is recursive and len(plan.items) == 4 + recursive
    results = list(compress_many([tmp_path / "fa", d / "loop.jpg", d], tmp_path / "o", 4, recursive=True, jobs=1))
    assert sorted((Path(r.src).name, r.status) for r in results) == [
        ("broken.png", "error"),
        ("deep.png", "ok"),
        ("fa", "error"),
        ("good.png", "ok"),
        ("loop.jpg", "error"),
    ]
    assert good.exists() and (tmp_path / "o" / "sub" / "deep-k4.png").exists()
    # the single-file API names the loop too
    with pytest.raises(KmpressError, match="symbolic link loop"):
        kmpress.compress(d / "loop.jpg", tmp_path / "x.png", 4)


def test_plan_missing_path_duplicates_and_folders(tmp_path):
    a = photo(tmp_path / "d" / "a.jpg")
    photo(tmp_path / "d" / "b.png")
    photo(tmp_path / "d" / ".hidden.png")
    (tmp_path / "d" / "notes.txt").write_text("not an image")
    photo(tmp_path / "d" / "sub" / "c.jpg")
    plan = plan_batch([tmp_path / "d", a, tmp_path / "d" / ".." / "d" / "a.jpg", tmp_path / "nope.jpg"], Options(k=16))
    names = [(it.src.name, it.action) for it in plan.items]
    assert names == [("a.jpg", "compress"), ("b.png", "compress"), ("nope.jpg", "error")]
    assert plan.items[-1].dst is None and "no such file" in plan.items[-1].reason
    assert plan.n_found == 2
    rec = plan_batch([tmp_path / "d"], Options(k=16), recursive=True)
    assert [it.src.name for it in rec.items] == ["a.jpg", "b.png", "c.jpg"]


def test_plan_folder_rerun_does_not_take_outputs_as_inputs(tmp_path):
    d = tmp_path / "d"
    photo(d / "a.jpg")
    photo(d / "a-k16.png")  # output of an earlier run at K=16
    photo(d / "a-k4.png")  # ... and at K=4
    photo(d / "lonely-k8.png")  # no source beside it: an ordinary input
    out = d / "out"
    photo(out / "z.png")  # inside the output folder: never an input
    plan = plan_batch([d], Options(k=16), out_dir=out, recursive=True)
    assert sorted(it.src.name for it in plan.items) == ["a.jpg", "lonely-k8.png"]


def test_plan_rejects_an_out_dir_that_is_a_file(tmp_path):
    a = photo(tmp_path / "a.jpg")
    (tmp_path / "file").write_text("x")
    with pytest.raises(KmpressError, match="output folder is a file"):
        plan_batch([a], Options(k=16), out_dir=tmp_path / "file")


def test_batch_plan_type():
    assert isinstance(plan_batch([], Options(k=16)), BatchPlan) and plan_batch([], Options(k=16)).n_found == 0


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------


@pytest.fixture
def mixed_batch(tmp_path):
    """Three good photos, a corrupt one, a text file named .jpg and a missing path."""
    d = tmp_path / "in"
    good = [photo(d / f"good{i}.png", size=(64 + 32 * i, 64), seed=i) for i in range(3)]
    raw = photo(tmp_path / "whole.png", size=(128, 128), seed=9).read_bytes()
    (d / "corrupt.png").write_bytes(raw[: len(raw) // 2])
    (d / "text.jpg").write_text("this is not a JPEG\n")
    return d, good, [d / "corrupt.png", d / "text.jpg", d / "missing.jpg"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_bad_files_never_stop_the_others(mixed_batch, tmp_path, jobs):
    d, good, bad = mixed_batch
    out = tmp_path / "out"
    results = list(compress_many([*bad[:2], good[0], bad[2], *good[1:]], out, 8, jobs=jobs))
    by = {Path(r.src).name: r for r in results}
    assert len(results) == 6
    for g in good:
        r = by[g.name]
        assert r.status == "ok", r.message
        with Image.open(r.dst) as im:
            assert im.mode == "P" and im.size == Image.open(g).size
    assert by["corrupt.png"].status == "error" and "truncated" in by["corrupt.png"].message
    assert by["text.jpg"].status == "error" and "not an image" in by["text.jpg"].message
    assert by["missing.jpg"].status == "error" and "no such file" in by["missing.jpg"].message
    assert sorted(p.name for p in out.iterdir()) == ["good0-k8.png", "good1-k8.png", "good2-k8.png"]
    assert no_temp_files(tmp_path)
    s = summarize(results)
    assert (s["ok"], s["errors"], s["skipped"]) == (3, 3, 0)
    assert s["output_bytes"] == sum(Path(by[g.name].dst).stat().st_size for g in good)


def test_pool_and_in_process_outputs_are_byte_identical(tmp_path):
    srcs = [photo(tmp_path / "in" / f"p{i}.png", size=(80, 60), seed=i) for i in range(3)]
    one = {Path(r.src).name: Path(r.dst).read_bytes() for r in compress_many(srcs, tmp_path / "a", 6, jobs=1)}
    two = {Path(r.src).name: Path(r.dst).read_bytes() for r in compress_many(srcs, tmp_path / "b", 6, jobs=2)}
    assert one == two and len(one) == 3


def test_any_executor_and_on_start(tmp_path):
    srcs = [photo(tmp_path / f"p{i}.png", seed=i) for i in range(3)]
    started = []
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as ex:
        results = list(compress_many(srcs, tmp_path / "out", 4, executor=ex, threads=1, on_start=started.append))
    assert sorted(r.status for r in results) == ["ok"] * 3
    assert sorted(started) == sorted(map(str, srcs))
    assert all(r.report.k == 4 and r.report.colors <= 4 for r in results)


class _Died(Exception):
    """Stands for a dead worker (Dask's ``KilledWorker``) in :func:`_dying_task`."""


class _DyingTask:
    """A batch task that compresses nothing: ``bad*`` files fail with :class:`_Died` on every
    attempt, ``near*`` files on their first attempt only (they were beside ``bad`` when its
    worker died); each attempt records the file and how many files were running at its start."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.attempts: list[tuple[str, int]] = []

    def __call__(self, src, dst, options, threads=None):
        name = Path(src).name
        with self.lock:
            self.running += 1
            first = all(n != name for n, _ in self.attempts)
            self.attempts.append((name, self.running))
        try:
            time.sleep(0.05)  # long enough for the others to be in flight beside it
            if name.startswith("bad") or (name.startswith("near") and first):
                raise _Died(name)
            return FileResult(src, dst, "ok")
        finally:
            with self.lock:
                self.running -= 1


def test_files_whose_workers_died_run_again_alone_and_yield_one_result_each(tmp_path):
    names = ["bad.png", "near0.png", "ok0.png", "near1.png", "ok1.png"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    plan = plan_batch([tmp_path / n for n in names], Options(k=4), out_dir=tmp_path / "out")
    task = _DyingTask()
    with ThreadPoolExecutor(len(names)) as ex:
        run = BatchRun(executor=ex, task=task, rerun_alone=lambda e: isinstance(e, _Died))
        results = list(run_plan(plan, run))
    assert sorted(Path(r.src).name for r in results) == sorted(names)  # one result each
    by = {Path(r.src).name: r for r in results}
    assert by["bad.png"].status == "error" and "_Died" in by["bad.png"].message
    assert all(by[n].status == "ok" for n in names if n != "bad.png")
    assert max(k for _, k in task.attempts[: len(names)]) > 1  # the first round ran side by side
    again = task.attempts[len(names) :]
    assert sorted(n for n, _ in again) == ["bad.png", "near0.png", "near1.png"]  # each once more
    assert all(k == 1 for _, k in again)  # alone
    # the outcome of the first round is final when nothing is run again
    task = _DyingTask()
    with ThreadPoolExecutor(len(names)) as ex:
        results = list(run_plan(plan, BatchRun(executor=ex, task=task)))
    failed = sorted(Path(r.src).name for r in results if r.status == "error")
    assert failed == ["bad.png", "near0.png", "near1.png"] and len(task.attempts) == len(names)


def test_options_are_checked_before_any_work(tmp_path):
    a = photo(tmp_path / "a.png")
    for bad in ({"seed": -1}, {"max_iter": -2}, {"tol": float("nan")}, {"jobs": 0}, {"compress_level": 12}):
        with pytest.raises(InvalidParameterError):
            list(compress_many([a], tmp_path / "out", 4, **bad))
    assert not (tmp_path / "out").exists()


def test_batch_skip_if_larger_reports_both_sizes(tmp_path):
    small_jpeg(tmp_path / "a.jpg")
    small_jpeg(tmp_path / "b.jpg", quality=40)
    results = list(kmpress.compress_many([tmp_path], k=256, skip_if_larger=True, jobs=1))
    assert {r.status for r in results} == {"skipped"}
    for r in results:
        assert r.skipped_larger and not Path(r.dst).exists()
        d = r.as_dict()
        assert d["skip_reason"] == "larger" and d["output_bytes"] > d["input_bytes"] > 0
        assert f"{d['output_bytes']:,} bytes" in r.message and f"{d['input_bytes']:,}" in r.message
