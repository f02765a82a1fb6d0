"""What an owner calls a job: its ``name``, ``tags`` and ``notes``, their bounds, and the
per-owner tag index that lets ``GET /v1/jobs?tag=`` page one tag's jobs without reading the
others.

They are set at submit and changed by ``PATCH /v1/jobs/{id}`` in any status, finished jobs
included: a label is the owner's, not the run's, so no fencing token is involved. The change
goes through ``JobStore.relabel`` (a WATCH/MULTI on the job's hash like every transition):
the record and the tag index move together or not at all.

Index: ``{p}:owner:{owner}:tag:{tag}``, a sorted set of job ids all scored 0 (ids sort by
creation time, so it pages newest first with ZREVRANGEBYLEX exactly as the owner's jobs
index does, and the same cursor works on both). A tag's set is deleted by Redis when its
last job leaves it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redis.client import Pipeline

from .job_records import Job
from .redis_keys import RedisKeys

MAX_NAME_CHARS = 200
MAX_TAGS = 20
MAX_TAG_CHARS = 64
MAX_NOTES_CHARS = 8192
"""The API's longest JSON string by default (``ATELIER_MAX_JSON_STRING_CHARS``): notes of
about 8 KiB of text, refused with the same 422 whichever check meets them first."""
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/=+-]{0,63}$"
"""A letter or digit, then letters, digits and ``_ . : / = + -``: safe in a URL query, a
Redis key, a shell and HTML without escaping surprises (``lr=3e-4``, ``team/vision``)."""


@dataclass(frozen=True)
class LabelChange:
    """A merge patch of a job's labels: a field left out (``None`` here, with its name not
    in ``fields``) stays as it is; a field given as null clears it; ``tags`` replaces the
    set."""

    fields: frozenset[str]
    name: str | None = None
    tags: list[str] | None = None
    notes: str | None = None

    def apply(self, job: Job, was: dict[str, list[str]]) -> None:
        """Change ``job``; ``was["tags"]``: its tags before (for ``index_tags``)."""
        was["tags"] = list(job.tags)
        if "name" in self.fields:
            job.name = self.name
        if "tags" in self.fields:
            job.tags = list(self.tags or [])
        if "notes" in self.fields:
            job.notes = self.notes


def index_tags(
    pipe: Pipeline, keys: RedisKeys, job: Job, before: Iterable[str] = ()
) -> None:
    """Queue in ``pipe`` (the MULTI that writes ``job``'s record) the tag index changes
    from the tags ``before`` to ``job.tags``."""
    old, new = set(before), set(job.tags)
    for tag in old - new:
        pipe.zrem(keys.owner_tag(job.owner, tag), job.id)
    for tag in new - old:
        pipe.zadd(keys.owner_tag(job.owner, tag), {job.id: 0})
