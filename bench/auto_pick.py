"""What ``backend="auto"`` picks against what each backend costs, by the clustering's work.

Run from the repository root::

    python -m bench.auto_pick                  # photos of bench/photos.py at 0.135 and 0.7 MP
    python -m bench.auto_pick --write-results  # also into docs/results.md, section "auto-pick"
    python -m bench.auto_pick --per-pixel      # the dithered default, whole processes, small photos

For photos with all their colours and posterized (fewer distinct colours), at K = 16, 64 and
256: the CPU seconds (``time.process_time``, medians) of ``kmpress.quantize`` on the NumPy
backend and on numba with its kernels loaded, numba's start-up in a fresh process (importing it
and loading the kernels of a run, paid once per process), and which backend ``auto`` runs, in a
fresh process and once numba is imported. NumPy is the faster pick where its time is below
numba's plus the start-up. Set ``OPENBLAS_NUM_THREADS=1``.

``--per-pixel`` weighs the remap instead: the default (adaptive dithering) on small photos (32x32
to 256x256), each a whole process (``kmpress.compress`` of a PNG, start-up included) per backend,
interleaved, wall-time medians after a warm-up; NumPy's diffusion is a Python loop whose cost
grows with pixels x K, numba's is its start-up. Section "auto-pick-per-pixel".
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np

STARTUP = (
    "import time\n"
    "t0 = time.process_time()\n"
    "from kmpress import backends\n"
    "backends.own_process()\n"
    "for kernel in backends.load('numba').warm_up_kernels(135_000, 16):\n"
    "    kernel.dispatcher\n"
    "print(time.process_time() - t0)\n"
)


def numba_startup(rounds: int) -> float:
    """Median CPU seconds of numba's import and kernel loads in a fresh process."""
    run = [sys.executable, "-c", STARTUP]
    return statistics.median(
        float(subprocess.run(run, capture_output=True, text=True, check=True).stdout) for _ in range(rounds)
    )


PER_PIXEL_RUN = (
    "import io, kmpress, kmpress.backends\n"
    "kmpress.backends.own_process()\n"
    "kmpress.compress({path!r}, io.BytesIO(), k={k}, backend={backend!r})\n"
)


def fresh_pick(pixels: int, k: int, colors: int, loaded: bool, per_pixel: bool = False) -> str:
    """What ``auto`` runs in a process whose numba kernels are not loaded: its first pick, then,
    for numpy, its pick once the histogram has counted ``colors``."""
    from kmpress import backends

    first = backends.choose("auto", pixels, k, None, loaded, per_pixel=per_pixel, numba_warm=False)
    if first == "numba":
        return first
    return backends.choose("auto", pixels, k, colors, loaded, per_pixel=per_pixel, numba_warm=False)


def per_pixel_rows(rounds: int) -> list[str]:
    """Rows of the per-pixel table: whole-process wall seconds of each backend, and auto's pick."""
    import os
    import tempfile

    from PIL import Image

    from bench.photos import make_photo
    from kmpress import backends

    rows = [
        f"Wall seconds of a whole process, medians of {rounds} after a warm-up, interleaved; the default "
        "remap (adaptive dithering)",
        "",
        "| pixels | K | pixels x (K + 24) | NumPy | numba | faster | auto |",
        "|---|---|---|---|---|---|---|",
    ]
    env = {**os.environ, "KMPRESS_SERVER": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        for side in (32, 64, 128, 181, 256):
            path = os.path.join(tmp, f"photo-{side}.png")
            Image.fromarray(make_photo((side, side))).save(path)
            for k in (16, 64, 256):
                times: dict[str, list[float]] = {"numpy": [], "numba": []}
                for r in range(rounds + 1):
                    for backend, seen in times.items():
                        code = PER_PIXEL_RUN.format(path=path, k=k, backend=backend)
                        t0 = time.perf_counter()
                        subprocess.run([sys.executable, "-c", code], env=env, check=True)
                        if r:  # the first round warms the caches
                            seen.append(time.perf_counter() - t0)
                t_np, t_nb = (statistics.median(times[b]) for b in ("numpy", "numba"))
                pixels = side * side
                pick = fresh_pick(pixels, k, pixels, False, per_pixel=True)
                work = pixels * (k + backends.PIXEL_OVERHEAD)
                rows.append(
                    f"| {pixels:,} | {k} | {work / 2**20:.2f} M | {t_np:.3f} | {t_nb:.3f} "
                    f"| {'numpy' if t_np < t_nb else 'numba'} | {pick} |"
                )
                print(rows[-1], flush=True)
    rows += [
        "",
        f"auto: numba when pixels x (K + {backends.PIXEL_OVERHEAD}) > {backends.AUTO_NUMPY_PIXEL_WORK / 2**20:g} M "
        f"(M = 2^20), for a remap that works pixel by pixel; load average {os.getloadavg()[0]:.1f} at the end.",
    ]
    return rows


def cpu(f, rounds: int) -> float:
    """Median CPU seconds of ``f()``."""
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        f()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    from bench.photos import make_photo
    from bench.results import add_option, write_results
    from kmpress import backends, quantize

    ap = argparse.ArgumentParser(prog="python -m bench.auto_pick", description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every measurement (default 3)")
    ap.add_argument("--per-pixel", action="store_true", help="the dithered default's remap on small photos")
    add_option(ap)
    a = ap.parse_args(argv)
    if a.per_pixel:
        table = "\n".join(per_pixel_rows(a.rounds))
        print(table)
        if a.write_results:
            write_results(a.write_results, "auto-pick-per-pixel", table, "bench.auto_pick", argv)
        return
    start = numba_startup(a.rounds)
    rows = [
        f"CPU seconds, medians of {a.rounds}; numba's start-up in a fresh process: {start:.2f} s",
        "",
        "| pixels | colours | K | colours x K | NumPy | numba (loaded) | numba + start-up | faster | auto | "
        "auto, numba imported |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for wh in ((450, 300), (1000, 700)):
        photo = make_photo(wh)
        for step in (1, 8, 32):  # posterized: fewer distinct colours
            img = (photo // step * step).astype(np.uint8)
            pixels = wh[0] * wh[1]
            colors = int(np.unique(img.reshape(-1, 3), axis=0).shape[0])
            for k in (16, 64, 256):
                t_np = cpu(lambda img=img, k=k: quantize(img, k, backend="numpy", dither=None), a.rounds)
                quantize(img, k, backend="numba", dither=None)  # its kernels loaded
                t_nb = cpu(lambda img=img, k=k: quantize(img, k, backend="numba", dither=None), a.rounds)
                faster = "numpy" if t_np < t_nb + start else "numba"

                rows.append(
                    f"| {pixels:,} | {colors:,} | {k} | {colors * k / 2**20:.2f} M | {t_np:.3f} | {t_nb:.3f} "
                    f"| {t_nb + start:.3f} | {faster} | {fresh_pick(pixels, k, colors, False)} "
                    f"| {fresh_pick(pixels, k, colors, True)} |"
                )
                print(rows[-1], flush=True)
    rows += [
        "",
        f"auto: numba for images over {backends.AUTO_NUMBA_PIXELS:,} pixels; else numpy when colours x K "
        f"<= {backends.AUTO_NUMPY_WORK / 2**20:g} M ({backends.AUTO_NUMPY_WORK_LOADED / 2**20:g} M once numba "
        "is imported). M = 2^20.",
    ]
    table = "\n".join(rows)
    print(table)
    if a.write_results:
        write_results(a.write_results, "auto-pick", table, "bench.auto_pick", argv)


if __name__ == "__main__":
    main()
