"""Early stopping of a sweep's clearly losing trials: the median stopping rule (Golovin et
al., "Google Vizier", KDD 2017), as Vizier, Katib and Optuna's ``MedianPruner`` apply it.

A running trial is stopped when, at the step it has reached, the best value of the sweep's
metric it has reported so far is worse than the median of the other trials' best values up
to that same step (each of those trials must have reached it: finished, or running further
along). Never before ``min_fraction`` of its steps, and only once ``min_trials`` others can
be compared. Stopping is a cancel (the trial ends ``canceled`` at its next step, keeping its
checkpoint and curves); the sweep records why (``sweep:{id}:stopped``).

The workers' reapers run the check (``workers.reaper``), one node at a time and at most every
``CHECK_SECONDS``: it reads each watched sweep's curves, 2 series of at most 512 points per
trial. A sweep leaves the watch list once none of its trials is queued or running.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from typing import cast

import redis
from pydantic import BaseModel, ConfigDict, Field

from .errors import Conflict
from .job_compare import Run, read_runs
from .job_records import JobStatus
from .job_search import SORT_PATTERN, MetricOrder
from .jobs import JobStore
from .redis_keys import KEYS, RedisKeys
from .sweeps import SweepRecord

log = logging.getLogger(__name__)

CHECK_SECONDS = 10
"""The check runs at most this often across all the workers' reapers."""
Curve = list[tuple[int, float]]
"""(step, value) with smaller better (a larger-is-better metric negated)."""


class EarlyStopping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field(
        pattern=SORT_PATTERN,
        description="The metric the rule compares, as the trials report it while they run: "
        "`val_loss` smaller is better, `-name` larger is better.",
        examples=["val_loss"],
    )
    min_fraction: float = Field(
        0.25, ge=0, le=1, description="A trial is never stopped before this share of its steps."
    )
    min_trials: int = Field(
        3, ge=1, description="Other trials that must have reached a step for its median to count."
    )


def curves(runs: Sequence[Run], metric: str) -> dict[str, Curve]:
    """Each run's reported values of ``metric`` (``-name``: larger is better) by step."""
    order = MetricOrder.parse(metric)
    series = "validation" if order.metric.startswith("val_") else "train"
    sign = -1.0 if order.descending else 1.0
    found: dict[str, Curve] = {}
    for run in runs:
        points = run.history.get(series, [])
        values = [(int(p["step"]), p["metrics"].get(order.metric)) for p in points]
        found[run.job.id] = [
            (step, sign * float(v)) for step, v in values if v is not None and math.isfinite(v)
        ]
    return found


def best_until(curve: Curve, step: int) -> float | None:
    reached = [value for at, value in curve if at <= step]
    return min(reached) if reached else None


def losers(runs: Sequence[Run], rule: EarlyStopping) -> list[tuple[str, str]]:
    """The running trials the median rule stops, each with why."""
    by_id = curves(runs, rule.metric)
    stopped = []
    for run in runs:
        job = run.job
        if job.status is JobStatus.RUNNING and not job.cancel_requested and by_id[job.id]:
            why = _verdict(job.id, job.progress.total, by_id, rule)
            if why is not None:
                stopped.append((job.id, why))
    return stopped


def _verdict(job_id: str, total: int, by_id: dict[str, Curve], rule: EarlyStopping) -> str | None:
    """Why the rule stops this trial now, or None."""
    mine = by_id[job_id]
    step = mine[-1][0]
    if step < rule.min_fraction * total:
        return None
    others = [
        best
        for other, curve in by_id.items()
        if other != job_id
        and curve
        and curve[-1][0] >= step
        and (best := best_until(curve, step)) is not None
    ]
    own = best_until(mine, step)
    if own is None or len(others) < rule.min_trials:
        return None
    median = statistics.median(others)
    if own <= median:
        return None
    sign = -1.0 if rule.metric.startswith("-") else 1.0
    name = rule.metric.lstrip("-")
    return (
        f"median rule: best {name} {sign * own:.5g} by step {step}, "
        f"the median of {len(others)} other trials by then {sign * median:.5g}"
    )


class TrialStopper:
    def __init__(self, client: redis.Redis, jobs: JobStore, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._jobs = jobs
        self._keys = keys

    def watch(self, sweep_id: str) -> None:
        """The sweep's trials are checked from now on."""
        self._redis.sadd(self._keys.sweeps_stopping, sweep_id)

    def stopped(self, sweep_id: str) -> dict[str, str]:
        """Trial job id -> why the rule stopped it."""
        raw = cast(dict[bytes, bytes], self._redis.hgetall(self._keys.sweep_stopped(sweep_id)))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def check(self, batch: int) -> int:
        """Stop the losing trials of up to ``batch`` watched sweeps; how many were stopped.
        Nothing (0) when another reaper checked less than ``CHECK_SECONDS`` ago."""
        if not self._redis.set(self._keys.sweeps_stopping_turn, "1", nx=True, ex=CHECK_SECONDS):
            return 0
        members = cast(set[bytes], self._redis.smembers(self._keys.sweeps_stopping))
        stopped = 0
        for sweep_id in sorted(m.decode() for m in members)[:batch]:
            stopped += self._check_sweep(sweep_id)
        return stopped

    def _check_sweep(self, sweep_id: str) -> int:
        raw = cast(bytes | None, self._redis.get(self._keys.sweep(sweep_id)))
        record = SweepRecord.model_validate_json(raw) if raw else None
        if record is None or record.early_stopping is None:
            self._redis.srem(self._keys.sweeps_stopping, sweep_id)
            return 0
        ids = [t.job_id for t in record.trials]
        runs = [run for run in read_runs(self._redis, self._jobs, ids, self._keys) if run]
        live = (JobStatus.QUEUED, JobStatus.RUNNING)
        if not any(run.job.status in live for run in runs):
            self._redis.srem(self._keys.sweeps_stopping, sweep_id)
            return 0
        rule = EarlyStopping.model_validate(record.early_stopping)
        stopped = 0
        for job_id, why in losers(runs, rule):
            try:
                self._jobs.request_cancel(job_id)
            except Conflict:
                continue  # it finished meanwhile
            self._redis.hset(self._keys.sweep_stopped(sweep_id), job_id, why)
            log.info("sweep %s: stopped %s early (%s)", sweep_id, job_id, why)
            stopped += 1
        return stopped
