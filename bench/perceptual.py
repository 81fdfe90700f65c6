"""Perceptual quality against pngquant: size, PSNR, SSIMULACRA 2, butteraugli and blurred
CIEDE2000, at equal K and at equal bytes, with a sheet of crops to look at.

Run from the repository root::

    python -m bench.perceptual --photos DIR --out DIR
    python -m bench.perceptual --photos DIR --out DIR --ks 16 --kmpress-args "--space oklab --dither"
    python -m bench.perceptual --photos DIR --out DIR --kmpress ./other/kmpress

For every photo (``*.png`` / ``*.jpg`` in ``--photos``) and K it writes four files under
``--out``: ``pngquant K`` (its default: speed 4, dithered), ``pngquant --speed 1 K``, and
kmpress at K (``--kmpress EXE`` runs ``EXE compress SRC -k K -o - ARGS``; without it the
installed ``kmpress.compress`` API with the same options is used). Each file is decoded again and
measured against the photo:

- ``bytes``: the file's size; ``PSNR`` over RGB;
- ``SSIM2``: SSIMULACRA 2 (PyPI ``ssimulacra2``; higher is better, 90 is visually lossless);
- ``butt3``: butteraugli's 3-norm (``butteraugli_main --pnorm 3``, Debian ``libjxl-devtools``;
  lower is better);
- ``dE00b``: the mean CIEDE2000 of both images blurred by a Gaussian of sigma 1.5 px, a measure
  of hue and tone kept at viewing distance, blind to dither grain (lower is better).

Equal bytes: for each photo and K, the largest kmpress K' (<= 256, same options) whose file is
no larger than pngquant's default file, found by bisection on K' (file size grows with K'), is
measured against that pngquant file.

Outputs in ``--out``: ``perceptual.md`` (command, machine, date, tool versions; per-K means;
per-photo rows; wins counted against the better of the two pngquant runs per photo) and
``crops.png`` (per photo, a smooth area, a skin-toned area and the most textured area, each
shown as the photo, pngquant, pngquant --speed 1 and kmpress, magnified 2x).

The tools are bench-only: kmpress never imports or runs them. ``pip install ".[bench]"`` gets
``ssimulacra2``; pngquant and butteraugli_main come from the system's packages.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

KS = (16, 64, 256)
TOOLS = ("pngquant", "butteraugli_main")
#: Side of a crop in the sheet (source pixels; shown magnified 2x).
CROP = 96

# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------


def decode(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of an image file."""
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(255.0**2 / max(mse, 1e-12))


def ssimulacra2(ref: Path, dist: Path) -> float:
    from ssimulacra2 import compute_ssimulacra2

    return float(compute_ssimulacra2(str(ref), str(dist)))


def butteraugli3(ref: Path, dist: Path) -> float:
    r = subprocess.run(
        ["butteraugli_main", str(ref), str(dist), "--pnorm", "3"], capture_output=True, text=True, check=True
    )
    m = re.search(r"3-norm:\s*([0-9.eE+-]+)", r.stdout + r.stderr)
    if m is None:
        raise RuntimeError(f"butteraugli_main printed no 3-norm for {dist}")
    return float(m.group(1))


