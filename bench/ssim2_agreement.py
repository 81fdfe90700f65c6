"""Agreement of kmpress's SSIMULACRA 2 with libjxl's C++ tool and with the PyPI port.

Run from the repository root::

    python -m bench.ssim2_agreement --photos DIR --tool PATH/TO/ssimulacra2
    python -m bench.ssim2_agreement --photos DIR --port
    python -m bench.ssim2_agreement --photos DIR --tool PATH --port --out DIR --ks 16,64,256

For every photo (``*.png`` / ``*.jpg`` in ``--photos``) it makes the distorted files under
``--out`` (a temporary folder without it; files already there are reused):

- ``kmpress compress PHOTO -k K -o DIR`` for each K of ``--ks`` (the ``kmpress`` next to this
  Python, so the worktree's own);
- ``pngquant K --output OUT PHOTO`` for each K, when ``pngquant`` is on the PATH;
- Gaussian noise of sigma 3 and 10 (8-bit codes, a fixed seed), a Gaussian blur of radius 1 and
  3 (Pillow), and JPEG at quality 20 decoded again, each saved as PNG.

Each pair is scored by ``kmpress.perceptual.ssimulacra2`` (both images decoded by Pillow to
RGB), and by:

- ``--tool PATH``: libjxl's ``ssimulacra2`` (``tools/ssimulacra2_main.cc``; it is not in
  Debian's ``libjxl-devtools`` 0.7, build it from libjxl's source with
  ``-DJPEGXL_ENABLE_DEVTOOLS=ON`` and ``ninja ssimulacra2``), run as ``PATH orig.png dist.png``;
- ``--port``: the PyPI ``ssimulacra2`` package as it is (SciPy's Gaussian, reflected at the
  left and right edges) and the same package with libjxl's filter (:data:`kmpress.perceptual.TAPS`,
  9 taps, zero outside the image) put in place of its blur.

It prints one row per pair and, for each reference, the max and mean absolute difference from
kmpress's score. The tools are bench-only: kmpress never imports or runs them.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

KS = (16, 64, 256)


def decode(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of an image file."""
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def _kmpress_exe() -> list[str]:
    exe = Path(sys.executable).with_name("kmpress")
    return [str(exe)] if exe.exists() else ["kmpress"]


def make_pairs(photos: list[Path], out: Path, ks: tuple[int, ...]) -> list[tuple[str, str, Path, Path]]:
    """Write the distorted files; return (photo, distortion, original, distorted) per pair."""
    from PIL import Image, ImageFilter

    out.mkdir(parents=True, exist_ok=True)
    pairs: list[tuple[str, str, Path, Path]] = []
    for k in ks:
        todo = [p for p in photos if not (out / f"{p.stem}-k{k}.png").exists()]
        if todo:
            subprocess.run([*_kmpress_exe(), "compress", *map(str, todo), "-k", str(k), "-o", str(out)], check=True)
    pngquant = shutil.which("pngquant")
    if pngquant is None:
        print("pngquant not found: its pairs are left out", file=sys.stderr)
    for src in photos:
        stem = src.stem
        for k in ks:
            pairs.append((stem, f"kmpress k{k}", src, out / f"{stem}-k{k}.png"))
        if pngquant is not None:
            for k in ks:
                dst = out / f"{stem}-pq{k}.png"
                if not dst.exists():
                    subprocess.run([pngquant, str(k), "--output", str(dst), str(src)], check=True)
                pairs.append((stem, f"pngquant {k}", src, dst))
        a = decode(src)
        rng = np.random.default_rng(0)
        for sigma in (3, 10):
            dst = out / f"{stem}-noise{sigma}.png"
            if not dst.exists():
                noisy = np.clip(np.rint(a + rng.normal(0.0, sigma, a.shape)), 0, 255).astype(np.uint8)
                Image.fromarray(noisy).save(dst)
            pairs.append((stem, f"noise {sigma}", src, dst))
        for radius in (1, 3):
            dst = out / f"{stem}-blur{radius}.png"
            if not dst.exists():
                Image.fromarray(a).filter(ImageFilter.GaussianBlur(radius)).save(dst)
            pairs.append((stem, f"blur {radius}", src, dst))
        dst = out / f"{stem}-jpeg20.png"
        if not dst.exists():
            jpg = out / f"{stem}-jpeg20.jpg"
            Image.fromarray(a).save(jpg, quality=20)
            with Image.open(jpg) as im:
                im.convert("RGB").save(dst)
            jpg.unlink()
        pairs.append((stem, "jpeg 20", src, dst))
    return pairs


