"""Every code block of the README and of docs/ runs as written.

Each block runs in a fresh temporary folder holding the example files the pages name (``photo.jpg``
and ``photo.png`` are the bundled sample at half size; ``photos/``, ``~/Pictures/2024-trip/``,
``a.jpg``, ``scan.tif``... are small crops of it, the JPEGs in folders with a camera's EXIF), with
``HOME`` pointing into that folder:

- ```` ```python ```` blocks run as scripts in a fresh interpreter; they must exit with 0 and print
  text only (no image bytes on standard output), and may not leave ``compress_many(...)``, a lazy
  generator, unconsumed.
- ```` ```console ```` (commands after ``$ ``) and ```` ```bash ````/```` ```sh ```` blocks (every
  line): each command line runs with bash. Only ``kmpress``/``python -m kmpress`` and simple shell
  (``cat``, ``ls``, pipes and redirections) may appear; ``pip install`` steps are left out (CI runs
  them itself). A command exits with 0 unless its comment says ``exit code N``; in a console block
  the lines shown under a command must appear in what it printed.
- ```` ```text ```` (and data: json, csv) blocks are never run. Any other block that must not run
  is marked by a ``<!-- norun: reason -->`` line right before it; an unmarked block that cannot run
  fails the test.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT
from PIL import Image

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: fences whose content is never executed (pictures of output, data)
INERT = {"text", "json", "csv"}
#: fences whose content is executed
SHELL = {"console", "bash", "sh"}
#: the programs a shell example may call (besides kmpress itself)
SIMPLE_SHELL = {"cat", "ls"}
FENCE = re.compile(r"^```(\S*)\s*$")
NORUN = re.compile(r"^<!--\s*norun:\s*(.+?)\s*-->$")
EXIT = re.compile(r"exit code (\d+)")


@dataclass
class Block:
    page: str
    line: int
    lang: str
    text: str
    norun: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks_of(text: str, page: str = "page.md") -> list[Block]:
    """The fenced code blocks of a markdown page, with their language and ``norun`` mark."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        prev = next((lines[p].strip() for p in range(i - 1, -1, -1) if lines[p].strip()), "")
        mark = NORUN.match(prev)
        out.append(Block(page, i + 1, m.group(1), "\n".join(lines[i + 1 : j]) + "\n", mark.group(1) if mark else None))
        i = j + 1
    return out


