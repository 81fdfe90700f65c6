"""``kmpress serve``: the installed command run through a warm server gives what it gives in its
own process (bytes, streams, exit codes, files), and every doubt about the server means the
command runs in its own process: a folder that is not private, another user, another kmpress,
a dead socket, a server that never answers. Ctrl-C, concurrency, idle exit, --stop."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from helpers import DATA, ROOT, crop_photo, kmpress_command
from test_command import _assert_stopped_cleanly, _processes_in, _some_output

from kmpress.cli import client, server


def _env(runtime: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", client.ENV_SWITCH)}
    return {**env, "XDG_RUNTIME_DIR": str(runtime), **extra}


def _kmpress(*args, env, cwd, input=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*kmpress_command(), *map(str, args)], cwd=cwd, env=env, input=input, capture_output=True, timeout=timeout
    )


def _status(env) -> dict | None:
    r = _kmpress("serve", "--status", "--json", env=env, cwd="/")
    doc = json.loads(r.stdout)
    return doc if doc["running"] else None


def _socket_path(env) -> Path:
    code = "from kmpress.cli import client; print(client.socket_path())"
    return Path(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip())


class Server:
    """A foreground ``kmpress serve`` in a private runtime folder of its own."""

    def __init__(self, idle: float = 600) -> None:
        # short: a Unix socket's path has ~100 bytes at most
        self.runtime = Path(tempfile.mkdtemp(prefix="kms", dir="/tmp"))
        self.env = _env(self.runtime)
        self.proc = subprocess.Popen(
            [*kmpress_command(), "serve", "--idle-timeout", str(idle)],
            env=self.env,
            cwd="/",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 600  # a first run compiles the kernels
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server did not start: {self.proc.communicate()}")
            if _status(self.env) is not None:
                return
            time.sleep(0.2)
        raise AssertionError("the server did not answer")

    def connections(self) -> int:
        return _status(self.env)["connections"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.communicate(timeout=60)
        shutil.rmtree(self.runtime, ignore_errors=True)


@pytest.fixture(scope="module")
def warm():
    s = Server()
    yield s
    s.close()


def _untimed(doc):
    """A JSON document without its times, which differ from run to run whoever runs it, and with
    its files in order."""
    if isinstance(doc, dict):
        return {k: _untimed(v) for k, v in doc.items() if k != "timings" and "seconds" not in k}
    if isinstance(doc, list):  # a batch lists its files as they finish
        items = [_untimed(v) for v in doc]
        return (
            sorted(items, key=lambda v: v["src"]) if all(isinstance(v, dict) and "src" in v for v in items) else items
        )
    return doc


def _same_run(a: subprocess.CompletedProcess, b: subprocess.CompletedProcess) -> None:
    assert a.returncode == b.returncode, (a, b)
    if a.stdout.startswith(b"{"):
        assert _untimed(json.loads(a.stdout)) == _untimed(json.loads(b.stdout))
    else:  # the summary line's time ("... in 0.3 s") masked
        assert re.sub(rb"in [0-9.]+ s", b"in T s", a.stdout) == re.sub(rb"in [0-9.]+ s", b"in T s", b.stdout)
    assert a.stderr == b.stderr


def _files(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, but the sweep's table and plot, which hold times."""
    timed = ("-sweep.csv", "-sweep.png")
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.endswith(timed)
    }


COMMANDS = [
    ("compress", "chelsea.png", "coffee.png", "notes.jpg", "-k", 8, "-o", "out", "--json"),
    ("compress", "chelsea.png", "-k", 8, "-o", "out", "-q"),
    ("compress", "cat.png", "--quality", 60, "--max-colors", 4, "--strict"),
    ("compress", "-k", 999, "coffee.png"),
    ("compress", "cat.png", "-k", 300, "--json"),
    ("compress", "missing.png"),
    ("info", "chelsea.png", "--json"),
    ("sweep", "cat.png", "--k", "2..4", "-o", "sw", "--json"),
    ("--help",),
    ("--version",),
    ("compress", "--no-such-flag"),
]


