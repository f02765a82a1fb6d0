"""Deleting what owners no longer want, and what is past its retention: a finished job
(its record, log and objects), a model (its record, weights and exports). Used by the
API's DELETE routes and by the reaper's retention sweep, so both remove exactly the same
things."""

from __future__ import annotations

import logging
import time

from .errors import Conflict
from .jobs import Job, JobStore
from .models import ModelRecord, ModelStore
from .storage import ObjectLayout, ObjectStore

log = logging.getLogger(__name__)
DAY_SECONDS = 86_400


def delete_job(jobs: JobStore, models: ModelStore, objects: ObjectStore, job: Job) -> int:
    """A finished job's record, log and objects (samples, checkpoints, outputs); the
    sample grids its model still shows are kept while the model exists. Returns the number
    of objects deleted. Conflict for a job that has not finished."""
    if not job.status.is_terminal():
        raise Conflict(
            f"Job {job.id} is {job.status.value}; cancel it first, or wait for it to finish.",
            status_now=job.status.value,
        )
    model = models.get(job.model_id) if job.model_id else None
    kept = {ref.key for ref in model.samples} if model is not None else set()
    doomed = [
        key
        for key in objects.list_keys(ObjectLayout.job_prefix(job.owner, job.id))
        if key not in kept
    ]
    for key in doomed:
        objects.delete(key)
    jobs.delete(job)
    return len(doomed)


def delete_model(
    jobs: JobStore, models: ModelStore, objects: ObjectStore, model: ModelRecord
) -> None:
    """A model's record, weights and exports, and its sample grids once its training job
    is gone; Conflict (409, naming them) while unfinished jobs need it
    (``shared.model_users``). (An export a worker stores after this finds the model gone
    and deletes it: ``workers.export.job``.)"""
    jobs.model_users.delete_unused(models, model)
    objects.delete(model.weights_key)
    for key in objects.list_keys(ObjectLayout.model_prefix(model.owner, model.id)):
        objects.delete(key)
    if jobs.get(model.source_job_id) is None:
        for ref in model.samples:
            objects.delete(ref.key)


def sweep_retention(
    jobs: JobStore,
    models: ModelStore,
    objects: ObjectStore,
    retention_days: float,
    batch: int,
) -> int:
    """Delete up to ``batch`` jobs that finished more than ``retention_days`` ago (0 keeps
    everything); the number deleted. Their models stay: a model is deleted on its own."""
    if retention_days <= 0:
        return 0
    before = time.time() - retention_days * DAY_SECONDS
    deleted = 0
    for job_id in jobs.claim_finished_before(before, batch):
        job = jobs.get(job_id)
        if job is None:  # deleted by its owner meanwhile
            jobs.forget_finished(job_id)
            continue
        try:
            delete_job(jobs, models, objects, job)
            deleted += 1
        except Exception:
            log.warning("retention: could not delete %s", job.id, exc_info=True)
    return deleted
