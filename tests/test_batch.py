"""kmpress.batch: planning outputs, and compress_many running a batch in-process, in a spawn
pool and on any executor. Small images only (CI time)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
from PIL import Image

from helpers import gradient_photo as photo
from helpers import no_temp_files
from kmpress import InvalidParameterError, KmpressError, Options
from kmpress.batch import BatchPlan, OutputCollisionError, compress_many, image_extensions, output_name, plan_batch, summarize

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


def test_plan_collision_is_an_error_before_any_work(tmp_path):
    a = photo(tmp_path / "x" / "same.jpg")
    b = photo(tmp_path / "y" / "same.png")
    with pytest.raises(OutputCollisionError, match="would both write"):
        plan_batch([a, b], Options(k=16), out_dir=tmp_path / "out")
    c = photo(tmp_path / "x" / "same.png")
    with pytest.raises(OutputCollisionError):
        plan_batch([tmp_path / "x"], Options(k=16))
    assert not (tmp_path / "out").exists() and not list(tmp_path.rglob("*-k16.png"))
    # with a collision, compress_many raises before writing anything either
    with pytest.raises(OutputCollisionError):
        list(compress_many([a, c], None, 4))
    assert not list(tmp_path.rglob("*-k4.png"))


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


def test_options_are_checked_before_any_work(tmp_path):
    a = photo(tmp_path / "a.png")
    for bad in ({"seed": -1}, {"max_iter": -2}, {"tol": float("nan")}, {"jobs": 0}, {"compress_level": 12}):
        with pytest.raises(InvalidParameterError):
            list(compress_many([a], tmp_path / "out", 4, **bad))
    assert not (tmp_path / "out").exists()
