"""A first run against a warm cache: ``kmpress demo`` and ``kmpress compress`` of a 4 MP photo,
each from an empty numba cache (``NUMBA_CACHE_DIR`` a new folder: the prebuilt portable kernels
load, where this CPU runs them) and with a cache that ``kmpress warm`` filled with this CPU's own
kernels (the native tier), interleaved, ``--rounds`` times; ``--compiling`` adds the first run that
compiles them (``NUMBA_CPU_NAME`` set to this CPU's name: the prebuilt kernels are not used).
Prints the medians as rows of the table in docs/speed.md, with the load average (the machine may
be shared) and the tier each first run loaded.

    python bench/first_run.py --rounds 3 [--compiling]
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


def timed(args: list[str], cache: str, cwd: str, extra: dict[str, str] | None = None) -> tuple[float, str]:
    """Seconds one run takes with numba's cache in ``cache``, and its stderr (a failure stops the script)."""
    drop = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")
    env = {**{k: v for k, v in os.environ.items() if k not in drop}, "NUMBA_CACHE_DIR": cache, **(extra or {})}
    t = time.perf_counter()
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return seconds, r.stderr


def tier_of(cache: str) -> str:
    """Which tier a first run in ``cache`` loaded: "portable" when it unpacked the prebuilt kernels."""
    return "portable" if (Path(cache) / "kmpress-portable").is_dir() else "native"


def main() -> None:
    """Measure and print the table's rows."""
    import llvmlite.binding as ll

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compiling", action="store_true", help="also the first run that compiles (no prebuilt kernels)")
    opts = ap.parse_args()
    photo = photo_4mp()
    commands = {
        "`kmpress demo`": [*kmpress(), "demo", "-o", "demo"],
        "`kmpress compress` 4 MP JPEG": [*kmpress(), "compress", str(photo), "-o", "out", "--force"],
    }
    kinds = ["first", "warm", *(["compiling"] if opts.compiling else [])]
    times: dict[str, dict[str, list[float]]] = {name: {k: [] for k in kinds} for name in commands}
    tiers: set[str] = set()
    loads = []
    with tempfile.TemporaryDirectory() as work:
        warm_cache = tempfile.mkdtemp(dir=work)
        timed([*kmpress(), "warm"], warm_cache, work)  # this CPU's own kernels, all of them
        for i in range(opts.rounds):
            for name, args in commands.items():
                loads.append(os.getloadavg()[0])
                cache = tempfile.mkdtemp(dir=work)
                seconds, err = timed(args, cache, work)
                times[name]["first"].append(seconds)
                tiers.add(tier_of(cache) + (" (compiled in the foreground)" if "compiling" in err else ""))
                shutil.rmtree(cache)
                times[name]["warm"].append(timed(args, warm_cache, work)[0])
                if opts.compiling:
                    cache = tempfile.mkdtemp(dir=work)
                    host = {"NUMBA_CPU_NAME": ll.get_host_cpu_name()}
                    times[name]["compiling"].append(timed(args, cache, work, host)[0])
                    shutil.rmtree(cache)
                row = ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times[name].items())
                print(f"round {i + 1}: {name}: {row}", flush=True)
    load = f"{min(loads):.1f}–{max(loads):.1f}"
    print(f"first runs loaded: {', '.join(sorted(tiers))}")
    print(f"| command | {' | '.join(kinds)} | load average |")
    for name, by_kind in times.items():
        cells = " | ".join(f"{statistics.median(by_kind[k]):.1f} s" for k in kinds)
        print(f"| {name} | {cells} | {load} |")


if __name__ == "__main__":
    main()
