"""What the default stopping rule gives up: PSNR at the default ``tol`` against 300 iterations.

Run from the repository root::

    python -m bench.convergence                  # the three test photos, K = 16, 64, 256, seed 0
    python -m bench.convergence --big            # also the 24 MP photo of bench/photos.py (slow)
    python -m bench.convergence --write-results  # also into docs/results.md, section "convergence"

For each photo and K: ``quantize(img, k, tol=0)`` (Lloyd runs until no label changes or 300
iterations) against ``quantize(img, k)`` (the default ``tol``), the PSNR of both, the difference
and the iterations each took.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.results import add_option, write_results

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ("astronaut", "coffee", "chelsea")


def main(argv: list[str] | None = None) -> None:
    from kmpress import DEFAULT_TOL, quantize, read_image

    ap = argparse.ArgumentParser(prog="python -m bench.convergence", description=__doc__.split("\n")[0])
    ap.add_argument("--big", action="store_true", help="also the 24 MP photo of bench/photos.py")
    ap.add_argument("--k", action="append", type=int, help="colours (repeatable; default 16, 64, 256)")
    add_option(ap)
    a = ap.parse_args(argv)
    photos = [(n, ROOT / "tests" / "data" / f"{n}.png") for n in PHOTOS]
    if a.big:
        from bench.photos import photo_file

        photos.append(("24 MP test photo", photo_file("full", "png")))
    lines = [
        f"seed 0; default tol = {DEFAULT_TOL:g}, max_iter 300",
        "",
        "| photo | K | PSNR, tol 0 | PSNR, default tol | difference | iterations, tol 0 / default |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for name, path in photos:
        img = read_image(path)
        for k in a.k or [16, 64, 256]:
            full, default = quantize(img, k, seed=0, tol=0), quantize(img, k, seed=0)
            lines.append(
                f"| {name} {img.shape[1]}x{img.shape[0]} | {k} | {full.psnr:.2f} dB | {default.psnr:.2f} dB "
                f"| {default.psnr - full.psnr:+.3f} dB | {full.n_iter} / {default.n_iter} |"
            )
            print(lines[-1], flush=True)
    if a.write_results:
        write_results(
            a.write_results,
            "convergence",
            "\n".join(lines),
            "bench.convergence",
            sys.argv[1:] if argv is None else argv,
        )


if __name__ == "__main__":
    main()
