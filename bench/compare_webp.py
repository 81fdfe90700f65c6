"""WebP lossless against kmpress's PNG, for the same palette image (``--format webp`` vs png).

Run from the repository root::

    python -m bench.compare_webp                 # the three test photos, K = 16, 64, 256, seed 0
    python -m bench.compare_webp --write-results # also into docs/results.md, section "webp"

For every photo and K it quantizes once, encodes the result both ways in memory
(:func:`kmpress.formats.encode`; the PNG on one thread, as a batch worker does), checks that the
decoded WebP equals ``Quantized.to_array()`` pixel for pixel, and prints a markdown table of the
sizes and of the encoding times (best of 3; small images, so the times are only indicative).
"""

from __future__ import annotations

import argparse
import sys
import time
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ("astronaut", "coffee", "chelsea")


def _best(f, n=3):
    best, out = float("inf"), None
    for _ in range(n):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return out, best


def main(argv: list[str] | None = None) -> None:
    from PIL import Image

    from bench.results import add_option, write_results
    from kmpress import quantize
    from kmpress.formats import encode_webp
    from kmpress.png import encode_png

    ap = argparse.ArgumentParser(prog="python -m bench.compare_webp", description=__doc__.split("\n")[0])
    add_option(ap)
    a = ap.parse_args(argv)
    rows = [
        "| photo | K | PNG bytes | WebP bytes | WebP / PNG | PNG encode | WebP encode |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(rows), flush=True)
    for name in PHOTOS:
        with Image.open(ROOT / "tests" / "data" / f"{name}.png") as im:
            img = np.array(im.convert("RGB"))
        for k in (16, 64, 256):
            q = quantize(img, k, seed=0)
            png, t_png = _best(lambda q=q: encode_png(q.palette, q.indices, threads=1))
            webp, t_webp = _best(lambda q=q: encode_webp(q.palette, q.indices))
            with Image.open(BytesIO(webp)) as w:
                assert np.array_equal(np.array(w.convert("RGB")), q.to_array()), "WebP is not lossless"
            rows.append(
                f"| {name} | {k} | {len(png):,} | {len(webp):,} | {100 * len(webp) / len(png):.1f} % "
                f"| {1e3 * t_png:.0f} ms | {1e3 * t_webp:.0f} ms |"
            )
            print(rows[-1], flush=True)
    if a.write_results:
        write_results(
            a.write_results, "webp", "\n".join(rows), "bench.compare_webp", sys.argv[1:] if argv is None else argv
        )


if __name__ == "__main__":
    main()
