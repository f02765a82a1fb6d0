"""Per-owner quotas: queued jobs, stored bytes and datasets, counted in Redis.

Every check that can refuse is one Lua script that counts *and* reserves, so two API
processes racing for the last unit cannot both win:

- **queued jobs** are the owner's jobs in the ``queued:{type}`` indexes (an intersection
  with the owner's job index, so the count always agrees with the job records), plus the
  submits admitted but not created yet (``admitting``, stale after ``GRACE_MS``);
- **stored bytes** are the sizes of the owner's objects, one hash entry per object key
  (``objects``) and their sum (``stored-bytes``). ``storage_usage.MeteredObjectStore``
  updates them on every put and delete, the API and the workers alike; an entry per key
  makes a repeated put or delete count once. Uploads reserve their bytes before storing;
  a submit reserves its job's estimated output until the job ends (``shared.reservations``)
  and is refused when stored + reserved + its estimate would pass the quota;
- **datasets** are the owner's saved datasets plus the uploads admitted, not saved yet.

Keys: ``shared.redis_keys``. Limits: ``shared.limits`` (0: no quota).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.client import Pipeline
from redis.commands.core import Script

from .errors import QuotaExceeded
from .job_records import JobType
from .limits import OwnerLimits
from .redis_keys import KEYS, RedisKeys
from .reservations import Reservations
from .storage_usage import StorageMeter

GRACE_MS = 30_000
"""An admission not turned into a job or dataset this long (its API process died) lapses."""

_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""
# From KEYS[b]: admitting, owner jobs, scratch, queued:{type}...; ARGV[1] grace. Admitted
# submits count until their job is queued (then it counts itself: never twice).
_COUNT_QUEUED = """
local function queued(b)
  redis.call('ZREMRANGEBYSCORE', KEYS[b], '-inf', now - tonumber(ARGV[1]))
  local n = 0
  for _, id in ipairs(redis.call('ZRANGE', KEYS[b], 0, -1)) do
    local waiting = false
    for i = b + 3, #KEYS do waiting = waiting or redis.call('ZSCORE', KEYS[i], id) end
    if not waiting then n = n + 1 end
  end
  for i = b + 3, #KEYS do
    n = n + redis.call('ZINTERSTORE', KEYS[b + 2], 2, KEYS[b + 1], KEYS[i])
  end
  redis.call('DEL', KEYS[b + 2])
  return n
end
"""
# KEYS stored-bytes, reservations, reserved-bytes, then those of _COUNT_QUEUED; ARGV grace,
# max queued, max bytes, then a job id and its estimated output bytes for each job admitted
# together (a sweep's trials: all or none, in one script, so nothing comes between them).
# Refused: the quota, its usage and limit, what else was reserved, what the job needed, and
# the index of the first job that did not fit (the ones before it counting as used). A job
# admitted again (an Idempotency-Key's retry adopting its id) replaces its own reservation,
# never adds. Every admitted job enters ``admitting`` (whatever the queued quota): the
# reservations' sweep leaves a reservation alone while its job is being created.
_ADMIT_JOBS = (
    _NOW
    + _COUNT_QUEUED
    + """
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local reserved = tonumber(redis.call('GET', KEYS[3]) or '0')
local max_queued, max_bytes = tonumber(ARGV[2]), tonumber(ARGV[3])
local n = 0
if max_queued > 0 then n = queued(4) end
for i = 4, #ARGV, 2 do
  local at = (i - 4) / 2
  local own = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
  local need = tonumber(ARGV[i + 1])
  local held = reserved - own
  local used = stored + held
  if max_bytes > 0 and (used >= max_bytes or used + need > max_bytes) then
    return {'stored_bytes', stored, max_bytes, held, need, at}
  end
  if max_queued > 0 and n + at >= max_queued then
    return {'queued_jobs', n + at, max_queued, 0, 0, at}
  end
  reserved = reserved + need - own
