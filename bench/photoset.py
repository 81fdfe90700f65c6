"""Assemble the public photo set of the perceptual comparison into a folder, reproducibly.

Run from the repository root (needs ``pip`` and Debian's ``apt-get`` and ``dpkg-deb``; no root:
``apt-get download`` only fetches the package file)::

    python -m bench.photoset --out /tmp/photos
    python -m bench.perceptual --photos /tmp/photos --out /tmp/perceptual

The photos come from packages, fetched with their ordinary clients into a scratch folder:

- the scikit-image 0.26.0 wheel from PyPI (``pip download``): ``skimage/data``'s colour photos;
- Debian's ``plasma-workspace-wallpapers`` (KDE Plasma's wallpapers; the photos among them);
- Debian's ``mate-backgrounds`` (MATE's ``nature`` folder: photos).

Each is converted to RGB (no ICC profile kept), reduced to 1024 px wide with Pillow's LANCZOS
when wider, and written as ``NAME.png``; ``MANIFEST.md`` lists each photo's package, version,
path in the package and licence (for the Debian packages, the licence of the file's stanza of
the package's ``copyright`` file). The photos themselves are not part of the repository.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: Width the larger photos are reduced to.
WIDTH = 1024
SKIMAGE = "scikit-image==0.26.0"

#: (name, path in the wheel, licence as the scikit-image data docstrings give it)
SKIMAGE_PHOTOS = (
    ("astronaut", "skimage/data/astronaut.png", "public domain (NASA)"),
    ("coffee", "skimage/data/coffee.png", "CC0 (Rachel Michetti)"),
    ("chelsea", "skimage/data/chelsea.png", "CC0 (Stefan van der Walt)"),
    ("rocket", "skimage/data/rocket.jpg", "public domain (SpaceX)"),
    ("motorcycle", "skimage/data/motorcycle_left.png", "Middlebury 2014 stereo benchmark (scikit-image data)"),
)

#: Debian package -> (name, path in the package)
DEBIAN_PHOTOS = {
    "plasma-workspace-wallpapers": tuple(
        (name.lower(), f"usr/share/wallpapers/{name}/contents/images/{size}.jpg")
        for name, size in (
            ("BytheWater", "2560x1600"),
            ("EveningGlow", "2560x1600"),
            ("FallenLeaf", "2560x1600"),
            ("Kite", "2560x1600"),
            ("OneStandsOut", "2560x1600"),
            ("Path", "2560x1600"),
            ("summer_1am", "2560x1600"),
            ("DarkestHour", "2560x1600"),
            ("Volna", "5120x2880"),
        )
    ),
    "mate-backgrounds": tuple(
        (name.lower(), f"usr/share/backgrounds/mate/nature/{name}.jpg")
        for name in ("LadyBird", "YellowFlower", "Dune", "Storm", "FreshFlower", "GreenMeadow")
    ),
}


def reduce(src: Path | bytes, dst: Path) -> tuple[int, int]:
    """Write ``src`` to ``dst`` as an RGB PNG at most :data:`WIDTH` px wide; return its size."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
        im = im.convert("RGB")
        if im.width > WIDTH:
            im = im.resize((WIDTH, round(im.height * WIDTH / im.width)), Image.LANCZOS)
        # the converted image keeps the source's metadata, which save() would write (an ICC
        # profile kmpress keeps and pngquant drops would skew the comparison of bytes)
        im.info.clear()
        im.save(dst)
        return im.size


def copyright_licence(text: str, path: str) -> str:
    """The ``License:`` of the last DEP-5 ``Files:`` stanza of a Debian ``copyright`` file whose
    patterns match ``path`` (relative to the source tree, so matched on its tail)."""
    found = "see the package's copyright file"
    for stanza in re.split(r"\n\s*\n", text):
        m = re.search(r"^Files:(.*?)(?=^\S)", stanza + "\nEnd:", re.S | re.M)
        lic = re.search(r"^License:\s*(.+)$", stanza, re.M)
        if not m or not lic:
            continue
        for pat in m.group(1).split():
            if pat == "*" or fnmatch.fnmatch(path, f"*{pat}") or path.endswith("/" + pat):
                found = lic.group(1).strip()
    return found


def fetch_skimage(work: Path, out: Path) -> list[str]:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", SKIMAGE, "--no-deps", "--only-binary", ":all:", "-d", str(work)],
        check=True,
        capture_output=True,
    )
    wheel = next(work.glob("scikit_image-*.whl"))
    rows = []
    with zipfile.ZipFile(wheel) as z:
        for name, inner, licence in SKIMAGE_PHOTOS:
            w, h = reduce(z.read(inner), out / f"{name}.png")
            rows.append(
                f"| {name} | {w}x{h} | PyPI {wheel.name.split('-')[0]} {SKIMAGE.split('==')[1]} | {inner} | {licence} |"
            )
    return rows


def fetch_debian(package: str, photos: tuple, work: Path, out: Path) -> list[str]:
    subprocess.run(["apt-get", "download", package], cwd=work, check=True, capture_output=True)
    deb = next(work.glob(f"{package}_*.deb"))
    version = subprocess.run(
        ["dpkg-deb", "--field", str(deb), "Version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    root = work / package
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    copyright_file = root / "usr/share/doc" / package / "copyright"
    text = copyright_file.read_text(errors="replace") if copyright_file.exists() else ""
    rows = []
    for name, inner in photos:
        w, h = reduce(root / inner, out / f"{name}.png")
        rows.append(f"| {name} | {w}x{h} | Debian {package} {version} | {inner} | {copyright_licence(text, inner)} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.photoset", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="folder for the photos and MANIFEST.md")
    ap.add_argument(
        "--only", default="", help="comma-separated sources to fetch: skimage, or Debian package names (default all)"
    )
    a = ap.parse_args(argv)
    want = set(filter(None, a.only.split(",")))
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="photoset-") as tmp:
        work = Path(tmp)
        try:
            if not want or "skimage" in want:
                rows += fetch_skimage(work, a.out)
            for package, photos in DEBIAN_PHOTOS.items():
                if not want or package in want:
                    rows += fetch_debian(package, photos, work, a.out)
        except (subprocess.CalledProcessError, OSError, StopIteration) as e:
            detail = getattr(e, "stderr", b"") or b""
            print(f"photoset: {e} {detail.decode(errors='replace').strip()}", file=sys.stderr)
            return 1
    manifest = [
        "# Photo set (made by `python -m bench.photoset`)",
        "",
        f"RGB, no ICC profile, reduced to {WIDTH} px wide (Pillow LANCZOS) when wider.",
        "",
        "| photo | size | source | path in the package | licence |",
        "|---|---|---|---|---|",
        *rows,
    ]
    (a.out / "MANIFEST.md").write_text("\n".join(manifest) + "\n")
    print(f"photoset: {len(rows)} photos in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
