"""Records → response bodies for a request: ``api.bodies`` with the links of this request
(the files route under the host the client called), and the outcome hook."""

from __future__ import annotations

import functools

from flask import request, url_for

from ..shared.errors import NotFound
from ..shared.jobs import Job, OutputRef
from ..shared.models import ModelRecord
from .bodies import Links, job_body, model_body, output_body
from .durability import outcome_shown
from .schemas import JobOut, ModelOut, OutputOut
from .services import services


def request_links() -> Links:
    """Built once per response: `url_for` per output cost ~25 µs each (cProfile), which a
    1,000-image job paid on every status poll."""
    return Links(services().objects, _files_route(request.host_url))


@functools.lru_cache(maxsize=64)
def _files_route(host_url: str) -> str:
    """The files route's external URL, made once per scheme, host and root (what
    ``url_for`` builds it from, all in ``host_url``): ~30 µs of every status poll. Bounded:
    a client chooses the Host it sends."""
    return url_for("v1.download_file", key="-", _external=True)[:-1]


def download_url(key: str) -> str:
    """A presigned URL from S3, or the authenticated API route for local storage."""
    return request_links().download_url(key)


def present_output(output: OutputRef, links: Links | None = None) -> OutputOut:
    return output_body(output, links or request_links())


def present_job(job: Job, links: Links | None = None) -> JobOut:
    if job.status.is_terminal():
        outcome_shown()
    return job_body(job, links or request_links())


def present_polled_job(job_id: str, owner: str, raw: dict[bytes, bytes]) -> JobOut:
    """``GET /v1/jobs/{id}``: the body of the job stored as ``raw`` (its hash, empty if
    there is none) if ``owner``'s, through the process's kept bodies (``JobBodies``)."""
    shown = services().job_bodies.show(job_id, raw, request_links()) if raw else None
    if shown is None or shown.owner != owner:
        raise NotFound(f"No job {job_id!r}.")
    if shown.terminal:
        outcome_shown()
    return shown.body


def present_model(model: ModelRecord, links: Links | None = None) -> ModelOut:
    return present_models([model], links)[0]


def present_models(models: list[ModelRecord], links: Links | None = None) -> list[ModelOut]:
    """Bodies of ``models``, with their versions read in one pipeline."""
    if models:
        outcome_shown()  # a model is a training job's outcome
    versions = services().models.versions_of(models)
    links = links or request_links()
    return [model_body(m, links, v) for m, v in zip(models, versions, strict=True)]