end
for i = 4, #ARGV, 2 do
  local need = tonumber(ARGV[i + 1])
  redis.call('ZADD', KEYS[4], now, ARGV[i])
  if need > 0 then
    local own = tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0')
    redis.call('HSET', KEYS[2], ARGV[i], need)
    redis.call('INCRBY', KEYS[3], need - own)
  end
end
return {'', 0, 0}
"""
)
_READ_QUEUED = _NOW + _COUNT_QUEUED + "return queued(1)"
# KEYS uploading, owner datasets, objects, stored-bytes, reserved-bytes; ARGV grace,
# dataset id, max datasets, max bytes, then object key and size pairs.
_ADMIT_DATASET = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
local count = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
local max_datasets, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
if max_datasets > 0 and count >= max_datasets then return {'datasets', count, max_datasets} end
local stored, delta = tonumber(redis.call('GET', KEYS[4]) or '0'), 0
local reserved = tonumber(redis.call('GET', KEYS[5]) or '0')
for i = 5, #ARGV, 2 do
  delta = delta + tonumber(ARGV[i + 1]) - tonumber(redis.call('HGET', KEYS[3], ARGV[i]) or '0')
end
if max_bytes > 0 and stored + reserved + delta > max_bytes then
  return {'stored_bytes', stored, max_bytes, reserved, delta}
end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('INCRBY', KEYS[4], delta)
redis.call('ZADD', KEYS[1], now, ARGV[2])
return {'', 0, 0}
"""
)
UNITS = {"queued_jobs": "jobs", "stored_bytes": "bytes", "datasets": "datasets"}
ADVICE = {
    "queued_jobs": "wait for some of your jobs to start, or cancel some",
    "stored_bytes": "delete datasets or jobs you no longer need, or wait for your jobs to end",
    "datasets": "delete datasets you no longer need",
}


@dataclass(frozen=True)
class QuotaUse:
    name: str
    """``queued_jobs``, ``stored_bytes`` or ``datasets``."""
    usage: int
    limit: int
    """0: no quota."""
    reserved: int = 0
    """Held for what is not stored yet: the estimated outputs of unfinished jobs
    (``stored_bytes`` only; it counts against the limit with ``usage``)."""


