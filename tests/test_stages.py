"""The stages a compression reports (``on_stage``): from :func:`kmpress.compress`, through a batch
in this process and from a local pool's workers, to the CLI's progress bar ("photo.png: lloyd").
Reporting them never changes the output."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import kmpress
import kmpress.cli.main as climain
import kmpress.cli.render as render
from kmpress import compress, compress_many
from kmpress.cli.main import app
from kmpress.cli.render import Running, progress
from kmpress.pool import FileResult
from kmpress.stages import STAGES, Stages

#: The stages of a compression in RGB (OKLab adds "colorspace" after "histogram").
PLAIN = [s for s in STAGES if s != "colorspace"]


def _photo(path: Path, size=(80, 60), seed=0, alpha=False) -> Path:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size[1], size[0], 4 if alpha else 3), dtype=np.uint8)
    img[: size[1] // 2, :, :3] //= 4
    Image.fromarray(img).save(path)
    return path


@pytest.mark.parametrize(
    "options",
    [{}, {"colorspace": "oklab"}, {"dither": "floyd-steinberg"}, {"smooth": 0.3}, {"n_init": 3}, {"k": 256}],
    ids=["plain", "oklab", "dither", "smooth", "starts", "lossless"],
)
def test_compress_reports_its_stages_in_order_and_the_file_is_the_same(tmp_path, options):
    options = {"k": 8, **options}
    src = _photo(tmp_path / "a.png", size=(12, 10) if options["k"] == 256 else (80, 60))  # 120 colours: lossless
    seen: list[str] = []
    rep = compress(src, tmp_path / "staged.png", on_stage=seen.append, **options)
    compress(src, tmp_path / "plain.png", **options)
    assert (tmp_path / "staged.png").read_bytes() == (tmp_path / "plain.png").read_bytes()
    # every stage the report times, in the report's order, each announced as it begins
    assert list(dict.fromkeys(seen)) == [s for s in rep.timings if s != "total"]
    assert seen[0] == "read" and seen[1] == "histogram" and seen[-2:] == ["delta_e", "write"]
    assert all(a != b for a, b in zip(seen, seen[1:]))  # one call per stage entered
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
    src = _photo(tmp_path / "a.png")
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
    src = _photo(tmp_path / "a.png")

    def stop(stage: str) -> None:
        if stage == "lloyd":
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        compress(src, tmp_path / "out.png", 8, on_stage=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_a_batch_reports_the_stages_of_each_file(tmp_path):
    srcs = [_photo(tmp_path / f"{i}.png", seed=i) for i in range(2)]
    for jobs in (1, 2):  # in this process, and from a pool's workers through the stage pipe
        seen: list[tuple[str, str]] = []
        out = tmp_path / f"out{jobs}"
        results = list(compress_many(srcs, out, 8, jobs=jobs, on_stage=lambda src, stage: seen.append((src, stage))))
        assert [r.status for r in results] == ["ok", "ok"]
        for s in srcs:
            assert [st for src, st in seen if src == str(s)] == PLAIN, jobs
    assert [p.read_bytes() for p in sorted((tmp_path / "out1").iterdir())] == [
        p.read_bytes() for p in sorted((tmp_path / "out2").iterdir())
    ]


def test_running_files_show_their_stage_once_they_take_long():
    now = [100.0]
    r = Running(stage_after=2.0, clock=lambda: now[0])
    r.start("/photos/big.tif")
    r.stage("/photos/big.tif", "read")
    assert r.describe() == "big.tif"  # a file that may be quick: no flicker of stages
    now[0] += 2.5
    assert r.describe() == "big.tif: read"
    r.stage("/photos/big.tif", "lloyd")
    r.start("/photos/small.jpg")
    r.stage("/photos/small.jpg", "histogram")
    assert r.describe() == "big.tif: lloyd, small.jpg"
    r.stage("/photos/gone.png", "write")  # a late report of a file not running: ignored
    for name in ("c.png", "d.png"):
        r.start(f"/x/{name}")
    assert r.describe() == "big.tif: lloyd, small.jpg, c.png ..."
    assert r.finish("/photos/big.tif") and not r.finish("/photos/big.tif")
    assert r.describe() == "small.jpg, c.png, d.png"


@pytest.fixture
def terminal(monkeypatch):
    """The progress bar drawn on a fake terminal (a StringIO rich console that thinks it is one)."""
    from rich.console import Console

    class Screen(io.StringIO):
        def close(self) -> None:  # the bar closes its stream when done; keep what was drawn
            pass

    buf = Screen()
    monkeypatch.setattr(render, "_terminal_console", lambda: Console(file=buf, force_terminal=True, width=200))
    return buf


def test_the_bar_draws_the_file_and_its_stage(terminal):
    with progress(1, True, stage_after=0) as (started, finished, staged):
        started("/photos/big.tif")
        staged("/photos/big.tif", "lloyd")  # drawn at once
        finished("/photos/big.tif")
    assert "big.tif: lloyd" in terminal.getvalue()
    with progress(1, False) as (started, finished, staged):
        assert staged is None  # disabled: nothing for the engine to report to


def test_the_cli_shows_each_stage_of_a_file_on_a_terminal(tmp_path, monkeypatch, terminal):
    """The real engine, in process, through the CLI: every stage's "<file>: <stage>" is drawn,
    in order (with the threshold at 0; by default a file shows its stages after 2 s)."""
    monkeypatch.setattr(climain, "_want_progress", lambda quiet, as_json: True)
    monkeypatch.setattr(render, "STAGE_AFTER", 0.0)
    src = _photo(tmp_path / "holiday.png")
    r = CliRunner().invoke(app, ["compress", str(src), "-k", "8", "-o", str(tmp_path / "o")], prog_name="kmpress")
    assert r.exit_code == 0, r.stderr
    drawn = terminal.getvalue()
    at = [drawn.find(f"holiday.png: {stage}") for stage in PLAIN]
    assert all(i >= 0 for i in at), drawn[-2000:]
    assert at == sorted(at)
    assert (tmp_path / "o" / "holiday-k8.png").read_bytes() == _reference(src, tmp_path)


def _reference(src: Path, tmp_path: Path) -> bytes:
    compress(src, tmp_path / "ref.png", 8)
    return (tmp_path / "ref.png").read_bytes()


def test_the_cli_passes_its_stage_callback_to_the_batch(tmp_path, monkeypatch, terminal):
    import kmpress.batch

    monkeypatch.setattr(climain, "_want_progress", lambda quiet, as_json: True)
    monkeypatch.setattr(render, "STAGE_AFTER", 0.0)
    src = _photo(tmp_path / "pano.png")

    def fake(plan, jobs=None, on_start=None, on_stage=None):
        [it] = plan.items
        on_start(str(it.src))
        on_stage(str(it.src), "remap")
        yield FileResult(str(it.src), str(it.dst), "skipped", "a test")

    monkeypatch.setattr(kmpress.batch, "compress_many", fake)
    r = CliRunner().invoke(app, ["compress", str(src), "-o", str(tmp_path / "o")], prog_name="kmpress")
    assert r.exit_code == 0, r.stderr
    assert "pano.png: remap" in terminal.getvalue()
