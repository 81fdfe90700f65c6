"""The stages a compression reports (``on_stage``): from :func:`kmpress.compress`, through a batch
in this process and from a local pool's workers. Reporting them never changes the output. (The
CLI's progress bar that draws them, "photo.png: lloyd", is tested in tests/cli/test_compress.py.)"""

from __future__ import annotations

import pytest
from helpers import photo

from kmpress import compress, compress_many
from kmpress.stages import STAGES, Stages

#: The stages of a compression in RGB (OKLab adds "colorspace" after "histogram").
PLAIN = [s for s in STAGES if s != "colorspace"]


@pytest.mark.parametrize(
    "options",
    [{}, {"colorspace": "oklab"}, {"dither": "floyd-steinberg"}, {"smooth": 0.3}, {"n_init": 3}, {"k": 256}],
    ids=["plain", "oklab", "dither", "smooth", "starts", "lossless"],
)
def test_compress_reports_its_stages_in_order_and_the_file_is_the_same(tmp_path, options):
    options = {"k": 8, **options}
    src = photo(tmp_path / "a.png", size=(12, 10) if options["k"] == 256 else (80, 60))  # 120 colours: lossless
    seen: list[str] = []
    rep = compress(src, tmp_path / "staged.png", on_stage=seen.append, **options)
    compress(src, tmp_path / "plain.png", **options)
    assert (tmp_path / "staged.png").read_bytes() == (tmp_path / "plain.png").read_bytes()
    # every stage the report times, in the report's order, each announced as it begins
    assert list(dict.fromkeys(seen)) == [s for s in rep.timings if s != "total"]
    assert seen[0] == "read" and seen[1] == "histogram" and seen[-2:] == ["delta_e", "write"]
    assert all(a != b for a, b in zip(seen, seen[1:], strict=False))  # one call per stage entered
    if options.get("n_init", 1) > 1:
        assert seen.count("init") == 3 and seen.count("lloyd") == 3
    elif options["k"] == 256:  # at most 256 colours: no clustering, the colours themselves
        assert seen == ["read", "histogram", "lloyd", "remap", "delta_e", "write"]
    elif "colorspace" in options:
        assert seen == ["read", "histogram", "colorspace", *PLAIN[2:]]
    else:
        assert seen == PLAIN


def test_the_recorder_times_each_stage_and_tells_the_listener_once_per_run():
    seen: list[str] = []
    rec = Stages(seen.append)
    with rec("histogram"):
        pass
    for _ in range(2):
        with rec("init"):
            pass
        with rec("lloyd"):
            pass
    mark = dict(rec.times)
    with rec("lloyd"):  # a second part of the stage running: told once
        pass
    with rec("remap"):
        pass
    assert seen == ["histogram", "init", "lloyd", "init", "lloyd", "remap"]
    assert list(rec.times) == ["histogram", "init", "lloyd", "remap"]  # first entered first
    assert all(t >= 0 for t in rec.times.values())
    assert set(rec.since(mark)) == {"lloyd", "remap"}
    assert rec.since(mark)["remap"] == rec.times["remap"]
    with pytest.raises(ValueError, match="unknown stage 'lloyds'"):
        with rec("lloyds"):
            pass
    assert Stages().times == {}


def test_a_stage_that_raises_is_still_timed_and_the_error_passes():
    rec = Stages()
    with pytest.raises(KeyError):
        with rec("remap"):
            raise KeyError("x")
    assert "remap" in rec.times


def test_a_quality_target_reports_each_candidate(tmp_path):
    src = photo(tmp_path / "a.png", size=(80, 60))
    seen: list[str] = []
    rep = compress(src, tmp_path / "q.png", target_psnr=30, on_stage=seen.append)
    assert seen[:2] == ["read", "histogram"] and seen[-2:] == ["delta_e", "write"]
    fits = len(rep.search)
    assert fits >= 2 and seen.count("lloyd") >= fits  # each candidate K fitted (and the polish)
    # the report's times are the whole search's: at least the sum of its candidates' (equal, up
    # to rounding, for a stage only the candidates ran)
    for stage in ("init", "lloyd", "remap"):
        assert rep.timings[stage] >= sum(t.timings.get(stage, 0.0) for t in rep.search) - 1e-9
    assert all(set(t.timings) <= set(STAGES) and "lloyd" in t.timings for t in rep.search)


def test_what_the_callback_raises_stops_the_compression(tmp_path):
    src = photo(tmp_path / "a.png", size=(80, 60))

    def stop(stage: str) -> None:
        if stage == "lloyd":
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        compress(src, tmp_path / "out.png", 8, on_stage=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_a_batch_reports_the_stages_of_each_file(tmp_path):
    srcs = [photo(tmp_path / f"{i}.png", seed=i, size=(80, 60)) for i in range(2)]
    for jobs in (1, 2):  # in this process, and from a pool's workers through the stage pipe
        seen: list[tuple[str, str]] = []
        out = tmp_path / f"out{jobs}"
        results = list(
            compress_many(srcs, out, 8, jobs=jobs, on_stage=lambda src, stage, seen=seen: seen.append((src, stage)))
        )
        assert [r.status for r in results] == ["ok", "ok"]
        for s in srcs:
            assert [st for src, st in seen if src == str(s)] == PLAIN, jobs
    assert [p.read_bytes() for p in sorted((tmp_path / "out1").iterdir())] == [
        p.read_bytes() for p in sorted((tmp_path / "out2").iterdir())
    ]
