"""Whole-process speed against pngquant, the way a user times it: PNG in, indexed PNG out,
start-up included, interleaved runs (A B A B ...) after a warm-up, medians.

Run from the repository root::

    python -m bench.speed_vs_pngquant                      # every size, K = 16, 64, 256
    python -m bench.speed_vs_pngquant --size 4mp --k 64 --runs 7
    python -m bench.speed_vs_pngquant --photos 4mp=~/photos/4mp --batch ~/photos/batch20

Sizes: ``64px`` (a 64x64 PNG), ``0.3mp`` (the test photos in tests/data), ``4mp`` and ``24mp``
(the bundled sample upscaled to 2560x1600 and 6000x4000 plus noise, see bench/photos.py; give
folders of real photos with ``--photos SIZE=DIR``). For each photo and K it times
``kmpress compress PHOTO -k K -o DIR --force -q`` against ``pngquant --nofs --speed 4 K``
(pngquant's default speed, no dithering), reports both medians, the ratio kmpress / pngquant
(below 1: kmpress faster), peak RSS, and the PSNR and size of both outputs. ``--batch DIR``
adds a folder at K = 64: ``kmpress compress DIR -k 64`` against pngquant two files at a time
(``xargs -P 2 -n 1``).

pngquant is the Debian package ``pngquant``; it is only a yardstick, never a dependency.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZES = ("64px", "0.3mp", "4mp", "24mp")


@dataclass
class Timing:
    wall: float  # median seconds
    lo: float
    hi: float
    rss_mb: float  # median peak RSS


def run_once(cmd: list[str] | str, shell: bool = False) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one process, which must succeed."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    if status != 0:
        raise RuntimeError(f"{cmd} failed ({status}): {err[-500:]}")
    # ru_maxrss of one waited child (a shell pipeline reports its largest process)
    return wall, usage.ru_maxrss / 1024


def interleaved(cmds: list, runs: int, shell: bool = False) -> list[Timing]:
    """Warm up each command once, then ``runs`` rounds of every command in turn."""
    for c in cmds:
        run_once(c, shell)
    got: list[list[tuple[float, float]]] = [[] for _ in cmds]
    for _ in range(runs):
        for i, c in enumerate(cmds):
            got[i].append(run_once(c, shell))
    out = []
    for g in got:
        walls = [w for w, _ in g]
        out.append(Timing(statistics.median(walls), min(walls), max(walls), statistics.median(m for _, m in g)))
    return out


def _decode(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from kmpress.metrics import psnr

    return psnr(a, b)


def photos_of(size: str, given: dict[str, Path], cache: Path) -> list[Path]:
    """The PNG photos of one size: a given folder, or deterministic ones."""
    if size in given:
        return sorted(p for p in given[size].iterdir() if p.suffix.lower() == ".png")
    if size == "0.3mp":
        return [ROOT / "tests" / "data" / f"{n}.png" for n in ("astronaut", "chelsea", "coffee")]
    from PIL import Image

    from bench.photos import make_photo

    wh = {"64px": (64, 64), "4mp": (2560, 1600), "24mp": (6000, 4000)}[size]
    path = cache / f"speed-{wh[0]}x{wh[1]}.png"
    if not path.exists():
        if size == "64px":
            from kmpress import sample_path

            with Image.open(sample_path()) as im:
                im.convert("RGB").resize(wh, Image.Resampling.LANCZOS).save(path)
        else:
            Image.fromarray(make_photo(wh)).save(path, compress_level=1)
    return [path]


def kmpress_cmd(exe: list[str], src: Path, k: int, out: Path) -> list[str]:
    return [*exe, "compress", str(src), "-k", str(k), "-o", str(out), "--force", "-q"]


def pngquant_cmd(src: Path, k: int, dst: Path) -> list[str]:
    return ["pngquant", "--nofs", "--speed", "4", "--force", "--output", str(dst), str(k), str(src)]


def measure(photos: list[Path], ks: list[int], runs: int, exe: list[str], tmp: Path) -> list[dict]:
    rows = []
    for src in photos:
        img = _decode(src)
        for k in ks:
            ours_dir = tmp / f"k{k}"
            pq = tmp / f"pq-{src.stem}-{k}.png"
            a, b = interleaved([kmpress_cmd(exe, src, k, ours_dir), pngquant_cmd(src, k, pq)], runs)
            ours = ours_dir / f"{src.stem}-k{k}.png"
            rows.append(
                dict(photo=src.name, pixels=img.shape[0] * img.shape[1], k=k, ours=a, pq=b, ratio=a.wall / b.wall,
                     psnr=_psnr(img, _decode(ours)), psnr_pq=_psnr(img, _decode(pq)),
                     bytes=ours.stat().st_size, bytes_pq=pq.stat().st_size)
            )
            r = rows[-1]
            print(
                f"{r['photo']:>22} K={k:<3} kmpress {a.wall:6.3f} s {a.rss_mb:4.0f} MB | pngquant {b.wall:6.3f} s "
                f"{b.rss_mb:4.0f} MB | ratio {r['ratio']:.2f} | PSNR {r['psnr']:.2f} vs {r['psnr_pq']:.2f} | "
                f"bytes {r['bytes']:,} vs {r['bytes_pq']:,}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def measure_batch(folder: Path, runs: int, exe: list[str], tmp: Path, k: int = 64) -> dict:
    srcs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    copy = tmp / "batch-pq"
    copy.mkdir()
    for p in srcs:
        shutil.copy(p, copy / p.name)
    ours = [*exe, "compress", str(folder), "-k", str(k), "-o", str(tmp / "batch-ours"), "--force", "-q"]
    listing = " ".join(str(copy / p.name) for p in srcs)
    pq = f"printf '%s\\n' {listing} | xargs -P 2 -n 1 pngquant --nofs --speed 4 --force --ext .pq.png {k}"
    run_once(ours)  # warm-up of both
    run_once(pq, shell=True)
    walls_a, walls_b = [], []
    for _ in range(runs):
        walls_a.append(run_once(ours)[0])
        walls_b.append(run_once(pq, shell=True)[0])
    a = statistics.median(walls_a)
    b = statistics.median(walls_b)
    return dict(files=len(srcs), k=k, ours=a, pq=b, ratio=a / b, ours_range=(min(walls_a), max(walls_a)), pq_range=(min(walls_b), max(walls_b)))


def table(rows: list[dict], size_of: dict[str, str]) -> str:
    out = [
        "| size | photo | K | kmpress s | pngquant s | ratio | kmpress MB | pngquant MB | PSNR kmpress / pngquant | bytes kmpress / pngquant |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {size_of[r['photo']]} | {r['photo']} | {r['k']} | {r['ours'].wall:.3f} | {r['pq'].wall:.3f} | **{r['ratio']:.2f}** "
            f"| {r['ours'].rss_mb:.0f} | {r['pq'].rss_mb:.0f} | {r['psnr']:.2f} / {r['psnr_pq']:.2f} | {r['bytes']:,} / {r['bytes_pq']:,} |"
        )
    return "\n".join(out)


def summary(rows: list[dict], size_of: dict[str, str]) -> str:
    """The issue's table: ratio range per size and K."""
    ks = sorted({r["k"] for r in rows})
    out = ["| photo size | " + " | ".join(f"K = {k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for size in SIZES:
        cells = []
        for k in ks:
            rs = [r["ratio"] for r in rows if r["k"] == k and size_of[r["photo"]] == size]
            cells.append("" if not rs else (f"{min(rs):.2f}" if len(rs) == 1 else f"{min(rs):.2f}-{max(rs):.2f}"))
        if any(cells):
            out.append(f"| {size} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.speed_vs_pngquant", description=__doc__.split("\n")[0])
    ap.add_argument("--size", action="append", choices=SIZES, help="photo size (repeatable; default all)")
    ap.add_argument("--k", action="append", type=int, help="colours (repeatable; default 16, 64, 256)")
    ap.add_argument("--runs", type=int, default=5, help="timed rounds after the warm-up (default 5)")
    ap.add_argument("--photos", action="append", default=[], metavar="SIZE=DIR", help="real PNG photos of a size")
    ap.add_argument("--batch", type=Path, help="a folder of ~4 MP PNGs for the batch comparison at K = 64")
    ap.add_argument("--kmpress", default=None, help="the kmpress command (default: the one beside this Python)")
    ap.add_argument("--out", type=Path, help="also write the markdown tables to this file")
    a = ap.parse_args(argv)
    if shutil.which("pngquant") is None:
        print("pngquant not found (Debian: apt-get install pngquant); it is only a yardstick", file=sys.stderr)
        return 2
    exe = a.kmpress.split() if a.kmpress else [str(Path(sys.executable).with_name("kmpress"))]
    given = {}
    for spec in a.photos:
        size, _, folder = spec.partition("=")
        given[size] = Path(folder).expanduser()
    cache = ROOT / ".bench-cache"
    cache.mkdir(exist_ok=True)
    rows, size_of = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in a.size or SIZES:
            photos = photos_of(size, given, cache)
            for p in photos:
                size_of[p.name] = size
            rows += measure(photos, a.k or [16, 64, 256], a.runs, exe, tmp)
        batch = measure_batch(a.batch, a.runs, exe, tmp) if a.batch else None
    pq_version = subprocess.run(["pngquant", "--version"], capture_output=True, text=True).stdout.strip()
    text = [
        f"kmpress / pngquant {pq_version} `--nofs --speed 4`, whole process, median of {a.runs} interleaved runs "
        f"after a warm-up ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores); ratio below 1: kmpress faster.",
        "",
        summary(rows, size_of),
        "",
        table(rows, size_of),
    ]
    if batch:
        text += [
            "",
            f"Batch of {batch['files']} files at K = {batch['k']}: kmpress {batch['ours']:.2f} s "
            f"[{batch['ours_range'][0]:.2f}-{batch['ours_range'][1]:.2f}], pngquant two at a time "
            f"{batch['pq']:.2f} s [{batch['pq_range'][0]:.2f}-{batch['pq_range'][1]:.2f}]: ratio **{batch['ratio']:.2f}**",
        ]
    print("\n".join(text))
    if a.out:
        a.out.write_text("\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
