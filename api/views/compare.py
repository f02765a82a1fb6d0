"""Runs side by side: ``GET /v1/jobs/compare?ids=a,b`` (``shared.job_compare``)."""

from __future__ import annotations

from typing import Any

from flask import Response as FlaskResponse
from flask import request
from pydantic import BaseModel, Field, field_validator
from spectree import Response
from werkzeug.exceptions import MethodNotAllowed

from ...shared.errors import NotFound
from ...shared.job_compare import (
    IDS_PATTERN,
    MAX_RUNS,
    MIN_RUNS,
    Run,
    differing_params,
    latest_samples,
    owned_runs,
    parse_ids,
)
from ...shared.jobs import JobStatus, JobType
from ..auth import current_owner
from ..bodies import Links
from ..durability import outcome_shown
from ..event_schemas import MetricPoint
from ..present import present_output, request_links
from ..schemas import OutputOut, problems
from ..services import services
from ..spec import spec
from . import v1


class CompareQuery(BaseModel):
    ids: str = Field(
        pattern=IDS_PATTERN,
        max_length=MAX_RUNS * 27,
        description=f"{MIN_RUNS} to {MAX_RUNS} of the caller's job ids, comma-separated, "
        "each once.",
        examples=["job_0006289a1b2c3d4e5f6a7b,job_0006289a1b2c3d9e8f7a6b"],
    )

    @field_validator("ids", mode="before")
    @classmethod
    def _named_problem(cls, value: Any) -> Any:
        """Say which rule ``ids`` breaks (the pattern's own message would not)."""
        if isinstance(value, str):
            parse_ids(value)
        return value

    def job_ids(self) -> list[str]:
        return parse_ids(self.ids)


class ComparedRun(BaseModel):
    id: str
    name: str | None
    tags: list[str]
    type: JobType
    kind: str
    status: JobStatus
    params: dict[str, Any] = Field(description="As the job runs with them, defaults filled in.")
    metrics: dict[str, float] = Field(
        description="Final metrics (a finished training job's last losses, `val_loss`...)."
    )
    progress_metrics: dict[str, float] = Field(
        description="The latest progress report's metrics (a running job has no final ones)."
    )
    step: int
    total: int
    series: dict[str, list[MetricPoint]] = Field(
        description="The curves, as `GET /v1/jobs/{id}/metrics` answers them: `train` and "
        "`validation`, oldest first, at most 512 points each."
    )
    samples: list[OutputOut] = Field(description="The newest samples (up to 4), oldest first.")


class JobComparison(BaseModel):
    data: list[ComparedRun] = Field(description="The runs, in the order `ids` named them.")
    differing_params: list[str] = Field(
        description="Parameters whose values are not the same in every run (nested ones as "
        "dotted keys: `optimizer.lr`; one some runs lack differs), sorted."
    )


@v1.get("/jobs/compare", provide_automatic_options=False)
@spec.validate(
    query=CompareQuery, resp=Response(HTTP_200=JobComparison, **problems(404, 422)), tags=["jobs"]
)
def compare_jobs(query: CompareQuery) -> JobComparison:
    """Compare runs side by side

    2 to 8 of the caller's jobs: each one's parameters, final metrics, curves (as
    ``GET /v1/jobs/{id}/metrics``) and newest samples, and which parameters differ; read
    from Redis in one round trip."""
    return comparison(query.job_ids())


ALLOWED = ("GET", "HEAD", "OPTIONS")


@v1.route(
    "/jobs/compare",
    methods=["OPTIONS", "POST", "PUT", "PATCH", "DELETE"],
    provide_automatic_options=False,
)
def compare_other_methods() -> FlaskResponse:
    """Only GET compares. Without this rule ``/jobs/<job_id>`` would take the other methods
    as a job named ``compare`` (DELETE a 404, not a 405), and an OPTIONS would advertise
    that rule's methods."""
    if request.method == "OPTIONS":
        return FlaskResponse(status=200, headers={"Allow": ", ".join(ALLOWED)})
    raise MethodNotAllowed(valid_methods=ALLOWED)


def comparison(job_ids: list[str]) -> JobComparison:
    """The runs of ``job_ids``, all the caller's, or a 404 naming the first that is not."""
    svc = services()
    try:
        runs = owned_runs(svc.redis, svc.jobs, job_ids, current_owner())
    except LookupError as missing:
        raise NotFound(f"No job {missing.args[0]!r}.") from None
    links = request_links()  # once for the page
    return JobComparison(
        data=[compared_run(run, links) for run in runs],
        differing_params=differing_params([run.job.params for run in runs]),
    )


def compared_run(run: Run, links: Links) -> ComparedRun:
    job = run.job
    if job.status.is_terminal():
        outcome_shown()  # final metrics and samples are its outcome (``api.durability``)
    series = {name: [MetricPoint(**p) for p in points] for name, points in run.history.items()}
    return ComparedRun(
        id=job.id,
        name=job.name,
        tags=job.tags,
        type=job.type,
        kind=job.kind,
        status=job.status,
        params=job.params,
        metrics=job.metrics,
        progress_metrics=job.progress.metrics,
        step=job.progress.step,
        total=job.progress.total,
        series=series,
        samples=[present_output(o, links) for o in latest_samples(job)],
    )
