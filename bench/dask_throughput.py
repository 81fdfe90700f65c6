"""A local batch against a 2-worker Dask LocalCluster on the same files (not a pytest file).

Run from the repository root: ``python -m bench.dask_throughput [N]`` (needs ``kmpress[dask]``):
N copies (default 8) of the 24 MP JPEG of ``bench/photos.py``, K=16; prints seconds per file and
checks that the outputs are byte-identical. ``--write-results``: also into docs/results.md,
section "dask".
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.photos import photo_file
from bench.results import add_option, write_results
from kmpress import compress_many


def run(files, out: Path, **kw):
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    res = list(compress_many(files, out, 16, **kw))
    dt = time.perf_counter() - t
    bad = [r.message for r in res if r.status != "ok"]
    assert not bad, bad
    return dt, {Path(r.dst).name: Path(r.dst).read_bytes() for r in res}


def main(argv: list[str] | None = None) -> None:
    from distributed import Client, LocalCluster

    ap = argparse.ArgumentParser(prog="python -m bench.dask_throughput", description=__doc__.split("\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=8, help="copies of the 24 MP JPEG (default 8)")
    add_option(ap)
    a = ap.parse_args(argv)
    n = a.n
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i in range(n):
            files.append(Path(d, f"p{i}.jpg"))
            shutil.copy(photo_file("full", "jpg"), files[-1])
        t_local, out_a = run(files, Path(d, "out"), jobs=2)
        t = time.perf_counter()
        with (
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl,
            Client(cl) as c,
        ):
            t_start = time.perf_counter() - t
            t_first, out_b = run(files, Path(d, "out"), executor=c.get_executor())
            t_warm, out_b2 = run(files, Path(d, "out"), executor=c.get_executor())
    lines = [
        f"{n} copies of the 24 MP JPEG of `bench/photos.py`, K=16; outputs byte-identical: {out_a == out_b == out_b2}",
        "",
        "| run | seconds | per file |",
        "|---|---|---|",
        f"| local batch (2-process pool, start-up included) | {t_local:.1f} | {t_local / n:.2f} |",
        f"| 2-worker `LocalCluster` (1 thread each): start | {t_start:.1f} | |",
        f"| LocalCluster, first batch | {t_first:.1f} | {t_first / n:.2f} |",
        f"| LocalCluster, warm batch | {t_warm:.1f} | {t_warm / n:.2f} |",
    ]
    print("\n".join(lines))
    if a.write_results:
        write_results(
            a.write_results, "dask", "\n".join(lines), "bench.dask_throughput", sys.argv[1:] if argv is None else argv
        )


if __name__ == "__main__":
    main()
