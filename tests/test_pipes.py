"""kmpress.pipes and ``kmpress compress -``: one image from standard input, the result on standard
output and nothing else there, one-line errors on stderr for an empty, truncated or non-image
input, and the usage errors around ``-`` (``--json`` to stdout, ``-`` among other inputs, ...)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from io import BytesIO
from pathlib import Path

import pytest
from helpers import DATA, run
from PIL import Image

import kmpress
from kmpress import pipes
from kmpress.errors import ImageWriteError, InvalidParameterError
from kmpress.options import Options
from kmpress.writing import write_stream


@pytest.fixture(scope="module")
def jpeg(tmp_path_factory) -> bytes:
    """A small real photo as JPEG bytes."""
    with Image.open(DATA / "coffee.png") as im:
        buf = BytesIO()
        im.convert("RGB").crop((200, 100, 392, 228)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# stdin -> stdout
# --------------------------------------------------------------------------------------------


def test_stdin_to_stdout_is_the_same_png_as_the_file_route(tmp_path, jpeg):
    r = run("compress", "-", "-k", 16, input=jpeg)
    assert r.exit_code == 0, r.stderr
    assert r.stderr == ""
    (tmp_path / "a.jpg").write_bytes(jpeg)
    kmpress.compress(tmp_path / "a.jpg", tmp_path / "a.png", 16)
    assert r.stdout_bytes == (tmp_path / "a.png").read_bytes()  # nothing but the PNG on stdout
    # "-o -" says the same explicitly, and works for a file input as well
    assert run("compress", "-", "-o", "-", "-k", 16, input=jpeg).stdout_bytes == r.stdout_bytes
    r2 = run("compress", tmp_path / "a.jpg", "-o", "-", "-k", 16)
    assert r2.exit_code == 0 and r2.stdout_bytes == r.stdout_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a.png"]  # nothing else written


def test_stdin_to_stdout_webp(jpeg):
    r = run("compress", "-", "-k", 8, "--format", "webp", input=jpeg)
    assert r.exit_code == 0, r.stderr
    with Image.open(BytesIO(r.stdout_bytes)) as im:
        assert im.format == "WEBP" and len(im.convert("RGB").getcolors()) <= 8


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "kmpress: <stdin>: empty input: no image data"),
        (b"hello, this is text\n", "kmpress: <stdin>: not an image (or a format Pillow cannot read)"),
        ("truncated", "kmpress: <stdin>: corrupt or truncated image"),
    ],
    ids=["empty", "text", "truncated"],
)
def test_bad_stdin_is_one_line_and_nothing_on_stdout(jpeg, data, message):
    if data == "truncated":
        data = jpeg[: len(jpeg) // 2]
    r = run("compress", "-", "-k", 8, input=data)
    assert r.exit_code == 1
    assert r.stdout_bytes == b""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), r.stderr
    assert "Traceback" not in r.stderr


def test_stdin_with_an_out_dir_writes_a_named_file_and_the_usual_report(tmp_path, jpeg):
    r = run("compress", "-", "-k", 4, "-o", tmp_path / "new", "--json", input=jpeg)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    (f,) = doc["files"]
    assert f["src"] == "<stdin>" and f["dst"] == str(tmp_path / "new" / "stdin-k4.png") and f["status"] == "ok"
    assert f["input_bytes"] == len(jpeg)
    with Image.open(tmp_path / "new" / "stdin-k4.png") as im:
        assert im.mode == "P"
    # again: the output exists, skipped unless --force; the table otherwise
    r = run("compress", "-", "-k", 4, "-o", tmp_path / "new", input=jpeg)
    assert r.exit_code == 0 and "skipped 1" in r.stdout and "--force" in r.stdout
    r = run("compress", "-", "-k", 4, "-o", tmp_path / "new", "--force", input=jpeg)
    assert r.exit_code == 0 and "<stdin>" in r.stdout and "1 written" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["-", "--json"], "--json cannot be used when the image goes to standard output"),
        (["-", "-o", "-", "--json"], "--json cannot be used when the image goes to standard output"),
        (["-", "{a}"], "'-' (standard input) must be the only input"),
        (["{a}", "{a}", "-o", "-"], "-o - writes one image to standard output: give exactly one input"),
        (["{d}", "-o", "-"], "is a folder"),
    ],
)
def test_pipe_usage_errors(tmp_path, jpeg, args, message):
    (tmp_path / "a.jpg").write_bytes(jpeg)
    (tmp_path / "d").mkdir()
    args = [a.format(a=tmp_path / "a.jpg", d=tmp_path / "d") for a in args]
    r = run("compress", *args, input=jpeg)
    assert r.exit_code == 2
    assert r.stdout_bytes == b""
    assert len(r.stderr.splitlines()) == 1 and message in r.stderr and r.stderr.startswith("kmpress: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "d"]


def test_terminals_are_refused(monkeypatch, jpeg):
    monkeypatch.setattr(pipes, "_isatty", lambda stream: True)
    r = run("compress", "-", input=jpeg)
    assert r.exit_code == 2 and "standard input is a terminal" in r.stderr
    job = pipes.PipeJob(Path("a.jpg"), None)
    with pytest.raises(InvalidParameterError, match="refusing to write an image to a terminal"):
        pipes.check_terminals(job, None, object())


def test_plan_pipe():
    o = Options(k=8, format="webp")
    assert pipes.plan_pipe([Path("a.jpg"), Path("b.jpg")], None, o) is None  # an ordinary batch
    assert pipes.plan_pipe([Path("-")], None, o) == pipes.PipeJob(None, None)
    assert pipes.plan_pipe([Path("a.jpg")], Path("-"), o) == pipes.PipeJob(Path("a.jpg"), None)
    assert pipes.plan_pipe(["-"], "out", o).dst == Path("out/stdin-k8.webp")


def test_compress_takes_streams(tmp_path, jpeg):
    out = BytesIO()
    rep = kmpress.compress(BytesIO(jpeg), out, 8)
    assert rep.src == "<stream>" and rep.dst == "<stream>" and rep.input_bytes == len(jpeg)
    assert out.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and rep.output_bytes == len(out.getvalue())
    with pytest.raises(InvalidParameterError, match="binary mode"):
        kmpress.compress(__import__("io").StringIO("x"), BytesIO(), 8)


def test_a_closed_pipe_is_one_error_and_stdout_is_left_quiet():
    r, w = os.pipe()
    os.close(r)
    with os.fdopen(w, "wb", buffering=0) as f:
        with pytest.raises(ImageWriteError, match="the reading end of the pipe was closed"):
            write_stream(f, b"x" * 200_000, "<stdout>")
        f.write(b"more")  # the descriptor now goes to the null device: no second error


# --------------------------------------------------------------------------------------------
# the installed command in a real shell pipe
# --------------------------------------------------------------------------------------------


def _kmpress() -> str:
    import sysconfig

    exe = Path(sysconfig.get_path("scripts")) / "kmpress"
    return str(exe) if exe.exists() else shutil.which("kmpress")


def test_a_real_pipe(tmp_path, jpeg):
    (tmp_path / "a.jpg").write_bytes(jpeg)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    cmd = f"cat a.jpg | '{_kmpress()}' compress - -k 16 > a.png"
    r = subprocess.run(["sh", "-c", cmd], cwd=tmp_path, capture_output=True, timeout=300, env=env)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "P" and im.size == (192, 128) and len(im.getcolors()) <= 16
    # an empty pipe: exit 1, one line, an empty output
    r = subprocess.run(
        ["sh", "-c", f"'{_kmpress()}' compress - < /dev/null > b.png"],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 1 and r.stderr.decode() == "kmpress: <stdin>: empty input: no image data\n"
    assert (tmp_path / "b.png").read_bytes() == b""
