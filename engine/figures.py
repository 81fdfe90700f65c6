"""The figures of a result, in one record.

Every result type (:class:`kmpress.Quantized`, :class:`kmpress.CompressReport`,
:class:`kmpress.SweepRow`, :class:`kmpress.quality.Trial`, :class:`kmpress.QualityResult`) carries
one :class:`Figures` beside its own facts, as its ``figures`` attribute, and reads each figure as
its own attribute too (``report.psnr`` is ``report.figures.psnr``); its ``as_dict`` (the CLI's
``--json``) holds the figures' keys flat, from :meth:`Figures.as_dict`.

A new figure is a field here; the code that measures it (:meth:`kmpress.pipeline.Pipeline.figures`)
and a column where the CLI shows it are the only other places that change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from .metrics import Bits, png_bit_depth


@dataclass(frozen=True)
class Figures:
    """What a result measures: colours, error, iterations and time.

    Attributes
    ----------
    k : int; colours asked for (for a quality target: the K chosen, or fitted by a trial)
    colors : int; palette entries stored (<= k: fewer when the image has fewer colours)
    mse : float; mean squared error per channel against the input; NaN when not measured
        (``measure=False`` with a dithered remap)
    psnr : float; dB, ``inf`` when lossless; NaN when ``mse`` is
    delta_e : float; mean OKLab distance (plain OKLab units, L from 0 to 1) between each input
        pixel's colour and its output colour, alpha ignored; 0 when lossless; NaN when not
        measured (a candidate of a quality search scored on the histogram, ``measure=False``
        with a dithered remap)
    ssimulacra2 : float; SSIMULACRA 2 score of the output against the input
        (:func:`kmpress.perceptual.ssimulacra2`: 100 identical, ~90 visually lossless, ~70 high,
        ~50 medium quality), alpha ignored; NaN when not measured (a candidate of a quality
        search scored on the histogram, ``measure=False``, an image under 8 pixels a side)
    bits : Bits; raw vs indexed bit accounting of ``colors`` entries
    n_iter : int; Lloyd iterations run (0 when the image has at most k colours)
    converged : bool; False when ``max_iter`` stopped Lloyd first
    timings : dict of stage -> seconds; the stages of :data:`kmpress.stages.STAGES` this result
        went through, each summed over its runs; :func:`kmpress.compress` adds ``total``
    bit_depth : int; bits per pixel of the PNG of ``colors`` entries: 1, 2, 4 or 8 (derived)
    """

    k: int
    colors: int
    mse: float
    psnr: float
    delta_e: float
    bits: Bits
    n_iter: int
    converged: bool
    ssimulacra2: float = math.nan
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    bit_depth: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bit_depth", png_bit_depth(self.colors))

    def as_dict(self) -> dict[str, Any]:
        """Return every figure by its name, JSON-ready.

        inf and NaN become None, ``bits`` and ``timings`` dicts.
        """
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Bits):
        return v.as_dict()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


#: The names of the figures.
NAMES = tuple(f.name for f in fields(Figures))


class HasFigures:
    """A result carrying a :class:`Figures` as ``figures``.

    Each figure reads as the result's own attribute (``q.psnr``, ``report.bits``), read-only.
    """

    if TYPE_CHECKING:  # the read-only properties the loop below sets, as type checkers see them
        # a dataclass field in most results, a property in some: read-only either way
        @property
        def figures(self) -> Figures:
            """The result's figures."""
            ...

        k: int
        colors: int
        mse: float
        psnr: float
        delta_e: float
        bits: Bits
        n_iter: int
        converged: bool
        timings: dict[str, float]
        bit_depth: int


def _figure(name: str) -> property:
    return property(lambda self: getattr(self.figures, name), doc=f"``figures.{name}`` (see :class:`Figures`)")


for _name in NAMES:
    setattr(HasFigures, _name, _figure(_name))
del _name
