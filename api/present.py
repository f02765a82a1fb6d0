"""Records → response bodies for a request: ``api.bodies`` with the links of this request
(the files route under the host the client called), and the outcome hook."""

from __future__ import annotations

import functools

from flask import Response, g, url_for

from ..shared.errors import NotFound
from ..shared.job_records import decode
from ..shared.jobs import Job, OutputRef
from ..shared.models import ModelRecord
from .bodies import Links, job_body, model_body, output_body
from .durability import outcome_shown
from .job_cache import Shown
from .request_local import this_g, this_request
from .schemas import JobOut, ModelOut, OutputOut
from .services import services
from .spec import ValidatedJson


def request_links() -> Links:
    """Built once per response: `url_for` per output cost ~25 µs each (cProfile), which a
    1,000-image job paid on every status poll."""
    return Links(services().objects, files_route_here())


def files_route_here() -> str:
    """The files route's external URL for this request's scheme, host and root."""
    req = this_request()
    return _files_route(req.scheme, req.host, req.root_path)


@functools.lru_cache(maxsize=64)
def _files_route(scheme: str, host: str, root: str) -> str:
    """Made once per scheme, host and root (what ``url_for`` builds it from): ~30 µs of
    every status poll, and ``request.host_url`` another ~15. Bounded: a client chooses the
    Host it sends."""
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


def poll_needs_read(job_id: str) -> bool:
    """Before a status poll spends its budget: False when the job's kept body will answer
    (``api.job_cache``); else the read is marked begun, so that a wake-up coming while it
    is under way keeps its result out of the cache."""
    bodies = services().job_bodies
    shown = bodies.kept(job_id, files_route_here())
    g.atelier_poll = (job_id, shown, None if shown else bodies.reading(job_id))
    return shown is None


def present_polled_job(job_id: str, owner: str, raw: dict[bytes, bytes] | None) -> ValidatedJson:
    """``GET /v1/jobs/{id}``: the job's body if ``owner``'s, kept or made from ``raw``
    (its hash as read with the budget; None: not read yet)."""
    here = this_g()
    if here.get("atelier_poll", (None,))[0] != job_id:  # the budget's hook did not look
        poll_needs_read(job_id)
    _, shown, reading = here.pop("atelier_poll")
    if shown is None:
        svc = services()
        raw = svc.jobs.get_hash(job_id) if raw is None else raw
        shown = _shown(decode(raw)) if raw else None
        if shown is not None:
            svc.job_bodies.keep(job_id, reading, shown)
    if shown is None or shown.owner != owner:
        raise NotFound(f"No job {job_id!r}.")
    if shown.terminal:
        outcome_shown()
    return ValidatedJson(shown.body)


def forget_changed_job(response: Response) -> Response:
    """After-request hook: a write to a job through this process (a rename, a cancel, a
    deletion) drops its kept body before the answer leaves, not when the wake-up comes
    back: the client that made the change sees it on its next poll of this process."""
    req = this_request()
    job_id = (req.view_args or {}).get("job_id")
    if job_id and req.method not in ("GET", "HEAD", "OPTIONS"):
        services().job_bodies.changed(job_id)
    return response


def _shown(job: Job) -> Shown:
    links = request_links()
    body = job_body(job, links).model_dump_json().encode()
    return Shown(job.owner, job.status.is_terminal(), links.files_route, body)


def present_model(model: ModelRecord, links: Links | None = None) -> ModelOut:
    return present_models([model], links)[0]


def present_models(models: list[ModelRecord], links: Links | None = None) -> list[ModelOut]:
    """Bodies of ``models``, with their versions read in one pipeline."""
    if models:
        outcome_shown()  # a model is a training job's outcome
    versions = services().models.versions_of(models)
    links = links or request_links()
    return [model_body(m, links, v) for m, v in zip(models, versions, strict=True)]
