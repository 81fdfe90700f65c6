"""Names of the benchmark groups and the speed-up table printed at the end of ``pytest --benchmark``.

Pure functions on plain records, so the root ``conftest.py`` only has to pull the medians out of
pytest-benchmark's session and the table logic can be tested without timing anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Stage key -> group label. The number keeps pytest-benchmark's tables (sorted by group name) in
#: pipeline order.
STAGES = {
    "histogram": "1-histogram",
    "seeding": "2-seeding",
    "iter-pixels": "3-lloyd-iter-pixels",
    "iter-hist": "4-lloyd-iter-hist",
    "converge": "5-lloyd-converge",
    "labels": "5a-nearest-labels",
    "remap": "6-remap",
    "color-index": "6a-color-index",
    "remap-codes": "6b-remap-codes",
    "png": "7-png-encode",
    "compress": "8-compress",
    "auto-small": "8a-auto-64px",
    "auto-large": "8b-auto-4mp",
    "startup": "9-startup",
}

#: Implementations compared with numba, in the order of the table's columns ("auto": the
#: backend kmpress picks itself, in the 8a/8b groups; "numpy-plain": the plain NumPy Lloyd
#: iteration, bench.peers.numpy_plain_iteration, the NumPy backend's yardstick).
PEERS = ("numpy", "numpy-plain", "sklearn", "sklearn-iter", "auto")

#: One line under the table: what the NumPy figures are, so a reader can reproduce them.
BASELINE_NOTE = (
    "numpy = kmpress backend='numpy' (labels exactly numba's); numpy-plain = per 8192-point chunk "
    "x @ (-2 C^T) + ||c||^2 in float32, argmin, np.bincount sums (bench/peers.py)"
)

KS = (16, 64, 256)


def group_name(stage: str, k: int | None) -> str:
    """pytest-benchmark group of a stage at ``k``: one table per stage and K.

    K is right-aligned to three characters so that name order is numeric order (16, 64, 256).
    ``k=None`` is for stages that do not depend on K (the histogram) or that compare K values
    with each other (the PNG encode).
    """
    label = STAGES[stage]
    return label if k is None else f"{label} K={k:>3}"


@dataclass(frozen=True)
class Record:
    """One measured benchmark: stage key, K (None if not applicable), implementation, median seconds."""

    stage: str
    k: int | None
    impl: str
    median: float


def _fmt_ratio(peer: float | None, numba: float | None) -> str:
    if peer is None or numba is None or numba <= 0:
        return "-"
    r = peer / numba
    return f"{r:.0f}x" if r >= 100 else f"{r:.1f}x" if r >= 10 else f"{r:.2f}x"


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t:.2f} s" if t >= 1 else f"{t * 1e3:.1f} ms" if t >= 1e-3 else f"{t * 1e6:.0f} us"


def speedup_lines(records: Iterable[Record]) -> list[str]:
    """The speed-up table: one row per (stage, K), median of each peer / median of numba.

    Stages with only one implementation (the PNG encode) show their medians. A last row per K
    compares the numba iteration on the histogram with the NumPy iteration on every pixel (how much
    the histogram path and the kernels gain together). Returns no lines if nothing was measured.
    """
    med: dict[tuple[str, int | None, str], float] = {}
    for r in records:
        med[(r.stage, r.k, r.impl)] = r.median
    if not med:
        return []
    present_peers = [p for p in PEERS if any(key[2] == p for key in med)]
    header = ["group", "K", "numba median", *[f"vs {p}" for p in present_peers]]
    rows: list[list[str]] = []
    for stage in STAGES:
        ks = sorted({key[1] for key in med if key[0] == stage}, key=lambda k: -1 if k is None else k)
        for k in ks:
            numba = med.get((stage, k, "numba"))
            if numba is None:
                continue
            cells = [_fmt_ratio(med.get((stage, k, p)), numba) for p in present_peers]
            rows.append([STAGES[stage], "-" if k is None else str(k), _fmt_time(numba), *cells])
    for k in KS:
        numba_hist = med.get(("iter-hist", k, "numba"))
        if numba_hist is None or not any(("iter-pixels", k, p) in med for p in ("numpy", "numpy-plain")):
            continue
        rows.append(
            ["numba on histogram vs numpy per pixel (1 iteration)", str(k), _fmt_time(numba_hist)]
            + [
                _fmt_ratio(med.get(("iter-pixels", k, p)), numba_hist) if p in ("numpy", "numpy-plain") else "-"
                for p in present_peers
            ]
        )
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    if any(p in present_peers for p in ("numpy", "numpy-plain")):
        out.append(BASELINE_NOTE)
    return out
