"""Jobs: submit, read, list, cancel."""

from __future__ import annotations

import logging
import time

from flask import url_for
from spectree import Response

from ...shared.errors import Conflict, NotFound, ServiceUnavailable
from ...shared.idempotency import IdempotencyRecord, fingerprint
from ...shared.job_labels import LabelChange
from ...shared.job_search import find_jobs
from ...shared.jobs import Job, new_id
from ...shared.limits import limits_for
from ...shared.logs import JOB_ID
from ...shared.queue import enqueue
from ..auth import current_owner
from ..metrics import JOBS_SUBMITTED
from ..paging import checked_limit
from ..prefer import requested_wait, wait_headers, wait_until_over
from ..present import present_job, present_polled_job, request_links
from ..rate_limits import prefetched_job_hash
from ..schemas import (
    JobCreate,
    JobList,
    JobListQuery,
    JobLogsOut,
    JobOut,
    JobUpdate,
    SubmitHeaders,
    problems,
)
from ..services import Services, services
from ..spec import ValidatedJson, spec
from ..submission import ValidSubmit, create_record, validated_params
from . import v1

log = logging.getLogger(__name__)


def owned_job(job_id: str) -> Job:
    """The caller's job, or 404 — another owner's job is indistinguishable from none."""
    job = services().jobs.get(job_id)
    if job is None or job.owner != current_owner():
        raise NotFound(f"No job {job_id!r}.")
    return job


@v1.post("/jobs")
@spec.validate(
    json=JobCreate,
    headers=SubmitHeaders,
    resp=Response(HTTP_201=JobOut, HTTP_202=JobOut, **problems(409, 422, 503)),
    tags=["jobs"],
)
def create_job(json: JobCreate, headers: SubmitHeaders) -> tuple[JobOut, int, dict[str, str]]:
    """Submit a job; answers at once (202) with its id while it waits in the queue. With
    ``Prefer: wait=N`` (RFC 7240), answers when the job is over (201) or after N seconds."""
    svc = services()
    owner = current_owner()
    valid = validated_params(json, owner, svc)
    wait = requested_wait()
    job_id = new_id("job")
    key = headers.idempotency_key
    extra: dict[str, str] = {}
    if key is not None:
        earlier = svc.idempotency.reserve(
            owner, key, fingerprint(json.model_dump(mode="json")), job_id
        )
        if earlier is not None:
            found = _await_created(earlier)
            if found is not None:
                job, extra = found, {"Idempotent-Replayed": "true"}
            else:  # its submit failed mid-way and could not release the key: make it now
                job_id = earlier.job_id
    if not extra:
        try:
            job = _create_and_enqueue(svc, owner, json, valid, job_id)
        except Exception:
            if key is not None:
                svc.idempotency.release(owner, key)
            raise
    if wait is not None:
        job = wait_until_over(job, wait)
    headers_out = {"Location": url_for("v1.get_job", job_id=job.id), **extra, **wait_headers(wait)}
    return present_job(job), 201 if job.status.is_terminal() else 202, headers_out


def _create_and_enqueue(
    svc: Services, owner: str, body: JobCreate, valid: ValidSubmit, job_id: str
) -> Job:
    JOB_ID.set(job_id)
    params = valid.params
    # 403 quota-exceeded (nothing created), or a place held among the queued jobs and the
    # job's estimated output reserved against the stored bytes until it ends.
    svc.quotas.admit_job(owner, job_id, limits_for(svc.settings, owner), valid.output_bytes)
    job = create_record(svc, owner, body, params, job_id)
    try:
        enqueue(svc.celery, svc.settings, job.id, body.type)
    except Exception as exc:
        svc.jobs.delete(job)
        log.exception("enqueue of %s failed", job.id)
        raise ServiceUnavailable("The queue is unavailable; the job was not accepted.") from exc
    JOBS_SUBMITTED.labels(job.type.value, job.kind).inc()
    log.info("accepted %s %s job", job.type.value, job.kind)
    return job


