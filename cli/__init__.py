"""The ``kmpress`` command line (typer). It parses, calls :mod:`engine`, and prints."""


def run() -> None:
    """Run the console entry point (``kmpress``, ``python -m kmpress``).

    Ctrl-C and SIGTERM are handled from the start (importing the commands takes a moment, and a
    process started with SIGINT ignored, as a shell script's background job is, would otherwise
    drop it meanwhile), then :func:`kmpress.cli.main.main` runs the app.
    """
    import signal
    import sys

    from kmpress import interrupts

    with interrupts.handling_signals():
        try:
            from .main import main
        except KeyboardInterrupt:  # the exit codes of flags.py: 128 + the signal's number
            signum = interrupts.received() or signal.SIGINT
            print(f"kmpress: {'terminated' if signum == signal.SIGTERM else 'interrupted'}", file=sys.stderr)
            sys.exit(128 + signum)
        main()
