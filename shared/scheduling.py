"""Which queued job a free worker takes: fair across owners, by priority within an owner.

A Celery message is only a wake-up: the worker that receives one claims the next job
*chosen here*, whichever job the message named. The rule is start-time fair queuing (a
weighted round-robin): every owner with claimable jobs holds a tag in ``fair:{type}``; the
lowest tag goes next; a start moves the owner's tag on by ``1 / share``. An owner that
(re)joins takes the larger of its own last tag and the tag of the job last started, so
waiting earns no credit and a newcomer goes next. Within an owner, higher ``priority``
first, then the oldest; a sweep's trials (``shared.sweeps``) rank half a priority step
behind the owner's other jobs of their priority, so a one-off job never waits behind a
sweep of the same owner (it still waits for the owner's turn). An owner already running
``max_running_jobs`` of this type is passed over; its jobs wait (they do not fail) and a
wake-up is sent when a slot frees.

Keys (``shared.redis_keys``)::

    fair:{type}                  zset  owner -> tag, while the owner has claimable jobs
    fair:{type}:{owner}          zset  job id -> rank (priority, then when claimable)
    fair-tags:{type}             hash  owner -> its last tag; "~now" -> the last start's tag
    owner-running:{type}:{owner} set   the owner's running jobs of this type
    owed-wakeups:{type}          string wake-ups owed to jobs passed over at their limit

Every change happens atomically with the job's own: a job joins and leaves inside its
WATCH/MULTI transition (``shared.jobs``), and the pick and the start are one Lua script
(``shared.redis_scripts.CLAIM_NEXT_LUA``, run by ``JobStore.claim_next``), so the fair
structures never disagree with the records.
"""

from __future__ import annotations

import redis
from redis.client import Pipeline

from .job_records import Job, JobType
from .redis_keys import RedisKeys
from .redis_scripts import run_script

PRIORITY_MIN, PRIORITY_MAX, PRIORITY_DEFAULT = 0, 9, 5
OWNERS_SCANNED = 64
"""Owners looked at per pick, lowest tags first (owners at their running limit are skipped)."""
NOW = "~now"
SWEEP_LAG = 5e9
"""Added to a sweep trial's rank: half a priority step (``rank``), so it follows the owner's
other jobs of the same priority and precedes those of the next lower one."""

# KEYS[1] fair set, KEYS[2] tags hash, KEYS[3] owner queue; ARGV owner, job id, rank.
_ENTER = """
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local own = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local now = tonumber(redis.call('HGET', KEYS[2], '~now') or '0')
redis.call('ZADD', KEYS[1], math.max(own, now), ARGV[1])
return 1
"""
# KEYS[1] fair set, KEYS[2] owner queue, KEYS[3] owner running; ARGV owner, job id.
_LEAVE = """
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) end
redis.call('SREM', KEYS[3], ARGV[2])
return 1
"""


# KEYS[1] owed wake-ups counter.
_TAKE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  redis.call('DECR', KEYS[1])
  return 1
end
return 0
"""


def rank(priority: int, at: float) -> float:
    """Higher priority first, then earlier; exact to ~10 µs for epoch seconds."""
    return (PRIORITY_MAX - priority) * 1e10 + at


class FairQueue:
    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = client
        self._keys = keys
        self._enter = client.register_script(_ENTER)
        self._leave = client.register_script(_LEAVE)
        self._take = client.register_script(_TAKE)

    def enter(self, pipe: Pipeline, job: Job, at: float) -> None:
        """Queue in ``pipe``: the job becomes claimable (and its owner joins, if new)."""
        t, owner = job.type.value, job.owner
        keys = [self._keys.fair(t), self._keys.fair_tags(t), self._keys.fair_owner(t, owner)]
        lag = SWEEP_LAG if job.sweep_id else 0.0
        run_script(self._enter, pipe, keys, [owner, job.id, rank(job.priority, at) + lag])

    def leave(self, pipe: Pipeline, job: Job) -> None:
        """Queue in ``pipe``: the job is no longer claimable, nor running."""
        t, owner = job.type.value, job.owner
        keys = [
            self._keys.fair(t),
            self._keys.fair_owner(t, owner),
            self._keys.owner_running(t, owner),
        ]
        run_script(self._leave, pipe, keys, [owner, job.id])

    def owe_wakeup(self, job_type: JobType) -> None:
        """A message found only jobs whose owners are at their running limit: it is spent,
        so one wake-up is owed to whoever frees a slot next."""
        if self._redis.zcard(self._keys.fair(job_type.value)):
            self._redis.incr(self._keys.owed_wakeups(job_type.value))

    def take_owed_wakeup(self, job_type: JobType) -> bool:
        """Called when a running slot frees: True (and the debt paid) if a wake-up is owed."""
        return bool(self._take(keys=[self._keys.owed_wakeups(job_type.value)]))
