"""The ``kmpress`` command's way to a warm server (``kmpress serve``), in the standard library only.

A process pays numba's start-up (~0.4 s) before its first pixel; a server started with
``kmpress serve`` has paid it once. When one answers, :func:`run_on_server` hands it the command:
the arguments, the working folder, the umask, the environment, and the three standard streams
themselves (their file descriptors, passed over the socket), so the command writes to the same
terminal, pipe or file, with the same bytes, as it would here. The server runs it in a forked
process of its own and tells the exit code back. This module imports nothing but the standard
library, and decides before typer, NumPy or numba load: otherwise the time saved would be lost.

Every doubt means the command runs here instead (:func:`run_on_server` returns None): no socket,
a socket in a folder that is not private to this user, a server that does not answer within
:data:`ANSWER_SECONDS`, or one of another kmpress (the handshake: :func:`fingerprint`).

Security: the socket is a Unix socket in a folder only this user may enter (:func:`server_dir`,
mode 0700, owned by the user, not a symbolic link); the server checks the peer's user id as well
(SO_PEERCRED). There is no TCP.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import struct
import sys
import zlib

#: Seconds a server has to accept a command before it runs here instead.
ANSWER_SECONDS = 2.0
#: Set to 0 (or off, no, false) to never use a server.
ENV_SWITCH = "KMPRESS_SERVER"
#: Variables read when numba, NumPy or Python start (the locale too: Python's file encoding): a
#: server started under other values would not run the command the way this process would, so
#: they are part of the handshake.
STARTUP_VARIABLES = ("NUMBA_", "PYTHON", "OMP_", "KMP_", "GOMP_", "MKL_", "OPENBLAS_", "TBB_", "LD_", "LC_", "LANG")
#: Start-up variables a kmpress process sets itself when the user has not
#: (``kmpress.backends.OPENMP_DEFAULTS``, repeated here: this module imports nothing of kmpress's):
#: unset and set to these values, they mean the same to the handshake.
SET_BY_KMPRESS = {"GOMP_SPINCOUNT": "10000"}
#: The modules whose installed files the handshake covers, besides kmpress's own sources.
DEPENDENCIES = ("numpy", "numba", "llvmlite", "PIL", "typer", "click", "rich")
#: Longest message accepted from the other side.
MAX_MESSAGE = 1 << 24
#: Signals the client passes on to the server's process running its command.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def enabled() -> bool:
    """Whether the user allows a server at all (``KMPRESS_SERVER=0`` says no)."""
    return os.environ.get(ENV_SWITCH, "").strip().lower() not in ("0", "off", "no", "false")


def server_dir() -> str:
    """Return the per-user folder of the servers' sockets.

    ``$XDG_RUNTIME_DIR/kmpress`` when that variable names a folder of this user, else
    ``kmpress-UID`` in the temporary folder.
    """
    base = os.environ.get("XDG_RUNTIME_DIR", "")
    if base and os.path.isabs(base):
        try:
            st = os.stat(base)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
                return os.path.join(base, "kmpress")
        except OSError:
            pass
    tmp = os.environ.get("TMPDIR", "")
    tmp = tmp if tmp and os.path.isabs(tmp) and os.path.isdir(tmp) else "/tmp"
    return os.path.join(tmp, f"kmpress-{os.getuid()}")


def is_private(folder: str) -> bool:
    """Tell whether ``folder`` is private to this user.

    That is: a real folder (not a symbolic link) owned by this user, that no one else may enter
    or change (no group or other permission bits).
    """
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077 == 0


def _package_dirs() -> list[str]:
    import kmpress  # already imported: this module is part of it

    engine = os.path.dirname(os.path.abspath(kmpress.__file__ or ""))
    return [engine, os.path.join(engine, "kernels_numba"), os.path.dirname(os.path.abspath(__file__))]


def socket_path() -> str:
    """Return this installation's socket: one server per kmpress package folder and Python."""
    key = zlib.crc32(f"{os.path.realpath(_package_dirs()[0])}\0{sys.executable}".encode())
    return os.path.join(server_dir(), f"server-{key:08x}.sock")


def _installed_version() -> str:
    """Return kmpress's version and its ``.dist-info`` folder's time of change.

    Read from the folder's name: importlib.metadata would cost ~40 ms, a tenth of what the
    server saves.
    """
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as it:
                for e in it:
                    if e.name.startswith("kmpress-") and e.name.endswith(".dist-info"):
                        return f"{e.name[8:-10]}@{e.stat().st_mtime_ns}"
        except OSError:
            continue
    return "unknown"


def fingerprint() -> str:
    """Return the handshake: what a server must share with this process to run its commands.

    kmpress's version, its sources (each file's name, size and time of change, so a reinstall
    or an edit changes it), Python and the files of the dependencies it imports, and the
    variables read at start-up (:data:`STARTUP_VARIABLES`). Cheap: no file is read.
    """
    parts = [_installed_version(), sys.executable, sys.version]
    for folder in _package_dirs():
        try:
            with os.scandir(folder) as it:
                for e in sorted(it, key=lambda e: e.name):
                    if e.name.endswith(".py"):
                        st = e.stat()
                        parts.append(f"{e.path}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{folder}:missing")
    from importlib.util import find_spec

    for name in DEPENDENCIES:
        try:
            spec = find_spec(name)
            origin = spec.origin if spec is not None and spec.origin else ""
            parts.append(f"{name}:{origin}:{os.stat(origin).st_mtime_ns if origin else ''}")
        except (ImportError, ValueError, OSError):
            parts.append(f"{name}:absent")
    env = {**SET_BY_KMPRESS, **os.environ}
    parts += sorted(f"{k}={v}" for k, v in env.items() if k.startswith(STARTUP_VARIABLES))
    text = "\n".join(parts).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(text):08x}{zlib.adler32(text):08x}{len(text):x}"


