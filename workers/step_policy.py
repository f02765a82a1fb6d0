"""What a training run does at each step, decided in plain Python (no Keras, so it is
tested in the fast tier); ``workers.training.StepHooks`` carries the decisions out.

``Cadence``: when a step writes a sample, logs, stores a checkpoint or stops.
``CheckpointLedger``: which stored checkpoint the job's record points at, and which are
deleted (retention)."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .context import StopReason


@dataclass(frozen=True)
class StepActions:
    sample: bool
    log: bool
    checkpoint: bool
    """Store a checkpoint in the background (the pointer moves once it is stored)."""
    stop: bool
    checkpoint_and_wait: bool
    """Store a checkpoint and wait for it before stopping: the job moves to another worker."""


@dataclass(frozen=True)
class Cadence:
    total_steps: int
    sample_every: int
    checkpoint_every: int
    log_every: int | None = None
    """Steps between log lines of the metrics; None: as often as samples."""

    def at(self, step: int, stop: StopReason | None) -> StepActions:
        """What ``step`` (1-based, counted over the whole run) does. The last step neither
        checkpoints (the weights are stored next) nor stops (the run is over); a worker
        draining checkpoints before it stops, so the job resumes where it left off."""
        last = step >= self.total_steps
        stopping = stop is not None and not last
        waited = stopping and stop is StopReason.DRAINING
        return StepActions(
            sample=step % self.sample_every == 0,
            log=step % (self.log_every or self.sample_every) == 0,
            checkpoint=step % self.checkpoint_every == 0 and not last and not waited,
            stop=stopping,
            checkpoint_and_wait=waited,
        )

    def owes_final_sample(self, last_sample_step: int) -> bool:
        """A finished run always ends with a sample of its final weights."""
        return last_sample_step != self.total_steps


class CheckpointLedger:
    """The checkpoints a run has stored and the step the job's record points at.

    Uploads finish out of order: the pointer never moves back to an older checkpoint; it
    moves before anything is deleted; the newest ``keep`` (at least one) are kept, the one
    the run resumed from (an earlier attempt's) counted among them. A fenced-off attempt
    deletes nothing: the record may still point at the old ones. Thread-safe: uploads
    report from their own threads."""

    def __init__(self, pointed: int, resumed: tuple[int, str] | None, keep: int) -> None:
        self._pointed = pointed
        self._stored = [resumed] if resumed else []
        self._keep = max(keep, 1)
        self._lock = threading.Lock()

    @property
    def pointed(self) -> int:
        return self._pointed

    def stored(self, step: int, key: str, point: Callable[[], bool]) -> list[str]:
        """The checkpoint of ``step`` is stored under ``key``. If it is the newest, the
        record is pointed at it (``point``; False: fenced off, and nothing changes).
        Returns the keys of the checkpoints to delete."""
        with self._lock:
            if step > self._pointed:
                if not point():
                    return []
                self._pointed = step
            bisect.insort(self._stored, (step, key))
            stale = self._stored[: -self._keep]
            del self._stored[: -self._keep]
        return [stale_key for _, stale_key in stale]
