"""The scheduling indexes beside each job record, and what the reaper and the metrics read
from them. ``JobStore`` (``shared.jobs``) builds on this class; nothing here changes a job's
status, so a lost race in these methods costs a duplicate message at most.

Which index a job is in says what is owed to it (key names in ``shared.redis_keys``):
``queued:{type}`` a message (scored by when it was due), ``requeued`` a message after a
backoff, ``start-deadlines`` an expiry, ``running`` a lease. A job leaves them all through
``leave_indexes`` when it finishes, is canceled, expires or is deleted.

**Fencing.** A claim writes the attempt number into the job hash's ``fence`` field in the
same MULTI. Every write a running attempt makes (lease renewal, progress, checkpoint
pointer, outputs, log lines, the final status) names its attempt and is refused once the
fence holds another: a paused process that wakes after its job moved on can write nothing
(Kleppmann, "How to do distributed locking", 2016). The conditional writes are Lua scripts:
one round trip, atomic with the check.
"""

from __future__ import annotations

import time
from typing import cast

import redis
from redis.client import Pipeline

from atelier.shared.job_records import Job, JobType, decode
from atelier.shared.redis_keys import RedisKeys

# KEYS[1] job hash, KEYS[2] running; ARGV attempt, new expiry, job id.
_RENEW = """
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 0 end
return redis.call('ZADD', KEYS[2], 'XX', 'CH', ARGV[2], ARGV[3])
"""
# KEYS[1] job hash; ARGV attempt, field, value.
_FENCED_HSET = """
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 1
"""


class JobIndexes:
    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = client
        self._keys = keys
        self._renew = client.register_script(_RENEW)
        self._fenced_hset = client.register_script(_FENCED_HSET)

    # --- fenced writes of a running attempt ---------------------------------------------------
    def fenced_set(self, job_id: str, attempt: int, field: str, value: str) -> bool:
        """Set one field of the job's hash if ``attempt`` is still the job's; else False."""
        return bool(self._fenced_hset(keys=[self._keys.job(job_id)], args=[attempt, field, value]))

    def fence(self, job_id: str) -> int | None:
        """The attempt that may write now (None before the first claim)."""
        raw = self._redis.hget(self._keys.job(job_id), "fence")
        return int(raw) if raw else None

    def leave_indexes(self, pipe: Pipeline, job: Job) -> None:
        """Queue in ``pipe`` the removal of ``job`` from every scheduling index."""
        pipe.zrem(self._keys.running, job.id)
        pipe.zrem(self._keys.start_deadlines, job.id)
        pipe.zrem(self._keys.requeued, job.id)
        pipe.zrem(self._keys.queued(job.type.value), job.id)

    # --- leases -----------------------------------------------------------------------------
    def renew_lease(self, job_id: str, attempt: int, lease_seconds: float) -> bool:
        """Push the lease out; False once ``attempt`` no longer holds the job (it was
        requeued, or a newer attempt claimed it)."""
        expiry = time.time() + lease_seconds
        keys = [self._keys.job(job_id), self._keys.running]
        return bool(self._renew(keys=keys, args=[attempt, expiry, job_id]))

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

    def due_requeues(self, now: float | None = None) -> list[str]:
        return self._ids_due(self._keys.requeued, now)

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

    def _ids_due(self, index: str, now: float | None) -> list[str]:
        ids = self._redis.zrangebyscore(index, "-inf", now or time.time())
        return [i.decode() for i in cast(list[bytes], ids)]