def _await_created(earlier: IdempotencyRecord) -> Job | None:
    """The job an identical earlier request created (it may be a few ms from existing).
    Still missing after 2 s: None if the reservation is recent (that submit failed before
    creating it, with Redis away, and could not release the key), else a 409: the job was
    deleted since (``DELETE /v1/jobs/{id}``)."""
    for _ in range(40):
        job = services().jobs.get(earlier.job_id)
        if job is not None:
            return job
        time.sleep(0.05)
    if earlier.adoptable() and not services().idempotency.was_deleted(earlier.job_id):
        log.warning("adopting %s: its submit failed before creating it", earlier.job_id)
        return None
    raise Conflict(
        f"Job {earlier.job_id}, created for this Idempotency-Key, no longer exists "
        "(deleted); send the request with a new Idempotency-Key."
    )


@v1.get("/jobs/<job_id>")
@spec.validate(resp=Response(HTTP_200=JobOut, **problems(503)), tags=["jobs"])
def get_job(job_id: str) -> tuple[JobOut | ValidatedJson, int, dict[str, str]]:
    """A job's status, progress, timestamps, error and outputs. With ``Prefer: wait=N``
    (RFC 7240): once the job is over, or after N seconds."""
    wait = requested_wait()
    if wait is None:
        # The common poll: a kept body (``api.job_cache``), or the hash the rate budget read.
        raw = prefetched_job_hash(job_id)
        return present_polled_job(job_id, current_owner(), raw), 200, wait_headers(wait)
    job = wait_until_over(owned_job(job_id), wait)
    return present_job(job), 200, wait_headers(wait)


@v1.get("/jobs")
@spec.validate(query=JobListQuery, resp=Response(HTTP_200=JobList, **problems(422)), tags=["jobs"])
def list_jobs(query: JobListQuery) -> JobList:
    """The caller's jobs, newest first (or by a final metric: ``sort``), filtered by status,
    type, kind, tag, name prefix and dataset (``shared.job_search`` says what each costs)."""
    svc = services()
    limit = checked_limit(query.limit, svc.settings.list_page_max)
    where = query.job_filter()
    jobs, cursor = find_jobs(
        svc.jobs, current_owner(), where, limit=limit, cursor=query.cursor, sort=query.sort
    )
    links = request_links()  # once for the page
    return JobList(data=[present_job(j, links) for j in jobs], next_cursor=cursor)


@v1.patch("/jobs/<job_id>")
@spec.validate(json=JobUpdate, resp=Response(HTTP_200=JobOut), tags=["jobs"])
def update_job(job_id: str, json: JobUpdate) -> JobOut:
    """Rename, retag or annotate a job, in any status (a JSON merge patch: a field left out
    stays, null clears it, ``tags`` replaces the set)."""
    owned_job(job_id)
    change = LabelChange(frozenset(json.model_fields_set), json.name, json.tags, json.notes)
    job = services().jobs.relabel(job_id, change)
    if job is None:
        raise NotFound(f"No job {job_id!r}.")
    return present_job(job)


@v1.post("/jobs/<job_id>/cancel")
@spec.validate(resp=Response(HTTP_202=JobOut, **problems(409)), tags=["jobs"])
def cancel_job(job_id: str) -> tuple[JobOut, int]:
    """Cancel: a queued job never starts; a running one stops at its next step (409 if done)."""
    owned_job(job_id)
    canceled = services().jobs.request_cancel(job_id)
    if canceled is None:
        raise NotFound(f"No job {job_id!r}.")
    return present_job(canceled), 202


@v1.get("/jobs/<job_id>/logs")
@spec.validate(resp=Response(HTTP_200=JobLogsOut), tags=["jobs"])
def job_logs(job_id: str) -> JobLogsOut:
    """The job's own log lines (attempts, resumes, checkpoints, losses, errors)."""
    owned_job(job_id)
    return JobLogsOut(job_id=job_id, lines=services().logs.read(job_id))
