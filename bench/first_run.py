"""A first run against a warm cache: ``kmpress demo`` and ``kmpress compress`` of a 4 MP photo,
each from an empty numba cache (``NUMBA_CACHE_DIR`` a new folder) and then again with that folder
filled, interleaved, ``--rounds`` times; prints the medians as rows of the table in docs/speed.md,
with the load average (the machine may be shared).

    python bench/first_run.py --rounds 3
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
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from photos import CACHE, make_photo  # noqa: E402

#: (W, H) of the 4 MP photo: the sample upscaled with noise, as the other bench photos.
SIZE_4MP = (2448, 1632)


def photo_4mp() -> Path:
    """The 4 MP test photo (a JPEG, quality 92), made once into the bench cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"photo-{SIZE_4MP[0]}x{SIZE_4MP[1]}.jpg"
    if not path.exists():
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        Image.fromarray(make_photo(SIZE_4MP)).save(tmp, format="JPEG", quality=92)
        os.replace(tmp, path)
    return path


def kmpress() -> list[str]:
    """The installed ``kmpress`` command."""
    found = shutil.which("kmpress", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if not found:
        sys.exit("kmpress is not installed: python -m pip install .")
    return [found]


def timed(args: list[str], cache: str, cwd: str) -> float:
    """Seconds one run takes with numba's cache in ``cache`` (a failure stops the script)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    t = time.perf_counter()
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return seconds


def main() -> None:
    """Measure and print the table's rows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    opts = ap.parse_args()
    photo = photo_4mp()
    commands = {
        "`kmpress demo`": [*kmpress(), "demo", "-o", "demo"],
        "`kmpress compress` 4 MP JPEG": [*kmpress(), "compress", str(photo), "-o", "out", "--force"],
    }
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in commands}
    loads = []
    with tempfile.TemporaryDirectory() as work:
        for i in range(opts.rounds):
            for name, args in commands.items():
                cache = tempfile.mkdtemp(dir=work)
                loads.append(os.getloadavg()[0])
                times[name][0].append(timed(args, cache, work))
                times[name][1].append(timed(args, cache, work))
                shutil.rmtree(cache)
                print(f"round {i + 1}: {name}: {times[name][0][-1]:.1f} s, then {times[name][1][-1]:.1f} s", flush=True)
    load = f"{min(loads):.1f}–{max(loads):.1f}"
    for name, (cold, warm) in times.items():
        print(f"| {name} | {statistics.median(cold):.1f} s | {statistics.median(warm):.1f} s | {load} |")


if __name__ == "__main__":
    main()
