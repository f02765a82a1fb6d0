"""Sweeps: one base job and a search space (``shared.sweep_space``) made into trials, each an
ordinary job of the owner carrying the sweep's id (``Job.sweep_id``).

A sweep record holds the request as given (the base job and the space) and each trial's
job id and values, in trial order; it never changes once written. What a trial is doing
and what it measured are its job's, read when the sweep is shown: a trial's job deleted
since (by its owner or the retention sweep) shows with no status. Trials queue in their
owner's fair queue like any job, behind the owner's other jobs of the same priority
(``shared.scheduling``).

Keys (``shared.redis_keys``): ``sweep:{id}`` (the record, JSON) and ``owner:{owner}:sweeps``
(ids scored 0: ZREVRANGEBYLEX pages newest first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
from pydantic import BaseModel

from .job_indexes import JobIndexes
from .job_records import Job, JobStatus
from .job_search import MetricOrder
from .redis_keys import KEYS, RedisKeys
from .sweep_space import Overrides


class Trial(BaseModel):
    job_id: str
    values: Overrides
    """The swept values, by dotted key into the job's params."""


class SweepRecord(BaseModel):
    id: str
    owner: str
    name: str | None = None
    created_at: float
    base: dict[str, Any]
    """The base job as submitted (the body of ``POST /v1/jobs``)."""
    space: dict[str, Any]
    """``{"grid": {...}}`` or ``{"random": {...}}``, as submitted."""
    trials: list[Trial]
    early_stopping: dict[str, Any] | None = None
    """The median rule's settings (``shared.sweep_stopping.EarlyStopping``), if asked for."""


@dataclass(frozen=True)
class TrialView:
    index: int
    trial: Trial
    job: Job | None
    """None once the job was deleted."""


class SweepStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys

    def save(self, record: SweepRecord) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._keys.sweep(record.id), record.model_dump_json())
        pipe.zadd(self._keys.owner_sweeps(record.owner), {record.id: 0})
        pipe.execute()

    def forget(self, record: SweepRecord) -> None:
        """A sweep whose trials could not all be queued: as if never made."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._keys.sweep(record.id))
        pipe.zrem(self._keys.owner_sweeps(record.owner), record.id)
        pipe.execute()

    def get(self, sweep_id: str, owner: str) -> SweepRecord | None:
        """The owner's sweep; None if there is none or it is another owner's."""
        raw = cast(bytes | None, self._redis.get(self._keys.sweep(sweep_id)))
        record = SweepRecord.model_validate_json(raw) if raw else None
        return record if record is not None and record.owner == owner else None

    def page(
        self, owner: str, limit: int, cursor: str | None = None
    ) -> tuple[list[SweepRecord], str | None]:
        """The owner's sweeps, newest first, and the next page's cursor."""
        upper = f"({cursor}" if cursor else "+"
        index = self._keys.owner_sweeps(owner)
        ids = [
            i.decode()
            for i in cast(list[bytes], self._redis.zrevrangebylex(index, upper, "-", 0, limit + 1))
        ]
        pipe = self._redis.pipeline(transaction=False)
        for sweep_id in ids[:limit]:
            pipe.get(self._keys.sweep(sweep_id))
        found = [SweepRecord.model_validate_json(raw) for raw in pipe.execute() if raw]
        return found, (ids[limit - 1] if len(ids) > limit else None)


def trial_views(store: JobIndexes, record: SweepRecord) -> list[TrialView]:
    """Each trial with its job as it is now (one pipelined read)."""
    jobs = {job.id: job for job in store.get_many(t.job_id for t in record.trials)}
    return [TrialView(i, t, jobs.get(t.job_id)) for i, t in enumerate(record.trials)]


def ranked(views: Sequence[TrialView], metric: str | None) -> list[TrialView]:
    """By the final ``metric`` (``val_loss`` smallest first, ``-val_loss`` largest first;
    trials without it last, in trial order), or in trial order without one."""
    if metric is None:
        return list(views)
    order = MetricOrder.parse(metric)

    def key(view: TrialView) -> tuple[int, float, int]:
        if view.job is None:
            return (2, 0.0, view.index)
        missing, value, _ = order.key(view.job)
        return (missing, value, view.index)

    return sorted(views, key=key)


def status_counts(views: Sequence[TrialView]) -> dict[str, int]:
    """How many trials are in each status (``deleted`` for a job that is gone)."""
    counts: dict[str, int] = {}
    for view in views:
        status = view.job.status.value if view.job else "deleted"
        counts[status] = counts.get(status, 0) + 1
    return counts


def active(views: Sequence[TrialView]) -> list[str]:
    """The ids of the trials still queued or running."""
    live = (JobStatus.QUEUED, JobStatus.RUNNING)
    return [v.trial.job_id for v in views if v.job is not None and v.job.status in live]
