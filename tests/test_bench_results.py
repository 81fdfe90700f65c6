"""The results page: a bench script replaces only its own marked section of docs/results.md."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from bench import results
from bench.results import ResultsError, command_line, markers, replace_section, section_body, write_results

ROOT = Path(__file__).resolve().parent.parent

PAGE = """# Results

Prose before.

<!-- results:a -->
old a
<!-- /results:a -->

Prose between.

<!-- results:b -->
old b
<!-- /results:b -->
Prose after.
"""


def test_replace_touches_only_its_section():
    new = replace_section(PAGE, "a", "| x |\n|---|\n| 1 |\n")
    assert "old a" not in new and "| 1 |" in new
    assert "old b" in new
    outside = lambda t: t.replace(t[t.index("<!-- results:a -->") : t.index("<!-- /results:a -->")], "")  # noqa: E731
    assert outside(new) == outside(PAGE)  # everything outside section a is byte for byte the same


def test_replace_is_idempotent_and_the_body_is_stripped():
    once = replace_section(PAGE, "b", "\n\nnew b\n\n")
    assert replace_section(once, "b", "new b") == once
    assert "<!-- results:b -->\nnew b\n<!-- /results:b -->" in once


@pytest.mark.parametrize(
    "text, why",
    [
        (PAGE.replace("<!-- /results:a -->", ""), "found 0 times"),
        (PAGE.replace("<!-- results:a -->", ""), "found 0 times"),
        (PAGE + "<!-- results:a -->\n", "found 2 times"),
        ("<!-- /results:a -->\nx\n<!-- results:a -->\n", "comes before"),
    ],
)
def test_a_broken_section_is_an_error_not_a_guess(text, why):
    with pytest.raises(ResultsError, match=why):
        replace_section(text, "a", "new")


def test_a_section_names_command_machine_and_date():
    body = section_body("python -m bench.x --k 16", "| t |", when=datetime.date(2026, 12, 1), where="CPU X, 2 cores")
    assert body.startswith("`python -m bench.x --k 16` (CPU X, 2 cores; 2026-12-01):\n\n| t |")
    assert "cores" in results.machine()


@pytest.mark.parametrize(
    "argv, shown",
    [
        (["--k", "16", "--write-results", "docs/results.md"], "python -m bench.x --k 16"),
        (["--write-results", "--k", "16"], "python -m bench.x --k 16"),  # the flag without its optional path
        (["--write-results=docs/r.md", "--photo", "a b"], "python -m bench.x --photo 'a b'"),
    ],
)
def test_the_command_shown_is_the_run_without_the_write_option(argv, shown):
    assert command_line("bench.x", argv) == shown


def test_write_results_rewrites_the_page_in_place(tmp_path):
    page = tmp_path / "results.md"
    page.write_text(PAGE)
    write_results(page, "b", "| new |", "bench.x", ["--k", "4"])
    text = page.read_text()
    assert "old b" not in text and "`python -m bench.x --k 4` (" in text and "| new |" in text
    assert "old a" in text and text.endswith("Prose after.\n")
    assert [p.name for p in tmp_path.iterdir()] == ["results.md"]  # no temporary file left


def test_write_results_leaves_the_page_alone_when_the_section_is_missing(tmp_path):
    page = tmp_path / "results.md"
    page.write_text(PAGE)
    with pytest.raises(ResultsError):
        write_results(page, "nope", "| new |", "bench.x", [])
    assert page.read_text() == PAGE


def test_every_section_a_script_writes_is_on_the_page():
    """Each script's section name appears once, opened and closed, in docs/results.md."""
    text = (ROOT / "docs" / "results.md").read_text()
    for name in (
        "pngquant",
        "webp",
        "kmeans-general",
        "engine",
        "speed",
        "memory",
        "memory-timeline",
        "dask",
        "convergence",
    ):
        start, end = markers(name)
        assert text.count(start) == 1 and text.count(end) == 1, name
        script_names = "".join(p.read_text() for p in (ROOT / "bench").glob("*.py"))
        assert f'"{name}"' in script_names, name