def gaussian_blur(img: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Separable Gaussian blur (radius 4 sigma, mirrored edges) of an (H, W, C) image, float64."""
    r = int(np.ceil(4 * sigma))
    x = np.arange(-r, r + 1)
    g = np.exp(-x * x / (2 * sigma * sigma))
    g /= g.sum()
    a = img.astype(np.float64)
    h, w = a.shape[:2]
    p = np.pad(a, ((r, r), (0, 0), (0, 0)), mode="reflect")
    a = sum(g[i] * p[i : i + h] for i in range(2 * r + 1))
    p = np.pad(a, ((0, 0), (r, r), (0, 0)), mode="reflect")
    return sum(g[i] * p[:, i : i + w] for i in range(2 * r + 1))


def srgb_to_cielab(rgb: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 255] (float) to CIELAB (D65), (..., 3) float64."""
    c = rgb / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu, Dalal 2005) of two (..., 3) CIELAB arrays."""
    L1, a1, b1 = np.moveaxis(lab1, -1, 0)
    L2, a2, b2 = np.moveaxis(lab2, -1, 0)
    cbar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(cbar**7 / (cbar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    zero = c1p * c2p == 0
    dh = h2p - h1p
    dh = np.where(zero, 0.0, np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh)))
    dHp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    lbar, cbarp, hs = (L1 + L2) / 2, (c1p + c2p) / 2, h1p + h2p
    hbar = np.where(
        zero, hs, np.where(np.abs(h1p - h2p) <= 180, hs / 2, np.where(hs < 360, (hs + 360) / 2, (hs - 360) / 2))
    )
    t = (
        1
        - 0.17 * np.cos(np.radians(hbar - 30))
        + 0.24 * np.cos(np.radians(2 * hbar))
        + 0.32 * np.cos(np.radians(3 * hbar + 6))
        - 0.20 * np.cos(np.radians(4 * hbar - 63))
    )
    rc = 2 * np.sqrt(cbarp**7 / (cbarp**7 + 25.0**7))
    sl = 1 + 0.015 * (lbar - 50) ** 2 / np.sqrt(20 + (lbar - 50) ** 2)
    sc, sh = 1 + 0.045 * cbarp, 1 + 0.015 * cbarp * t
    rt = -np.sin(np.radians(60 * np.exp(-(((hbar - 275) / 25) ** 2)))) * rc
    dl, dc, dhh = (L2 - L1) / sl, (c2p - c1p) / sc, dHp / sh
    return np.sqrt(dl**2 + dc**2 + dhh**2 + rt * dc * dhh)


def blurred_de2000(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> float:
    return float(np.mean(ciede2000(srgb_to_cielab(gaussian_blur(a, sigma)), srgb_to_cielab(gaussian_blur(b, sigma)))))


def digest(path: Path) -> str:
    """The first 20 hex digits of a file's SHA-256 (the cache keys' part for one file)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:20]


def measure(ref: Path, dist: Path, cache: Path | None = None) -> dict:
    """The measures of ``dist`` against ``ref``; with ``cache``, kept in (and read back from)
    ``cache/m-<ref digest>-<dist digest>.json``, so a file already measured (pngquant's, or a
    kmpress file that did not change) is not measured again."""
    hit = None
    if cache is not None:
        hit = cache / f"m-{digest(ref)}-{digest(dist)}.json"
        if hit.exists():
            return json.loads(hit.read_text())
    a, b = decode(ref), decode(dist)
    out = dict(
        bytes=dist.stat().st_size,
        psnr=psnr(a, b),
        ssim2=ssimulacra2(ref, dist),
        butt3=butteraugli3(ref, dist),
        de=blurred_de2000(a, b),
    )
    if hit is not None:
        hit.parent.mkdir(parents=True, exist_ok=True)
        tmp = hit.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(out))
        tmp.replace(hit)
    return out


# --------------------------------------------------------------------------------------------
# the encoders
# --------------------------------------------------------------------------------------------


def run_pngquant(src: Path, k: int, dst: Path, speed1: bool, cache: Path | None = None) -> None:
    """pngquant's file for ``src`` at ``k``; with ``cache``, kept as
    ``cache/pq-<photo digest>-<speed>-k<k>-<pngquant version>.png`` and copied from there."""
    kept = None
    if cache is not None:
        version = re.sub(r"[^0-9A-Za-z.]+", "_", _version(["pngquant", "--version"]))
        kept = cache / f"pq-{digest(src)}-{'s1' if speed1 else 'default'}-k{k}-{version}.png"
        if kept.exists():
            shutil.copyfile(kept, dst)
            return
    cmd = ["pngquant", str(k)] + (["--speed", "1"] if speed1 else []) + ["--force", "--output", str(dst), str(src)]
    subprocess.run(cmd, check=True, capture_output=True)
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        tmp = kept.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(dst, tmp)
        tmp.replace(kept)


def run_kmpress(src: Path, k: int, dst: Path, exe: str | None, args: list[str]) -> None:
    if exe:
        with open(dst, "wb") as f:
            subprocess.run(
                shlex.split(exe) + ["compress", str(src), "-k", str(k), "-o", "-"] + args, check=True, stdout=f
            )
        return
    import kmpress

    kmpress.compress(src, dst, k, **api_options(args))


#: The flags with a value that this script passes on to the API: the keyword and its type.
FLAG_KEYS: dict[str, tuple[str, type]] = {
    "--space": ("colorspace", str),
    "--dither-strength": ("dither_strength", float),
    "--starts": ("n_init", int),
    "--smooth": ("smooth", float),
}


