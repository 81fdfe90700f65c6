"""Peak memory and wall time of one large photo, the way a user runs it: a fresh
``kmpress compress IMG -k K -o DIR --force -q`` process timed by ``/usr/bin/time -v``.

Run from the repository root::

    # 4, 24, 100, 200 MP; PNG and JPEG; K=16 (+ K=256 at 100 MP)
    python -m bench.memory_vs_pixels
    python -m bench.memory_vs_pixels --sizes 24,100 --formats png --runs 3
    # another install (before/after)
    python -m bench.memory_vs_pixels --kmpress /other/venv/bin/kmpress
    # where the peak is, per stage
    python -m bench.memory_vs_pixels --timeline 100 --formats png
    # also into docs/results.md ("memory", "memory-timeline")
    python -m bench.memory_vs_pixels --write-results

The photos are the bundled sample upscaled (Lanczos) to 3:2 frames of that many megapixels plus
seeded Gaussian noise (sigma 2, as :mod:`bench.photos`), made strip by strip so the generator
itself stays small, and cached (``--cache``, default ``$TMPDIR/kmpress-bench-large``): the 200 MP
PNG is ~0.5 GB. The goal column is ``2 x decoded + 100 MB``, decoded = width x height x 3 bytes;
MB are 10^6 bytes (``/usr/bin/time`` reports KiB).

``--timeline MP`` runs :func:`kmpress.compress` on that photo in a fresh process that samples its
own resident memory (``VmRSS`` of /proc/self/status, every 5 ms, from a thread) and marks the
pipeline's stages (the ``on_stage`` callback): for each stage the resident memory when it starts
and the most seen during it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np

from bench.results import add_option, write_results

ROOT = Path(__file__).resolve().parent.parent
SIZES_MP = (4, 24, 100, 200)
FORMATS = ("png", "jpg")
CACHE = Path(os.environ.get("KMPRESS_BENCH_LARGE", Path(tempfile.gettempdir()) / "kmpress-bench-large"))
#: Rows made at a time by the generator.
STRIP = 512


def frame(mp: float) -> tuple[int, int]:
    """(W, H) of a 3:2 frame of about ``mp`` megapixels (24 MP is the 6000 x 4000 of bench/photos.py)."""
    w = round(math.sqrt(mp * 1e6 * 1.5))
    return w, round(mp * 1e6 / w)


def _strips(size: tuple[int, int], seed: int = 0, sigma: float = 2.0):
    """(y0, rows (h, W, 3) uint8) of the upscaled, noisy sample, top to bottom."""
    from PIL import Image

    from kmpress import sample_path

    w, h = size
    with Image.open(sample_path()) as im:
        src = im.convert("RGB")
    sy = src.height / h
    rng = np.random.default_rng(seed)
    for y0 in range(0, h, STRIP):
        y1 = min(h, y0 + STRIP)
        # a box of the source: Lanczos reads its support beyond the box, so strips join up
        part = src.resize((w, y1 - y0), Image.Resampling.LANCZOS, box=(0, y0 * sy, src.width, y1 * sy))
        band = np.asarray(part, dtype=np.float32)
        band += rng.normal(0.0, sigma, size=band.shape).astype(np.float32)
        yield y0, np.clip(np.rint(band), 0, 255).astype(np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _write_png(path: Path, size: tuple[int, int]) -> None:
    """An RGB PNG written strip by strip (unfiltered rows, zlib level 1, one IDAT per strip)."""
    w, h = size
    co = zlib.compressobj(1)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        for _, rows in _strips(size):
            raw = np.zeros((rows.shape[0], 1 + 3 * w), np.uint8)
            raw[:, 1:] = rows.reshape(rows.shape[0], -1)
            data = co.compress(raw.tobytes())
            if data:
                f.write(_chunk(b"IDAT", data))
        f.write(_chunk(b"IDAT", co.flush()) + _chunk(b"IEND", b""))


def _write_jpeg(path: Path, size: tuple[int, int]) -> None:
    """A JPEG (quality 92) of the photo: Pillow encodes a whole image, assembled strip by strip."""
    from PIL import Image

    im = Image.new("RGB", size)
    for y0, rows in _strips(size):
        im.paste(Image.fromarray(rows), (0, y0))
    im.save(path, format="JPEG", quality=92)


def photo(mp: float, fmt: str, cache: Path = CACHE) -> Path:
    """Path of the cached test photo of ``mp`` megapixels in ``fmt`` ("png" or "jpg"), made if missing."""
    size = frame(mp)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"large-{size[0]}x{size[1]}.{fmt}"
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            (_write_png if fmt == "png" else _write_jpeg)(tmp, size)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path


def parse_time_v(report: str) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) from what ``/usr/bin/time -v`` printed."""
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", report)
    if rss is None or wall is None:
        raise RuntimeError(f"no figures from /usr/bin/time: {report[-800:]}")
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return int(rss.group(1)) * 1024 / 1e6, seconds


