"""Deleting finished jobs and models (``shared.lifecycle`` says what goes with them)."""

from __future__ import annotations

from spectree import Response

from ...shared.errors import NotFound
from ...shared.lifecycle import delete_job, delete_model
from ..auth import current_owner
from ..schemas import Problem
from ..services import services
from ..spec import spec
from . import v1
from .jobs import owned_job

PROBLEMS = {f"HTTP_{code}": Problem for code in (401, 404, 409)}


@v1.delete("/jobs/<job_id>")
@spec.validate(resp=Response(HTTP_204=None, **PROBLEMS), tags=["jobs"])
def delete_finished_job(job_id: str) -> tuple[str, int]:
    """Delete a finished job: its record, log and objects (409 while queued or running)."""
    svc = services()
    job = owned_job(job_id)
    delete_job(svc.jobs, svc.models, svc.objects, job)
    svc.idempotency.forget_job(job.id)
    for dataset in [job.params.get("dataset")]:
        if isinstance(dataset, str):
            svc.datasets.remove_user(dataset, job.id)
    return "", 204


@v1.delete("/models/<model_id>")
@spec.validate(resp=Response(HTTP_204=None, **PROBLEMS), tags=["models"])
def delete_trained_model(model_id: str) -> tuple[str, int]:
    """Delete a model: its record and weights; 409 while queued or running jobs need it
    (generation jobs on it, training jobs continuing it), naming them."""
    svc = services()
    model = svc.models.resolve(model_id, current_owner())
    if model is None:
        raise NotFound(f"No model {model_id!r}.")
    delete_model(svc.jobs, svc.models, svc.objects, model)
    return "", 204
