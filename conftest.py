"""Root pytest configuration: the ``--benchmark`` switch of the benchmark suite in ``bench/``.

- ``pytest`` (no flag): every benchmark body in ``bench/`` runs exactly once, untimed
  (pytest-benchmark's disabled mode), on a tiny image, so the suite cannot rot and stays fast.
- ``pytest --benchmark [--bench-size small|full]``: only the benchmarks run, timed, on the
  2 MP or the 24 MP photo; each run is saved under ``.benchmarks/`` (pytest-benchmark's autosave),
  so ``pytest --benchmark --benchmark-compare`` compares with the previous run. A table of
  numba's speed-ups over its peers is printed at the end.
"""

from __future__ import annotations

import pytest

#: pytest-benchmark's default storage, relative to the working directory.
_DEFAULT_STORAGE = "file://./.benchmarks"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kmpress", "kmpress benchmarks")
    group.addoption(
        "--benchmark",
        action="store_true",
        dest="kmpress_benchmark",
        help="run only the benchmark suite (bench/), timed, and save the run under .benchmarks/",
    )
    group.addoption(
        "--bench-size",
        choices=("small", "full"),
        default="full",
        dest="kmpress_bench_size",
        help="photo for --benchmark: full = 24 MP (6000x4000, default), small = 2 MP",
    )


def _autosave_tag() -> str:
    """The name pytest-benchmark's own ``--benchmark-autosave`` gives a run (commit id and date)."""
    try:
        from pytest_benchmark.utils import get_tag

        return get_tag()
    except Exception:  # pragma: no cover - a pytest-benchmark without get_tag, or no git
        return "kmpress"


def benchmark_mode(config: pytest.Config) -> bool:
    """Whether this session times the benchmarks: ``--benchmark`` (or pytest-benchmark's own
    ``--benchmark-only``, which would otherwise clash with the disabled mode of plain runs)."""
    return bool(config.getoption("kmpress_benchmark", False) or config.getoption("benchmark_only", False))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Runs before pytest-benchmark's own pytest_configure (trylast), which reads these options
    # when it creates its session.
    if not hasattr(config.option, "benchmark_disable"):
        return  # pytest-benchmark is not installed or was disabled with -p no:benchmark
    if benchmark_mode(config):
        saving = config.option.benchmark_save or config.option.benchmark_autosave
        if not saving and not config.option.collectonly:
            config.option.benchmark_autosave = _autosave_tag()
        if config.option.benchmark_storage == _DEFAULT_STORAGE:
            # Anchored at the project, so runs started from another folder land in the same place,
            # and one folder per photo size, so --benchmark-compare compares like with like.
            size = config.getoption("kmpress_bench_size")
            config.option.benchmark_storage = f"file://{config.rootpath / '.benchmarks' / size}"
    else:
        config.option.benchmark_disable = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not benchmark_mode(config):
        return
    keep, drop = [], []
    for item in items:
        (keep if "benchmark" in getattr(item, "fixturenames", ()) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if not benchmark_mode(config):
        return
    from bench.summary import Record, speedup_lines

    session = getattr(config, "_benchmarksession", None)
    records = []
    for bench in getattr(session, "benchmarks", ()):
        info = getattr(bench, "extra_info", {}) or {}
        if not bench or getattr(getattr(bench, "fixture", None), "has_error", False) or "stage" not in info:
            continue
        records.append(Record(info["stage"], info.get("K"), info["impl"], float(bench.stats.median)))
    lines = speedup_lines(records)
    if not lines:
        return
    size = config.getoption("kmpress_bench_size")
    terminalreporter.section(f"kmpress speed-ups ({size}): median of peer / median of numba, this run")
    for line in lines:
        terminalreporter.write_line(line)