def all_blocks() -> list[Block]:
    return [b for p in PAGES for b in blocks_of(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]


# --------------------------------------------------------------------------------------------
# the example files
# --------------------------------------------------------------------------------------------


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height, with a few KB of zeros as its data."""
    raw = zlib.compress(b"\0" * 200_000, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def make_world(root: Path) -> dict[str, str]:
    """The files the examples name, under ``root``; returns the environment to run them with."""
    from kmpress import sample_path

    with Image.open(sample_path()) as im:
        sample = im.convert("RGB")
    # the sample at half size: the examples' K searches and sweeps stay quick
    half = sample.resize((256, 256), Image.Resampling.LANCZOS)
    half.save(root / "photo.jpg", quality=90)
    half.save(root / "photo.png")

    def crop(i: int, size=(96, 64)) -> Image.Image:
        x, y = 40 * (i % 8), 48 * (i // 8 % 8)
        return sample.crop((x, y, x + 192, y + 128)).resize(size, Image.Resampling.LANCZOS)

    files = {
        "a.jpg": 0,
        "scan.tif": 1,
        "pano.tif": 2,
        "photos/beach.jpg": 3,
        "photos/city.png": 4,
        "photos/2023/snow.jpg": 5,
        "home/Pictures/2024-trip/beach.jpg": 6,
        "home/Pictures/2024-trip/city.jpg": 7,
        "home/Pictures/2024-trip/day2/harbour.jpg": 9,
    }
    exif = Image.Exif()  # what a camera writes: make, model, date (kept unless --strip)
    exif[0x010F], exif[0x0110], exif[0x0132] = "Canon", "EOS R6", "2024:07:01 10:00:00"
    for name, i in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        extra = {"exif": exif} if name.endswith(".jpg") and name != "a.jpg" else {}
        crop(i, (240, 160) if name.endswith(".tif") else (96, 64)).save(root / name, **extra)
    (root / "bomb.png").write_bytes(_bomb_png(20000, 20000))

    env = dict(os.environ)
    env["HOME"] = str(root / "home")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["COLUMNS"] = "160"
    if "NUMBA_CACHE_DIR" not in env:
        # numba falls back on ~/.cache/numba when the package folder is read-only: keep the real one
        import kmpress.kernels_numba as kn

        if not os.access(Path(kn.__file__).parent, os.W_OK):
            env["NUMBA_CACHE_DIR"] = str(Path(os.path.expanduser("~")) / ".cache" / "numba")
    return env


# --------------------------------------------------------------------------------------------
# running a block
# --------------------------------------------------------------------------------------------


@dataclass
class Command:
    line: str  # what bash runs
    exit_code: int
    output: list[str]  # lines that must appear in what it prints


def _is_pip_install(words: list[str]) -> bool:
    return words[:2] == ["pip", "install"] or words[:4] == ["python", "-m", "pip", "install"]


def _runnable_part(line: str) -> str | None:
    """The part of a shell line the test runs (``pip install`` steps dropped; None if nothing is left).

    Raises AssertionError when the line calls anything but kmpress and simple shell."""
    code = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
    kept = []
    for step in code.split("&&"):
        words = shlex.split(step)
        if not words or _is_pip_install(words):
            continue
        for segment in re.split(r"\|", step):
            w = shlex.split(segment)
            ok = w and (w[0] == "kmpress" or w[0] in SIMPLE_SHELL or w[:3] == ["python", "-m", "kmpress"])
            assert ok, f"cannot run {segment.strip()!r}: mark the block <!-- norun: reason --> or use ```text"
        kept.append(step.strip())
    return " && ".join(kept) or None


def commands_of(block: Block) -> list[Command]:
    out: list[Command] = []
    for raw in block.text.splitlines():
        if block.lang == "console" and not raw.startswith("$ "):
            if out and raw.strip():
                out[-1].output.append(raw.strip())
            continue
        line = raw[2:] if block.lang == "console" else raw
        run = _runnable_part(line)
        if run is None:
            if block.lang == "console":
                out.append(Command("true", 0, []))  # its output lines (if any) belong to nothing
            continue
        m = EXIT.search(line.split(" #", 1)[1]) if " #" in line else None
        out.append(Command(run, int(m.group(1)) if m else 0, []))
    return out


def _unconsumed_generators(code: str) -> list[int]:
    """Lines where ``compress_many(...)`` is a statement of its own: a generator nobody iterates."""
    return [
        n.lineno
        for n in ast.walk(ast.parse(code))
        if isinstance(n, ast.Expr)
        and isinstance(n.value, ast.Call)
        and getattr(n.value.func, "id", getattr(n.value.func, "attr", None)) == "compress_many"
    ]


def run_block(block: Block, where: Path) -> None:
    """Run one block in ``where`` (made ready with :func:`make_world`); AssertionError if it fails."""
    if block.lang in INERT or block.norun:
        return
    assert block.lang, f"{block.id}: a fence without a language: say ```text, ```python, ```console..."
    env = make_world(where)
    if block.lang == "python":
        lazy = _unconsumed_generators(block.text)
        assert not lazy, f"{block.id}: compress_many(...) is a lazy generator left unconsumed (line {lazy})"
        script = where / "example.py"
        script.write_text(block.text)
        p = subprocess.run([sys.executable, str(script)], cwd=where, env=env, capture_output=True, timeout=600)
        assert p.returncode == 0, f"{block.id}: exit code {p.returncode}\n{p.stderr.decode(errors='replace')[-3000:]}"
        try:
            p.stdout.decode("utf-8")
        except UnicodeDecodeError:
            raise AssertionError(f"{block.id}: binary data (an image?) printed on standard output") from None
        return
    assert block.lang in SHELL, (
        f"{block.id}: ```{block.lang} blocks cannot run: mark it <!-- norun: reason --> or use ```text"
    )
    cmds = commands_of(block)
    for c in cmds:
        p = subprocess.run(["bash", "-c", c.line], cwd=where, env=env, capture_output=True, timeout=600)
        shown = (p.stdout + p.stderr).decode(errors="replace")
        assert p.returncode == c.exit_code, (
            f"{block.id}: `{c.line}` exited with {p.returncode}, not {c.exit_code}:\n{shown[-3000:]}"
        )
        flat = " ".join(shown.split())  # tables pad their columns: compare words, not spaces
        for want in c.output:
            assert " ".join(want.split()) in flat, (
                f"{block.id}: `{c.line}` did not print {want!r}; it printed:\n{shown[-3000:]}"
            )


@pytest.mark.parametrize("block", all_blocks(), ids=lambda b: b.id)
def test_code_block_runs(block, tmp_path):
    run_block(block, tmp_path)


# --------------------------------------------------------------------------------------------
# the test can fail: broken examples of each kind
# --------------------------------------------------------------------------------------------


def _one(md: str) -> Block:
    [b] = blocks_of(md)
    return b


@pytest.mark.parametrize(
    "md, why",
    [
        ("```python\nprint(points)\n```\n", "NameError"),
        (
            "```python\nfrom kmpress import compress_many\ncompress_many(['photos/'], 'small', 16)\n```\n",
            "lazy generator",
        ),
        ("```python\nimport sys\nsys.stdout.buffer.write(open('photo.png', 'rb').read())\n```\n", "binary data"),
        ("```console\n$ kmpress compress no-such.jpg\n```\n", "exited with 2, not 0"),
        ("```console\n$ kmpress compress photo.jpg -k 300\n```\n", "exited with 2, not 0"),
        ("```console\n$ kmpress compress photo.jpg       # exit code 3\n```\n", "exited with 0, not 3"),
        ("```console\n$ kmpress info photo.jpg\nno such line\n```\n", "did not print"),
        ("```bash\npython -m bench.compare_webp\n```\n", "cannot run"),
        ("```bash\nrm -rf photos && kmpress compress photo.jpg\n```\n", "cannot run"),
        ("```\nkmpress demo\n```\n", "without a language"),
        ("```powershell\nkmpress demo\n```\n", "cannot run"),
    ],
)
def test_a_broken_example_fails(md, why, tmp_path):
    with pytest.raises(AssertionError, match=why):
        run_block(_one(md), tmp_path)


def test_marked_and_inert_blocks_are_not_run(tmp_path):
    run_block(_one("<!-- norun: needs a cluster -->\n```bash\ndask scheduler\n```\n"), tmp_path)
    run_block(_one("```text\nanything at all\n```\n"), tmp_path)
    assert not list(tmp_path.iterdir())  # not even the example files were made


def test_pip_steps_are_left_out_and_the_rest_runs():
    assert _runnable_part("python -m pip install . && kmpress demo") == "kmpress demo"
    assert _runnable_part('pip install "kmpress[dask]"   # on every machine') is None
    b = _one("```console\n$ kmpress compress bomb.png -q   # exit code 1\nkmpress: bomb.png: refused\n```\n")
    [c] = commands_of(b)
    assert (c.line, c.exit_code, c.output) == ("kmpress compress bomb.png -q", 1, ["kmpress: bomb.png: refused"])


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_the_pages_resolves():
    broken = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md":
                heads = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)
                if anchor not in {_anchor(h) for h in heads}:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken
