"""Handle a command's inputs as the user named them.

The line when none is found, and an image read from standard input.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from kmpress.errors import ImageReadError, InvalidParameterError, KmpressError

from .flags import EXIT_USAGE
from .outcome import binary, exit_with


def nothing_found(plan: Any, paths: Sequence[Path], recursive: bool, as_json: bool, doc: dict) -> typer.Exit:
    """Say that no input holds an image; return the command's exit.

    One line per input that does not exist (the last one as the command's error), then, when
    folders were given, that they hold no image, with the hint to add -r when they have
    sub-folders.
    """
    from .render import error_line

    lines = [f"{it.src}: {it.reason}" for it in plan.items]
    for it in plan.items:
        doc["files"].append({"src": str(it.src), "dst": None, "status": "error", "message": it.reason})
    folders = [p for p in paths if p.is_dir()]
    if folders or not lines:
        lines.append(f"no image found in {', '.join(map(str, folders or paths))}")
        if not recursive and any(has_subfolder(p) for p in folders):
            lines[-1] += " (sub-folders are searched with -r/--recursive)"
    for line in lines[:-1]:
        error_line(line)
    return exit_with(lines[-1], EXIT_USAGE, "compress", as_json, doc)


def has_subfolder(folder: Path) -> bool:
    """Tell whether ``folder`` has a sub-folder that -r would search."""
    try:
        return any(not q.name.startswith(".") and q.is_dir() for q in folder.iterdir())
    except OSError:
        return False


@contextmanager
def stdin_file(file: Path) -> Iterator[Path]:
    """Yield ``file`` itself, or, for ``-``, the image on standard input in a temporary file.

    The temporary file lasts while the command runs; errors about it name ``-``.
    """
    if str(file) != "-":
        yield file
        return
    import tempfile

    if sys.stdin is None or sys.stdin.isatty():
        raise InvalidParameterError("standard input is a terminal: pipe an image in (kmpress info - < photo.jpg)")
    with tempfile.TemporaryDirectory(prefix="kmpress-") as tmp:
        path = Path(tmp, "stdin")
        data = binary(sys.stdin).read()
        if not data:
            raise ImageReadError("no image on standard input (it is empty)", "-")
        path.write_bytes(data)
        try:
            yield path
        except KmpressError as e:  # about the image read: name it as the user did
            if e.path == str(path):
                e.path = "-"
            raise
