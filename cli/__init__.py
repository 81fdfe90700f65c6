"""The ``kmpress`` command line (typer). It parses, calls :mod:`engine`, and prints."""

from __future__ import annotations

from collections.abc import Callable


def run() -> None:
    """Run the console entry point (``kmpress``, ``python -m kmpress``).

    When the user runs a server (``kmpress serve``) and it answers, the command runs there, warm
    (:mod:`kmpress.cli.client`, which imports only the standard library); else here, through
    :func:`run_here`.
    """
    import sys

    from .client import run_on_server

    code = run_on_server(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    run_here()


def run_here(ready: Callable[[], None] | None = None) -> None:
    """Run the command in this process.

    Ctrl-C and SIGTERM are handled from the start (importing the commands takes a moment, and a
    process started with SIGINT ignored, as a shell script's background job is, would otherwise
    drop it meanwhile), then :func:`kmpress.cli.main.main` runs the app. ``ready``, when given,
    is called once the handlers are in place (the server's process starts passing on the
    client's signals then).
    """
    import signal
    import sys

    from kmpress import interrupts

    with interrupts.handling_signals():
        if ready is not None:
            ready()
        try:
            from .main import main
        except KeyboardInterrupt:  # the exit codes of flags.py: 128 + the signal's number
            signum = interrupts.received() or signal.SIGINT
            print(f"kmpress: {'terminated' if signum == signal.SIGTERM else 'interrupted'}", file=sys.stderr)
            sys.exit(128 + signum)
        main()