def _folder(root: Path) -> Path:
    root.mkdir()
    for name in ("chelsea", "coffee"):
        shutil.copy(DATA / f"{name}.png", root / f"{name}.png")
    (root / "notes.jpg").write_text("not a photo")
    crop_photo(root / "cat.png")
    return root


def test_commands_through_the_server_match_their_own_process(warm, tmp_path):
    work = tmp_path / "w"  # the same folder both ways: the documents show paths
    alone = {**warm.env, client.ENV_SWITCH: "0"}
    _folder(work)
    runs = [_kmpress(*args, env=alone, cwd=work) for args in COMMANDS]
    files = _files(work)
    shutil.rmtree(work)
    _folder(work)
    before = warm.connections()
    for args, run in zip(COMMANDS, runs, strict=True):
        _same_run(_kmpress(*args, env=warm.env, cwd=work), run)
    assert warm.connections() - before == len(COMMANDS) + 1  # every command went to the server (+ the status)
    assert _files(work) == files  # the same files, byte for byte


def test_standard_input_and_output_pipes(warm, tmp_path):
    data = (DATA / "coffee.png").read_bytes()
    alone = {**warm.env, client.ENV_SWITCH: "0"}
    a = _kmpress("compress", "-", "-k", 16, "-o", "-", input=data, env=warm.env, cwd=tmp_path)
    b = _kmpress("compress", "-", "-k", 16, "-o", "-", input=data, env=alone, cwd=tmp_path)
    assert a.returncode == 0 and a.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    _same_run(a, b)
    assert list(tmp_path.iterdir()) == []


def test_umask_and_environment_are_the_clients(warm, tmp_path):
    crop_photo(tmp_path / "cat.png")
    env = {**warm.env, "COLUMNS": "71"}
    cmd = [*kmpress_command(), "compress", "cat.png", "-k", "4", "-o", "o"]
    r = subprocess.run(["sh", "-c", 'umask 077 && exec "$@"', "sh", *cmd], cwd=tmp_path, env=env, capture_output=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "cat-k4.png").stat().st_mode & 0o077 == 0
    assert max(len(line) for line in r.stdout.decode().splitlines()) <= 71  # the table fits the client's COLUMNS


def test_private_folder_and_socket(warm):
    path = _socket_path(warm.env)
    assert path.exists() and path.parent.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o077 == 0 and path.is_socket()


def test_socket_in_a_folder_others_may_enter_is_ignored(warm, tmp_path):
    path = _socket_path(warm.env)
    before = warm.connections()
    path.parent.chmod(0o755)
    try:
        r = _kmpress("--version", env=warm.env, cwd=tmp_path)
        assert r.returncode == 0 and r.stdout.startswith(b"kmpress ")
    finally:
        path.parent.chmod(0o700)
    assert warm.connections() == before + 1  # only the status: the command ran in its own process


def test_private_means_this_users_folder_without_group_or_other_access(tmp_path):
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    d.chmod(0o700)
    assert client.is_private(str(d))
    for mode in (0o750, 0o701, 0o777, 0o1777):
        d.chmod(mode)
        assert not client.is_private(str(d)), oct(mode)
    d.chmod(0o700)
    (tmp_path / "link").symlink_to(d)
    assert not client.is_private(str(tmp_path / "link"))
    assert not client.is_private(str(tmp_path / "missing"))


def test_another_users_connection_gets_no_answer(monkeypatch):
    a, b = socket.socketpair(socket.AF_UNIX)
    assert server.peer_uid(b) == os.getuid()
    monkeypatch.setattr(server, "peer_uid", lambda conn: os.getuid() + 1)
    client.send_message(a, {"op": "status"})
    s = server.Server("/nonexistent/server-x.sock", 0)
    assert server._serve_connection(b, s) == 1
    b.close()
    try:
        answer = a.recv(100)
    except ConnectionResetError:  # closed with the request unread
        answer = b""
    assert answer == b""  # closed without a word
    a.close()


