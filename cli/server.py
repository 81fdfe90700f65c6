"""``kmpress serve``: a process that keeps kmpress warm, so one-file commands skip the start-up.

The server imports everything a command needs and loads numba's serial kernels once, then
waits on a Unix socket (:func:`kmpress.cli.client.socket_path`, in a folder private to the
user). Each command runs in a forked process of its own, as if started by the client:

- the *parent* never runs a command, never starts a thread, and never loads a parallel kernel:
  loading one starts numba's threading layer, and GNU OpenMP (numba's usual layer) cannot be used
  in a process forked after that. It forks one *spare* at a time and restarts one when the spare
  takes a connection; it exits after ``--idle-timeout`` seconds without a command (nothing
  running), on SIGINT or SIGTERM, on ``kmpress serve --stop``, or when a client shows that
  kmpress's files changed on disk (an upgrade: the next ``kmpress serve`` starts the new one);
- the *spare* loads the parallel kernels (its own threading layer) while no one waits, then
  accepts one connection: it checks the peer's user id (SO_PEERCRED) and the handshake
  (:func:`kmpress.cli.client.fingerprint`), takes the client's standard streams, working folder,
  umask, environment and arguments, runs the command (:func:`kmpress.cli.run_here`), and sends
  the exit code back. The client's Ctrl-C comes as a message and is raised here the way the
  signal itself would be; a client that goes away terminates its command (SIGTERM). Its memory
  goes with it when it exits.

Commands already running when the server stops finish (each spare has its own process group,
so a Ctrl-C in the server's terminal reaches only the server).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Annotated, Any

import typer

from kmpress.errors import ServerError

from . import client

#: Seconds without a command after which the server exits, by default.
DEFAULT_IDLE_SECONDS = 900
#: Seconds ``serve --detach`` waits for the new server to answer (a first run compiles kernels).
START_SECONDS = 600


def serve_command(
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="Run in the background; return once it answers.")
    ] = False,
    stop_it: Annotated[bool, typer.Option("--stop", help="Stop this installation's server.")] = False,
    show_status: Annotated[
        bool, typer.Option("--status", help="Show whether a server runs (exit 0) or not (exit 1).")
    ] = False,
    idle_timeout: Annotated[
        float,
        typer.Option(
            "--idle-timeout", metavar="SECONDS", min=0, help="Exit after this long without a command (0: never)."
        ),
    ] = DEFAULT_IDLE_SECONDS,
    as_json: Annotated[bool, typer.Option("--json", help="With --status: one JSON document on stdout.")] = False,
) -> None:
    """Keep kmpress warm for the kmpress commands that follow (opt-in).

    While it runs, every kmpress command of this user and installation runs in it, without the
    start-up (~0.4 s), with the same output, files and exit codes; when none answers, commands run
    in their own process as before. Set KMPRESS_SERVER=0 to never use it. The socket is in a folder
    only you can enter; the server exits after --idle-timeout, and when kmpress is upgraded.
    """
    if stop_it:
        raise typer.Exit(stop())
    if show_status:
        raise typer.Exit(status(as_json))
    raise typer.Exit(start(idle_timeout, detach))


# --------------------------------------------------------------------------------------------
# the parent
# --------------------------------------------------------------------------------------------


def private_dir(folder: str) -> str:
    """Create ``folder`` (mode 0700) if missing and check that it is private to this user."""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as e:
        raise ServerError(f"cannot create {folder}: {e.strerror}") from None
    if not client.is_private(folder):
        raise ServerError(f"{folder} is not a folder private to this user (mode 0700, owned by you): not used")
    return folder


def warm() -> None:
    """Import what a command needs and load numba's serial kernels, without starting a thread.

    That is the work every command would otherwise pay before its first pixel (see the module).
    """
    from kmpress import backends

    backends.own_process()  # as the command's own process does: numba skips its BLAS probe
    import numpy as np
    import rich.console
    import rich.progress
    import rich.table  # noqa: F401
    from PIL import Image

    from kmpress import api, batch, pipes, report  # noqa: F401

    from . import main, render  # noqa: F401

    Image.init()
    for kernel in backends.load("numba").kernels(parallel=False):
        _ = kernel.dispatcher
    _small_run(np, api, "numpy")  # each stage's first call (numba's parallel kernels are the spare's)


def _small_run(np: Any, api: Any, backend: str) -> None:
    """Compress a small image in memory with ``backend``: the first call of each stage."""
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    api.compress(img, io.BytesIO(), 16, backend=backend)
    for t in threading.enumerate():  # a warm-up thread of the engine's: ended before any fork
        if t is not threading.current_thread():
            t.join(30)


def _parallel_layer_started() -> bool:
    mod = sys.modules.get("numba.np.ufunc.parallel")
    return bool(getattr(mod, "_is_initialized", False))


class Server:
    """The parent process (see the module)."""

    def __init__(self, path: str, idle_seconds: float) -> None:
        self.path = path
        self.idle_seconds = idle_seconds
        self.started = time.time()
        self.stopping = False
        self.busy: set[int] = set()
        self.spare: int | None = None
        self.pid = os.getpid()
        self.connections = 0  # taken by spares so far
        self.lock_fd = -1

    def run(self, announce: bool = True) -> int:
        """Serve until stopped or idle; the exit code."""
        folder = private_dir(os.path.dirname(self.path))
        if len(os.fsencode(self.path)) >= 104:
            raise ServerError(f"{self.path}: path too long for a Unix socket (set XDG_RUNTIME_DIR or TMPDIR)")
        # held for the server's life: a second server of this installation does not start
        lock = os.fdopen(os.open(self.path[: -len(".sock")] + ".lock", os.O_WRONLY | os.O_CREAT, 0o600), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"kmpress: a server is already running ({self.path})", file=sys.stderr)
            return 0
        self.lock_fd = lock.fileno()
        self.fingerprint = client.fingerprint()  # of the files about to be loaded
        warm()
        if _parallel_layer_started() or threading.active_count() > 1:
            raise ServerError("numba's threading layer started during the warm-up: cannot fork safely")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a dead server's (the lock says none runs)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        os.chmod(self.path, 0o600)
        listener.listen(64)
        inode = os.stat(self.path).st_ino
        notify_r, notify_w = os.pipe()
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, self._stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a detached server outlives its terminal
        if announce:
            idle = f"exits after {self.idle_seconds:g} s idle" if self.idle_seconds else "no idle exit"
            print(f"kmpress server ready (pid {os.getpid()}, {idle}): {self.path}", file=sys.stderr, flush=True)
        try:
            self._loop(listener, notify_r, notify_w)
        finally:
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == inode:
                    os.unlink(self.path)
            listener.close()
            if self.spare is not None:
                with contextlib.suppress(OSError):
                    os.kill(self.spare, signal.SIGUSR1)  # an idle spare exits; one that took a command does not
                    os.waitpid(self.spare, 0)
            lock.close()
            del folder
        return 0

    def _stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _loop(self, listener: socket.socket, notify_r: int, notify_w: int) -> None:
        last = time.monotonic()
        pending = b""
        while not self.stopping:
            if self.spare is None:
                self.spare = _fork_spare(listener, notify_r, notify_w, self)
            try:
                ready, _, _ = select.select([notify_r], [], [], 0.25)
            except InterruptedError:
                ready = []
            now = time.monotonic()
            if ready:
                pending += os.read(notify_r, 4096)
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    pid = int(line)
                    self.busy.add(pid)
                    self.connections += 1
                    if pid == self.spare:
                        self.spare = None
                    last = now
            while True:
                try:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                self.busy.discard(pid)
                last = now
                if pid == self.spare:  # died without taking a connection: start another, not in a spin
                    self.spare = None
                    time.sleep(0.5)
            if self.idle_seconds and not self.busy and now - last > self.idle_seconds:
                break


def _fork_spare(listener: socket.socket, notify_r: int, notify_w: int, server: Server) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.close(notify_r)
        code = _spare(listener, notify_w, server)
    except BaseException:  # never back into the parent's loop
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


# --------------------------------------------------------------------------------------------
# the spare, then the command's process
# --------------------------------------------------------------------------------------------


def _spare(listener: socket.socket, notify_w: int, server: Server) -> int:
    claimed = False

    def quit_if_idle(signum: int, frame: Any) -> None:
        if not claimed:
            os._exit(0)

    signal.signal(signal.SIGUSR1, quit_if_idle)
    _exit_with_parent(signal.SIGUSR1)
    if os.getppid() != server.pid:
        return 0
    os.close(server.lock_fd)  # the lock is the server's, not a command's that outlives it
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_DFL)
    os.setpgid(0, 0)  # the server's terminal's Ctrl-C is not the commands'
    import numpy as np

    from kmpress import api, backends

    # a client already waiting is served at once: the command loads what it needs itself, and
    # sooner than its own process would (a burst of commands would otherwise wait on each
    # spare's warm-up, past the client's patience: client.ANSWER_SECONDS)
    for kernel in backends.load("numba").kernels(parallel=True):
        if _client_waiting(listener):
            break
        _ = kernel.dispatcher
    else:
        if not _client_waiting(listener):
            _small_run(np, api, "numba")
    conn, _ = listener.accept()
    claimed = True
    os.write(notify_w, f"{os.getpid()}\n".encode())
    os.close(notify_w)
    listener.close()
    with conn:
        try:
            return _serve_connection(conn, server)
        except OSError:  # a client that gave up before its command started (it runs it itself)
            return 1


def _client_waiting(listener: socket.socket) -> bool:
    return bool(select.select([listener], [], [], 0)[0])


def _exit_with_parent(signum: int) -> None:
    """Have ``signum`` sent to this process when its parent dies (Linux's PR_SET_PDEATHSIG).

    A spare then never outlives a server killed outright.
    """
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signum), 0, 0, 0)


def peer_uid(conn: socket.socket) -> int:
    """Return the user id of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _serve_connection(conn: socket.socket, server: Server) -> int:
    if peer_uid(conn) != os.getuid():
        return 1
    conn.settimeout(client.ANSWER_SECONDS)
    try:
        doc, _ = client.recv_message(conn)
    except (OSError, ValueError):
        return 1
    op = doc.get("op")
    if op == "status":
        client.send_message(conn, status_doc(server))
        return 0
    if op == "stop":
        client.send_message(conn, {"stopping": os.getppid()})
        os.kill(os.getppid(), signal.SIGTERM)
        return 0
    reason = None
    if op != "run":
        reason = "not a command"
    elif doc.get("fingerprint") != server.fingerprint:
        reason = "another kmpress, Python, or start-up environment"
        if client.fingerprint() != server.fingerprint:  # the files changed under the server: retire
            os.kill(os.getppid(), signal.SIGTERM)
    else:
        try:
            os.chdir(doc["cwd"])
        except (OSError, KeyError, TypeError):
            reason = "cannot enter the working folder"
    if reason is not None:
        client.send_message(conn, {"accepted": False, "reason": reason})
        return 1
    client.send_message(conn, {"accepted": True, "pid": os.getpid()})
    try:
        _, fds = client.recv_message(conn, with_fds=True)
    except (OSError, ValueError):
        return 1
    if len(fds) != 3:
        return 1
    return _run_command(conn, doc, fds)


def status_doc(server: Server) -> dict:
    """Return what ``kmpress serve --status`` shows."""
    import kmpress

    return {
        "pid": os.getppid(),
        "version": kmpress.__version__,
        "socket": server.path,
        "uptime_seconds": round(time.time() - server.started, 1),
        "idle_timeout_seconds": server.idle_seconds,
        "fingerprint": server.fingerprint,
        "connections": server.connections + 1,  # this one included
    }


def _adopt_streams(fds: list[int], facts: list) -> None:
    """Make the client's stdin, stdout and stderr this process's, as Python would open them."""
    for target, fd in enumerate(fds):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    (in_enc, in_err), (out_enc, out_err), (err_enc, err_err) = facts

    def text(fd: int, mode: str, enc: str | None, errors: str | None, line: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, mode, closefd=False)
        buf = io.BufferedReader(raw) if mode == "rb" else io.BufferedWriter(raw)
        return io.TextIOWrapper(buf, encoding=enc or "utf-8", errors=errors or "strict", line_buffering=line)

    streams = {
        "stdin": text(0, "rb", in_enc, in_err, False),
        "stdout": text(1, "wb", out_enc, out_err, os.isatty(1)),  # line-buffered on a terminal, as Python's
        "stderr": text(2, "wb", err_enc, err_err or "backslashreplace", True),
    }
    for name, stream in streams.items():
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _run_command(conn: socket.socket, doc: dict, fds: list[int]) -> int:
    """Run ``kmpress ARGV`` here as the client would have, and send back its exit code."""
    _adopt_streams(fds, doc["streams"])
    os.umask(int(doc["umask"]))
    os.environ.clear()
    os.environ.update(doc["env"])
    sys.argv = ["kmpress", *doc["argv"]]
    # the server ignores SIGHUP; the command's own process would not (a forwarded hangup ends it
    # as it would have ended there: the client then ends the same way)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    finished = threading.Event()

    def watch() -> None:  # the client's signals, and its going away
        while True:
            try:
                msg, _ = client.recv_message(conn)
            except (OSError, ValueError):
                if not finished.is_set():
                    os.kill(os.getpid(), signal.SIGTERM)
                return
            if "signal" in msg and not finished.is_set():
                os.kill(os.getpid(), int(msg["signal"]))

    conn.settimeout(None)
    watcher = threading.Thread(target=watch, name="kmpress-client-signals", daemon=True)
    code = 0
    try:
        from . import run_here

        run_here(ready=watcher.start)
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:  # as Python's own top level would say it
        import traceback

        traceback.print_exc()
        code = 1
    finished.set()
    with contextlib.suppress(Exception):
        import atexit

        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError):
        client.send_message(conn, {"exit": code})
    return code


