"""The results page: each bench script writes its table into ``docs/results.md`` itself.

A script run with ``--write-results docs/results.md`` replaces the body of its own marked section,

    <!-- results:NAME -->
    ...
    <!-- /results:NAME -->

with a line naming the command, the machine and the date, then its table. Everything outside the
markers is left as it is, so the page's prose and the other scripts' sections survive a run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The page every script writes to by default (``--write-results`` without a path).
PAGE = ROOT / "docs" / "results.md"


class ResultsError(Exception):
    """The page has no usable section of that name (missing, repeated or misplaced markers)."""


def markers(name: str) -> tuple[str, str]:
    """The opening and closing marker of section ``name``."""
    return f"<!-- results:{name} -->", f"<!-- /results:{name} -->"


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the body of section ``name`` replaced by ``body``.

    Raises
    ------
    ResultsError
        When either marker is missing or present more than once, or the closing marker comes first.
    """
    start, end = markers(name)
    for m in (start, end):
        n = text.count(m)
        if n != 1:
            raise ResultsError(f"results section {name!r}: marker {m} found {n} times (expected once)")
    i, j = text.index(start), text.index(end)
    if j < i:
        raise ResultsError(f"results section {name!r}: {end} comes before {start}")
    return text[: i + len(start)] + "\n" + body.strip("\n") + "\n" + text[j:]


def machine() -> str:
    """A short description of this machine: CPU model, usable cores, memory, OS."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 2**20:.0f} GiB"
                break
    except OSError:
        pass
    return f"{cpu}, {cores} cores{mem}, {platform.system()} {platform.release()}"


def command_line(module: str, argv: list[str]) -> str:
    """The command as a user types it again: ``python -m MODULE ARGS`` without ``--write-results``."""
    args, skip = [], False
    for a in argv:
        if skip:
            skip = False
            if not a.startswith("-"):
                continue
        if a == "--write-results":
            skip = True  # its value, if it has one
            continue
        if a.startswith("--write-results="):
            continue
        args.append(a)
    return " ".join(["python", "-m", module, *map(shlex.quote, args)])


def section_body(command: str, table: str, *, when: datetime.date | None = None, where: str | None = None) -> str:
    """What a section holds: the command, the machine and the date, then the table."""
    when = when or datetime.date.today()
    where = where or machine()
    return f"`{command}` ({where}; {when.isoformat()}):\n\n{table.strip()}\n"


def write_results(page: Path, name: str, table: str, module: str, argv: list[str] | None = None) -> None:
    """Replace section ``name`` of ``page`` with ``table`` and its provenance (atomic rewrite)."""
    argv = sys.argv[1:] if argv is None else argv
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    new = replace_section(text, name, section_body(command_line(module, argv), table))
    tmp = page.with_name(f".{page.name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, page)
    print(f"wrote section {name!r} of {page}", file=sys.stderr)


def add_option(ap: argparse.ArgumentParser) -> None:
    """``--write-results [PAGE]``: also write the table into PAGE's marked section."""
    ap.add_argument(
        "--write-results",
        nargs="?",
        type=Path,
        const=PAGE,
        default=None,
        metavar="PAGE",
        help=f"also write the table into PAGE's marked section (default page: {PAGE.relative_to(ROOT)})",
    )
