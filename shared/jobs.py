"""The job state machine and the one store that writes job status.

::

    queued ──claim──▶ running ──▶ succeeded
      │  ▲               ├──────▶ failed       (permanent error, or attempts used up)
      │  └──requeue──────┤                     (lease expired, worker draining, transient error)
      │                  └─cancel▶ canceled    (cooperative: the job sees its flag)
      ├──cancel──▶ canceled
      └──start_before passed──▶ expired        (never run late)

Every transition is a WATCH/MULTI on the job's hash: two workers racing to claim the
same job cannot both win, and a cancel racing a claim is seen by whichever loses. A
running job holds a lease in the ``running`` index; the reaper (``reap``) requeues or
fails jobs whose lease ran out. Job records never expire.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import redis
from redis.client import Pipeline

from atelier.shared.errors import Conflict
from atelier.shared.job_records import (
    TERMINAL_STATUSES,
    CheckpointRef,
    Job,
    JobErrorInfo,
    JobStatus,
    JobType,
    OutputRef,
    Progress,
    decode,
    encode,
    new_id,
    record_json,
)
from atelier.shared.redis_keys import KEYS, RedisKeys

__all__ = [
    "ALLOWED_TRANSITIONS",
    "CheckpointRef",
    "Job",
    "JobErrorInfo",
    "JobStatus",
    "JobStore",
    "JobType",
    "OutputRef",
    "Progress",
    "new_id",
]

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.RUNNING, JobStatus.CANCELED, JobStatus.FAILED, JobStatus.EXPIRED}
    ),
    JobStatus.RUNNING: frozenset({JobStatus.QUEUED, *TERMINAL_STATUSES} - {JobStatus.EXPIRED}),
    **{status: frozenset() for status in TERMINAL_STATUSES},
}

Also = Callable[[Pipeline, Job], None]


class JobStore:
    """The only writer of job records."""

    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys

    @property
    def redis(self) -> redis.Redis:
        return self._redis

    # --- reads ------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        raw = cast(dict[bytes, bytes], self._redis.hgetall(self._keys.job(job_id)))
        return decode(raw) if raw else None

    def get_many(self, job_ids: Iterable[str]) -> list[Job]:
        pipe = self._redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self._keys.job(job_id))
        return [decode(raw) for raw in pipe.execute() if raw]

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
            page = cast(list[bytes], self._redis.zrevrangebylex(index, upper, "-", 0, batch))
            ids = [i.decode() for i in page]
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

    def stop_requested(self, job_id: str, node: str | None) -> tuple[bool, bool]:
        """(cancel asked for, the job's worker node is draining) in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(self._keys.job(job_id), "cancel")
        pipe.exists(self._keys.draining(node or "-"))
        cancel, draining = pipe.execute()
        return cancel == b"1", bool(draining)

    def cancel_requested(self, job_id: str) -> bool:
        return self.stop_requested(job_id, None)[0]

    # --- writes outside the state machine ---------------------------------------------------
    def create(
        self,
        owner: str,
        job_type: JobType,
        kind: str,
        params: dict[str, Any],
        *,
        start_before: float | None = None,
        max_run_seconds: float | None = None,
        job_id: str | None = None,
    ) -> Job:
        job = Job(
            id=job_id or new_id("job"),
            owner=owner,
            type=job_type,
            kind=kind,
            params=params,
            created_at=time.time(),
            start_before=start_before,
            max_run_seconds=max_run_seconds,
        )
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._keys.job(job.id), mapping=cast(Any, encode(job)))
        pipe.zadd(self._keys.owner_jobs(owner), {job.id: 0})
        pipe.zadd(self._keys.queued(job.type.value), {job.id: job.created_at})
        if start_before is not None:
            pipe.zadd(self._keys.start_deadlines, {job.id: start_before})
        pipe.execute()
        return job

    def delete(self, job: Job) -> None:
        """Undo a create whose enqueue failed, so a rejected submit leaves nothing behind."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._keys.job(job.id))
        pipe.zrem(self._keys.owner_jobs(job.owner), job.id)
        pipe.zrem(self._keys.start_deadlines, job.id)
        pipe.zrem(self._keys.queued(job.type.value), job.id)
        pipe.execute()

    def set_progress(self, job_id: str, progress: Progress) -> None:
        self._redis.hset(self._keys.job(job_id), "progress", progress.model_dump_json())

    def set_checkpoint(self, job_id: str, checkpoint: CheckpointRef) -> None:
        self._redis.hset(self._keys.job(job_id), "checkpoint", checkpoint.model_dump_json())

    def renew_lease(self, job_id: str, lease_seconds: float) -> bool:
        """Push the lease out; False once the job is no longer ours to run."""
        renewed = self._redis.zadd(
            self._keys.running, {job_id: time.time() + lease_seconds}, xx=True, ch=True
        )
        return bool(renewed)

    def expired_leases(self, now: float | None = None) -> list[str]:
        ids = self._redis.zrangebyscore(self._keys.running, "-inf", now or time.time())
        return [i.decode() for i in cast(list[bytes], ids)]

    def missed_start_deadlines(self, now: float | None = None) -> list[str]:
        ids = self._redis.zrangebyscore(self._keys.start_deadlines, "-inf", now or time.time())
        return [i.decode() for i in cast(list[bytes], ids)]

    # --- transitions ------------------------------------------------------------------------
    def claim(self, job_id: str, worker: str, lease_seconds: float) -> Job | None:
        """queued → running for exactly one caller, with a lease; None if not queued."""

        def start(job: Job) -> None:
            job.started_at = time.time()
            job.attempt += 1
            job.worker = worker

        def hold_lease(pipe: Pipeline, job: Job) -> None:
            pipe.zadd(self._keys.running, {job.id: time.time() + lease_seconds})
            pipe.zrem(self._keys.start_deadlines, job.id)
            pipe.zrem(self._keys.queued(job.type.value), job.id)

        return self._transition(job_id, JobStatus.RUNNING, start, also=hold_lease, quiet=True)

    def requeue(
        self,
        job_id: str,
        *,
        error: JobErrorInfo | None,
        failure: bool,
        expected_worker: str | None,
        delay_seconds: float = 0.0,
    ) -> Job | None:
        """running → queued, when ``expected_worker`` still holds it (a late reaper or a
        stale worker must not requeue a job that another worker has since claimed).

        The job's message is not sent here: the job joins the ``requeued`` index in the
        same MULTI, and ``due_requeues`` hands it to whoever sends messages.
        """

        def back_to_queue(job: Job) -> None:
            job.failures += int(failure)
            job.error = error
            job.worker = None

        def schedule(pipe: Pipeline, job: Job) -> None:
            self._release(pipe, job)
            due = time.time() + delay_seconds
            pipe.zadd(self._keys.requeued, {job.id: due})
            pipe.zadd(self._keys.queued(job.type.value), {job.id: due})

        return self._transition(
            job_id,
            JobStatus.QUEUED,
            back_to_queue,
            also=schedule,
            only_if=lambda job: job.worker == expected_worker,
            quiet=True,
        )

    def due_requeues(self, now: float | None = None) -> list[str]:
        ids = self._redis.zrangebyscore(self._keys.requeued, "-inf", now or time.time())
        return [i.decode() for i in cast(list[bytes], ids)]

    def forget_requeue(self, job_id: str) -> None:
        """Called after the job's new message is sent."""
        self._redis.zrem(self._keys.requeued, job_id)

    def forget_start_deadline(self, job_id: str) -> None:
        self._redis.zrem(self._keys.start_deadlines, job_id)

    def forget_lease(self, job_id: str) -> None:
        self._redis.zrem(self._keys.running, job_id)

    def overdue_queued(self, job_type: JobType, due_before: float, limit: int = 100) -> list[str]:
        """Queued jobs of ``job_type`` whose message was due before ``due_before``."""
        ids = self._redis.zrangebyscore(
            self._keys.queued(job_type.value), "-inf", due_before, start=0, num=limit
        )
        return [i.decode() for i in cast(list[bytes], ids)]

    def message_resent(self, job: Job, at: float) -> None:
        """Restart the wait of a queued job whose message was just sent again."""
        self._redis.zadd(self._keys.queued(job.type.value), {job.id: at}, xx=True)

    def forget_queued(self, job: Job) -> None:
        self._redis.zrem(self._keys.queued(job.type.value), job.id)

    def expire(self, job_id: str, message: str) -> Job | None:
        """queued → expired: its start deadline passed before any worker took it."""

        def expired(job: Job) -> None:
            job.finished_at = time.time()
            job.error = JobErrorInfo(type="StartDeadlineMissed", message=message)

        def release(pipe: Pipeline, job: Job) -> None:
            pipe.zrem(self._keys.start_deadlines, job.id)
            pipe.zrem(self._keys.requeued, job.id)
            pipe.zrem(self._keys.queued(job.type.value), job.id)

        return self._transition(job_id, JobStatus.EXPIRED, expired, also=release, quiet=True)

    def request_cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once; flag a running one to stop at its next step."""
        key = self._keys.job(job_id)
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    job = decode(cast(dict[bytes, bytes], pipe.hgetall(key)))
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
                        pipe.hset(key, "record", record_json(job))
                        pipe.zrem(self._keys.start_deadlines, job_id)
                        pipe.zrem(self._keys.requeued, job_id)
                        pipe.zrem(self._keys.queued(job.type.value), job_id)
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
        expected_worker: str | None = None,
        quiet: bool = False,
    ) -> Job | None:
        def complete(job: Job) -> None:
            job.finished_at = time.time()
            job.outputs = outputs or job.outputs
            job.error = error
            job.model_id = model_id or job.model_id
            job.metrics = {**job.metrics, **(metrics or {})}

        def still_ours(job: Job) -> bool:
            return expected_worker is None or job.worker == expected_worker

        def release(pipe: Pipeline, job: Job) -> None:
            self._release(pipe, job)
            pipe.zrem(self._keys.start_deadlines, job.id)
            pipe.zrem(self._keys.requeued, job.id)
            pipe.zrem(self._keys.queued(job.type.value), job.id)

        return self._transition(
            job_id, status, complete, also=release, only_if=still_ours, quiet=quiet
        )

    def add_outputs(self, job_id: str, outputs: list[OutputRef]) -> None:
        """Append outputs (e.g. sample grids) to a running job without changing its status."""

        def append(job: Job) -> None:
            job.outputs = [*job.outputs, *outputs]

        self._transition(job_id, None, append)

    def _release(self, pipe: Pipeline, job: Job) -> None:
        pipe.zrem(self._keys.running, job.id)

    # --- the one transition primitive -------------------------------------------------------
    def _transition(
        self,
        job_id: str,
        to: JobStatus | None,
        mutate: Callable[[Job], None],
        *,
        also: Also | None = None,
        only_if: Callable[[Job], bool] = lambda job: True,
        quiet: bool = False,
    ) -> Job | None:
        """Apply ``mutate`` and move to ``to`` atomically; ``to=None`` keeps the status.

        ``also`` adds index updates to the same MULTI. An illegal transition, or one whose
        ``only_if`` fails, returns None when ``quiet`` (a lost race is normal for claims and
        requeues) and raises Conflict otherwise.
        """
        key = self._keys.job(job_id)
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw = cast(dict[bytes, bytes], pipe.hgetall(key))
                    if not raw:
                        return None
                    job = decode(raw)
                    legal = to is None or to in ALLOWED_TRANSITIONS[job.status]
                    if not legal or not only_if(job):
                        if quiet:
                            pipe.unwatch()
                            return None
                        raise Conflict(f"Job {job_id} cannot go from {job.status} to {to}.")
                    mutate(job)
                    if to is not None:
                        job.status = to
                    pipe.multi()
                    pipe.hset(key, "record", record_json(job))
                    if also is not None:
                        also(pipe, job)
                    pipe.execute()
                    return job
                except redis.WatchError:
                    continue
