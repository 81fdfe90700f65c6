"""The package's shape: one top-level name in the wheel, imports that run one way (no cycles, no
sibling imported inside a function but the backend pick), no file over 600 lines, every public
name importable, the layout page (docs/layout.md) complete."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import kmpress

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"
SOURCES = sorted([*ENGINE.rglob("*.py"), *(ROOT / "cli").glob("*.py")])


def _module(path: Path) -> str:
    rel = path.relative_to(ENGINE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["kmpress", *parts])


def _sibling_imports(path: Path, tree: ast.AST) -> list[tuple[str, ast.AST]]:
    """(imported kmpress module, node) for every relative import in an engine file."""
    pkg = _module(path).split(".")
    if path.name != "__init__.py":
        pkg = pkg[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg[: len(pkg) - node.level + 1]
            if node.module:
                out.append((".".join([*base, *node.module.split(".")]), node))
            else:
                out.extend((".".join([*base, a.name]), node) for a in node.names)
    return out


def test_wheel_has_one_top_level_package(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    [wheel] = tmp_path.glob("kmpress-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    version = wheel.name.split("-")[1]
    assert {n.split("/")[0] for n in names} == {"kmpress", f"kmpress-{version}.dist-info"}
    top = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("top_level.txt"))).decode().split()
    assert top == ["kmpress"]
    assert "kmpress/data/astronaut.jpg" in names
    # the prebuilt portable kernels (package data of kmpress.kernels_numba)
    assert [n for n in names if n.startswith("kmpress/kernels_numba/prebuilt/numba-") and n.endswith(".zip")]
    # the PEP 561 marker: type checkers read the annotations of the installed package
    assert "kmpress/py.typed" in names
    record = zipfile.ZipFile(wheel).read(f"kmpress-{version}.dist-info/RECORD").decode()
    assert "kmpress/py.typed," in record
    for path in SOURCES:  # every module of the repository is in the wheel, where it belongs
        rel = path.relative_to(ROOT)
        inside = ("kmpress/cli" if rel.parts[0] == "cli" else "kmpress") + "/" + "/".join(rel.parts[1:])
        assert inside in names, inside
    assert not [n for n in names if "__pycache__" in n or n.endswith((".nbi", ".nbc", ".pyc"))]


def test_imports_run_one_way():
    graph: dict[str, set[str]] = {}
    for path in ENGINE.rglob("*.py"):
        mod = _module(path)
        tree = ast.parse(path.read_text())
        top_level = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
        graph[mod] = {m for m, node in _sibling_imports(path, tree) if node in top_level}

    # a package depends on its submodules (importing it imports them): merge kmpress.kernels_numba.*
    def node(m):
        return "kmpress.kernels_numba" if m.startswith("kmpress.kernels_numba") else m

    merged: dict[str, set[str]] = {}
    for m, deps in graph.items():
        merged.setdefault(node(m), set()).update(node(d) for d in deps if node(d) != node(m))
    seen, done = set(), set()

    def visit(m, path):
        if m in done:
            return
        assert m not in seen, "import cycle: " + " -> ".join([*path, m])
        seen.add(m)
        for d in merged.get(m, ()):
            visit(d, [*path, m])
        done.add(m)

    for m in merged:
        visit(m, [])
    # the package's own __init__ imports nothing of its own at run time (names load on first use)
    assert merged["kmpress"] == set()
    # the bottom of the graph
    assert merged["kmpress.errors"] == set() and merged["kmpress.options"] == {"kmpress.errors"}


def test_no_sibling_is_imported_inside_a_function_but_the_backend():
    allowed = {("backends.py", "load")}
    for path in ENGINE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for n in ast.walk(fn):
                    if isinstance(n, ast.ImportFrom) and n.level:
                        assert (path.name, fn.name) in allowed, f"{path.name}:{fn.name} imports .{n.module or ''}"


def test_the_numpy_backend_and_the_stages_never_import_numba():
    numba_allowed = {ENGINE / "backends.py", *(ENGINE / "kernels_numba").glob("*.py")}
    for path in ENGINE.rglob("*.py"):
        if path in numba_allowed:
            continue
        text = path.read_text()
        tree = ast.parse(text)
        for n in ast.walk(tree):
            names = (
                [a.name for a in n.names]
                if isinstance(n, ast.Import)
                else [n.module or ""]
                if isinstance(n, ast.ImportFrom)
                else []
            )
            assert not any(x.split(".")[0] == "numba" for x in names), path.name


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_no_file_over_600_lines(path):
    assert len(path.read_text().splitlines()) <= 600


def test_every_public_name_resolves():
    for name in kmpress.__all__:
        assert getattr(kmpress, name) is not None, name
    assert set(dir(kmpress)) >= set(kmpress.__all__)
    with pytest.raises(AttributeError):
        kmpress.no_such_name  # noqa: B018


def test_layout_page_lists_every_module():
    section = (ROOT / "docs" / "layout.md").read_text()
    for path in SOURCES:
        rel = str(path.relative_to(ROOT))
        if path.name == "__init__.py":
            continue  # a package's own file: the folder stands for it
        assert rel in section or path.name in section, rel
