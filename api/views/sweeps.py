"""Sweeps: submit a base job over a space of params, read one ranked, list, cancel
(``shared.sweeps``; the submission: ``api.sweep_submission``)."""

from __future__ import annotations

import contextlib
import time

from flask import url_for
from spectree import Response

from ...shared.errors import Conflict, NotFound
from ...shared.idempotency import fingerprint
from ...shared.jobs import new_id
from ...shared.sweep_stopping import EarlyStopping, TrialStopper
from ...shared.sweeps import (
    SweepRecord,
    SweepStore,
    TrialView,
    active,
    ranked,
    status_counts,
    trial_views,
)
from ..auth import current_owner
from ..bodies import progress_body
from ..paging import checked_limit
from ..schemas import SubmitHeaders, problems, timestamp
from ..services import Services, services
from ..spec import spec
from ..sweep_schemas import (
    SweepCreate,
    SweepList,
    SweepListQuery,
    SweepOut,
    SweepQuery,
    SweepSummary,
    SweepTrialOut,
)
from ..sweep_submission import admit, make_sweep, plan
from . import v1

IDEMPOTENCY_PREFIX = "sweep:"
"""A sweep's Idempotency-Key lives beside the jobs' keys of its owner, apart from them."""


def owned_sweep(sweep_id: str) -> SweepRecord:
    """The caller's sweep, or 404: another owner's is indistinguishable from none."""
    record = SweepStore(services().redis).get(sweep_id, current_owner())
    if record is None:
        raise NotFound(f"No sweep {sweep_id!r}.")
    return record


@v1.post("/sweeps")
@spec.validate(
    json=SweepCreate,
    headers=SubmitHeaders,
    resp=Response(HTTP_202=SweepOut, **problems(403, 409, 422, 503)),
    tags=["sweeps"],
)
def create_sweep(json: SweepCreate, headers: SubmitHeaders) -> tuple[SweepOut, int, dict[str, str]]:
    """Submit a sweep: every trial of the space as a job of the base, under one sweep id.

    All or nothing: each trial is validated as ``POST /v1/jobs`` validates a job and
    admitted under the quotas; one refused refuses the sweep (naming the trial and the
    field), and nothing is queued. Each trial spends one request of the ``submits`` rate
    budget; a budget short of them all is a 429 spending nothing. At most
    ``ATELIER_MAX_SWEEP_TRIALS`` trials."""
    svc = services()
    owner = current_owner()
    planned = plan(json, owner, svc)
    sweep_id = new_id("sweep")
    key = headers.idempotency_key
    extra: dict[str, str] = {}
    if key is not None:
        digest = fingerprint(json.model_dump(mode="json"))
        earlier = svc.idempotency.reserve(owner, IDEMPOTENCY_PREFIX + key, digest, sweep_id)
        if earlier is not None:
            record = _await_sweep(svc, earlier.job_id, owner)
            extra = {"Idempotent-Replayed": "true"}
    if not extra:
        try:
            admit(planned, owner, svc)
            record = make_sweep(json, owner, svc, planned, sweep_id)
        except Exception:
            if key is not None:
                svc.idempotency.release(owner, IDEMPOTENCY_PREFIX + key)
            raise
    headers_out = {"Location": url_for("v1.get_sweep", sweep_id=record.id), **extra}
    return present_sweep(svc, record, None), 202, headers_out


def _await_sweep(svc: Services, sweep_id: str, owner: str) -> SweepRecord:
    """The sweep an identical earlier request made (it may be a moment from existing)."""
    store = SweepStore(svc.redis)
    for _ in range(40):
        record = store.get(sweep_id, owner)
        if record is not None:
            return record
        time.sleep(0.05)
    raise Conflict(
        f"Sweep {sweep_id}, made for this Idempotency-Key, does not exist (its submit failed "
        "or is still under way); send the request with a new Idempotency-Key."
    )


@v1.get("/sweeps/<sweep_id>")
@spec.validate(query=SweepQuery, resp=Response(HTTP_200=SweepOut, **problems(422)), tags=["sweeps"])
def get_sweep(sweep_id: str, query: SweepQuery) -> SweepOut:
    """A sweep: its base, space and trials (each one's values, status and final metrics),
    ranked by ``metric`` (``val_loss`` smallest first, ``-val_loss`` largest; trials
    without it last)."""
    return present_sweep(services(), owned_sweep(sweep_id), query.metric)


@v1.get("/sweeps")
@spec.validate(
    query=SweepListQuery, resp=Response(HTTP_200=SweepList, **problems(422)), tags=["sweeps"]
)
def list_sweeps(query: SweepListQuery) -> SweepList:
    """The caller's sweeps, newest first, each with its trials counted by status."""
    svc = services()
    limit = checked_limit(query.limit, svc.settings.list_page_max)
    records, cursor = SweepStore(svc.redis).page(current_owner(), limit, query.cursor)
    data = []
    for record in records:
        counts = status_counts(trial_views(svc.jobs, record))
        data.append(
            SweepSummary(
                id=record.id,
                name=record.name,
                created_at=timestamp(record.created_at),
                trial_count=len(record.trials),
                status_counts=counts,
            )
        )
    return SweepList(data=data, next_cursor=cursor)


@v1.post("/sweeps/<sweep_id>/cancel")
@spec.validate(resp=Response(HTTP_202=SweepOut), tags=["sweeps"])
def cancel_sweep(sweep_id: str) -> tuple[SweepOut, int]:
    """Cancel every trial still queued or running (a queued one never starts, a running one
    stops at its next step); finished trials stay as they are."""
    svc = services()
    record = owned_sweep(sweep_id)
    for job_id in active(trial_views(svc.jobs, record)):
        with contextlib.suppress(Conflict):  # it finished meanwhile
            svc.jobs.request_cancel(job_id)
    return present_sweep(svc, record, None), 202


def present_sweep(svc: Services, record: SweepRecord, metric: str | None) -> SweepOut:
    views = trial_views(svc.jobs, record)
    stopped = TrialStopper(svc.redis, svc.jobs).stopped(record.id) if record.early_stopping else {}
    rule = record.early_stopping
    return SweepOut(
        id=record.id,
        name=record.name,
        created_at=timestamp(record.created_at),
        base=record.base,
        space=record.space,
        trial_count=len(record.trials),
        status_counts=status_counts(views),
        early_stopping=EarlyStopping.model_validate(rule) if rule else None,
        metric=metric,
        trials=[trial_out(view, stopped) for view in ranked(views, metric)],
    )


def trial_out(view: TrialView, stopped: dict[str, str]) -> SweepTrialOut:
    job = view.job
    return SweepTrialOut(
        index=view.index,
        job_id=view.trial.job_id,
        values=view.trial.values,
        params=job.params if job else None,
        status=job.status if job else None,
        metrics=job.metrics if job else {},
        progress_metrics=job.progress.metrics if job else {},
        progress=progress_body(job.progress) if job else None,
        stopped_early=stopped.get(view.trial.job_id),
    )
