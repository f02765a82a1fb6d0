"""The dashboard's pages. Each renders what the JSON API would answer (through the same
presenters) into a template; the page's script then follows the event stream."""

from __future__ import annotations

from flask import abort, g, redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.wrappers import Response as BaseResponse

from ...shared.audit import AuditLog
from ...shared.errors import Conflict, NotFound, ValidationFailed
from ...shared.job_search import find_jobs
from ...shared.jobs import Job, JobStatus, JobType
from ...shared.kinds import KINDS
from ..auth import current_owner
from ..present import present_job, present_model, present_models, request_links
from ..schemas import JobListQuery
from ..services import services
from ..views.datasets import present_dataset
from ..views.jobs import owned_job
from .blueprint import dashboard
from .system import system_snapshot

PAGE_JOBS = 50
"""Jobs the table lists; newer ones arrive live through the event stream."""
SAMPLE_PREFIX = "samples/"


FILTERS = ("status", "type", "kind", "tag", "name_prefix", "sort")
"""The list's filters, as ``GET /v1/jobs`` names them."""


@dashboard.get("/")
def jobs() -> str:
    """Every job of the caller, newest first (or by a final metric), filtered like
    ``GET /v1/jobs``; a filter that is not valid there finds nothing here."""
    filters = {name: request.args.get(name, "").strip() for name in FILTERS}
    svc = services()
    # The stream resumes after the newest event read before the table: nothing between
    # the two is missed (an event both in the table and the stream is applied twice, alike).
    after = svc.jobs.events.last_id_for_owner(current_owner())
    try:
        query = JobListQuery.model_validate({k: v for k, v in filters.items() if v})
        found, older = find_jobs(
            svc.jobs, current_owner(), query.job_filter(), limit=PAGE_JOBS,
            cursor=request.args.get("cursor") or None, sort=query.sort,
        )
    except (ValidationError, ValidationFailed):
        found, older = [], None
    links = request_links()  # once for the page
    return render_template(
        "jobs.html",
        last_event_id=after,
        jobs=[present_job(j, links) for j in found],
        filters=filters,
        filters_set={k: v for k, v in filters.items() if v},
        older=older,
        statuses=[s.value for s in JobStatus],
        types=[t.value for t in JobType],
        kinds=sorted(KINDS),
    )


@dashboard.get("/jobs/<job_id>")
def job(job_id: str) -> str:
    """One job: progress, loss curves, the sample strip, the outputs, the log tail."""
    after = services().jobs.events.last_id_for_job(job_id)  # first: see ``jobs``
    found = _owned(job_id)
    shown = present_job(found)
    return render_template(
        "job.html",
        job=shown,
        last_event_id=after,
        samples=[o for o in shown.outputs if o.name.startswith(SAMPLE_PREFIX)],
        outputs=[o for o in shown.outputs if not o.name.startswith(SAMPLE_PREFIX)],
        log_lines=services().logs.read(job_id)[-200:],
    )


@dashboard.post("/jobs/<job_id>/cancel")
def cancel(job_id: str) -> BaseResponse:
    """The cancel form (its CSRF token was checked by the blueprint's guard)."""
    if not g.dashboard_key.allows("submit"):
        abort(403, "Canceling needs a key with the 'submit' scope.")
    _owned(job_id)
    try:
        services().jobs.request_cancel(job_id)
    except Conflict:
        pass  # it finished meanwhile: its page shows how
    else:  # the same trail entry as POST /v1/jobs/{id}/cancel
        AuditLog(services().redis).append(
            g.owner, "job.cancel", actor=g.key_id, job_id=job_id, id=job_id
        )
    return redirect(url_for("dashboard.job", job_id=job_id))


def _owned(job_id: str) -> Job:
    try:
        return owned_job(job_id)
    except NotFound:
        abort(404)


@dashboard.get("/models")
def models() -> str:
    found, _ = services().models.list_for_owner(current_owner(), limit=PAGE_JOBS)
    links = request_links()
    return render_template("models.html", models=present_models(found, links))


@dashboard.get("/models/<model_id>")
def model(model_id: str) -> str:
    """A model's samples and a generate form; results arrive in the gallery below it."""
    found = services().models.resolve(model_id, current_owner())
    if found is None:
        abort(404)
    # The form is built in the page from the kind's schema (GET /v1/kinds), this model given.
    return render_template("model.html", model=present_model(found), model_ref=model_id)


@dashboard.get("/datasets")
def datasets() -> str:
    found = services().datasets.list_for_owner(current_owner())
    return render_template("datasets.html", datasets=[present_dataset(d) for d in found])


@dashboard.get("/system")
def system() -> str:
    """Queues and workers, as Flower shows them."""
    return render_template("system.html", system=system_snapshot(current_owner()))
