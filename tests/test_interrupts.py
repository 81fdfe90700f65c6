"""kmpress.interrupts: Ctrl-C and SIGTERM become a KeyboardInterrupt only where Python unwinds
safely (never inside numba's compiled wrappers or llvmlite's callbacks), and are never lost.

The handlers are process-wide: tests that send real signals to this process do it inside
``handling_signals`` and catch the KeyboardInterrupt themselves; the rest run in subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from test_pool import _run_in_callback

from kmpress import interrupts


def _python(code: str, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def test_a_signal_in_a_deferred_section_is_raised_as_it_ends():
    ran_on = False
    with interrupts.handling_signals():
        with pytest.raises(KeyboardInterrupt):
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                with interrupts.deferred():  # nested: only the outermost raises
                    pass
                ran_on = True
        assert interrupts.received() == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):  # and again at every later section: never lost
            with interrupts.deferred():
                pass
    assert ran_on and interrupts.received() == signal.SIGTERM  # kept for the exit code


def test_a_nested_handling_keeps_the_signal_received():
    with interrupts.handling_signals():
        with pytest.raises(KeyboardInterrupt):
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
        with interrupts.handling_signals():
            assert interrupts.received() == signal.SIGINT
            with pytest.raises(KeyboardInterrupt):
                interrupts.check()
    with interrupts.handling_signals():  # a new outermost one starts afresh
        assert interrupts.received() is None
        interrupts.check()


def test_a_nested_handling_puts_back_handlers_replaced_meanwhile(tmp_path):
    # kmpress serve: the server's process replaces the handlers inside the command's handling,
    # and a forked child resets them, yet inherits the outer handling; the command run there
    # must still turn Ctrl-C and SIGTERM into a KeyboardInterrupt (not die of the default action)
    code = """
        import os, signal, sys
        from kmpress import interrupts
        with interrupts.handling_signals():
            signal.signal(signal.SIGINT, lambda *a: None)
            pid = os.fork()
            if pid == 0:
                for s in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(s, signal.SIG_DFL)
                codes = []
                for sig in (signal.SIGINT, signal.SIGTERM):
                    try:
                        with interrupts.handling_signals():
                            os.kill(os.getpid(), sig)
                            for _ in range(10**6):
                                pass
                    except KeyboardInterrupt:
                        codes.append(128 + interrupts.received())
                    codes.append(signal.getsignal(signal.SIGINT) is signal.SIG_DFL)
                print(codes, flush=True)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            print(os.waitstatus_to_exitcode(status))
    """
    r = _python(code, tmp_path)
    assert r.stdout.split("\n")[:2] == ["[130, True, 143, True]", "0"], r.stderr
    assert r.returncode == 0, r.stderr


def test_an_interrupt_a_finalizer_swallowed_is_raised_again(monkeypatch):
    # an exception raised in __del__ (run by the garbage collector anywhere) is only printed
    # ("Exception ignored in"): the signal behind it still stops the work at the next check
    swallowed = []
    monkeypatch.setattr(sys, "unraisablehook", swallowed.append)

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)

    with interrupts.handling_signals():
        x = Finalized()
        del x
        assert [type(u.exc_value) for u in swallowed] == [KeyboardInterrupt]
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()


def test_nothing_changes_outside_handling_or_the_main_thread():
    import threading

    interrupts.check()  # not handling: never raises
    with interrupts.deferred():
        pass
    seen = []

    def other():
        with interrupts.handling_signals():  # a no-op here
            seen.append(signal.getsignal(signal.SIGTERM))
            interrupts.check()

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == [before]


def test_a_signal_inside_a_kernel_is_raised_once_the_kernel_returned(tmp_path):
    """Deterministically, a signal arrives while a kernel runs: the kernel itself trips it
    (``PyErr_SetInterruptEx``, async-signal-safe, as the C handler of a real signal does), then
    returns two arrays, which numba's wrapper boxes by calling Python back. A KeyboardInterrupt
    raised there made the call fail with a SystemError or return a tuple holding NULL (a
    segmentation fault on unpacking); it must come once the kernel returned, its result intact."""
    code = """
    import ctypes, signal, sys
    import numpy as np
    from numba import njit
    from kmpress import interrupts
    from kmpress.kernels_numba._jit import Kernel

    trip = ctypes.pythonapi.PyErr_SetInterruptEx
    trip.argtypes, trip.restype = [ctypes.c_int], ctypes.c_int

    def body(n, signum):
        a = np.arange(n)
        b = np.arange(n) * 2
        trip(signum)
        return a, b

    SIG = "Tuple((i8[::1], i8[::1]))(i8, i4)"
    two_arrays = Kernel(body, SIG)  # called as kmpress calls its kernels
    two_arrays._dispatcher = njit(SIG, nogil=True)(body)  # not cached: it calls a ctypes pointer

    assert two_arrays(5, 0)[1][4] == 8  # compiled; signal 0 trips nothing
    for signum in (signal.SIGINT, signal.SIGTERM) * 20:
        result = None
        with interrupts.handling_signals():
            try:
                result = two_arrays(1000, signum)
            except KeyboardInterrupt:
                pass
            else:
                sys.exit("the signal was lost")
        assert result is None and interrupts.received() == signum
        a, b = two_arrays(1000, 0)  # outside handling: the wrapper is sound
        assert a.sum() == 499500 and b.sum() == 999000
    print("ok")
    """
    r = _python(code, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == "ok\n" and r.stderr == ""


def test_interrupt_inside_a_c_callback_is_raised_once_it_returned(tmp_path):
    for sig in ("SIGINT", "SIGTERM"):
        r = _run_in_callback(tmp_path, "", sig, "with interrupts.handling_signals():\n    cb()\n    time.sleep(5)")
        assert r.returncode == 0 and r.stdout.strip() == "interrupted after the callback True", (r.stdout, r.stderr)
        assert r.stderr == ""
    # control: in a callback of no known library the interrupt is raised at once (as Python's
    # own Ctrl-C is) and the callback's caller swallows it, the very hazard of raising there;
    # the signal still is not lost: the next check raises it
    r = _run_in_callback(
        tmp_path,
        "",
        "SIGINT",
        "with interrupts.handling_signals():\n    cb()\n    interrupts.check()",
        fake="elsewhere.py",
    )
    assert "Exception ignored" in r.stderr and r.stdout.strip() == "interrupted after the callback True"
    # and the handlers in place before come back
    r = _run_in_callback(
        tmp_path,
        "before = signal.getsignal(signal.SIGTERM)\nwith interrupts.handling_signals():\n    pass\n"
        "assert signal.getsignal(signal.SIGTERM) is before",
        "SIGINT",
        "pass",
    )
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("sig, code, word", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_a_signal_while_the_command_starts_is_heard(tmp_path, sig, code, word):
    """The console entry point handles both signals before it imports the commands, also in a
    process started with SIGINT ignored (a shell script's background job): a signal while they
    load stops the command with its exit code."""
    script = f"""
    import os, signal, sys
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a non-interactive shell starts `cmd &`

    class SignalOnImport:  # the signal arrives while the commands load
        def find_spec(self, name, path=None, target=None):
            if name == "kmpress.cli.main":
                os.kill(os.getpid(), signal.{sig})
            return None

    sys.meta_path.insert(0, SignalOnImport())
    sys.argv = ["kmpress", "--version"]
    from kmpress.cli import run
    run()
    """
    r = _python(script, tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (code, "", f"kmpress: {word}\n")
