"""``kmpress`` itself: ``--version`` (the package metadata, one source), ``--help`` of every command
(the options, their defaults and the exit codes), one JSON document for every run, ``--debug`` and
Ctrl-C; start-up that imports nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import pytest
from helpers import ROOT, photo, run

import kmpress
from kmpress.cli.flags import EXIT_TARGET


def test_version_is_the_package_metadata():
    assert kmpress.__version__ == version("kmpress")
    r = run("--version")
    assert r.exit_code == 0 and r.stdout == f"kmpress {version('kmpress')}\n"
    assert "--version" in run("--help").stdout


def test_version_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from kmpress.cli.main import main\n"
        "sys.argv = ['kmpress', '--version']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, sorted(m for m in ('numpy', 'numba', 'PIL') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.splitlines()[-1] == "0 []"
    assert out.stdout.splitlines()[0] == f"kmpress {version('kmpress')}"


def test_help_documents_format_strip_skip_if_larger_and_exit_code_98():
    text = " ".join(run("compress", "--help").stdout.split())
    for opt in ("--format", "--strip", "--skip-if-larger", "98", "standard input", "[default: png]"):
        assert opt in text, opt


def test_python_dash_m_kmpress_version():
    out = subprocess.run(
        [sys.executable, "-m", "kmpress", "--version"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0 and out.stdout == f"kmpress {version('kmpress')}\n"


def test_help_lists_commands_and_exit_codes():
    r = run("--help")
    assert r.exit_code == 0
    for word in ("compress", "demo", "info", "Exit codes", "130  interrupted", "2  usage error"):
        assert word in r.stdout
    r = run("compress", "--help")
    assert r.exit_code == 0
    for opt in (
        "--colors",
        "--out-dir",
        "--suffix",
        "--force",
        "--jobs",
        "--seed",
        "--max-iter",
        "--tol",
        "--json",
        "--quiet",
        "--recursive",
        "--debug",
        "--max-pixels",
        "Exit codes",
    ):
        assert opt in r.stdout, opt


def test_help_does_not_import_the_engine():
    import subprocess

    code = "import sys, kmpress.cli.main; print(sorted(m for m in ('numba', 'numpy', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_help_shows_the_defaults_of_the_options_object():
    from kmpress.options import Options

    o = Options()
    text = " ".join(run("compress", "--help").stdout.split())
    for shown in (
        f"[default: {o.max_iter}]",
        f"[default: {o.tol}]",
        f"[default: {o.max_pixels}:",
        f"[default: {o.k}]",
        f"[default: {o.colorspace}]",
        f"[default: {o.n_init}]",
        f"[default: {o.max_colors}]",
        "[default: adaptive]",
    ):
        assert shown in text, shown


@pytest.mark.parametrize(
    "args, code, says",
    [
        (["compress"], 2, "no input given"),
        (["compress", "{d}/a.png", "--bogus"], 2, "No such option"),
        (["compress", "{d}/a.png", "-k", "many"], 2, "valid int"),  # click says "integer" or "int"
        (["compress", "{d}/a.png", "-k", "0"], 2, "-k/--colors must be from 1 to 256"),
        (["compress", "{d}/nothing.jpg"], 2, "nothing.jpg: no such file or folder"),
        (["compress", "{d}/a.png", "-o", "{d}/afile"], 1, "output folder is a file"),
        (["frobnicate"], 2, "No such command"),
        (["info", "{d}/nothing.png"], 1, "no such file"),
        (["info", "{d}/a.png", "--max-pixels", "10"], 1, "over the limit of 10"),
        (["sweep", "{d}/afile", "-k", "2,3", "-o", "{d}/sw"], 1, "not an image"),
    ],
)
def test_json_every_run_prints_one_document(tmp_path, args, code, says):
    photo(tmp_path / "a.png")
    (tmp_path / "afile").write_text("x")
    r = run(*[a.format(d=tmp_path) for a in args], "--json")
    assert r.exit_code == code, r.output
    doc = json.loads(r.stdout)  # the whole of stdout, even for a usage error
    assert doc["exit_code"] == code and says in doc["error"] and "\n" not in doc["error"]
    assert doc["command"] == (None if args[0] == "frobnicate" else args[0])
    assert "Traceback" not in r.stderr


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    import kmpress.batch

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(kmpress.batch, "plan_batch", boom)
    a = photo(tmp_path / "a.png")
    r = run("compress", a)
    assert r.exit_code == 1 and "internal error: RuntimeError: kaboom" in r.stderr and "Traceback" not in r.stderr
    r = run("compress", a, "--debug")
    assert r.exit_code == 1 and "Traceback" in r.stderr


def test_ctrl_c_exits_130(tmp_path, monkeypatch):
    import kmpress.batch

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(kmpress.batch, "compress_many", interrupted)
    r = run("compress", photo(tmp_path / "a.png"))
    assert r.exit_code == 130 and "interrupted" in r.stderr


def test_ctrl_c_outside_a_command_body_exits_130_with_one_line(monkeypatch, capsys):
    # Ctrl-C while typer parses or before a command's own handler is set up
    from kmpress.cli import main as cli_main

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "app", interrupted)
    with pytest.raises(SystemExit) as e:
        cli_main.main()
    assert e.value.code == 130
    assert capsys.readouterr().err == "kmpress: interrupted\n"


def test_help_documents_the_options_and_exit_code_3():
    r = run("compress", "--help")
    for opt in (
        "--quality",
        "--psnr",
        "--max-colors",
        "--strict",
        "--space",
        "--dither",
        "--no-dither",
        "3  a --quality MIN",
    ):
        assert opt in r.stdout, opt
    r = run("sweep", "--help")
    assert r.exit_code == 0
    for opt in ("--colors", "--step", "--out-dir", "kmpress[plot]", "--space", "--dither"):
        assert opt in r.stdout, opt
    assert "--palette" in run("info", "--help").stdout
    assert EXIT_TARGET == 3


@pytest.mark.parametrize(
    "command, codes, example",
    [
        (
            "compress",
            ["0", "1", "2", "3", "98", "75", "130", "143"],
            "kmpress compress ~/Pictures/2024-trip -r -o small",
        ),
        ("demo", ["0", "1", "2", "130", "143"], "kmpress demo"),
        ("info", ["0", "1", "2", "130", "143"], "kmpress info photo-k16.png --against photo.jpg"),
        ("sweep", ["0", "1", "2", "130", "143"], "kmpress sweep photo.jpg -k 4,16,64"),
        ("warm", ["0", "1", "2", "130", "143"], "kmpress warm"),
        ("serve", ["0", "1", "2", "130", "143"], "kmpress serve --detach"),
    ],
)
def test_each_command_help_has_its_synopsis_examples_and_only_its_exit_codes(command, codes, example, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = run(command, "--help").stdout
    assert out.startswith(f"Usage: kmpress {command} ")
    assert f"\n    {example}\n" in out  # whole, on a line of its own
    exits = out.split("Exit codes:\n", 1)[1].split("\n\n", 1)[0]
    assert [line.split()[0] for line in exits.splitlines()] == codes
    assert max(len(line) for line in out.splitlines()) <= 80


def test_the_command_list_is_never_cut(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = run("--help").stdout
    listed = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    from kmpress.cli.main import app

    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert len(listed.splitlines()) == len(commands) and "..." not in listed


def test_old_and_new_spellings_of_sweeps_k(tmp_path):
    from helpers import crop_photo

    src = crop_photo(tmp_path / "cat.png")
    for flag in ("-k", "--colors", "--k"):
        r = run("sweep", src, flag, "2,3", "-o", tmp_path / "sw", "--json")
        assert r.exit_code == 0 and [row["k"] for row in json.loads(r.stdout)["rows"]] == [2, 3]


def test_info_reads_standard_input(tmp_path):
    src = photo(tmp_path / "a.png")
    r = run("info", "-", "--json", input=src.read_bytes())
    assert r.exit_code == 0 and json.loads(r.stdout)["path"] == "-" and json.loads(r.stdout)["width"] == 72
    r = run("info", "-", input=b"not an image")
    assert r.exit_code == 1 and r.stderr.startswith("kmpress: -: ") and len(r.stderr.splitlines()) == 1


def test_an_error_line_waits_for_a_decode_in_another_thread_to_give_stderr_back():
    # while a file is decoded, descriptor 2 is swapped for a capture of what its C libraries
    # print; the last line of an interrupted batch, printed meanwhile by the main thread, must
    # still reach the terminal, not that file's notes (a process of its own: the real descriptor)
    script = """
import threading, time
from kmpress import notes
from kmpress.cli.render import error_line
notes.capture_native_messages(True)
decoding, gathered = threading.Event(), []
def decode():
    with notes.gathering_notes() as said:
        decoding.set()
        time.sleep(0.5)
    gathered.append(list(said))
reader = threading.Thread(target=decode)
reader.start()
decoding.wait()
error_line("interrupted")
reader.join()
print(gathered)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "kmpress: interrupted\n"
    assert r.stdout == "[[]]\n"
