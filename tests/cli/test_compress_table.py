"""``kmpress compress`` as a photographer meets it: the summary table at 80, 100 and 200 columns
and piped (columns give way by importance, values are never cut), files named by their path
below the folder given, rows in input order, and hints that can be followed."""

from __future__ import annotations

import json
import re

import pytest
from helpers import crop_photo, run, small_jpeg

from kmpress.cli.render import SUMMARY_COLUMNS, SWEEP_COLUMNS, fitted_table, print_table, row_names

#: A camera card's layout: the same file names in several folders.
CARD = [
    "2024-trip/DCIM/100CAM/DSC_0001.jpg",
    "2024-trip/DCIM/100CAM/DSC_0002.jpg",
    "2024-trip/DCIM/101CAM/DSC_0001.jpg",
    "2023/DCIM/100CAM/DSC_0001.jpg",
]


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    """A folder of photos with camera-style sub-folders and repeated names, compressed once as
    JSON (the figures each table must show)."""
    root = tmp_path_factory.mktemp("card")
    for i, rel in enumerate(CARD):
        path = root / "photos" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        crop_photo(path, box=(100 + 10 * i, 80, 196 + 10 * i, 144))
    r = run("compress", root / "photos", "-r", "-o", root / "out", "-k", 16, "--json", "-j", 2)
    assert r.exit_code == 0, r.stderr
    return root, json.loads(r.stdout)


def _table(card, monkeypatch, columns):
    root, _ = card
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", str(columns))
    r = run("compress", root / "photos", "-r", "-o", root / "out", "-k", 16, "--force", "-j", 2)
    assert r.exit_code == 0, r.stderr
    return r.stdout


def _rows(stdout):
    lines = stdout.splitlines()
    return [line for line in lines if re.match(r"^\S+\.jpg ", line)]


@pytest.mark.parametrize("columns", [80, 100, 200, None], ids=["80", "100", "200", "piped"])
def test_the_table_fits_and_never_cuts_a_name_or_a_value(card, monkeypatch, columns):
    _, doc = card
    out = _table(card, monkeypatch, columns)
    width = columns or 160  # piped without COLUMNS: a wide page
    assert max(len(line) for line in out.splitlines()) <= width
    header = out.splitlines()[0].split()
    for must in ("file", "K", "output", "PSNR", "SSIM2"):
        assert must in header, (columns, header)
    if columns == 200 or columns is None:
        assert header == [name for name, _ in SUMMARY_COLUMNS]
    if columns == 80:  # the least important columns gave way, in their order
        assert "bits/raw" not in header and "iter" not in header and "seconds" not in header
    rows = _rows(out)
    # every file by its path below the folder given, in input order (folders sorted)
    assert [row.split()[0] for row in rows] == sorted(CARD)
    by_src = {f["src"].split("photos/", 1)[1]: f for f in doc["files"]}
    for row in rows:
        cells = row.split()
        f = by_src[cells[0]]
        assert " 16 " in row
        assert f"{f['psnr']:.2f} dB" in row  # whole numbers, with their unit
        assert f"{f['ssimulacra2']:.1f}" in cells
        assert f"{f['output_bytes'] / 1e3:.1f} kB" in row


def test_the_json_document_lists_files_in_input_order(card):
    _, doc = card
    assert [f["src"].split("photos/", 1)[1] for f in doc["files"]] == sorted(CARD)


def test_a_name_too_long_for_the_terminal_folds_and_values_stay_whole():
    from io import StringIO

    from rich.console import Console

    name = "a-very-long-folder-name/and-another-one/DSC_0001.jpg"
    row = (name, "12.0 MP", "256", "5.1 MB", "10.2 MB", "200.0 %", "33.3 %", "38.21 dB", "71.3", "12*", "3.40")
    for width in (40, 60, 80):
        out = StringIO()
        console = Console(file=out, width=width, highlight=False)
        print_table(console, fitted_table(SUMMARY_COLUMNS, [row], width))
        text = out.getvalue()
        for value in ("256", "10.2 MB", "38.21 dB", "71.3"):
            assert value in text, (width, text)
        assert "…" not in text
        assert name == "".join(line.split()[0] for line in text.splitlines()[2:] if line.strip())


