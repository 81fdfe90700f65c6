"""A local batch against a 2-worker Dask LocalCluster on the same files (not a pytest file).

Run from the repository root: ``python -m bench.dask_throughput [N]`` (needs ``kmpress[dask]``):
N copies (default 8) of the 24 MP JPEG of ``bench/photos.py``, K=16; prints seconds per file and
checks that the outputs are byte-identical.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.photos import photo_file
from kmpress import compress_many


def run(files, out: Path, **kw):
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    res = list(compress_many(files, out, 16, **kw))
    dt = time.perf_counter() - t
    bad = [r.message for r in res if r.status != "ok"]
    assert not bad, bad
    return dt, {Path(r.dst).name: Path(r.dst).read_bytes() for r in res}


def main() -> None:
    from distributed import Client, LocalCluster

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i in range(n):
            files.append(Path(d, f"p{i}.jpg"))
            shutil.copy(photo_file("full", "jpg"), files[-1])
        t_local, a = run(files, Path(d, "out"), jobs=2)
        t = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, Client(cl) as c:
            t_start = time.perf_counter() - t
            t_first, b = run(files, Path(d, "out"), executor=c.get_executor())
            t_warm, b2 = run(files, Path(d, "out"), executor=c.get_executor())
    print(f"local batch (2-process pool, start-up included): {t_local:.1f} s = {t_local / n:.2f} s/file")
    print(f"LocalCluster: start {t_start:.1f} s, first batch {t_first:.1f} s, warm batch {t_warm:.1f} s = {t_warm / n:.2f} s/file")
    print("byte-identical:", a == b == b2)


if __name__ == "__main__":
    main()
