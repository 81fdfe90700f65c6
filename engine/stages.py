"""The stages of a job, timed and announced by one recorder.

A job (:func:`kmpress.compress`, :func:`kmpress.quantize`, a sweep, a quality search) makes one
:class:`Stages` at its edge and hands it down; each step runs inside ``with stages("lloyd"):``.
The recorder adds the time spent to that stage's total (the ``timings`` of the figures,
:class:`kmpress.figures.Figures`) and tells its listener, if any, as the stage begins: the
progress display of the CLI, or the pipe of a pool worker (:class:`kmpress.pool.StagePipe`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Every stage, in the order a compression runs them: ``colorspace`` only when clustering in
#: another space than RGB; ``init`` (k-means++ seeding) and ``lloyd`` once per start and per K
#: fitted (a quality search fits several); ``read`` and ``write`` only for :func:`kmpress.compress`.
STAGES = ("read", "histogram", "colorspace", "init", "lloyd", "remap", "delta_e", "write")


class Stages:
    """Times the stages of one job and tells a listener as each begins.

    Parameters
    ----------
    listener : callable(stage), optional
        Told the stage's name (one of :data:`STAGES`) as it begins, once for consecutive runs of
        the same stage, in the job's thread, between the kernels. What it raises stops the job.

    Attributes
    ----------
    times : dict of stage -> seconds; the time spent in each stage so far, summed over its runs,
        in the order the stages were first entered
    """

    def __init__(self, listener: Callable[[str], None] | None = None) -> None:
        self.listener = listener
        self.times: dict[str, float] = {}
        self._current: str | None = None

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        """Run the ``with`` block as ``stage``: its time is added to ``times[stage]``."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}: the stages are {', '.join(STAGES)}")
        if stage != self._current:
            self._current = stage
            if self.listener is not None:
                self.listener(stage)
        t = time.perf_counter()
        try:
            yield
        finally:
            self.times[stage] = self.times.get(stage, 0.0) + time.perf_counter() - t

    def since(self, mark: dict[str, float]) -> dict[str, float]:
        """The time of each stage since ``mark`` (an earlier copy of ``times``): what one part of
        the job (a candidate K, a row of a sweep) spent, stages it did not enter left out."""
        return {s: t - mark.get(s, 0.0) for s, t in self.times.items() if t != mark.get(s, 0.0)}