def _exit_code(code: Any) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


# --------------------------------------------------------------------------------------------
# the command's actions
# --------------------------------------------------------------------------------------------


def start(idle_seconds: float, detach: bool) -> int:
    """``kmpress serve`` (in the foreground, or ``--detach``): the exit code."""
    path = client.socket_path()
    running = client.request("status", path)
    if running is not None:
        if running.get("fingerprint") == client.fingerprint():
            print(f"kmpress: a server is already running (pid {running.get('pid')}): {path}", file=sys.stderr)
            return 0
        stop(quiet=True)  # another kmpress's: replaced
    if detach:
        return _detach(path, idle_seconds)
    try:
        return Server(path, idle_seconds).run()
    except ServerError as e:
        print(f"kmpress: {e}", file=sys.stderr)
        return 1


def _detach(path: str, idle_seconds: float) -> int:
    try:
        folder = private_dir(os.path.dirname(path))
    except ServerError as e:
        print(f"kmpress: {e}", file=sys.stderr)
        return 1
    log_path = path[: -len(".sock")] + ".log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kmpress", "serve", "--idle-timeout", str(idle_seconds)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=folder,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        answer = client.request("status", path)
        if answer is not None and answer.get("pid") == proc.pid:
            print(f"kmpress server started (pid {proc.pid}): {path}", file=sys.stderr)
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    print(f"kmpress: the server did not start (see {log_path})", file=sys.stderr)
    return 1


