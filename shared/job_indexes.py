"""The scheduling indexes beside each job record, and what the reaper and the metrics read
from them. ``JobStore`` (``shared.jobs``) builds on this class; nothing here changes a job's
status, so a lost race in these methods costs a duplicate message at most.

Which index a job is in says what is owed to it (key names in ``shared.redis_keys``):
``queued:{type}`` a message (scored by when it was due), ``requeued`` a message after a
backoff, ``start-deadlines`` an expiry, ``running`` a lease. A job leaves them all through
``leave_indexes`` when it finishes, is canceled, expires or is deleted; a terminal job
joins ``finished`` and gives back its stored-bytes reservation (``record_end``).

**Fencing.** A claim writes a token of its own (``{attempt}-{random}``,
``job_records.fence_token``) into the job hash's ``fence`` field in the same MULTI. Every
write a running attempt makes (lease renewal, progress, checkpoint pointer, outputs, log
lines, the final status) names its token and is refused once the fence holds another: a
paused process that wakes after its job moved on can write nothing (Kleppmann, "How to do
distributed locking", 2016). The token is not just the attempt number because a claim can
be lost in a Sentinel failover (replication is asynchronous): the next claim of the job
then counts the same attempt again, and with numbers for tokens the two runs would share
one. The conditional writes are Lua scripts: one round trip, atomic with the check.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import NamedTuple, cast

import redis
from redis.client import Pipeline

from .job_records import CheckpointRef, Job, JobType, Progress, decode
from .metric_history import MetricHistory
from .model_users import ModelUsers
from .redis_keys import RedisKeys
from .reservations import Reservations
from .scheduling import FairQueue

# KEYS[1] job hash, KEYS[2] running; ARGV fence token, new expiry, job id.
_RENEW = """
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 0 end
return redis.call('ZADD', KEYS[2], 'XX', 'CH', ARGV[2], ARGV[3])
"""
# KEYS[1] job hash; ARGV fence token, field, value, wake-up channel, job id. The wake-up
# (``shared.events``) drops the job's kept body in the API processes.
_FENCED_HSET = """
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
local owner = cjson.decode(redis.call('HGET', KEYS[1], 'record'))['owner']
redis.call('PUBLISH', ARGV[4], owner .. ' ' .. ARGV[5])
return 1
"""


class StopFlags(NamedTuple):
    canceled: bool
    draining: bool
    fenced: bool
    """A newer attempt holds the job (or none does): this one must stop writing."""


# KEYS[1] an index; ARGV now, batch, hold. Up to ``batch`` ids due by ``now``, each re-scored
# to now + hold: other reapers' sweeps pass over them while this one handles them, and if
# it dies mid-way they come due again after ``hold``.
_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local held = tonumber(ARGV[1]) + tonumber(ARGV[3])
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', held, id) end
return due
"""
HOLD_SECONDS = 10.0
"""How long a sweep's claim on what it handles lasts before another reaper may retry it."""


