"""The job state machine and the one store that writes job status.

::

    queued ──claim──▶ running ──▶ succeeded
       │                 ├──────▶ failed
       └──cancel──┐      └─cancel▶ canceled   (cooperative: the job sees its flag)
                  ▼
               canceled

Every transition is a WATCH/MULTI on the job's hash: two workers racing to claim the
same job cannot both win, and a cancel racing a claim is seen by whichever loses.
Job records never expire; a finished job reads the same a month later.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, cast

import redis
from pydantic import BaseModel, Field

from shared.errors import Conflict
from shared.redis_keys import KEYS, RedisKeys


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset(TERMINAL_STATUSES),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}


class JobType(StrEnum):
    TRAIN = "train"
    GENERATE = "generate"


class Progress(BaseModel):
    step: int = 0
    total: int = 0
    fraction: float = 0.0
    eta_seconds: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    updated_at: float = 0.0


class OutputRef(BaseModel):
    """An object a job wrote. Records hold keys, never bytes; the API adds URLs."""

    name: str
    key: str
    content_type: str
    size_bytes: int


class JobErrorInfo(BaseModel):
    type: str
    message: str


class Job(BaseModel):
    id: str
    owner: str
    type: JobType
    kind: str
    params: dict[str, Any]
    status: JobStatus = JobStatus.QUEUED
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempt: int = 0
    worker: str | None = None
    error: JobErrorInfo | None = None
    outputs: list[OutputRef] = Field(default_factory=list)
    model_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    """Run measurements, e.g. ``predict_time`` seconds and ``model_cache_hit`` (1 or 0)."""
    # Held in their own hash fields so frequent writes never race a transition.
    progress: Progress = Field(default_factory=Progress)
    cancel_requested: bool = False


def new_id(prefix: str) -> str:
    """A time-ordered id: equal-width hex microseconds, then randomness.

    Lexicographic order is creation order, which is what lets the owner indexes page
    with ZREVRANGEBYLEX and a plain id as the cursor.
    """
    return f"{prefix}_{time.time_ns() // 1000:014x}{secrets.token_hex(4)}"


_RECORD_FIELDS = set(Job.model_fields) - {"progress", "cancel_requested"}


class JobStore:
    """The only writer of job records."""

    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys

    # --- reads ------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        raw = cast(dict[bytes, bytes], self._redis.hgetall(self._keys.job(job_id)))
        return _decode(raw) if raw else None

    def get_many(self, job_ids: Iterable[str]) -> list[Job]:
        pipe = self._redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self._keys.job(job_id))
        return [_decode(raw) for raw in pipe.execute() if raw]

    def list_for_owner(
        self,
        owner: str,
        *,
        limit: int,
        cursor: str | None = None,
        where: Callable[[Job], bool] = lambda job: True,
        scan_budget: int = 5000,
    ) -> tuple[list[Job], str | None]:
        """Newest first. Returns a page and the cursor for the next one (None at the end).

        Filters are applied while scanning the owner's index in id order; ``scan_budget``
        bounds the work of one call, and the cursor resumes where the scan stopped.
        """
        index = self._keys.owner_jobs(owner)
        upper = f"({cursor}" if cursor else "+"
        found: list[Job] = []
        scanned = 0
        batch = max(limit * 2, 50)
        while scanned < scan_budget:
            found_ids = cast(list[bytes], self._redis.zrevrangebylex(index, upper, "-", 0, batch))
            ids = [i.decode() for i in found_ids]
            if not ids:
                return found, None
            for job in self.get_many(ids):
                scanned += 1
                if where(job):
                    found.append(job)
                    if len(found) == limit:
                        return found, job.id
            upper = f"({ids[-1]}"
        return found, upper[1:]

    def cancel_requested(self, job_id: str) -> bool:
        return self._redis.hget(self._keys.job(job_id), "cancel") == b"1"

    # --- writes -----------------------------------------------------------------------------
    def create(self, owner: str, job_type: JobType, kind: str, params: dict[str, Any]) -> Job:
        job = Job(
            id=new_id("job"),
            owner=owner,
            type=job_type,
            kind=kind,
            params=params,
            created_at=time.time(),
        )
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._keys.job(job.id), mapping=cast(Any, _encode(job)))
        pipe.zadd(self._keys.owner_jobs(owner), {job.id: 0})
        pipe.execute()
        return job

    def delete(self, job: Job) -> None:
        """Undo a create whose enqueue failed, so a rejected submit leaves nothing behind."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._keys.job(job.id))
        pipe.zrem(self._keys.owner_jobs(job.owner), job.id)
        pipe.execute()

    def claim(self, job_id: str, worker: str) -> Job | None:
        """queued → running for exactly one caller; None if the job is not queued."""

        def start(job: Job) -> None:
            job.started_at = time.time()
            job.attempt += 1
            job.worker = worker

        return self._transition(job_id, JobStatus.RUNNING, start, quiet=True)

    def request_cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once; flag a running one to stop at its next step."""
        key = self._keys.job(job_id)
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    job = _decode(cast(dict[bytes, bytes], pipe.hgetall(key)))
                    if job.status.is_terminal():
                        raise Conflict(
                            f"Job {job_id} already {job.status.value}; only queued or running "
                            "jobs can be canceled.",
                            status_now=job.status.value,
                        )
                    pipe.multi()
                    if job.status is JobStatus.QUEUED:
                        job.status = JobStatus.CANCELED
                        job.finished_at = time.time()
                        pipe.hset(key, "record", _record_json(job))
                    pipe.hset(key, "cancel", "1")
                    pipe.execute()
                    job.cancel_requested = True
                    return job
                except redis.WatchError:
                    continue

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        outputs: list[OutputRef] | None = None,
        error: JobErrorInfo | None = None,
        model_id: str | None = None,
        metrics: dict[str, float] | None = None,
    ) -> Job | None:
        def complete(job: Job) -> None:
            job.finished_at = time.time()
            job.outputs = outputs or job.outputs
            job.error = error
            job.model_id = model_id or job.model_id
            job.metrics = {**job.metrics, **(metrics or {})}

        return self._transition(job_id, status, complete)

    def set_progress(self, job_id: str, progress: Progress) -> None:
        self._redis.hset(self._keys.job(job_id), "progress", progress.model_dump_json())

    def add_outputs(self, job_id: str, outputs: list[OutputRef]) -> None:
        """Append outputs (e.g. sample grids) to a running job without changing its status."""

        def append(job: Job) -> None:
            job.outputs = [*job.outputs, *outputs]

        self._transition(job_id, None, append)

    # --- the one transition primitive -------------------------------------------------------
    def _transition(
        self,
        job_id: str,
        to: JobStatus | None,
        mutate: Callable[[Job], None],
        *,
        quiet: bool = False,
    ) -> Job | None:
        """Apply ``mutate`` and move to ``to`` atomically; ``to=None`` keeps the status.

        An illegal transition returns None when ``quiet`` (a lost race is normal for
        claims) and raises Conflict otherwise.
        """
        key = self._keys.job(job_id)
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw = cast(dict[bytes, bytes], pipe.hgetall(key))
                    if not raw:
                        return None
                    job = _decode(raw)
                    if to is not None and to not in ALLOWED_TRANSITIONS[job.status]:
                        if quiet:
                            return None
                        raise Conflict(f"Job {job_id} cannot go from {job.status} to {to}.")
                    mutate(job)
                    if to is not None:
                        job.status = to
                    pipe.multi()
                    pipe.hset(key, "record", _record_json(job))
                    pipe.execute()
                    return job
                except redis.WatchError:
                    continue


def _record_json(job: Job) -> str:
    return job.model_dump_json(include=_RECORD_FIELDS)


def _encode(job: Job) -> dict[str, str]:
    return {"record": _record_json(job), "progress": job.progress.model_dump_json()}


def _decode(raw: dict[bytes, bytes]) -> Job:
    job = Job.model_validate_json(raw[b"record"])
    if b"progress" in raw:
        job.progress = Progress.model_validate_json(raw[b"progress"])
    job.cancel_requested = raw.get(b"cancel") == b"1"
    return job
