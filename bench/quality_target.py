"""The perceptual quality target against pngquant's ``--quality`` at the same numbers.

For each photo and target N, ``kmpress.compress(..., target_quality=N)`` (the CLI's
``--quality N``) and ``pngquant --quality N`` (as typed: pngquant reads a lone N as the range
0.9N-N and exits 99, writing nothing, below 0.9N). Reported per photo and target: the K and
remap kmpress chose and its bytes, the palette size and bytes of pngquant's file, and the
SSIMULACRA 2 score of both (:func:`kmpress.report.compare_images`, on the decoded files).
pngquant's quality scale is its own (a mapping of its MSE), not SSIMULACRA 2: the same number
asks for different things of the two tools.

Run::

    python -m bench.quality_target PHOTO... [--targets 50,70,85]

pngquant is only measured, never a dependency: its columns stay empty without it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import kmpress
from kmpress.report import compare_images, describe_image


def run_pngquant(src: Path, n: float, dst: Path) -> int:
    """pngquant --quality N into ``dst``; its exit code."""
    cmd = ["pngquant", "--quality", f"{n:g}", "--force", "--output", str(dst), str(src)]
    return subprocess.run(cmd, capture_output=True).returncode


def one(src: Path, n: float, tmp: Path) -> dict:
    """The row of one photo at one target."""
    dst = tmp / f"{src.stem}-q{n:g}.png"
    t0 = time.perf_counter()
    rep = kmpress.compress(src, dst, target_quality=n, strip=True)
    row = {
        "photo": src.stem,
        "target": n,
        "k": rep.k,
        "dither": rep.dither or "none",
        "bytes": rep.output_bytes,
        "ssim2": rep.ssimulacra2,
        "trials": len(rep.search),
        "seconds": time.perf_counter() - t0,
    }
    if shutil.which("pngquant"):
        pq = tmp / f"{src.stem}-pq{n:g}.png"
        pq.unlink(missing_ok=True)
        code = run_pngquant(src, n, pq)
        row["pq_exit"] = code
        if code == 0:
            row["pq_colors"] = describe_image(pq)["palette_size"]
            row["pq_bytes"] = pq.stat().st_size
            row["pq_ssim2"] = compare_images(pq, src)["ssimulacra2"]
    return row


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    out = [
        "| photo | N | kmpress K | remap | bytes | SSIM2 | pngquant colours | bytes | SSIM2 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "pq_bytes" in r:
            pq = f"{r['pq_colors']} | {r['pq_bytes']:,} | {r['pq_ssim2']:.1f}"
        elif "pq_exit" in r:
            pq = f"exit {r['pq_exit']}, nothing written | | "
        else:
            pq = " | | "
        out.append(
            f"| {r['photo']} | {r['target']:g} | {r['k']} | {r['dither']} | {r['bytes']:,} | {r['ssim2']:.1f} | {pq} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """Measure and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="+", type=Path)
    ap.add_argument("--targets", default="50,70,85")
    args = ap.parse_args(argv)
    targets = [float(t) for t in args.targets.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for src in args.photos:
            for n in targets:
                r = one(src, n, Path(d))
                rows.append(r)
                print(r, flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
