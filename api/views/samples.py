"""Every sample a training job stored, a page at a time.

A job's record lists at most ``max_listed_samples`` samples (``JobContext.add_output``);
this route lists them all from storage: each step once, from the newest attempt that
wrote it (a resumed attempt writes again the steps after its checkpoint).
"""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

from pydantic import BaseModel, Field
from spectree import Response

from ...shared.jobs import Job
from ...shared.storage import ObjectLayout
from ..paging import checked_limit
from ..present import download_url
from ..schemas import PageQuery, problems
from ..services import services
from ..spec import spec
from . import v1
from .jobs import owned_job


class SampleOut(BaseModel):
    name: str = Field(description="`samples/step-NNNNNNN.png` (or `.txt`), as in the job.")
    step: int
    content_type: str
    url: str
    size_bytes: int | None = Field(description="Known for the samples the job record lists.")


class SamplePage(BaseModel):
    data: list[SampleOut]
    next_cursor: str | None = Field(description="`cursor` of the next page; null at the end.")


@v1.get("/jobs/<job_id>/samples")
@spec.validate(query=PageQuery, resp=Response(HTTP_200=SamplePage, **problems(422)), tags=["jobs"])
def list_samples(job_id: str, query: PageQuery) -> SamplePage:
    """A training job's samples in step order, including those past the record's cap."""
    job = owned_job(job_id)
    limit = checked_limit(query.limit, services().settings.list_page_max)
    keys = stored_samples(job)
    names = sorted(n for n in keys if query.cursor is None or n > query.cursor)
    page = names[:limit]
    sizes = {o.key: o.size_bytes for o in job.outputs}
    return SamplePage(
        data=[_present(name, keys[name], sizes.get(keys[name])) for name in page],
        next_cursor=page[-1] if len(names) > limit else None,
    )


def stored_samples(job: Job) -> dict[str, str]:
    """Sample name (``samples/step-…``) → key, from the newest attempt that stored it."""
    job_prefix = ObjectLayout.job_prefix(job.owner, job.id)
    by_attempt: list[tuple[int, str, str]] = []
    for key in services().objects.list_keys(job_prefix):
        where = ObjectLayout.attempt_of(job_prefix, key)
        if where is None:
            continue
        name = key[len(ObjectLayout.attempt_prefix(job.owner, job.id, where[1])) :]
        if name.startswith("samples/"):
            by_attempt.append((where[0], name, key))
    return {name: key for _, name, key in sorted(by_attempt)}


def _present(name: str, key: str, size: int | None) -> SampleOut:
    stem = PurePosixPath(name).stem
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return SampleOut(
        name=name,
        step=int(stem.removeprefix("step-")),
        content_type=content_type,
        url=download_url(key),
        size_bytes=size,
    )