class Quotas:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys
        self._admit_jobs = client.register_script(_ADMIT_JOBS)
        self._read_queued = client.register_script(_READ_QUEUED)
        self._admit_dataset = client.register_script(_ADMIT_DATASET)
        self._meter = StorageMeter(client, keys)
        self._reservations = Reservations(client, keys)

    def admit_job(self, owner: str, job_id: str, limits: OwnerLimits, output_bytes: int) -> None:
        """Raise QuotaExceeded, or hold a place among the owner's queued jobs until
        ``job_created`` (or ``GRACE_MS``, should this process die first) and reserve the
        job's estimated ``output_bytes`` until it ends (0 for a kind that does not estimate:
        such a job is only refused once the quota is reached). Before refusing for stored
        bytes, reservations left behind by jobs that are over or gone are swept once."""
        self.admit_jobs(owner, [(job_id, output_bytes)], limits)

    def admit_jobs(self, owner: str, jobs: Sequence[tuple[str, int]], limits: OwnerLimits) -> None:
        """``admit_job`` for several jobs (id, estimated output bytes) at once: all of them,
        or none and QuotaExceeded whose ``item`` is the first one that did not fit."""
        keys = [
            self._keys.owner_stored_bytes(owner),
            self._keys.owner_reservations(owner),
            self._keys.owner_reserved_bytes(owner),
            *self._queued_keys(owner),
        ]
        args: list[str | int] = [GRACE_MS, limits.max_queued_jobs, limits.max_stored_bytes]
        args += [part for job_id, output_bytes in jobs for part in (job_id, output_bytes)]
        self._admit(self._admit_jobs, owner, keys, args)

    def job_created(
        self, owner: str, job_id: str, pipe: Pipeline | redis.Redis | None = None
    ) -> None:
        """The job exists (and counts itself while queued), or will not: give the place back
        (queued in ``pipe``, the create's MULTI, when given: no round trip of its own)."""
        (pipe if pipe is not None else self._redis).zrem(self._keys.owner_admitting(owner), job_id)

    @contextmanager
    def admitting_dataset(
        self, owner: str, dataset_id: str, sizes: dict[str, int], limits: OwnerLimits
    ) -> Iterator[None]:
        """Raise QuotaExceeded, or count the dataset and its objects' ``sizes`` while the
        body stores them; if the body fails, the objects no longer count."""
        keys = [
            self._keys.owner_uploading(owner),
            self._keys.owner_datasets(owner),
            self._keys.owner_objects(owner),
            self._keys.owner_stored_bytes(owner),
            self._keys.owner_reserved_bytes(owner),
        ]
        args: list[str | int] = [GRACE_MS, dataset_id, limits.max_datasets, limits.max_stored_bytes]
        args += [part for key, size in sizes.items() for part in (key, size)]
        self._admit(self._admit_dataset, owner, keys, args)
        try:
            yield
        except BaseException:
            self._meter.deleted(owner, list(sizes))
            raise
        finally:
            self._redis.zrem(self._keys.owner_uploading(owner), dataset_id)

    def usage(self, owner: str, limits: OwnerLimits) -> list[QuotaUse]:
        """Each quota's use now."""
        queued = cast(int, self._read_queued(keys=self._queued_keys(owner), args=[GRACE_MS]))
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(self._keys.owner_stored_bytes(owner))
        pipe.get(self._keys.owner_reserved_bytes(owner))
        pipe.zcard(self._keys.owner_datasets(owner))
        stored, reserved, datasets = pipe.execute()
        return [
            QuotaUse("queued_jobs", queued, limits.max_queued_jobs),
            QuotaUse("stored_bytes", int(stored or 0), limits.max_stored_bytes, int(reserved or 0)),
            QuotaUse("datasets", int(datasets), limits.max_datasets),
        ]

    def _admit(self, script: Script, owner: str, keys: list[str], args: list[Any]) -> None:
        """Run an admission script; refused for stored bytes while some are reserved, sweep
        the reservations of jobs that are over or gone (a leak) and try once more."""
        answer = cast(list[bytes | int], script(keys=keys, args=args))
        reserved = _refused_for(answer) == "stored_bytes" and int(answer[3]) > 0
        if reserved and self._reservations.sweep(owner, GRACE_MS) > 0:
            answer = cast(list[bytes | int], script(keys=keys, args=args))
        _raise_if_refused(answer)

    def _queued_keys(self, owner: str) -> list[str]:
        return [
            self._keys.owner_admitting(owner),
            self._keys.owner_jobs(owner),
            self._keys.owner_scratch(owner),
            *(self._keys.queued(t.value) for t in JobType),
        ]


def _refused_for(answer: list[bytes | int]) -> str:
    """The quota a script's answer refuses for; empty when it admitted."""
    return answer[0].decode() if isinstance(answer[0], bytes) else str(answer[0])


def _raise_if_refused(answer: list[bytes | int]) -> None:
    name = _refused_for(answer)
    if not name:
        return
    usage, limit = int(answer[1]), int(answer[2])
    unit = UNITS[name]
    held = ""
    if name == "stored_bytes":  # what else counted: reservations, and what this asked for
        held = (
            f", {int(answer[3])} more are reserved for the outputs of your unfinished jobs, "
            f"and this needs {int(answer[4])} (a job: its estimated output)"
        )
    error = QuotaExceeded(
        f"Quota {name} exceeded: you use {usage} {unit} of {limit}{held}; {ADVICE[name]}. "
        "Nothing was stored or queued.",
        quota=name,
        usage=usage,
        limit=limit,
    )
    error.item = int(answer[5]) if len(answer) > 5 else 0
    raise error