def api_options(args: list[str]) -> dict:
    """The CLI flags this script passes on (``--space``, ``--dither``, ``--dither-strength``,
    ``--starts``, ``--smooth``) as keyword arguments of :func:`kmpress.compress`."""
    out: dict = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--dither":
            out["dither"] = "floyd-steinberg"
        elif a == "--no-dither":
            out["dither"] = None
        elif a in FLAG_KEYS and i + 1 < len(args):
            key, kind = FLAG_KEYS[a]
            out[key] = kind(args[i + 1])
            i += 1
        else:
            raise SystemExit(
                "perceptual: without --kmpress only --dither, --no-dither, "
                f"{', '.join(FLAG_KEYS)} are passed on, not {a!r}"
            )
        i += 1
    return out


def one(job: tuple) -> tuple:
    """Make and measure one file: job = (tool, src, k, dst, exe, args, cache)."""
    tool, src, k, dst, exe, args, cache = job
    if tool == "pq":
        run_pngquant(src, k, dst, speed1=False, cache=cache)
    elif tool == "pq1":
        run_pngquant(src, k, dst, speed1=True, cache=cache)
    else:
        run_kmpress(src, k, dst, exe, args)
    return (tool, src.stem, k), measure(src, dst, cache)


def equal_bytes(
    src: Path, k: int, budget: int, out: Path, exe: str | None, args: list[str], cache: Path | None = None
) -> tuple[str, dict]:
    """kmpress's best file within ``budget`` bytes, and its measures: the largest K' whose file
    fits (bisection; K' = 2 when even that is larger); when K' = 256 fits with room to spare, the
    largest ``--dither-strength`` from the default 0.5 up to 1 that still fits (bisection to
    1/32: a stronger dither keeps colours better and costs bytes). Returns its label (``"97"``,
    ``"256 @ 0.81"``) and measures. Every file tried is made afresh: a file left in ``out`` by an
    earlier run may come from another kmpress."""
    made: set[tuple[int, float | None]] = set()

    def path(kk: int, strength: float | None) -> Path:
        return out / (f"{src.stem}-eq{k}-k{kk}" + ("" if strength is None else f"-s{strength:g}") + ".png")

    def size(kk: int, strength: float | None = None) -> int:
        dst = path(kk, strength)
        if (kk, strength) not in made:
            extra = [] if strength is None else ["--dither-strength", f"{strength:g}"]
            run_kmpress(src, kk, dst, exe, args + extra)
            made.add((kk, strength))
        return dst.stat().st_size

    lo, hi = 2, 256
    if size(hi) <= budget:
        lo = hi
    while hi - lo > 1 and lo != hi:
        mid = (lo + hi) // 2
        if size(mid) <= budget:
            lo = mid
        else:
            hi = mid
    size(lo)  # made even when it does not fit (K' = 2)
    if lo < 256 or "--no-dither" in args or "--dither" in args or "--dither-strength" in args:
        return str(lo), measure(src, path(lo, None), cache)
    s_lo, s_hi = 0.5, 1.0
    if size(256, s_hi) <= budget:
        s_lo = s_hi
    while s_hi - s_lo > 1 / 32 + 1e-9:
        mid = (s_lo + s_hi) / 2
        if size(256, mid) <= budget:
            s_lo = mid
        else:
            s_hi = mid
    best = None if s_lo == 0.5 else s_lo
    return ("256" if best is None else f"256 @ {best:g}"), measure(src, path(256, best), cache)


# --------------------------------------------------------------------------------------------
# crops
# --------------------------------------------------------------------------------------------


def pick_crops(img: np.ndarray) -> dict[str, tuple[int, int]]:
    """Top-left corners of three CROP x CROP windows: ``smooth`` (the least gradient energy
    among windows that are not flat black or white), ``skin`` (most skin-toned pixels, by the
    usual YCbCr box), ``texture`` (the most gradient energy)."""
    f = img.astype(np.float64)
    y = f @ np.array([0.299, 0.587, 0.114])
    cb = 128 - 0.168736 * f[..., 0] - 0.331264 * f[..., 1] + 0.5 * f[..., 2]
    cr = 128 + 0.5 * f[..., 0] - 0.418688 * f[..., 1] - 0.081312 * f[..., 2]
    grad = np.zeros_like(y)
    grad[:-1, :-1] = np.abs(np.diff(y, axis=0))[:, :-1] + np.abs(np.diff(y, axis=1))[:-1, :]
    skin = ((cb > 77) & (cb < 127) & (cr > 137) & (cr < 173) & (y > 60)).astype(np.float64)
    h, w = y.shape
    step = CROP // 2
    best: dict[str, tuple[float, tuple[int, int]]] = {}
    for r in range(0, max(1, h - CROP + 1), step):
        for c in range(0, max(1, w - CROP + 1), step):
            win = (slice(r, r + CROP), slice(c, c + CROP))
            g, lum = grad[win].mean(), y[win].mean()
            scores = {"texture": g, "skin": skin[win].mean() if skin[win].mean() > 0.5 else -1.0}
            if 30 < lum < 235 and y[win].std() > 1.0:
                scores["smooth"] = -g
            for name, s in scores.items():
                if s >= 0 or name == "smooth":
                    if name not in best or s > best[name][0]:
                        best[name] = (s, (r, c))
    return {name: best[name][1] for name in ("smooth", "skin", "texture") if name in best}


