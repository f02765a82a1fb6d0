"""A sweep's submission, all or nothing: every trial validated as ``POST /v1/jobs`` would
validate it, then every trial admitted under the owner's quotas and its submit spent from
the owner's rate budget (one per trial, as one job each would), then the records made and
the messages sent. Any trial refused refuses the sweep, naming the trial and the field, and
nothing is queued or held; a failure after that (Redis or the broker away) deletes what
was made, as a single submit does."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from ..shared.errors import (
    ProblemError,
    QuotaExceeded,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from ..shared.job_labels import MAX_NAME_CHARS
from ..shared.jobs import Job, new_id
from ..shared.limits import limits_for
from ..shared.queue import enqueue
from ..shared.reservations import Reservations
from ..shared.sweep_space import Overrides, grid_count, grid_trials, random_trials, with_overrides
from ..shared.sweep_stopping import TrialStopper
from ..shared.sweeps import SweepRecord, SweepStore, Trial
from .metrics import JOBS_SUBMITTED
from .rate_limits import spend_more_submits, submits_burst
from .schemas import JobCreate
from .services import Services
from .submission import ValidSubmit, create_record, validated_params
from .sweep_schemas import SweepCreate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedTrial:
    index: int
    values: Overrides
    body: JobCreate
    valid: ValidSubmit
    job_id: str


def plan(body: SweepCreate, owner: str, svc: Services) -> list[PlannedTrial]:
    """Every trial, valid; or the 422 of the space's size, or of the first trial refused."""
    limit = svc.settings.max_sweep_trials
    bound = f"at most {limit} (ATELIER_MAX_SWEEP_TRIALS)"
    burst = submits_burst()
    if burst is not None and burst < limit:  # each trial spends a submit: more never fit
        limit = burst
        bound = f"at most {limit}, your submits rate limit's burst (a trial spends a submit)"
    count = grid_count(body.grid) if body.grid is not None else _random_count(body)
    if count > limit:
        field = "grid" if body.grid is not None else "random.count"
        message = f"this sweep makes {count} trials; {bound}"
        errors = [{"field": field, "message": message}]
        raise ValidationFailed(f"{field}: {message}.", errors=errors)
    values = grid_trials(body.grid) if body.grid is not None else _random_values(body)
    planned = []
    for index, trial_values in enumerate(values):
        trial = _trial_body(body, index, trial_values)
        try:
            valid = validated_params(trial, owner, svc)
        except ProblemError as exc:
            raise for_trial(exc, index, trial_values) from exc
        planned.append(PlannedTrial(index, trial_values, trial, valid, new_id("job")))
    return planned


def _random_count(body: SweepCreate) -> int:
    assert body.random is not None
    return body.random.count


def _random_values(body: SweepCreate) -> list[Overrides]:
    assert body.random is not None
    return random_trials(body.random)


def _trial_body(body: SweepCreate, index: int, values: Overrides) -> JobCreate:
    try:
        params = with_overrides(body.base.params, values)
    except KeyError as exc:
        key = str(exc.args[0])
        message = f"{key!r} runs through a param that is not an object in base.params"
        raise ValidationFailed(
            f"Trial {index}: {message}.",
            errors=[{"field": f"trials[{index}].params.{key}", "message": message}],
            trial=index,
        ) from exc
    name = body.base.name
    if name is None and body.name is not None:  # "lr study #3" in the job list
        suffix = f" #{index}"
        name = body.name[: MAX_NAME_CHARS - len(suffix)] + suffix
    return body.base.model_copy(update={"params": params, "name": name})


def for_trial(exc: ProblemError, index: int, values: Overrides) -> ProblemError:
    """The same problem, its detail and fields naming the trial (``trials[3].params.lr``)."""
    shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
    extensions: dict[str, Any] = {**exc.extensions, "trial": index, "trial_values": values}
    if isinstance(extensions.get("errors"), list):
        extensions["errors"] = [
            {**e, "field": f"trials[{index}].{e.get('field', '')}".rstrip(".")}
            for e in extensions["errors"]
        ]
    return type(exc)(f"Trial {index} ({shown}): {exc.detail}", **extensions)


def admit(planned: list[PlannedTrial], owner: str, svc: Services) -> None:
    """Every trial's place among the owner's queued jobs and its output reserved, then one
    submit per trial spent, all at once or none: a trial refused by a quota (403
    quota-exceeded, naming the first that did not fit) or a budget short of the trials (429
    rate-limited, with Retry-After) leaves nothing held or spent."""
    limits = limits_for(svc.settings, owner)
    jobs = [(t.job_id, t.valid.output_bytes) for t in planned]
    try:
        svc.quotas.admit_jobs(owner, jobs, limits)
    except QuotaExceeded as exc:
        trial = planned[exc.item]
        raise for_trial(exc, trial.index, trial.values) from exc
    try:  # the request spent one submit already (the hook): the rest of the trials now
        spend_more_submits(len(planned) - 1, f"a sweep of {len(planned)} trials")
    except RateLimited:
        release([t.job_id for t in planned], owner, svc)
        raise


def release(job_ids: list[str], owner: str, svc: Services) -> None:
    pipe = svc.redis.pipeline(transaction=True)
    for job_id in job_ids:
        svc.quotas.job_created(owner, job_id, pipe)
    Reservations(svc.redis).release(pipe, owner, job_ids)
    pipe.execute()


def make_sweep(
    body: SweepCreate, owner: str, svc: Services, planned: list[PlannedTrial], sweep_id: str
) -> SweepRecord:
    """The admitted trials made into jobs under one sweep and their messages sent; on a
    failure, whatever was made is deleted (503 if the queue was away)."""
    record = SweepRecord(
        id=sweep_id,
        owner=owner,
        name=body.name,
        created_at=round(time.time(), 3),
        base=body.base.model_dump(mode="json", exclude_unset=True),
        space=body.space(),
        trials=[Trial(job_id=t.job_id, values=t.values) for t in planned],
        early_stopping=body.early_stopping.model_dump() if body.early_stopping else None,
    )
    made: list[Job] = []
    store = SweepStore(svc.redis)
    try:
        for trial in planned:
            made.append(
                create_record(
                    svc, owner, trial.body, trial.valid.params, trial.job_id, sweep_id=sweep_id
                )
            )
        store.save(record)
        if body.early_stopping is not None:
            TrialStopper(svc.redis, svc.jobs).watch(sweep_id)
        for job in made:
            enqueue(svc.celery, svc.settings, job.id, job.type)
    except ProblemError:  # a trial's model deleted meanwhile (api.submission): its 422
        _undo(svc, store, record, made, owner)
        raise
    except Exception as exc:
        log.exception("sweep %s: its trials could not all be queued", sweep_id)
        _undo(svc, store, record, made, owner)
        raise ServiceUnavailable("The queue is unavailable; the sweep was not accepted.") from exc
    for job in made:
        JOBS_SUBMITTED.labels(job.type.value, job.kind).inc()
    log.info("accepted sweep %s of %d trials", sweep_id, len(made))
    return record


def _undo(
    svc: Services, store: SweepStore, record: SweepRecord, made: list[Job], owner: str
) -> None:
    try:
        for job in made:
            svc.jobs.delete(job)
        release([t.job_id for t in record.trials], owner, svc)
        store.forget(record)
    except Exception:  # Redis away too: the reservations' sweep frees what is left
        log.exception("sweep %s: undoing its trials failed", record.id)
