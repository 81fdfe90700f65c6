"""Admission by memory for a local pool: which queued file may start now (:class:`MemoryBudget`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from . import limits
from .errors import KmpressError
from .io import image_size

#: Share of the available memory a local batch plans to fill (the rest: the parent, the system).
BUDGET_SHARE = 0.8


class _Queued(Protocol):
    """A file waiting to start (a :class:`kmpress.batch.PlannedFile`): only its input matters."""

    @property
    def src(self) -> str | Path: ...


class MemoryBudget:
    """Admission by memory for a local pool.

    A file starts only when the memory it is estimated to need (:func:`kmpress.limits.job_bytes` of
    its header) fits beside the files in flight, within :data:`BUDGET_SHARE` of the memory available
    when the batch started. A file that does not fit waits while smaller ones go ahead; alone, any
    file may start (its own size was judged by the reading guard). So two huge photos on a machine
    short of memory run one after the other, and the rest of the batch in parallel.

    Parameters
    ----------
    total : int, optional
        Bytes available to the batch (default: :func:`kmpress.limits.available_memory` now);
        the budget is :data:`BUDGET_SHARE` of it. None when unknown: every file may start.
    """

    def __init__(self, total: int | None = None) -> None:
        avail = limits.available_memory() if total is None else total
        self.total = None if avail is None else int(avail * BUDGET_SHARE)
        self.used = 0
        self._need: dict[str, int] = {}

    def need(self, src: str) -> int:
        """Bytes the file ``src`` is estimated to need (read from its header once)."""
        if src not in self._need:
            try:
                w, h = image_size(src, max_pixels=None)
                self._need[src] = limits.job_bytes(w * h, 4)
            except KmpressError:  # unreadable: it fails fast in its worker
                self._need[src] = limits.RUNTIME_BYTES
        return self._need[src]

    def pick(self, queue: Sequence[_Queued], running: int) -> int | None:
        """Index in ``queue`` of the first file that may start now, or None."""
        for i, it in enumerate(queue):
            if running == 0 or self.total is None or self.used + self.need(str(it.src)) <= self.total:
                return i
        return None

    def start(self, src: str) -> None:
        """``src`` has started: its need is in use."""
        self.used += self.need(src)

    def end(self, src: str) -> None:
        """``src`` has finished: its need is free again."""
        self.used -= self.need(src)