def crop_sheet(photos: list[Path], ks: list[int], out: Path) -> Path:
    from PIL import Image, ImageDraw

    cols = ["photo", "pngquant", "pngquant -s1", "kmpress"]
    k = 16 if 16 in ks else ks[0]
    rows = []
    for src in photos:
        img = decode(src)
        files = [
            src,
            out / f"{src.stem}-pq-k{k}.png",
            out / f"{src.stem}-pq1-k{k}.png",
            out / f"{src.stem}-km-k{k}.png",
        ]
        pics = [decode(p) for p in files]
        for name, (r, c) in pick_crops(img).items():
            rows.append((f"{src.stem} {name} K={k}", [p[r : r + CROP, c : c + CROP] for p in pics]))
    s, pad, head = 2 * CROP, 4, 14
    sheet = Image.new("RGB", (len(cols) * (s + pad) + pad, head + len(rows) * (s + head + pad) + pad), "white")
    d = ImageDraw.Draw(sheet)
    for j, label in enumerate(cols):
        d.text((pad + j * (s + pad), 1), label, fill="black")
    for i, (label, tiles) in enumerate(rows):
        y0 = head + i * (s + head + pad)
        d.text((pad, y0), label, fill="black")
        for j, t in enumerate(tiles):
            sheet.paste(
                Image.fromarray(np.ascontiguousarray(t)).resize((2 * t.shape[1], 2 * t.shape[0]), Image.NEAREST),
                (pad + j * (s + pad), y0 + head),
            )
    path = out / "crops.png"
    sheet.save(path)
    return path


# --------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------