def test_a_server_of_another_start_up_environment_is_not_used(warm, tmp_path):
    before = warm.connections()
    env = {**warm.env, "PYTHONKMPRESSPROBE": "1"}  # a start-up variable: part of the handshake
    crop_photo(tmp_path / "cat.png")
    r = _kmpress("compress", "cat.png", "-k", 4, env=env, cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "cat-k4.png").exists(), r.stderr
    assert warm.connections() == before + 2  # refused, then the command ran in its own process
    assert warm.proc.poll() is None  # the server itself is fine: its files did not change


def test_changed_sources_retire_the_server(tmp_path):
    s = Server()
    import kmpress.cli

    # the installed copy, which the server fingerprints (the repository's when installed editable)
    source = Path(kmpress.cli.__file__).parent / "render.py"
    st = source.stat()
    try:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # as a reinstall would
        r = _kmpress("--version", env=s.env, cwd=tmp_path)
        assert r.returncode == 0 and r.stdout.startswith(b"kmpress ")
        s.proc.wait(timeout=60)  # an old server never runs a new kmpress's commands: it exits
    finally:
        os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
        s.close()


def test_dead_socket_and_silent_server_mean_the_commands_own_process(tmp_path):
    runtime = Path(tempfile.mkdtemp(prefix="kmd", dir="/tmp"))
    try:
        env = _env(runtime)
        path = _socket_path(env)
        path.parent.mkdir(mode=0o700)
        dead = socket.socket(socket.AF_UNIX)
        dead.bind(str(path))  # a socket file no one listens on (a server killed outright)
        dead.close()
        r = _kmpress("--version", env=env, cwd=tmp_path)
        assert r.returncode == 0 and r.stdout.startswith(b"kmpress ")
        path.unlink()
        silent = socket.socket(socket.AF_UNIX)
        silent.bind(str(path))
        silent.listen(8)
        held = []
        threading.Thread(target=lambda: held.append(silent.accept()), daemon=True).start()
        crop_photo(tmp_path / "cat.png")
        t = time.monotonic()
        r = _kmpress("compress", "cat.png", "-k", 4, env=env, cwd=tmp_path)
        assert r.returncode == 0 and (tmp_path / "cat-k4.png").exists(), r.stderr
        assert held and time.monotonic() - t >= client.ANSWER_SECONDS  # it waited for an answer, then ran
        silent.close()
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def _batch(tmp_path: Path, env: dict, n: int = 24) -> subprocess.Popen:
    for i in range(n):
        shutil.copy(DATA / "astronaut.png", tmp_path / f"p{i:02d}.png")
    return subprocess.Popen(
        [*kmpress_command(), "compress", ".", "-o", "out", "-k", "32", "--jobs", "1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _client_only(pid: int) -> bool:
    """Whether process ``pid`` is a kmpress command that only passes its work on to a server (the
    client imports the standard library alone; a command run in its own process has NumPy)."""
    return not any("/numpy/" in line for line in Path(f"/proc/{pid}/maps").read_text().splitlines())


def _batch_in_swing(tmp_path: Path, env: dict) -> subprocess.Popen:
    proc = _batch(tmp_path, env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not _some_output(tmp_path)():
        time.sleep(0.02)
    assert proc.poll() is None, "the batch ended before it could be interrupted"
    assert _client_only(proc.pid), "the batch runs in the client's own process, not on the server"
    return proc


@pytest.mark.parametrize(
    ("signum", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_a_signal_to_the_client_stops_its_command_cleanly(warm, tmp_path, signum, code, word):
    before = warm.connections()
    proc = _batch_in_swing(tmp_path, warm.env)
    proc.send_signal(signum)
    # exit code, one line, no partial file, and no process left (the server's for it included)
    _assert_stopped_cleanly(tmp_path, proc, code, word, 24)
    assert warm.connections() == before + 2


def test_a_hangup_ends_the_command_as_it_ends_its_own_process(warm, tmp_path):
    # kmpress leaves SIGHUP to its default action: the process ends at once, by that signal
    proc = _batch_in_swing(tmp_path, warm.env)
    proc.send_signal(signal.SIGHUP)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGHUP and stderr == ""
    assert _processes_in(tmp_path) == []  # the server's process for it is gone too


def test_a_hangup_ignored_by_the_client_is_ignored_by_its_command(warm, tmp_path):
    # nohup: SIGHUP ignored from the start stays ignored, on the server too
    for i in range(4):
        shutil.copy(DATA / "astronaut.png", tmp_path / f"p{i:02d}.png")
    nohup = "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"
    cmd = [*kmpress_command(), "compress", ".", "-o", "out", "-k", "32", "--jobs", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-c", nohup, *cmd], cwd=tmp_path, env=warm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not _some_output(tmp_path)():
        time.sleep(0.02)
    assert proc.poll() is None and _client_only(proc.pid)
    proc.send_signal(signal.SIGHUP)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert len(list((tmp_path / "out").iterdir())) == 4


def test_concurrent_clients(warm, tmp_path):
    names = ("astronaut", "chelsea", "coffee", "astronaut")
    procs = []
    for i, name in enumerate(names):
        d = tmp_path / f"c{i}"
        d.mkdir()
        shutil.copy(DATA / f"{name}.png", d / "x.png")
        cmd = [*kmpress_command(), "compress", "x.png", "-k", "16", "--json"]
        procs.append(subprocess.Popen(cmd, cwd=d, env=warm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and json.loads(out)["summary"]["ok"] == 1, err
    alone = {**warm.env, client.ENV_SWITCH: "0"}
    ref = tmp_path / "ref"
    ref.mkdir()
    shutil.copy(DATA / "coffee.png", ref / "x.png")
    assert _kmpress("compress", "x.png", "-k", 16, env=alone, cwd=ref).returncode == 0
    assert (tmp_path / "c2" / "x-k16.png").read_bytes() == (ref / "x-k16.png").read_bytes()
    assert (tmp_path / "c0" / "x-k16.png").read_bytes() == (tmp_path / "c3" / "x-k16.png").read_bytes()


def test_idle_exit_and_stop(tmp_path):
    s = Server(idle=2)
    try:
        path = _socket_path(s.env)
        assert s.proc.wait(timeout=120) == 0  # no command for 2 s: it exits
        assert not path.exists()
        r = _kmpress("--version", env=s.env, cwd=tmp_path)
        assert r.returncode == 0  # and commands run in their own process again
    finally:
        s.close()
    s = Server()
    try:
        r = _kmpress("serve", "--stop", env=s.env, cwd=tmp_path)
        assert r.returncode == 0 and b"stopped" in r.stderr
        assert s.proc.wait(timeout=60) == 0 and _status(s.env) is None
    finally:
        s.close()


def test_detached_server(tmp_path):
    runtime = Path(tempfile.mkdtemp(prefix="kmb", dir="/tmp"))
    env = _env(runtime)
    try:
        r = _kmpress("serve", "--detach", "--idle-timeout", 600, env=env, cwd=tmp_path, timeout=700)
        assert r.returncode == 0 and b"started" in r.stderr, r.stderr
        doc = _status(env)
        assert doc is not None and doc["idle_timeout_seconds"] == 600
        again = _kmpress("serve", "--detach", env=env, cwd=tmp_path)
        assert again.returncode == 0 and b"already running" in again.stderr
    finally:
        _kmpress("serve", "--stop", env=env, cwd=tmp_path)
        shutil.rmtree(runtime, ignore_errors=True)


def test_installed_command_suite_through_a_server(warm):
    """tests/e2e/test_command.py, every command of it sent to the server."""
    before = warm.connections()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "tests/e2e/test_command.py",
        ],
        cwd=ROOT,
        env=warm.env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert warm.connections() - before >= 8
