"""Whole-process speed against pngquant, the way a user times it: PNG in, indexed PNG out,
start-up included, interleaved runs (A B A B ...) after a warm-up, medians. ``kmpress warm`` runs
first, so that kmpress runs on kernels compiled for this CPU, as it does after its first runs.

Run from the repository root::

    python -m bench.speed_vs_pngquant                      # every size, K = 16, 64, 256
    python -m bench.speed_vs_pngquant --size 4mp --k 64 --runs 7
    python -m bench.speed_vs_pngquant --mode process       # without the kmpress serve column
    python -m bench.speed_vs_pngquant --photos 4mp=~/photos/4mp --batch ~/photos/batch20
    python -m bench.speed_vs_pngquant --write-results      # also into docs/results.md, section "speed"

Sizes: ``64px`` (a 64x64 PNG), ``0.3mp`` (the test photos in tests/data), ``4mp`` and ``24mp`` (the
bundled sample upscaled to 2560x1600 and 6000x4000 plus noise, see bench/photos.py; give folders of
real photos with ``--photos SIZE=DIR``). For each photo and K it times ``kmpress compress PHOTO -k
K -o DIR --force -q`` against ``pngquant --speed 4 K`` (both print nothing; kmpress then leaves out
the per-pixel figures only its table would show, SSIMULACRA 2 and the dithered file's PSNR: 0.05
s/MP): each tool's default, both dithering (kmpress its adaptive error diffusion, pngquant its own;
speed 4 is pngquant's default). ``--no-dither`` times the undithered pair instead, ``kmpress ...
--no-dither`` against ``pngquant --nofs --speed 4 K``. It reports both medians, the ratio kmpress /
pngquant (below 1: kmpress faster), peak RSS, and the PSNR and size of both outputs. ``--mode
both`` (the default) also times the same kmpress command through a warm ``kmpress serve`` started
for the run, interleaved with the others (kmpress in its own process runs with
``KMPRESS_SERVER=0``). ``--batch DIR`` adds a folder at K = 64: ``kmpress compress DIR -k 64``
against pngquant two files at a time (``xargs -P 2 -n 1``).

Peak RSS is the measured process's own ``ru_maxrss``, reported by GNU time (``/usr/bin/time -f
%M``, Debian package ``time``), which starts the command and waits for it. It is not taken from
``os.wait4`` of a child of this script: Linux counts in a child's ``ru_maxrss`` the memory it had
before its ``exec``, a copy of this parent (NumPy loaded, photos decoded), so every command would
show at least this script's size (posix_spawn does not help: its vfork child still leaves the
parent's memory at its exec). Without GNU time the RSS columns are left empty ("-"). For a command that
starts others (the batches: the kmpress process and its workers; ``sh``, ``xargs`` and the
pngquant processes) the figure is that of the *largest single process* of the tree (``wait4``
gives the maximum over a process and the children it waited for, not a sum): for pngquant's
batch one pngquant process (two run at once, so the pipeline holds up to twice that), for
kmpress's the main process or one worker.

Wall time is taken here around the whole command, GNU time included: its own start (one more
``fork`` + ``exec``, of a small C program) adds ~1 ms to every figure of both tools, measured at
the start of each run and printed with the tables. That is nothing next to kmpress's start-up;
only pngquant's few milliseconds on the 64x64 image feel it.

pngquant is the Debian package ``pngquant``; it is only a yardstick, never a dependency.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.results import add_option, write_results

ROOT = Path(__file__).resolve().parent.parent
SIZES = ("64px", "0.3mp", "4mp", "24mp")


#: GNU time: reports the peak RSS of the command it runs (``%M``, kilobytes).
GNU_TIME = "/usr/bin/time"


@dataclass
class Timing:
    wall: float  # median seconds
    lo: float
    hi: float
    rss_mb: float  # median peak RSS (NaN without GNU time)


def gnu_time_works(time_cmd: str = GNU_TIME) -> bool:
    """Whether ``time_cmd -f %M -o FILE CMD`` runs CMD and writes its peak RSS in KB (GNU time)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rss"
        try:
            r = subprocess.run([time_cmd, "-f", "%M", "-o", str(out), "true"], capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return False
        return r.returncode == 0 and out.exists() and _parse_rss_kb(out.read_text()) is not None


def _parse_rss_kb(text: str) -> int | None:
    # GNU time writes "Command exited with non-zero status N" before the format when CMD fails
    lines = text.strip().splitlines()
    return int(lines[-1]) if lines and lines[-1].strip().isdigit() else None


def run_once(
    cmd: list[str] | str, shell: bool = False, rss: bool = True, time_cmd: str = GNU_TIME, env: dict | None = None
) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one command, which must succeed.

    With ``rss`` the command runs under GNU time (see the module's docstring: the figure is the
    command's own peak, or for a shell pipeline its largest single process); without it the RSS
    is NaN. ``shell=True`` runs ``cmd`` (a string) with ``sh -c``.
    """
    argv = ["sh", "-c", cmd] if shell else list(cmd)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rss"
        if rss:
            argv = [time_cmd, "-f", "%M", "-o", str(out), *argv]
        t = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            raise RuntimeError(f"{cmd} failed ({p.returncode}): {p.stderr.decode(errors='replace')[-500:]}")
        kb = _parse_rss_kb(out.read_text()) if rss and out.exists() else None
    if rss and kb is None:
        raise RuntimeError(f"{time_cmd} wrote no peak RSS for {cmd}")
    return wall, (kb / 1024 if kb is not None else math.nan)


def wrapper_ms(runs: int = 21, time_cmd: str = GNU_TIME) -> float:
    """What GNU time adds to a command's wall time, in ms: median of ``time true`` - ``true``."""

    def median_wall(rss: bool) -> float:
        return statistics.median(run_once(["true"], rss=rss, time_cmd=time_cmd)[0] for _ in range(runs))

    return max(0.0, (median_wall(True) - median_wall(False)) * 1e3)


def interleaved(
    cmds: list, runs: int, shell: bool = False, rss: bool = True, envs: list[dict | None] | None = None
) -> list[Timing]:
    """Warm up each command once, then ``runs`` rounds of every command in turn; ``envs``: the
    environment of each (default: this process's)."""
    envs = envs or [None] * len(cmds)
    for c, e in zip(cmds, envs, strict=True):
        run_once(c, shell, rss, env=e)
    got: list[list[tuple[float, float]]] = [[] for _ in cmds]
    for _ in range(runs):
        for i, c in enumerate(cmds):
            got[i].append(run_once(c, shell, rss, env=envs[i]))
    out = []
    for g in got:
        walls = [w for w, _ in g]
        out.append(Timing(statistics.median(walls), min(walls), max(walls), statistics.median(m for _, m in g)))
    return out


def _mb(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.0f}"


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


def kmpress_cmd(exe: list[str], src: Path, k: int, out: Path, dither: bool = True) -> list[str]:
    return [
        *exe,
        "compress",
        str(src),
        "-k",
        str(k),
        "-o",
        str(out),
        "--force",
        "-q",
        *([] if dither else ["--no-dither"]),
    ]


def pngquant_flags(dither: bool = True) -> list[str]:
    """pngquant's options: its default speed (4), with its dithering or without (``--nofs``)."""
    return [*([] if dither else ["--nofs"]), "--speed", "4"]


def pngquant_cmd(src: Path, k: int, dst: Path, dither: bool = True) -> list[str]:
    return ["pngquant", *pngquant_flags(dither), "--force", "--output", str(dst), str(k), str(src)]


def measure(
    photos: list[Path],
    ks: list[int],
    runs: int,
    exe: list[str],
    tmp: Path,
    rss: bool = True,
    dither: bool = True,
    served: dict | None = None,
) -> list[dict]:
    """Each photo at each K: kmpress in its own process (``KMPRESS_SERVER=0``), and with
    ``served`` (the environment that reaches a running ``kmpress serve``) kmpress through the
    server too, interleaved with pngquant."""
    rows = []
    alone = {**os.environ, "KMPRESS_SERVER": "0"}
    for src in photos:
        img = _decode(src)
        for k in ks:
            ours_dir = tmp / f"k{k}"
            pq = tmp / f"pq-{src.stem}-{k}.png"
            cmds = [kmpress_cmd(exe, src, k, ours_dir, dither), pngquant_cmd(src, k, pq, dither)]
            envs: list[dict | None] = [alone, None]
            if served is not None:
                cmds.append(kmpress_cmd(exe, src, k, tmp / f"s{k}", dither))
                envs.append(served)
            a, b, *c = interleaved(cmds, runs, rss=rss, envs=envs)
            ours = ours_dir / f"{src.stem}-k{k}.png"
            if served is not None:
                assert (tmp / f"s{k}" / ours.name).read_bytes() == ours.read_bytes(), "the server wrote other bytes"
            rows.append(
                dict(
                    photo=src.name,
                    pixels=img.shape[0] * img.shape[1],
                    k=k,
                    ours=a,
                    pq=b,
                    ratio=a.wall / b.wall,
                    psnr=_psnr(img, _decode(ours)),
                    psnr_pq=_psnr(img, _decode(pq)),
                    bytes=ours.stat().st_size,
                    bytes_pq=pq.stat().st_size,
                    served=c[0] if c else None,
                    ratio_served=c[0].wall / b.wall if c else math.nan,
                )
            )
            r = rows[-1]
            via = f"served {c[0].wall:6.3f} s ({r['ratio_served']:.2f}) | " if c else ""
            print(
                f"{r['photo']:>22} K={k:<3} kmpress {a.wall:6.3f} s {_mb(a.rss_mb):>4} MB | "
                f"{via}pngquant {b.wall:6.3f} s "
                f"{_mb(b.rss_mb):>4} MB | ratio {r['ratio']:.2f} | PSNR {r['psnr']:.2f} vs {r['psnr_pq']:.2f} | "
                f"bytes {r['bytes']:,} vs {r['bytes_pq']:,}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def measure_batch(
    folder: Path, runs: int, exe: list[str], tmp: Path, k: int = 64, rss: bool = True, dither: bool = True
) -> dict:
    """kmpress on the folder against pngquant two files at a time; the peak RSS of each is that
    of its largest single process (see the module's docstring)."""
    srcs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    copy = tmp / "batch-pq"
    copy.mkdir()
    for p in srcs:
        shutil.copy(p, copy / p.name)
    ours = kmpress_cmd(exe, folder, k, tmp / "batch-ours", dither)
    listing = " ".join(str(copy / p.name) for p in srcs)
    flags = " ".join(pngquant_flags(dither))
    pq = ["sh", "-c", f"printf '%s\\n' {listing} | xargs -P 2 -n 1 pngquant {flags} --force --ext .pq.png {k}"]
    a, b = interleaved([ours, pq], runs, rss=rss)
    return dict(files=len(srcs), k=k, ours=a, pq=b, ratio=a.wall / b.wall)


def table(rows: list[dict], size_of: dict[str, str]) -> str:
    served = any(r.get("served") for r in rows)
    extra = ("| served s | ratio served ", "|---|---") if served else ("", "")
    out = [
        f"| size | photo | K | kmpress s | pngquant s | ratio {extra[0]}| kmpress MB | pngquant MB "
        "| PSNR kmpress / pngquant | bytes kmpress / pngquant |",
        f"|---|---|---|---|---|---{extra[1]}|---|---|---|---|",
    ]
    for r in rows:
        via = f"| {r['served'].wall:.3f} | **{r['ratio_served']:.2f}** " if served else ""
        out.append(
            f"| {size_of[r['photo']]} | {r['photo']} | {r['k']} | {r['ours'].wall:.3f} | {r['pq'].wall:.3f} "
            f"| **{r['ratio']:.2f}** {via}| {_mb(r['ours'].rss_mb)} | {_mb(r['pq'].rss_mb)} "
            f"| {r['psnr']:.2f} / {r['psnr_pq']:.2f} | {r['bytes']:,} / {r['bytes_pq']:,} |"
        )
    return "\n".join(out)


def summary(rows: list[dict], size_of: dict[str, str]) -> str:
    """The short table: the range of the ratio per size and K (and with a server, of both modes)."""
    ks = sorted({r["k"] for r in rows})
    modes = [("ratio", "own process")] + ([("ratio_served", "served")] if any(r.get("served") for r in rows) else [])
    out = ["| photo size | mode | " + " | ".join(f"K = {k}" for k in ks) + " |", "|---|---|" + "---|" * len(ks)]
    for size in SIZES:
        for key, mode in modes:
            cells = []
            for k in ks:
                rs = [r[key] for r in rows if r["k"] == k and size_of[r["photo"]] == size]
                cells.append("" if not rs else (f"{min(rs):.2f}" if len(rs) == 1 else f"{min(rs):.2f}-{max(rs):.2f}"))
            if any(cells):
                out.append(f"| {size} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(out)


@contextmanager
def running_server(exe: list[str]) -> Iterator[dict]:
    """A ``kmpress serve`` in a private folder of its own for the time of the block: the
    environment in which the kmpress command reaches it."""
    runtime = Path(tempfile.mkdtemp(prefix="kmb", dir="/tmp"))  # short: a socket path has ~100 bytes
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    env.pop("KMPRESS_SERVER", None)
    proc = subprocess.Popen([*exe, "serve", "--idle-timeout", "600"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "kmpress server ready ..." once it is warm
        if "ready" not in line:
            raise RuntimeError(f"kmpress serve did not start: {line}{proc.stderr.read()}")
        yield env
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(runtime, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.speed_vs_pngquant", description=__doc__.split("\n")[0])
    ap.add_argument("--size", action="append", choices=SIZES, help="photo size (repeatable; default all)")
    ap.add_argument("--k", action="append", type=int, help="colours (repeatable; default 16, 64, 256)")
    ap.add_argument("--runs", type=int, default=5, help="timed rounds after the warm-up (default 5)")
    ap.add_argument("--photos", action="append", default=[], metavar="SIZE=DIR", help="real PNG photos of a size")
    ap.add_argument("--batch", type=Path, help="a folder of ~4 MP PNGs for the batch comparison at K = 64")
    ap.add_argument("--kmpress", default=None, help="the kmpress command (default: the one beside this Python)")
    ap.add_argument("--out", type=Path, help="also write the markdown tables to this file")
    ap.add_argument(
        "--no-dither",
        action="store_true",
        help="time kmpress --no-dither against pngquant --nofs (default: both dither)",
    )
    ap.add_argument(
        "--mode",
        choices=("process", "both"),
        default="both",
        help="kmpress in its own process only, or also through a warm `kmpress serve` (default both)",
    )
    add_option(ap)
    a = ap.parse_args(argv)
    if shutil.which("pngquant") is None:
        print("pngquant not found (Debian: apt-get install pngquant); it is only a yardstick", file=sys.stderr)
        return 2
    exe = a.kmpress.split() if a.kmpress else [str(Path(sys.executable).with_name("kmpress"))]
    # every kernel compiled for this CPU first: a fresh install runs the prebuilt portable kernels
    # while it compiles its own behind its work, for some runs; those would time that compilation
    subprocess.run([*exe, "warm"], check=True, capture_output=True, env=dict(os.environ, KMPRESS_SERVER="0"))
    rss = gnu_time_works()
    if not rss:
        print(f"{GNU_TIME} is not GNU time (Debian: apt-get install time): no peak RSS figures", file=sys.stderr)
    overhead = wrapper_ms() if rss else 0.0
    given = {}
    for spec in a.photos:
        size, _, folder = spec.partition("=")
        given[size] = Path(folder).expanduser()
    cache = ROOT / ".bench-cache"
    cache.mkdir(exist_ok=True)
    rows, size_of = [], {}
    with tempfile.TemporaryDirectory() as tmp, running_server(exe) if a.mode == "both" else nullcontext() as served:
        tmp = Path(tmp)
        for size in a.size or SIZES:
            photos = photos_of(size, given, cache)
            for p in photos:
                size_of[p.name] = size
            rows += measure(photos, a.k or [16, 64, 256], a.runs, exe, tmp, rss, not a.no_dither, served)
        batch = measure_batch(a.batch, a.runs, exe, tmp, rss=rss, dither=not a.no_dither) if a.batch else None
    pq_version = subprocess.run(["pngquant", "--version"], capture_output=True, text=True).stdout.strip()
    ours_flags = " --no-dither" if a.no_dither else ""
    text = [
        f"kmpress{ours_flags} / pngquant {pq_version} `{' '.join(pngquant_flags(not a.no_dither))}`, "
        f"whole process, median of {a.runs} interleaved runs "
        f"after a warm-up ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end); ratio below 1: kmpress faster; "
        + (
            f"MB: peak RSS of the process (GNU time's %M); GNU time adds {overhead:.1f} ms to every time."
            if rss
            else "no RSS (no GNU time)."
        )
        + (
            " served: the same command through a warm `kmpress serve` (the client's time; its MB, not in the "
            "table, are the client's only)."
            if a.mode == "both"
            else ""
        ),
        "",
        summary(rows, size_of),
        "",
        table(rows, size_of),
    ]
    if batch:
        o, q = batch["ours"], batch["pq"]
        text += [
            "",
            f"Batch of {batch['files']} files at K = {batch['k']}: kmpress {o.wall:.2f} s [{o.lo:.2f}-{o.hi:.2f}], "
            f"pngquant two at a time {q.wall:.2f} s [{q.lo:.2f}-{q.hi:.2f}]: ratio **{batch['ratio']:.2f}**. "
            f"Peak RSS of the largest single process: kmpress {_mb(o.rss_mb)} MB (its main process or one worker), "
            f"pngquant {_mb(q.rss_mb)} MB (one pngquant; two run at once).",
        ]
    print("\n".join(text))
    if a.out:
        a.out.write_text("\n".join(text) + "\n")
    if a.write_results:
        write_results(
            a.write_results, "speed", "\n".join(text), "bench.speed_vs_pngquant", sys.argv[1:] if argv is None else argv
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
