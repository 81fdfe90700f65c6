"""Picture quality and file size against pngquant, at the same number of colours.

Run from the repository root::

    python -m bench.compare_pngquant                 # the three test photos, K = 16, 64, 256
    python -m bench.compare_pngquant --k 16 --photo chelsea --out table.md
    python -m bench.compare_pngquant --write-results  # also into docs/results.md, section "pngquant"

For every photo and K it writes indexed PNGs with kmpress in several configurations (colour
space rgb / oklab, dithering off / on, and the "small" profile ``n_init=4, smooth=0.3``) and with
``pngquant --speed 1`` (``--nofs`` for the rows without dithering, pngquant's default
Floyd-Steinberg for the rows with it), decodes every file again and measures PSNR (RGB) and the
mean OKLab distance ΔE on the decoded pixels, so the figures are those of the files. The output
is a markdown table; ``Δsize`` is our file against pngquant's of the same dithering.

pngquant is only a yardstick, never a dependency: when it is not installed the pngquant columns
are left empty and a line says how to get it (Debian/Ubuntu: ``apt-get install pngquant``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.results import add_option, write_results

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ("astronaut", "coffee", "chelsea")

#: (label, quantize keyword arguments); the first is the default configuration.
CONFIGS = [
    ("rgb", dict(colorspace="rgb")),
    ("oklab", dict(colorspace="oklab")),
    ("rgb+fs", dict(colorspace="rgb", dither="floyd-steinberg")),
    ("oklab+fs", dict(colorspace="oklab", dither="floyd-steinberg")),
    ("small", dict(colorspace="rgb", n_init=4, smooth=0.3)),
]


@dataclass
class Measure:
    psnr: float
    delta_e: float
    size: int
    seconds: float


def _decode(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean OKLab distance (plain units) between two uint8 (H, W, 3) images of the same shape, in
    float64 NumPy through :func:`kmpress.colorspace.srgb_to_oklab`."""
    from kmpress.colorspace import srgb_to_oklab

    la = srgb_to_oklab(a.reshape(-1, 3))
    lb = srgb_to_oklab(b.reshape(-1, 3))
    return float(np.sqrt(((la - lb) ** 2).sum(axis=1)).mean())


def _measure(img: np.ndarray, path: Path, seconds: float) -> Measure:
    from kmpress import psnr

    out = _decode(path)
    return Measure(psnr(img, out), delta_e(img, out), path.stat().st_size, seconds)


def ours(img: np.ndarray, k: int, kwargs: dict, dst: Path, level: int) -> Measure:
    """Quantize and write with kmpress; figures from the decoded file."""
    import kmpress

    t = time.perf_counter()
    q = kmpress.quantize(img, k, **kwargs)
    kmpress.write_png(dst, q.palette, q.indices, compress_level=level)
    return _measure(img, dst, time.perf_counter() - t)


def pngquant(src: Path, img: np.ndarray, k: int, dither: bool, dst: Path) -> Measure | None:
    """pngquant --speed 1 (with --nofs unless ``dither``), or None when it is not installed."""
    exe = shutil.which("pngquant")
    if exe is None:
        return None
    cmd = [exe, "--speed", "1", "--force", "--output", str(dst)]
    if not dither:
        cmd.append("--nofs")
    t = time.perf_counter()
    subprocess.run([*cmd, str(k), str(src)], check=True, capture_output=True)
    return _measure(img, dst, time.perf_counter() - t)


def run(photos: list[str], ks: list[int], configs: list[str], level: int) -> str:
    import kmpress

    have_pq = shutil.which("pngquant") is not None
    rows = [
        "| photo | K | kmpress config | PSNR dB | ΔE OKLab | bytes "
        "| pngquant PSNR dB | pngquant ΔE | pngquant bytes | ΔPSNR dB | Δsize |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    chosen = [c for c in CONFIGS if c[0] in configs]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in photos:
            src = ROOT / "tests" / "data" / f"{name}.png"
            img = kmpress.read_image(src)
            for k in ks:
                pq = {d: pngquant(src, img, k, d, tmp / f"pq-{d}.png") for d in (False, True)}
                for label, kw in chosen:
                    m = ours(img, k, kw, tmp / "ours.png", level)
                    p = pq[kw.get("dither") is not None]
                    if p is None:
                        tail = "| – | – | – | – | – |"
                    else:
                        tail = (
                            f"| {p.psnr:.2f} | {p.delta_e:.4f} | {p.size:,} | {m.psnr - p.psnr:+.2f} "
                            f"| {100 * (m.size / p.size - 1):+.1f} % |"
                        )
                    rows.append(f"| {name} | {k} | {label} | {m.psnr:.2f} | {m.delta_e:.4f} | {m.size:,} {tail}")
                    print(rows[-1], file=sys.stderr, flush=True)
    notes = []
    if not have_pq:
        notes.append(
            "pngquant is not installed, so its columns are empty "
            "(Debian/Ubuntu: `apt-get install pngquant`; it is never a dependency of kmpress)."
        )
    else:
        v = subprocess.run(["pngquant", "--version"], capture_output=True, text=True).stdout.strip()
        notes.append(
            f"pngquant {v}: `--speed 1 --nofs` for rows without dithering, "
            "`--speed 1` (its Floyd-Steinberg) for `+fs` rows."
        )
    notes.append(f"kmpress: seed 0, zlib level {level}; `small` = `n_init=4, smooth=0.3`.")
    return "\n".join(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.compare_pngquant", description=__doc__.split("\n")[0])
    ap.add_argument("--photo", action="append", choices=PHOTOS, help="photo (repeatable; default all three)")
    ap.add_argument("--k", action="append", type=int, help="colours (repeatable; default 16, 64, 256)")
    ap.add_argument(
        "--config",
        action="append",
        choices=[c[0] for c in CONFIGS],
        help="kmpress configuration (repeatable; default all)",
    )
    ap.add_argument("--level", type=int, default=6, help="zlib level of our PNGs (default 6)")
    ap.add_argument("--out", type=Path, help="also write the markdown table to this file")
    add_option(ap)
    a = ap.parse_args(argv)
    if shutil.which("pngquant") is None:
        print("pngquant not found: its columns are left empty (apt-get install pngquant)", file=sys.stderr)
    table = run(a.photo or list(PHOTOS), a.k or [16, 64, 256], a.config or [c[0] for c in CONFIGS], a.level)
    print(table)
    if a.out:
        a.out.write_text(table)
    if a.write_results:
        write_results(
            a.write_results, "pngquant", table, "bench.compare_pngquant", sys.argv[1:] if argv is None else argv
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