def test_the_sweep_table_keeps_every_k_whole_at_80_columns():
    from io import StringIO

    from rich.console import Console

    rows = [
        (str(k), str(k), "1.234e+10", "28.25 dB", "0.0250", "59.6 kB", "1.985", "60*", "1.02") for k in (2, 64, 256)
    ]
    out = StringIO()
    print_table(Console(file=out, width=80), fitted_table(SWEEP_COLUMNS, rows, 80, name_first=False))
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["2", "64", "256"]
    assert all(len(line) <= 80 for line in lines)


def test_row_names_are_paths_below_the_folder_given():
    assert row_names(["photos/a/x.jpg", "photos/b/x.jpg"], ["photos"]) == ["a/x.jpg", "b/x.jpg"]
    assert row_names(["/p/one.jpg", "q/two.jpg"]) == ["one.jpg", "two.jpg"]
    # the same name under two folder arguments: told apart by the folder they share
    assert row_names(["a/photos/x.jpg", "b/photos/x.jpg"], ["a/photos", "b/photos"]) == [
        "a/photos/x.jpg",
        "b/photos/x.jpg",
    ]


def test_a_strict_miss_at_256_colours_does_not_say_raise_max_colors(tmp_path):
    src = crop_photo(tmp_path / "cat.png")
    r = run("compress", src, "--psnr", 80, "--strict")
    assert r.exit_code == 3
    assert "--max-colors" not in r.stderr and "lower --psnr or drop --strict" in r.stderr
    r = run("compress", src, "--psnr", 80, "--strict", "--max-colors", 8)
    assert r.exit_code == 3 and "raise --max-colors, lower --psnr, or drop --strict" in r.stderr
    assert "max_colors" not in r.stderr and "target_psnr" not in r.stderr


def test_a_folder_of_sub_folders_without_r_hints_at_r(tmp_path):
    crop_photo((tmp_path / "photos" / "DCIM").mkdir(parents=True) or tmp_path / "photos" / "DCIM" / "a.png")
    r = run("compress", tmp_path / "photos")
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [
        f"kmpress: no image found in {tmp_path / 'photos'} (sub-folders are searched with -r/--recursive)"
    ]
    assert not list((tmp_path / "photos").glob("*.png"))


def test_a_missing_file_is_one_line(tmp_path):
    r = run("compress", tmp_path / "missing.jpg")
    assert r.exit_code == 2
    assert r.stderr.splitlines() == [f"kmpress: {tmp_path / 'missing.jpg'}: no such file or folder"]


def test_an_output_larger_than_its_input_is_said_with_what_helps(tmp_path):
    src = small_jpeg(tmp_path / "a.jpg")
    r = run("compress", src, "-k", 256)
    assert r.exit_code == 0
    lines = [line for line in r.stdout.splitlines() if "larger than" in line]
    assert len(lines) == 1 and "--format webp" in lines[0] and "--skip-if-larger" in lines[0]
    r = run("compress", crop_photo(tmp_path / "b.png"), "-k", 4)  # far smaller than its PNG input
    assert "larger than" not in r.stdout


def test_ctrl_c_says_how_far_the_batch_got_and_leaves_no_empty_folder(tmp_path, monkeypatch):
    import kmpress.batch as batch

    for name in ("a", "b", "c"):
        crop_photo((tmp_path / "in" / name).mkdir(parents=True) or tmp_path / "in" / name / "x.png")
    real = batch.compress_many

    def interrupted(plan, *args, on_start=None, **kw):
        started = []

        def start(src):  # Ctrl-C as the second file starts, inside the batch
            started.append(src)
            if len(started) == 2:
                raise KeyboardInterrupt

        return real(plan, *args, **{**kw, "jobs": 1, "on_start": start})

    monkeypatch.setattr(batch, "compress_many", interrupted)
    r = run("compress", tmp_path / "in", "-r", "-o", tmp_path / "out", "-k", 4)
    assert r.exit_code == 130
    assert r.stderr == "kmpress: interrupted: 1 of 3 written; run the same command again to go on\n"
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")) == ["a", "a/x-k4.png"]


def test_the_output_folder_is_not_created_when_every_input_fails(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a photo")
    r = run("compress", tmp_path / "bad.jpg", "-o", tmp_path / "out")
    assert r.exit_code == 1 and not (tmp_path / "out").exists()
