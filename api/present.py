"""Records → response bodies. Records hold object keys; responses hold URLs."""

from __future__ import annotations

from urllib.parse import quote

from flask import url_for

from atelier.api.durability import outcome_shown
from atelier.api.schemas import (
    ErrorOut,
    JobOut,
    ModelOut,
    OutputOut,
    ProgressOut,
    optional_timestamp,
    timestamp,
)
from atelier.api.services import services
from atelier.shared.job_records import WebhookEvent
from atelier.shared.jobs import Job, OutputRef
from atelier.shared.models import ModelRecord


def download_url(key: str, files_route: str | None = None) -> str:
    """A presigned URL from S3, or the authenticated API route for local storage.

    ``files_route``: the route's external URL with an empty key, built once per response;
    `url_for` per output cost ~25 µs each (cProfile), which a 1,000-image job paid on
    every status poll."""
    presigned = services().objects.presigned_url(key)
    if presigned:
        return presigned
    if files_route is None:
        files_route = _files_route()
    return files_route + quote(key, safe=_PATH_SAFE)


_PATH_SAFE = "/!$&'()*+,:;=@"  # what werkzeug leaves unquoted in a path, as url_for did


def _files_route() -> str:
    return url_for("v1.download_file", key="-", _external=True)[:-1]


def present_output(output: OutputRef, files_route: str | None = None) -> OutputOut:
    return OutputOut(
        name=output.name,
        content_type=output.content_type,
        size_bytes=output.size_bytes,
        text=output.text,
        url=download_url(output.key, files_route),
    )


def present_job(job: Job) -> JobOut:
    if job.status.is_terminal():
        outcome_shown()
    progress = job.progress
    files_route = _files_route() if job.outputs else None
    return JobOut(
        id=job.id,
        type=job.type,
        kind=job.kind,
        params=job.params,
        status=job.status,
        progress=ProgressOut(
            step=progress.step,
            total=progress.total,
            fraction=progress.fraction,
            eta_seconds=progress.eta_seconds,
            metrics=progress.metrics,
            updated_at=optional_timestamp(progress.updated_at or None),
        ),
        created_at=timestamp(job.created_at),
        started_at=optional_timestamp(job.started_at),
        finished_at=optional_timestamp(job.finished_at),
        failures=job.failures,
        start_before=optional_timestamp(job.start_before),
        max_run_seconds=job.max_run_seconds,
        priority=job.priority,
        checkpoint_step=job.checkpoint.step if job.checkpoint else None,
        attempt=job.attempt,
        worker=job.worker,
        error=ErrorOut(type=job.error.type, message=job.error.message) if job.error else None,
        outputs=[present_output(o, files_route) for o in job.outputs],
        model_id=job.model_id,
        metrics=job.metrics,
        cancel_requested=job.cancel_requested,
        webhook=job.webhook,
        webhook_events_filter=(job.webhook_events_filter or list(WebhookEvent))
        if job.webhook
        else None,
    )


def present_model(model: ModelRecord) -> ModelOut:
    outcome_shown()  # a model is a training job's outcome
    grid = model.samples[-1] if model.samples else None
    return ModelOut(
        id=model.id,
        kind=model.kind,
        config=model.config,
        dataset=model.dataset,
        steps=model.steps,
        metrics=model.metrics,
        sample_grid_url=download_url(grid.key) if grid else None,
        source_job_id=model.source_job_id,
        created_at=timestamp(model.created_at),
    )
