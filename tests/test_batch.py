"""kmpress.batch: planning outputs, running a batch in-process and in a spawn pool, crash recovery,
interrupt cleanup, and the info/demo helpers. Small images only (CI time)."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kmpress import InvalidParameterError, KmpressError
from kmpress.batch import (
    BatchPlan,
    FileResult,
    OutputCollisionError,
    _run_local_pool,
    compare_images,
    compress_file,
    compress_many,
    comparison_sheet,
    describe_image,
    image_extensions,
    output_name,
    plan_batch,
    summarize,
)
from kmpress.io import stale_temp_files, temp_path

DATA = Path(__file__).resolve().parent / "data"

# spawned workers import this module by name to find _crash_on_marker
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))


def photo(path: Path, size=(96, 64), seed=0, fmt=None) -> Path:
    """A small noisy gradient photo (many colours), written to ``path``."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), (x + y) * 127 // max(1, w + h - 2)], axis=2)
    img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format=fmt)
    return path


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


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
    plan = plan_batch([a], 16)
    assert [(it.src, it.dst, it.action) for it in plan.items] == [(a, a.with_name("a-k16.png"), "compress")]
    plan = plan_batch([a], 4, out_dir=tmp_path / "out", suffix=".small")
    assert plan.items[0].dst == tmp_path / "out" / "a.small.png"
    assert not (tmp_path / "out").exists()  # planning writes nothing


def test_plan_skips_existing_unless_force(tmp_path):
    a = photo(tmp_path / "a.jpg")
    a.with_name("a-k16.png").write_bytes(b"old")
    it = plan_batch([a], 16).items[0]
    assert it.action == "skip" and "exists" in it.reason
    assert plan_batch([a], 16, force=True).items[0].action == "compress"


def test_plan_never_overwrites_an_input(tmp_path):
    a = photo(tmp_path / "a.png")
    it = plan_batch([a], 16, suffix="").items[0]
    assert it.action == "error" and "overwrite an input" in it.reason
    # another input of the same batch is protected too, even with --force
    b = photo(tmp_path / "b.jpg")
    b_out = photo(tmp_path / "b-k16.png")
    items = {it.src.name: it for it in plan_batch([b, b_out], 16, force=True).items}
    assert items["b.jpg"].action == "error" and "overwrite an input" in items["b.jpg"].reason
    assert items["b-k16.png"].action == "compress"


def test_plan_collision_is_an_error_before_any_work(tmp_path):
    a = photo(tmp_path / "x" / "same.jpg")
    b = photo(tmp_path / "y" / "same.png")
    with pytest.raises(OutputCollisionError, match="would both write"):
        plan_batch([a, b], 16, out_dir=tmp_path / "out")
    c = photo(tmp_path / "x" / "same.png")
    with pytest.raises(OutputCollisionError):
        plan_batch([tmp_path / "x"], 16)
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
    plan = plan_batch([tmp_path / "d", a, tmp_path / "d" / ".." / "d" / "a.jpg", tmp_path / "nope.jpg"], 16)
    names = [(it.src.name, it.action) for it in plan.items]
    assert names == [("a.jpg", "compress"), ("b.png", "compress"), ("nope.jpg", "error")]
    assert plan.items[-1].dst is None and "no such file" in plan.items[-1].reason
    assert plan.n_found == 2
    rec = plan_batch([tmp_path / "d"], 16, recursive=True)
    assert [it.src.name for it in rec.items] == ["a.jpg", "b.png", "c.jpg"]


def test_plan_folder_rerun_does_not_take_outputs_as_inputs(tmp_path):
    d = tmp_path / "d"
    photo(d / "a.jpg")
    photo(d / "a-k16.png")  # output of an earlier run at K=16
    photo(d / "a-k4.png")  # ... and at K=4
    photo(d / "lonely-k8.png")  # no source beside it: an ordinary input
    out = d / "out"
    photo(out / "z.png")  # inside the output folder: never an input
    plan = plan_batch([d], 16, out_dir=out, recursive=True)
    assert sorted(it.src.name for it in plan.items) == ["a.jpg", "lonely-k8.png"]


