"""Records → response bodies, without Flask: what a job, an output or a model looks like to
a client, given where its files are downloaded from (``Links``). The API's views reach it
through ``api.present`` (links from the request); the webhook router renders the same
bodies from settings, without an app."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from ..shared.job_records import Progress, WebhookEvent
from ..shared.jobs import Job, OutputRef
from ..shared.models import ModelRecord
from ..shared.storage import ObjectStore
from .event_schemas import ProgressOut
from .model_schemas import ModelAncestorOut
from .schemas import (
    ErrorOut,
    JobOut,
    ModelOut,
    OutputOut,
    optional_timestamp,
    timestamp,
)

PHASE_FIELDS = {"phase", "label", "items_done", "items_total", "unit"}
"""The preparation's fields of a job's progress, shown as stored."""
_PATH_SAFE = "/!$&'()*+,:;=@"  # what werkzeug leaves unquoted in a path, as url_for did


@dataclass(frozen=True)
class Links:
    """Where a client downloads an object: a presigned URL from S3, or the API's
    authenticated files route (``files_route``: its external URL with an empty key)."""

    objects: ObjectStore
    files_route: str

    def download_url(self, key: str) -> str:
        presigned = self.objects.presigned_url(key)
        if presigned:
            return presigned
        return self.files_route + quote(key, safe=_PATH_SAFE)


def files_route_of(api_url: str) -> str:
    """The files route under an API's external URL (``/v1/files/``, as the view declares)."""
    return api_url.rstrip("/") + "/v1/files/"


def output_body(output: OutputRef, links: Links) -> OutputOut:
    return OutputOut(
        name=output.name,
        content_type=output.content_type,
        size_bytes=output.size_bytes,
        text=output.text,
        url=links.download_url(output.key),
    )


def progress_body(progress: Progress) -> ProgressOut:
    """A job's progress as served (in the job, in a sweep's trial)."""
    return ProgressOut(
        step=progress.step,
        total=progress.total,
        fraction=progress.fraction,
        eta_seconds=progress.eta_seconds,
        metrics=progress.metrics,
        updated_at=optional_timestamp(progress.updated_at or None),
        **progress.model_dump(include=PHASE_FIELDS),
    )


def job_body(job: Job, links: Links) -> JobOut:
    return JobOut(
        id=job.id,
        type=job.type,
        kind=job.kind,
        name=job.name,
        tags=job.tags,
        notes=job.notes,
        sweep_id=job.sweep_id,
        params=job.params,
        status=job.status,
        progress=progress_body(job.progress),
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
        outputs=[output_body(o, links) for o in job.outputs],
        model_id=job.model_id,
        metrics=job.metrics,
        cancel_requested=job.cancel_requested,
        webhook=job.webhook,
        webhook_events_filter=(job.webhook_events_filter or list(WebhookEvent))
        if job.webhook
        else None,
    )


def model_body(model: ModelRecord, links: Links, version: int | None = None) -> ModelOut:
    grid = model.samples[-1] if model.samples else None
    lineage = [ModelAncestorOut(**a.model_dump()) for a in model.lineage]
    return ModelOut(
        id=model.id,
        name=model.name,
        version=version,
        kind=model.kind,
        config=model.config,
        params=model.params,
        dataset=model.dataset,
        steps=model.steps,
        metrics=model.metrics,
        sample_grid_url=links.download_url(grid.key) if grid else None,
        source_job_id=model.source_job_id,
        parent=lineage[0] if lineage else None,
        lineage=lineage,
        created_at=timestamp(model.created_at),
    )