def tool_score(tool: str, ref: Path, dist: Path) -> float:
    """The score libjxl's C++ ``ssimulacra2`` prints for the pair."""
    r = subprocess.run([tool, str(ref), str(dist)], capture_output=True, text=True, check=True)
    return float(r.stdout.split()[-1])


def _libjxl_blur(image: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """libjxl's Gaussian on an (H, W, C) float64 image: 9 taps both ways, zero outside."""
    from kmpress.perceptual import TAPS

    taps = np.concatenate([TAPS[:0:-1], TAPS])
    r = len(TAPS) - 1
    h, w = image.shape[:2]
    p = np.pad(image, ((r, r), (0, 0), (0, 0)))
    v = sum(taps[i] * p[i : i + h] for i in range(2 * r + 1))
    p = np.pad(v, ((0, 0), (r, r), (0, 0)))
    return sum(taps[i] * p[:, i : i + w] for i in range(2 * r + 1))


def port_scorers() -> dict[str, Callable[[Path, Path], float]]:
    """The PyPI port as it is, and with libjxl's filter in place of its blur."""
    import ssimulacra2.ssimulacra2 as port

    def as_is(ref: Path, dist: Path) -> float:
        return float(port.compute_ssimulacra2(str(ref), str(dist)))

    def libjxl_filter(ref: Path, dist: Path) -> float:
        saved = port.blur_image
        port.blur_image = _libjxl_blur
        try:
            return float(port.compute_ssimulacra2(str(ref), str(dist)))
        finally:
            port.blur_image = saved

    return {"port": as_is, "port+libjxl blur": libjxl_filter}


def main(argv: list[str] | None = None) -> None:
    """Make the pairs, score them, print the table and the differences."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, required=True)
    ap.add_argument("--tool", help="libjxl's C++ ssimulacra2 executable")
    ap.add_argument("--port", action="store_true", help="also the PyPI ssimulacra2 package")
    ap.add_argument("--out", type=Path, help="folder for the distorted files (kept; reused)")
    ap.add_argument("--ks", default=",".join(map(str, KS)))
    args = ap.parse_args(argv)
    if not args.tool and not args.port:
        ap.error("give --tool PATH and/or --port")
    from kmpress.perceptual import ssimulacra2

    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    ks = tuple(int(k) for k in args.ks.split(","))
    refs: dict[str, Callable[[Path, Path], float]] = {}
    if args.tool:
        refs["libjxl"] = lambda a, b: tool_score(args.tool, a, b)
    if args.port:
        refs.update(port_scorers())
    with tempfile.TemporaryDirectory() as tmp:
        pairs = make_pairs(photos, args.out or Path(tmp), ks)
        names = list(refs)
        print(f"| photo | distortion | kmpress | {' | '.join(names)} | {' | '.join('d ' + n for n in names)} |")
        print("|---|---|---:|" + "---:|" * (2 * len(names)))
        diffs: dict[str, list[float]] = {n: [] for n in names}
        for stem, what, ref, dist in pairs:
            ours = ssimulacra2(decode(ref), decode(dist))
            theirs = [refs[n](ref, dist) for n in names]
            for n, t in zip(names, theirs, strict=True):
                diffs[n].append(t - ours)
            cells = " | ".join(f"{t:.4f}" for t in theirs)
            dcells = " | ".join(f"{t - ours:+.4f}" for t in theirs)
            print(f"| {stem} | {what} | {ours:.4f} | {cells} | {dcells} |", flush=True)
    print()
    for n in names:
        d = np.abs(np.array(diffs[n]))
        worst = pairs[int(np.argmax(d))]
        print(
            f"{n}: {len(d)} pairs, |difference| max {d.max():.4f} ({worst[0]}, {worst[1]}), "
            f"mean {d.mean():.4f}, median {np.median(d):.4f}; signed mean {np.mean(diffs[n]):+.4f}"
        )


if __name__ == "__main__":
    main()