def test_plan_rejects_bad_k_and_out_dir_that_is_a_file(tmp_path):
    a = photo(tmp_path / "a.jpg")
    with pytest.raises(InvalidParameterError, match="k must be"):
        plan_batch([a], 0)
    with pytest.raises(InvalidParameterError):
        plan_batch([a], 257)
    (tmp_path / "file").write_text("x")
    with pytest.raises(KmpressError, match="output folder is a file"):
        plan_batch([a], 16, out_dir=tmp_path / "file")


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


def test_compress_file_reports_instead_of_raising(tmp_path):
    r = compress_file(str(tmp_path / "missing.png"), str(tmp_path / "o.png"), 4, {})
    assert isinstance(r, FileResult) and r.status == "error" and "no such file" in r.message
    d = r.as_dict()
    assert d["status"] == "error" and d["src"].endswith("missing.png") and "width" not in d
    ok = compress_file(str(photo(tmp_path / "a.png")), str(tmp_path / "o.png"), 4, {"seed": 1}, threads=1)
    d = ok.as_dict()
    assert ok.status == "ok" and d["k"] == 4 and d["width"] == 96 and d["bits"]["ratio"] > 0


def _crash_on_marker(src, dst, k, options, threads):
    """A task that kills its worker process for files named crash*, like a segfault would."""
    if Path(src).name.startswith("crash"):
        os._exit(70)
    return compress_file(src, dst, k, options, threads)


def test_worker_crash_fails_only_its_file(tmp_path):
    srcs = [photo(tmp_path / f"ok{i}.png", seed=i) for i in range(3)] + [photo(tmp_path / "crash.png")]
    plan = plan_batch(srcs, 4, out_dir=tmp_path / "out")
    (tmp_path / "out").mkdir()  # compress_many's job; here the pool runner is called directly
    results = list(_run_local_pool(plan.to_compress, 4, {}, 2, 1, None, task=_crash_on_marker))
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


# --------------------------------------------------------------------------------------------
# info and demo helpers
# --------------------------------------------------------------------------------------------


def test_describe_and_compare(tmp_path):
    src = photo(tmp_path / "a.png", size=(64, 48))
    [r] = compress_many([src], tmp_path, 5)
    info = describe_image(r.dst, against=src)
    assert (info["format"], info["width"], info["height"], info["mode"]) == ("PNG", 64, 48, "P")
    assert info["palette_size"] == r.report.colors <= 5
    assert info["bit_depth"] == r.report.bit_depth
    assert info["bytes"] == Path(r.dst).stat().st_size
    assert info["psnr"] == pytest.approx(r.report.psnr, abs=1e-9)
    same = compare_images(src, src)
    assert same["psnr"] is None and same["mse"] == 0
    plain = describe_image(src)
    assert plain["palette_size"] is None and plain["bit_depth"] == 8 and plain["mode"] == "RGB"
    with pytest.raises(KmpressError, match="sizes differ"):
        compare_images(src, photo(tmp_path / "b.png", size=(10, 10)))
    with pytest.raises(KmpressError, match="no such file"):
        describe_image(tmp_path / "none.png")
    (tmp_path / "t.png").write_text("text")
    with pytest.raises(KmpressError, match="not an image"):
        describe_image(tmp_path / "t.png")


def test_comparison_sheet(tmp_path):
    a = photo(tmp_path / "a.png", size=(60, 40))
    b = photo(tmp_path / "b.png", size=(30, 20))
    out = comparison_sheet([(a, "original"), (b, "K=4")], tmp_path / "sheet.png", height=50)
    with Image.open(out) as im:
        assert im.height > 50 and im.width >= 75 + 50 + 3 * 8
        arr = np.asarray(im.convert("L"))
    assert (arr[50 + 8 :] < 128).any()  # some label text was drawn under the tiles
    assert no_temp_files(tmp_path)


def test_batch_plan_type():
    assert isinstance(plan_batch([], 16), BatchPlan) and plan_batch([], 16).n_found == 0