# --------------------------------------------------------------------------------------------
# messages: a 4-byte length and a JSON object
# --------------------------------------------------------------------------------------------


def send_message(sock: socket.socket, doc: dict, fds: list[int] | None = None) -> None:
    """Send ``doc``; ``fds`` go with it (SCM_RIGHTS)."""
    data = json.dumps(doc).encode("utf-8", "surrogateescape")
    data = struct.pack("!I", len(data)) + data
    if fds:
        socket.send_fds(sock, [data[:4]], fds)
        sock.sendall(data[4:])
    else:
        sock.sendall(data)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        b = sock.recv(n)
        if not b:
            raise ConnectionError("the other side closed the connection")
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def recv_message(sock: socket.socket, with_fds: bool = False) -> tuple[dict, list[int]]:
    """Receive the next message and the file descriptors that came with it (with ``with_fds``)."""
    fds: list[int] = []
    if with_fds:
        head, fds, _, _ = socket.recv_fds(sock, 4, 3)
        if len(head) < 4:
            head += _recv_exactly(sock, 4 - len(head))
    else:
        head = _recv_exactly(sock, 4)
    if not head:
        raise ConnectionError("the other side closed the connection")
    (n,) = struct.unpack("!I", head)
    if n > MAX_MESSAGE:
        raise ConnectionError("message too long")
    doc = json.loads(_recv_exactly(sock, n).decode("utf-8", "surrogateescape"))
    if not isinstance(doc, dict):
        raise ConnectionError("not a message")
    return doc, fds


def connect(path: str | None = None, timeout: float = ANSWER_SECONDS) -> socket.socket | None:
    """Connect to this installation's server; None when there is none to trust.

    The socket must be this user's, in a private folder (:func:`is_private`).
    """
    path = path or socket_path()
    if not is_private(os.path.dirname(path)):
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def request(op: str, path: str | None = None, timeout: float = ANSWER_SECONDS) -> dict | None:
    """Send a control request (``status``, ``stop``); the server's answer, None when none answers."""
    sock = connect(path, timeout)
    if sock is None:
        return None
    try:
        with sock:
            send_message(sock, {"op": op})
            return recv_message(sock)[0]
    except (OSError, ValueError):
        return None


def _stream_facts() -> list[list]:
    """Return (encoding, errors) of stdin, stdout and stderr, for the server's streams to match."""
    return [[getattr(s, "encoding", None), getattr(s, "errors", None)] for s in (sys.stdin, sys.stdout, sys.stderr)]


def run_on_server(argv: list[str]) -> int | None:
    """Run ``kmpress ARGV`` on this user's server and return its exit code.

    None when it must run here instead: no server, a server of another kmpress, no answer in
    time, or the user said no.

    Once the server has accepted the command, Ctrl-C, SIGTERM and SIGHUP here are passed on to
    it, so it stops the way it would in this process (exit 130 or 143, no partial file).
    """
    if not enabled() or (argv and argv[0] == "serve"):
        return None
    sock = connect()
    if sock is None:
        return None
    received: list[int] = []  # every signal received; passed on once the server accepted
    accepted = False

    def send(signum: int) -> None:
        try:
            send_message(sock, {"signal": int(signum)})
        except OSError:
            pass

    def forward(signum, frame):
        received.append(signum)
        if accepted:
            send(signum)

    # kmpress handles Ctrl-C and SIGTERM even when they were ignored at start (kmpress.cli.run);
    # a SIGHUP ignored here (nohup) must stay ignored
    saved = {
        s: signal.signal(s, forward)
        for s in FORWARDED
        if s in (signal.SIGINT, signal.SIGTERM) or signal.getsignal(s) is not signal.SIG_IGN
    }
    try:
        try:
            doc = {
                "op": "run",
                "fingerprint": fingerprint(),
                "argv": argv,
                "cwd": os.getcwd(),
                "umask": _umask(),
                "env": dict(os.environ),
                "streams": _stream_facts(),
            }
            send_message(sock, doc)
            answer, _ = recv_message(sock)
            if answer.get("accepted"):
                # the streams only now: a server that never answers must not hold them open
                send_message(sock, {"streams": True}, [0, 1, 2])
        except (OSError, ValueError):
            answer = {}
        if not answer.get("accepted"):
            if received:  # stopped before anything ran: as kmpress.cli.run says it
                _hang_up_if(received)
                word = "terminated" if received[-1] == signal.SIGTERM else "interrupted"
                sys.stderr.write(f"kmpress: {word}\n")
                return 128 + received[-1]
            return None
        accepted = True
        for signum in list(received):
            send(signum)
        return _wait_for_exit(sock, received)
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
        sock.close()


def _hang_up_if(received: list[int]) -> None:
    """End this process by SIGHUP's default action if one is among ``received``.

    kmpress's own process, which leaves SIGHUP alone, would have ended so.
    """
    if signal.SIGHUP in received:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGHUP)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _wait_for_exit(sock: socket.socket, received: list[int]) -> int:
    """Wait for the command's exit code; the signals received meanwhile go to ``received``.

    A command ended by a hangup passed on (SIGHUP's default action: no exit code comes) ends
    this process the same way.
    """
    sock.settimeout(None)
    while True:
        try:
            doc, _ = recv_message(sock)
        except (OSError, ValueError):
            _hang_up_if(received)
            sys.stderr.write("kmpress: the server's process for this command ended before it finished\n")
            return 1
        if "exit" in doc:
            return int(doc["exit"])
