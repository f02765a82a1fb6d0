"""A training job's preparation phase as progress: what it does (a label), items done of
total, and an ETA.

Before its first step a job reads its dataset, tokenises it or builds a built-in corpus;
that can take minutes (the ``folk`` corpus, parsed tune by tune), and a job that showed
only "step 0" looked stuck. A kind's data code reports through a ``Preparation``: it names
each phase and counts its items; ``PhaseReporter`` turns that into the job's ``progress``
(``phase`` "preparing", ``label``, ``items_done``, ``items_total``, ``unit``,
``eta_seconds``), written through the same fenced, throttled path as step progress
(``JobContext``). Code that runs without a job (benchmarks, the corpus build's command)
passes ``NO_PREPARATION``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from ..shared.job_records import Phase, Progress


class Preparation(Protocol):
    def phase(self, label: str, total: int, unit: str) -> None:
        """Start a phase of ``total`` ``unit`` (reported at once)."""
        ...

    def advance(self, items: int = 1) -> None:
        """``items`` more of the current phase are done."""
        ...


class _NoPreparation:
    def phase(self, label: str, total: int, unit: str) -> None:
        pass

    def advance(self, items: int = 1) -> None:
        pass


NO_PREPARATION: Preparation = _NoPreparation()


def phase_eta(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the rate so far; None until an item is done (no rate yet)."""
    if done <= 0 or elapsed <= 0:
        return None
    return round(max(total - done, 0) * elapsed / done, 1)


class PhaseReporter:
    """Counts one phase at a time and hands ``write`` the job's progress: at a phase's
    start and end, and in between at most every ``interval`` seconds. ``step`` and
    ``total`` are the step the run will start from and its last: preparing does not move
    them (a resumed attempt's step stays at its checkpoint)."""

    def __init__(
        self,
        write: Callable[[Progress], None],
        interval: float,
        step: int,
        total: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._interval = interval
        self._step = step
        self._total = total
        self._clock = clock
        self._label = ""
        self._unit = ""
        self._items_total = 0
        self._done = 0
        self._started = 0.0
        self._last_write = 0.0

    def phase(self, label: str, total: int, unit: str) -> None:
        self._label, self._items_total, self._unit = label, max(total, 0), unit
        self._done = 0
        self._started = self._clock()
        self._flush()

    def advance(self, items: int = 1) -> None:
        self._done = min(self._done + items, self._items_total)
        finished = self._done >= self._items_total
        if finished or self._clock() - self._last_write >= self._interval:
            self._flush()

    def progress(self) -> Progress:
        """The phase as the job's progress now."""
        return Progress(
            step=self._step,
            total=self._total,
            fraction=round(self._step / self._total, 6) if self._total else 0.0,
            eta_seconds=phase_eta(self._done, self._items_total, self._clock() - self._started),
            updated_at=time.time(),
            phase=Phase.PREPARING,
            label=self._label,
            items_done=self._done,
            items_total=self._items_total,
            unit=self._unit,
        )

    def _flush(self) -> None:
        self._last_write = self._clock()
        self._write(self.progress())