class JobIndexes:
    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = client
        self._keys = keys
        self.fair = FairQueue(client, keys)
        self.history = MetricHistory(client, keys)
        self.reservations = Reservations(client, keys)
        self.model_users = ModelUsers(client, keys)
        self._renew = client.register_script(_RENEW)
        self._claim_due = client.register_script(_CLAIM_DUE)
        self._fenced_hset = client.register_script(_FENCED_HSET)

    # --- fenced writes of a running attempt ---------------------------------------------------
    def fenced_set(self, job_id: str, fence: str, field: str, value: str) -> bool:
        """Set one field of the job's hash if ``fence`` still holds it; else False."""
        args = [fence, field, value, self._keys.events_wake, job_id]
        return bool(self._fenced_hset(keys=[self._keys.job(job_id)], args=args))

    def fence(self, job_id: str) -> str | None:
        """The token of the attempt that may write now (None before the first claim)."""
        raw = cast(bytes | None, self._redis.hget(self._keys.job(job_id), "fence"))
        return raw.decode() if raw else None

    def leave_indexes(self, pipe: Pipeline, job: Job) -> None:
        """Queue in ``pipe`` the removal of ``job`` from every scheduling index."""
        pipe.zrem(self._keys.running, job.id)
        pipe.zrem(self._keys.start_deadlines, job.id)
        pipe.zrem(self._keys.requeued, job.id)
        pipe.zrem(self._keys.queued(job.type.value), job.id)
        self.fair.leave(pipe, job)

    def record_end(self, pipe: Pipeline, job: Job) -> None:
        """Queue in ``pipe`` (the MULTI that makes ``job`` terminal, whatever the path): it
        joins ``finished``, its stored-bytes reservation is released, so from now on its
        real outputs count against the quota instead, and its model may be deleted."""
        pipe.zadd(self._keys.finished, {job.id: job.finished_at or time.time()})
        self.reservations.release(pipe, job.owner, [job.id])
        self.model_users.leave(pipe, job)

    def forget_end(self, pipe: Pipeline, job: Job) -> None:
        """Queue in ``pipe`` (the job's deletion): it leaves ``finished``, and a reservation
        or a model it still holds (a create whose enqueue failed) is released."""
        pipe.zrem(self._keys.finished, job.id)
        self.reservations.release(pipe, job.owner, [job.id])
        self.model_users.leave(pipe, job)

    # --- reads ------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        raw = self.get_hash(job_id)
        return decode(raw) if raw else None

    def get_hash(self, job_id: str) -> dict[bytes, bytes]:
        """The job's hash as stored (``job_records.decode`` reads it); empty if none."""
        return cast(dict[bytes, bytes], self._redis.hgetall(self._keys.job(job_id)))

    def job_key(self, job_id: str) -> str:
        """The job's hash, for a caller that reads it in a script of its own."""
        return self._keys.job(job_id)

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
        tag: str | None = None,
        narrowed: bool = True,
    ) -> tuple[list[Job], str | None]:
        """Newest first. Returns a page and the cursor for the next one (None at the end).

        Filters are applied while scanning the owner's index in id order (with ``tag``,
        that tag's index: ``shared.job_labels``); ``scan_budget`` bounds the work of one
        call, and the cursor resumes where the scan stopped. ``narrowed`` false says
        ``where`` lets (nearly) every job through, so the scan reads one page of records
        at a time rather than more: 50 records decoded for a page of 20 made a page of a
        2,000-job owner cost more than one of a 20-job owner
        (bench/results/spread-2026-12-06.md).
        """
        index = self._keys.owner_tag(owner, tag) if tag else self._keys.owner_jobs(owner)
        upper = f"({cursor}" if cursor else "+"
        found: list[Job] = []
        scanned = 0
        batch = max(limit * 2, 50) if narrowed else limit
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

    def newest_for_owner(self, owner: str, count: int, tag: str | None = None) -> list[Job]:
        """The owner's newest ``count`` jobs (of ``tag``), newest first: one read of ids,
        one pipelined read of records."""
        index = self._keys.owner_tag(owner, tag) if tag else self._keys.owner_jobs(owner)
        ids = cast(list[bytes], self._redis.zrevrangebylex(index, "+", "-", 0, count))
        return self.get_many(i.decode() for i in ids)

    # --- a running attempt: stop flags and fenced writes -------------------------------------
    def stop_requested(self, job_id: str, fence: str, generation: str | None) -> StopFlags:
        """Whether a running attempt should stop, in one round trip: a cancel was asked
        for, its worker generation is draining, or a newer attempt holds the job."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hmget(self._keys.job(job_id), ["cancel", "fence"])
        pipe.exists(self._keys.draining(generation or "-"))
        (cancel, held), draining = pipe.execute()
        return StopFlags(cancel == b"1", bool(draining), held != fence.encode())

    def cancel_requested(self, job_id: str) -> bool:
        return self._redis.hget(self._keys.job(job_id), "cancel") == b"1"

    def set_progress(self, job_id: str, fence: str, progress: Progress) -> bool:
        """False (nothing written) once ``fence`` is not the job's current one. With its
        ``progress`` event and metric-history points (``shared.metric_history``)."""
        return self.history.write_progress(job_id, fence, progress)

    def set_checkpoint(self, job_id: str, fence: str, checkpoint: CheckpointRef) -> bool:
        return self.fenced_set(job_id, fence, "checkpoint", checkpoint.model_dump_json())

    # --- leases -----------------------------------------------------------------------------
    def renew_lease(self, job_id: str, fence: str, lease_seconds: float) -> bool:
        """Push the lease out; False once ``fence`` no longer holds the job (it was
        requeued, or a newer attempt claimed it)."""
        expiry = time.time() + lease_seconds
        keys = [self._keys.job(job_id), self._keys.running]
        return bool(self._renew(keys=keys, args=[fence, expiry, job_id]))

    def leased(self) -> list[str]:
        """Every job holding a lease (running, or a worker presumed dead)."""
        return [
            i.decode() for i in cast(list[bytes], self._redis.zrange(self._keys.running, 0, -1))
        ]

    def expired_leases(self, now: float | None = None) -> list[str]:
        return self._ids_due(self._keys.running, now)

    def expired_lease_count(self) -> int:
        return int(self._redis.zcount(self._keys.running, "-inf", time.time()))

    def forget_lease(self, job_id: str) -> None:
        self._redis.zrem(self._keys.running, job_id)

    def running_by_type(self) -> dict[JobType, int]:
        """Jobs holding a lease, counted by type (read at scrape time)."""
        ids = cast(list[bytes], self._redis.zrange(self._keys.running, 0, -1))
        pipe = self._redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self._keys.job(job_id.decode()), "record")
        counts: dict[JobType, int] = {}
        for record in pipe.execute():
            if record:
                job_type = decode({b"record": record}).type
                counts[job_type] = counts.get(job_type, 0) + 1
        return counts

    # --- start deadlines and requeues ---------------------------------------------------------
    def missed_start_deadlines(self, now: float | None = None) -> list[str]:
        return self._ids_due(self._keys.start_deadlines, now)

    def forget_start_deadline(self, job_id: str) -> None:
        self._redis.zrem(self._keys.start_deadlines, job_id)

    def forget_requeue(self, job_id: str) -> None:
        """Called after the job's new message is sent."""
        self._redis.zrem(self._keys.requeued, job_id)

    # --- lost messages ------------------------------------------------------------------------
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

    # --- worker processes ----------------------------------------------------------------------
    def mark_draining(self, generation: str, ttl_seconds: int) -> None:
        """A worker process generation is shutting down: its running jobs checkpoint and
        requeue. Keyed by the generation (a token each worker start makes), never by a host
        or node name, so a worker restarted under the same name does not inherit it."""
        self._redis.set(self._keys.draining(generation), "1", ex=ttl_seconds)

    # --- bounded sweeps: claim a batch of what is due ------------------------------------------
    def claim_expired_leases(self, batch: int) -> list[str]:
        return self._claim(self._keys.running, batch)

    def claim_missed_start_deadlines(self, batch: int) -> list[str]:
        return self._claim(self._keys.start_deadlines, batch)

    def claim_due_requeues(self, batch: int) -> list[str]:
        return self._claim(self._keys.requeued, batch)

    def claim_finished_before(self, before: float, batch: int) -> list[str]:
        """Finished jobs older than ``before`` (the retention sweep)."""
        return self._claim(self._keys.finished, batch, before)

    def forget_finished(self, job_id: str) -> None:
        self._redis.zrem(self._keys.finished, job_id)

    def _claim(self, index: str, batch: int, now: float | None = None) -> list[str]:
        due = self._claim_due(keys=[index], args=[now or time.time(), batch, HOLD_SECONDS])
        return [i.decode() for i in cast(list[bytes], due)]

    def _ids_due(self, index: str, now: float | None) -> list[str]:
        ids = self._redis.zrangebyscore(index, "-inf", now or time.time())
        return [i.decode() for i in cast(list[bytes], ids)]