def run_time_v(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one process run under ``/usr/bin/time -v``; it must succeed."""
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-800:]}")
    return parse_time_v(p.stderr)


def default_kmpress() -> str:
    """The ``kmpress`` command of this interpreter's environment."""
    return str(Path(sys.executable).with_name("kmpress"))


def measure(kmpress: str, src: Path, k: int, runs: int, out_dir: Path) -> tuple[float, float]:
    """Median peak RSS (MB) and median wall seconds of ``runs`` runs."""
    got = [
        run_time_v([kmpress, "compress", str(src), "-k", str(k), "-o", str(out_dir), "--force", "-q"])
        for _ in range(runs)
    ]
    return statistics.median(r for r, _ in got), statistics.median(w for _, w in got)


def table(rows: list[dict]) -> str:
    lines = [
        "| MP | format | K | decoded MB | peak RSS MB | goal MB (2 x decoded + 100) | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = "" if r["rss"] <= r["goal"] else " (over)"
        lines.append(
            f"| {r['mp']:g} | {r['format'].upper()} | {r['k']} | {r['decoded']:,.0f} "
            f"| {r['rss']:,.0f}{ok} | {r['goal']:,.0f} | {r['wall']:.1f} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the timeline of one run
# --------------------------------------------------------------------------------------------


def _vmrss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def timeline(src: str, k: int, dst: str, every: float = 0.005) -> list[dict]:
    """Stages of :func:`kmpress.compress` with the resident memory (bytes) at their start and
    the most seen during each; run in this process (call it in a fresh one, as
    :func:`_timeline_in_child` does, set up as the kmpress command sets itself up)."""
    from kmpress import compress

    marks: list[tuple[str, float, int]] = [("start", time.perf_counter(), _vmrss())]
    peak = {"start": marks[0][2]}
    current = ["start"]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = _vmrss()
            name = current[0]
            if rss > peak.get(name, 0):
                peak[name] = rss
            time.sleep(every)

    def on_stage(name: str) -> None:
        rss = _vmrss()
        peak[current[0]] = max(peak.get(current[0], 0), rss)
        marks.append((name, time.perf_counter(), rss))
        current[0] = name
        peak[name] = max(peak.get(name, 0), rss)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        compress(src, dst, k, on_stage=on_stage)
        on_stage("done")
    finally:
        stop.set()
        t.join()
    out = []
    for (name, t0, rss), (_, t1, _) in zip(marks, marks[1:], strict=False):
        out.append({"stage": name, "start_mb": rss / 1e6, "peak_mb": peak[name] / 1e6, "seconds": t1 - t0})
    return out


def _timeline_in_child(src: Path, k: int, out_dir: Path) -> list[dict]:
    code = (
        "import json, sys\n"
        "from kmpress import backends\n"
        "backends.own_process()\n"
        "from bench.memory_vs_pixels import timeline\n"
        "print(json.dumps(timeline(sys.argv[1], int(sys.argv[2]), sys.argv[3])))\n"
    )
    dst = out_dir / (src.stem + f"-k{k}.png")
    p = subprocess.run(
        [sys.executable, "-c", code, str(src), str(k), str(dst)], capture_output=True, text=True, cwd=ROOT
    )
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-1500:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES_MP)), help="megapixels, comma-separated")
    ap.add_argument("--formats", default=",".join(FORMATS), help="png, jpg")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--k256-at", type=float, default=100, help="also run K=256 at this size (PNG); 0: not")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--kmpress", default=default_kmpress(), help="the kmpress command to measure")
    ap.add_argument("--cache", type=Path, default=CACHE, help="folder of the generated photos")
    ap.add_argument(
        "--timeline", type=float, default=None, metavar="MP", help="the per-stage memory of one size instead"
    )
    add_option(ap)
    a = ap.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    sizes = [float(s) for s in a.sizes.split(",") if s]
    formats = [f.strip().lower().replace("jpeg", "jpg") for f in a.formats.split(",") if f.strip()]
    with tempfile.TemporaryDirectory(prefix="kmpress-mem-") as out:
        out_dir = Path(out)
        if a.timeline is not None:
            for fmt in formats:
                src = photo(a.timeline, fmt, a.cache)
                lines = [
                    f"{src.name} (K={a.k}):",
                    "",
                    "| stage | RSS at start MB | peak MB | seconds |",
                    "|---|---|---|---|",
                ]
                for r in _timeline_in_child(src, a.k, out_dir):
                    lines.append(f"| {r['stage']} | {r['start_mb']:,.0f} | {r['peak_mb']:,.0f} | {r['seconds']:.2f} |")
                print("\n" + "\n".join(lines))
                if a.write_results:
                    write_results(a.write_results, "memory-timeline", "\n".join(lines), "bench.memory_vs_pixels", given)
            return
        jobs = [(mp, fmt, a.k) for mp in sizes for fmt in formats]
        if a.k256_at and a.k != 256:
            jobs.append((a.k256_at, "png" if "png" in formats else formats[0], 256))
        rows = []
        for mp, fmt, k in jobs:
            src = photo(mp, fmt, a.cache)
            w, h = frame(mp)
            decoded = w * h * 3 / 1e6
            rss, wall = measure(a.kmpress, src, k, a.runs, out_dir)
            rows.append(
                {
                    "mp": mp,
                    "format": fmt,
                    "k": k,
                    "decoded": decoded,
                    "rss": rss,
                    "goal": 2 * decoded + 100,
                    "wall": wall,
                }
            )
            print(f"{mp:g} MP {fmt} K={k}: {rss:,.0f} MB, {wall:.1f} s", file=sys.stderr, flush=True)
    print(f"\n{a.kmpress}, {datetime.date.today().isoformat()}, runs={a.runs}\n")
    print(table(rows))
    if a.write_results:
        write_results(
            a.write_results,
            "memory",
            f"runs={a.runs}; MB = 10^6 bytes\n\n" + table(rows),
            "bench.memory_vs_pixels",
            given,
        )


if __name__ == "__main__":
    main()
