"""The job state machine and the one store that writes job status.

::

    queued ──claim──▶ running ──▶ succeeded
      │  ▲               ├──────▶ failed       (permanent error, or attempts used up)
      │  └──requeue──────┤                     (worker draining: no attempt counted)
      │  └─attempt_failed┤                     (transient error or lost worker, with backoff)
      │                  └─cancel▶ canceled    (cooperative: the job sees its flag)
      ├──cancel──▶ canceled
      └──start_before passed──▶ expired        (never run late)

Every transition is a WATCH/MULTI on the job's hash, and a worker's fair claim is one Lua
script: two workers racing to claim the same job cannot both win, and a cancel racing a
claim is seen by whichever loses. A
running job holds a lease in the ``running`` index; the reaper requeues or fails jobs whose
lease ran out through the same ``attempt_failed`` as a runner that saw a transient error,
so one ``RetryPolicy`` decides both. Job records never expire.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

import redis
from redis.client import Pipeline

from .errors import Conflict, StartDeadlineMissed
from .events import CREATION_DATA, EventType, JobEvents
from .job_indexes import JobIndexes, StopFlags
from .job_labels import LabelChange, index_tags
from .job_records import (
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
    fence_token,
    new_id,
    record_json,
)
from .limits import scheduling_limits
from .redis_keys import KEYS, RedisKeys
from .redis_scripts import CLAIM_NEXT_LUA, Arg
from .retry import RetryPolicy
from .scheduling import OWNERS_SCANNED
from .settings import Settings

__all__ = [
    "ALLOWED_TRANSITIONS", "CheckpointRef", "Job", "JobErrorInfo", "JobStatus", "JobStore",
    "JobType", "LabelChange", "OutputRef", "Progress", "RetryPolicy", "StopFlags", "new_id",
]

ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.RUNNING, JobStatus.CANCELED, JobStatus.FAILED, JobStatus.EXPIRED}
    ),
    JobStatus.RUNNING: frozenset({JobStatus.QUEUED, *TERMINAL_STATUSES} - {JobStatus.EXPIRED}),
    **{status: frozenset() for status in TERMINAL_STATUSES},
}

Also = Callable[[Pipeline, Job], None]
Target = JobStatus | Callable[[Job], JobStatus | None] | None

CLAIM_TRIES = 50
"""Picked ids whose record is gone or not queued (deleted by hand) a claim drops before
giving up; a message that finds nothing is harmless, the reaper re-sends for jobs left
waiting."""


def _starter(worker: str) -> Callable[[Job], None]:
    def start(job: Job) -> None:
        job.started_at = time.time()
        job.attempt += 1
        job.fence = fence_token(job.attempt)
        job.worker = worker

    return start


class JobStore(JobIndexes):
    """The only writer of job records."""

    def __init__(
        self, client: redis.Redis, keys: RedisKeys = KEYS, retry: RetryPolicy | None = None
    ) -> None:
        super().__init__(client, keys)
        self.retry = retry or RetryPolicy()
        self.events = JobEvents(client, keys)
        self._claim_next = client.register_script(CLAIM_NEXT_LUA)

    # Reads, stop flags and fenced progress writes are in JobIndexes (shared.job_indexes).
    # --- writes outside the state machine ---------------------------------------------------
    def create(
        self,
        owner: str,
        job_type: JobType,
        kind: str,
        params: dict[str, Any],
        *,
        job_id: str | None = None,
        also: Also = lambda pipe, job: None,
        **options: Any,
    ) -> Job:
        """A queued job, claimable at once; ``options`` are other record fields (``start_before``,
        ``max_run_seconds``, ``priority``); ``also`` adds writes to its MULTI (quota's place)."""
        job = Job(
            id=job_id or new_id("job"),
            owner=owner,
            type=job_type,
            kind=kind,
            params=params,
            created_at=round(time.time(), 3),  # ms: the digits beyond cost every record bytes
            **options,
        )
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._keys.job(job.id), mapping=cast(Any, encode(job)))
        pipe.zadd(self._keys.owner_jobs(owner), {job.id: 0})
        index_tags(pipe, self._keys, job)
        pipe.zadd(self._keys.queued(job.type.value), {job.id: job.created_at})
        self.fair.enter(pipe, job, job.created_at)
        if job.start_before is not None:
            pipe.zadd(self._keys.start_deadlines, {job.id: job.start_before})
        self.events.queue(pipe, job, EventType.STATUS, CREATION_DATA, creation=True)
        also(pipe, job)
        self.model_users.execute_create(pipe, job, undo=self.delete)  # 422 if its model is gone
        return job

    def delete(self, job: Job) -> None:
        """Remove a job's record, log and index entries: a create whose enqueue failed, or a
        finished job deleted by its owner or by the retention sweep (``shared.lifecycle``)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._keys.job(job.id), self._keys.job_logs(job.id))
        self.events.forget(pipe, job)
        pipe.zrem(self._keys.owner_jobs(job.owner), job.id)
        index_tags(pipe, self._keys, job.model_copy(update={"tags": []}), job.tags)
        self.forget_end(pipe, job)
        self.leave_indexes(pipe, job)
        pipe.execute()

    # --- transitions ------------------------------------------------------------------------
    def claim(self, job_id: str, worker: str, lease_seconds: float) -> Job | None:
        """This queued job → running for exactly one caller, with a lease; None if it is not
        queued. Workers take ``claim_next`` instead, which chooses the job fairly."""

        def hold_lease(pipe: Pipeline, job: Job) -> None:
            self._hold_lease(pipe, job, lease_seconds)
            pipe.sadd(self._keys.owner_running(job.type.value, job.owner), job.id)

        return self._transition(
            job_id, JobStatus.RUNNING, _starter(worker), also=hold_lease, quiet=True
        )

    def claim_next(
        self,
        job_type: JobType,
        worker: str,
        lease_seconds: float,
        settings: Settings,
    ) -> Job | None:
        """The next job of ``job_type`` by the fair rule (``shared.scheduling``) → running,
        with a lease and a new fence; None if none may start now. One Lua call
        (``redis_scripts.CLAIM_NEXT_LUA``) picks and starts it: no other claim, cancel or
        relabel can come between the pick and the start, so there is no lost race to retry."""
        default_limit, default_share, overrides = scheduling_limits(settings)
        now = time.time()
        t = job_type.value
        keys = [
            self._keys.fair(t), self._keys.fair_tags(t), self._keys.running,
            self._keys.start_deadlines, self._keys.requeued, self._keys.queued(t),
        ]
        args: list[Arg] = [
            self._keys.prefix, t, OWNERS_SCANNED, default_limit, default_share,
            json.dumps(overrides), repr(now), now + lease_seconds, json.dumps(worker),
            fence_token(0).partition("-")[2], CLAIM_TRIES,
        ]
        flat = cast(list[bytes] | None, self._claim_next(keys=keys, args=args))
        return decode(dict(zip(flat[::2], flat[1::2], strict=True))) if flat else None

    def make_claimable(self, job: Job) -> None:
        """A requeued job whose backoff is over joins its owner's fair queue."""
        pipe = self._redis.pipeline(transaction=True)
        self.fair.enter(pipe, job, time.time())
        pipe.execute()

    def _hold_lease(self, pipe: Pipeline, job: Job, lease_seconds: float) -> None:
        self.leave_indexes(pipe, job)
        pipe.zadd(self._keys.running, {job.id: time.time() + lease_seconds})
        pipe.hset(self._keys.job(job.id), "fence", job.fence or "")

    def requeue(self, job_id: str, *, fence: str) -> Job | None:
        """running → queued with no attempt counted: its worker is shutting down."""

        def back(job: Job) -> None:
            job.error = None
            job.worker = None

        return self._transition(
            job_id,
            JobStatus.QUEUED,
            back,
            also=lambda pipe, job: self._schedule_message(pipe, job, 0.0),
            only_if=lambda job: job.fence == fence,
            quiet=True,
        )

    def attempt_failed(self, job_id: str, error: JobErrorInfo, *, fence: str) -> Job | None:
        """A run ended by a transient error or a lost worker: queued again after the
        policy's backoff, or failed once its attempts are used up. One decision, made in
        one transition, whether the runner or the reaper saw the failure.

        ``fence`` (the attempt's token) guards both: a late reaper or a stale worker must
        not touch a job that another attempt has since claimed."""
        retry = self.retry

        def count(job: Job) -> None:
            job.failures += 1
            if retry.gives_up(job.failures):
                job.finished_at = time.time()
                job.error = JobErrorInfo(
                    type=error.type,
                    message=f"gave up after {job.failures} failed attempts: {error.message}",
                )
            else:
                job.error = error
                job.worker = None

        def indexes(pipe: Pipeline, job: Job) -> None:
            if job.status is JobStatus.QUEUED:
                self._schedule_message(pipe, job, retry.delay(job.failures))
            else:
                self.leave_indexes(pipe, job)

        return self._transition(
            job_id,
            lambda job: JobStatus.FAILED if retry.gives_up(job.failures + 1) else JobStatus.QUEUED,
            count,
            also=indexes,
            only_if=lambda job: job.fence == fence and job.status is JobStatus.RUNNING,
            quiet=True,
        )

    def _schedule_message(self, pipe: Pipeline, job: Job, delay: float) -> None:
        """Back in the queue: the job joins ``requeued`` in the same MULTI as its
        transition, and the reaper sends its message when due, so a crash cannot lose it."""
        self.leave_indexes(pipe, job)
        due = time.time() + delay
        pipe.zadd(self._keys.requeued, {job.id: due})
        pipe.zadd(self._keys.queued(job.type.value), {job.id: due})

    def expire(self, job_id: str, message: str) -> Job | None:
        """queued → expired: its start deadline passed before any worker took it."""

        def expired(job: Job) -> None:
            job.finished_at = time.time()
            job.error = JobErrorInfo(type=StartDeadlineMissed.__name__, message=message)

        return self._transition(
            job_id, JobStatus.EXPIRED, expired, also=self.leave_indexes, quiet=True
        )

    def request_cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job at once; flag a running one to stop at its next step.
        None if there is no such job; Conflict once it has finished."""

        def target(job: Job) -> JobStatus | None:
            if job.status.is_terminal():
                raise Conflict(
                    f"Job {job_id} already {job.status.value}; only queued or running "
                    "jobs can be canceled.",
                    status_now=job.status.value,
                )
            return JobStatus.CANCELED if job.status is JobStatus.QUEUED else None

        def stamp(job: Job) -> None:
            if job.status is JobStatus.QUEUED:
                job.finished_at = time.time()
            job.cancel_requested = True

        def flag(pipe: Pipeline, job: Job) -> None:
            if job.status is JobStatus.CANCELED:
                self.leave_indexes(pipe, job)
            pipe.hset(self._keys.job(job.id), "cancel", "1")

        return self._transition(job_id, target, stamp, also=flag)

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        outputs: list[OutputRef] | None = None,
        error: JobErrorInfo | None = None,
        model_id: str | None = None,
        metrics: dict[str, float] | None = None,
        fence: str | None = None,
        also: Also | None = None,
    ) -> Job | None:
        """To a terminal status. With ``fence`` (a worker finishing its run): only while
        that attempt holds the job, else None. Without: Conflict if not allowed. ``also``
        adds writes that must happen with it or not at all (the model record)."""
        def complete(job: Job) -> None:
            job.finished_at = time.time()
            job.outputs = outputs or job.outputs
            job.error = error
            job.model_id = model_id or job.model_id
            job.metrics = {**job.metrics, **(metrics or {})}

        def still_ours(job: Job) -> bool:
            return fence is None or job.fence == fence

        def release(pipe: Pipeline, job: Job) -> None:
            self.leave_indexes(pipe, job)
            if also is not None:
                also(pipe, job)

        return self._transition(
            job_id, status, complete, also=release, only_if=still_ours, quiet=fence is not None
        )

    def relabel(self, job_id: str, change: LabelChange) -> Job | None:
        """Its name, tags or notes changed, in any status, with the tag index."""
        was: dict[str, list[str]] = {}
        return self._transition(
            job_id, None, lambda job: change.apply(job, was),
            also=lambda pipe, job: index_tags(pipe, self._keys, job, was["tags"]),
        )

    def add_outputs(self, job_id: str, fence: str, outputs: list[OutputRef]) -> bool:
        """Append outputs (sample grids) to a running attempt's job; False once it lost it."""

        def append(job: Job) -> None:
            job.outputs = [*job.outputs, *outputs]

        def ours(job: Job) -> bool:
            return job.fence == fence and job.status is JobStatus.RUNNING

        return self._transition(job_id, None, append, only_if=ours, quiet=True) is not None

    # --- the one transition primitive -------------------------------------------------------
    def _transition(
        self,
        job_id: str,
        to: Target,
        mutate: Callable[[Job], None],
        *,
        also: Also | None = None,
        only_if: Callable[[Job], bool] = lambda job: True,
        quiet: bool = False,
    ) -> Job | None:
        """Apply ``mutate`` and move to ``to`` atomically; ``to=None`` keeps the status, and
        a callable ``to`` chooses the status from the record as read.

        ``also`` adds index updates to the same MULTI (it sees the new status). An illegal
        transition, or one whose ``only_if`` fails, returns None when ``quiet`` (a lost race
        is normal for claims and requeues) and raises Conflict otherwise.
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
                    before = job.model_copy(update={"outputs": list(job.outputs)})
                    target = to(job) if callable(to) else to
                    legal = target is None or target in ALLOWED_TRANSITIONS[job.status]
                    if not legal or not only_if(job):
                        if quiet:
                            pipe.unwatch()
                            return None
                        raise Conflict(f"Job {job_id} cannot go from {job.status} to {target}.")
                    mutate(job)
                    if target is not None:
                        job.status = target
                    pipe.multi()
                    pipe.hset(key, "record", record_json(job))
                    if job.status.is_terminal():
                        self.record_end(pipe, job)  # also releases its reservation
                    if also is not None:
                        also(pipe, job)
                    self.events.queue_changes(pipe, before, job)
                    pipe.execute()
                    return job
                except redis.WatchError:
                    continue