def stop(quiet: bool = False) -> int:
    """``kmpress serve --stop``: ask this installation's server to exit and wait until it has."""
    path = client.socket_path()
    answer = client.request("stop", path)
    if answer is None:
        if not quiet:
            print("kmpress: no server is running", file=sys.stderr)
        return 0
    pid = int(answer.get("stopping", 0))
    deadline = time.monotonic() + 30
    while pid and time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if not quiet:
        print(f"kmpress server stopped (pid {pid})", file=sys.stderr)
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie of this process's own (a foreground server started by a test) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def status(as_json: bool) -> int:
    """``kmpress serve --status``: 0 and the server's facts when one answers, else 1."""
    answer = client.request("status", client.socket_path())
    if as_json:
        import json

        print(json.dumps({"command": "serve", "running": answer is not None, **(answer or {})}, indent=2))
    elif answer is None:
        print("kmpress: no server is running", file=sys.stderr)
    else:
        stale = answer.get("fingerprint") != client.fingerprint()
        print(
            f"kmpress server: pid {answer['pid']}, kmpress {answer['version']}, up {answer['uptime_seconds']:g} s, "
            f"idle exit {answer['idle_timeout_seconds']:g} s, socket {answer['socket']}"
            + (" (another kmpress: not used)" if stale else "")
        )
    return 0 if answer is not None else 1