def _version(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def table(R: dict, E: dict, photos: list[str], ks: list[int]) -> list[str]:
    cols = ("bytes", "psnr", "ssim2", "butt3", "de")
    lines = []
    for k in ks:
        lines += [f"\n### K = {k} (means over {len(photos)} photos; bytes relative to pngquant's default)\n"]
        lines += [
            "| tool | bytes | PSNR | SSIM2 | butt3 | dE00b | photos won: SSIM2 / butt3 / bytes / dE00b |",
            "|---|---|---|---|---|---|---|",
        ]
        for tool, name in (("pq", "pngquant (default)"), ("pq1", "pngquant --speed 1"), ("km", "kmpress")):
            rel = np.mean([R[tool, p, k]["bytes"] / R["pq", p, k]["bytes"] for p in photos]) * 100
            m = {c: np.mean([R[tool, p, k][c] for p in photos]) for c in cols[1:]}
            won = ""
            if tool == "km":
                best = lambda p, c, f, k=k: f(R["pq", p, k][c], R["pq1", p, k][c])  # noqa: E731
                w = [
                    sum(R["km", p, k]["ssim2"] > best(p, "ssim2", max) for p in photos),
                    sum(R["km", p, k]["butt3"] < best(p, "butt3", min) for p in photos),
                    sum(R["km", p, k]["bytes"] <= R["pq", p, k]["bytes"] for p in photos),
                    sum(R["km", p, k]["de"] <= best(p, "de", min) for p in photos),
                ]
                won = " / ".join(f"{x}/{len(photos)}" for x in w)
            figs = f"{m['psnr']:.2f} | {m['ssim2']:.1f} | {m['butt3']:.2f} | {m['de']:.2f}"
            lines.append(f"| {name} | {rel:.1f} % | {figs} | {won} |")
        if E:
            rel = np.mean([E[p, k][1]["bytes"] / R["pq", p, k]["bytes"] for p in photos]) * 100
            m = {c: np.mean([E[p, k][1][c] for p in photos]) for c in cols[1:]}
            kk = ", ".join(E[p, k][0] for p in photos)
            figs = f"{m['psnr']:.2f} | {m['ssim2']:.1f} | {m['butt3']:.2f} | {m['de']:.2f}"
            lines.append(f"| kmpress at pngquant's bytes (K' = {kk}) | {rel:.1f} % | {figs} | |")
        lines += ["", "| photo | pngquant bytes / SSIM2 / butt3 / dE00b | --speed 1 | kmpress |", "|---|---|---|---|"]
        for p in photos:
            cell = lambda r: f"{r['bytes']} / {r['ssim2']:.1f} / {r['butt3']:.2f} / {r['de']:.2f}"  # noqa: E731
            lines.append(f"| {p} | {cell(R['pq', p, k])} | {cell(R['pq1', p, k])} | {cell(R['km', p, k])} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.perceptual", description=__doc__.split("\n")[0])
    ap.add_argument("--photos", required=True, type=Path, help="folder of photos (*.png, *.jpg)")
    ap.add_argument("--out", required=True, type=Path, help="folder for the files, perceptual.md and crops.png")
    ap.add_argument("--ks", default=",".join(map(str, KS)), help="comma-separated K values (default 16,64,256)")
    ap.add_argument("--kmpress", default=None, help="kmpress executable to run (default: the installed kmpress API)")
    ap.add_argument("--kmpress-args", default="", help="extra kmpress flags, e.g. '--space oklab --dither'")
    ap.add_argument("--no-equal-bytes", action="store_true", help="skip the search for kmpress's K at pngquant's bytes")
    ap.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--cache", type=Path, default=None, help="cache folder (default OUT/cache); runs may share one")
    ap.add_argument(
        "--no-cache",
        action="store_true",
        help="measure everything afresh (by default pngquant's files and every file's measures are kept in OUT/cache, "
        "keyed by the photo's and the file's SHA-256, K and pngquant's version)",
    )
    a = ap.parse_args(argv)
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        print(
            f"perceptual: {', '.join(missing)} not found (Debian: apt-get install pngquant libjxl-devtools)",
            file=sys.stderr,
        )
        return 2
    try:
        import ssimulacra2  # noqa: F401
    except ImportError:
        print('perceptual: the ssimulacra2 package is missing (pip install ".[bench]")', file=sys.stderr)
        return 2
    photos = sorted(p for p in a.photos.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not photos:
        print(f"perceptual: no photos (*.png, *.jpg) in {a.photos}", file=sys.stderr)
        return 2
    ks = [int(k) for k in a.ks.split(",")]
    args = shlex.split(a.kmpress_args)
    a.out.mkdir(parents=True, exist_ok=True)
    cache = None if a.no_cache else (a.cache or a.out / "cache")
    jobs = [
        (t, src, k, a.out / f"{src.stem}-{t}-k{k}.png", a.kmpress, args, cache)
        for src in photos
        for k in ks
        for t in ("pq", "pq1", "km")
    ]
    with ProcessPoolExecutor(max(1, a.jobs)) as ex:
        R = dict(ex.map(one, jobs))
        E = {}
        if not a.no_equal_bytes:
            eq = [(src, k, R["pq", src.stem, k]["bytes"], a.out, a.kmpress, args, cache) for src in photos for k in ks]
            E = {(src.stem, k): r for (src, k, *_), r in zip(eq, ex.map(_equal_bytes_job, eq), strict=True)}
    names = [p.stem for p in photos]
    command = "python -m bench.perceptual " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])
    )
    head = [
        "# kmpress against pngquant: perceptual metrics",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}",
        f"- kmpress: {a.kmpress or 'API'} {a.kmpress_args}; pngquant {_version(['pngquant', '--version'])}; "
        "butteraugli_main (libjxl)",
        "- columns: SSIM2 = SSIMULACRA 2 (higher better); butt3 = butteraugli 3-norm; "
        "dE00b = mean CIEDE2000 after a 1.5 px Gaussian blur (lower better)",
    ]
    text = "\n".join(head + table(R, E, names, ks)) + "\n"
    (a.out / "perceptual.md").write_text(text)
    sheet = crop_sheet(photos, ks, a.out)
    print(text)
    print(f"crops: {sheet}")
    return 0


def _equal_bytes_job(job: tuple) -> tuple[str, dict]:
    return equal_bytes(*job)


if __name__ == "__main__":
    sys.exit(main())
