"""Which stored objects a job's record no longer needs, and the tidies that had to wait.

An attempt tidies storage when it ends (``workers.runner.JobRunner._tidy``), deciding only
on a record a replica confirms: a record a failover may take back can point at another
checkpoint. When no confirmed record can be had (a failover under way, no replica yet),
or storage is away when the deletes run, the objects are kept and the tidy is put off:
the attempt adds it to a sorted set, and the reapers (``workers.reaper``) try it again
until a confirmed record settles it. Without that, a checkpoint of an attempt a failover
rewound stayed in storage for good: the cluster soak found one.

The put-off tidy is one Redis write made while the replicas are away, so a second
failover before they return can lose it; the objects then stay until the job is deleted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import cast

import redis

from .durability import Durability
from .job_records import decode
from .jobs import Job
from .redis_keys import KEYS, RedisKeys
from .storage import ObjectLayout, ObjectStore

SAMPLES_FOLDER = "/samples/"
"""Samples stay when earlier attempts are tidied: those past the record's cap are listed
from storage (``GET /v1/jobs/{id}/samples``)."""

FIRST_TRY_SECONDS = 10.0
"""How long after an attempt ends its put-off tidy is first tried: a failover's replica
is back in about 30 s in the cluster soak."""
AGAIN_SECONDS = 30.0
"""The wait before a tidy that still could not be settled is tried again."""


def unreferenced(record: Job | None, keys: Iterable[str]) -> list[str]:
    """``keys`` that ``record`` (the job as it stands; None: gone) does not reference."""
    referenced = {o.key for o in record.outputs} if record else set()
    if record is not None and record.checkpoint is not None:
        referenced.add(record.checkpoint.key)
    return [key for key in keys if key not in referenced]


def earlier_attempts_leftovers(finished: Job, keys: Iterable[str]) -> list[str]:
    """Of ``keys`` under the finished job's prefix: what its other attempts stored that
    its record does not reference (a checkpoint superseded, a stale attempt's outputs),
    samples aside. Its last attempt's older checkpoints stay (kept by ``keep_checkpoints``)."""
    prefix = ObjectLayout.job_prefix(finished.owner, finished.id)
    earlier = [
        key
        for key in keys
        if (where := ObjectLayout.attempt_of(prefix, key)) is not None
        and where[1] != finished.fence
    ]
    return [key for key in unreferenced(finished, earlier) if SAMPLES_FOLDER not in key]


@dataclass(frozen=True)
class PutOffTidy:
    """A tidy an attempt could not make: the job, the attempt's fence, and the model its
    training attempt may have stored weights for (None for a generation)."""

    job_id: str
    owner: str
    fence: str
    model_id: str | None = None

    def member(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_member(cls, raw: bytes) -> PutOffTidy:
        return cls(**json.loads(raw))


# KEYS[1] the set; ARGV now, batch, hold. As ``job_indexes._CLAIM_DUE``: what is due,
# re-scored to now + hold so other reapers pass over it while this one works on it.
_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local held = tonumber(ARGV[1]) + tonumber(ARGV[3])
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', held, member) end
return due
"""


class PutOffTidies:
    """The sorted set of put-off tidies, scored by when each is next due."""

    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._key = keys.put_off_tidies
        self._claim_due = client.register_script(_CLAIM_DUE)

    def put_off(self, tidy: PutOffTidy) -> None:
        self._redis.zadd(self._key, {tidy.member(): time.time() + FIRST_TRY_SECONDS})

    def claim_due(self, batch: int) -> list[PutOffTidy]:
        due = self._claim_due(keys=[self._key], args=[time.time(), batch, AGAIN_SECONDS])
        return [PutOffTidy.from_member(raw) for raw in cast(list[bytes], due)]

    def done(self, tidy: PutOffTidy) -> None:
        self._redis.zrem(self._key, tidy.member())

    def pending(self) -> int:
        return self._redis.zcard(self._key)


def settle_put_off(
    tidies: PutOffTidies, durability: Durability, objects: ObjectStore, batch: int
) -> int:
    """Try up to ``batch`` due put-off tidies; the number settled. One whose record no
    replica confirms, or whose deletes fail, stays and comes due again after
    ``AGAIN_SECONDS`` (its claim's hold)."""
    settled = 0
    for tidy in tidies.claim_due(batch):
        if settle_one(tidy, durability, objects):
            tidies.done(tidy)
            settled += 1
    return settled


def settle_one(tidy: PutOffTidy, durability: Durability, objects: ObjectStore) -> bool:
    """Delete what ``tidy``'s attempt left that the confirmed record does not need. False
    when it cannot be decided yet: no confirmed read, or the attempt still holds a job
    that has not finished (its lease has yet to run out)."""
    job_key = KEYS.job(tidy.job_id)
    model_key = KEYS.model(tidy.model_id or "-")
    answers = durability.confirmed_read(
        lambda pipe: (pipe.hgetall(job_key), pipe.exists(model_key))
    )
    if answers is None:
        return False
    record = decode(answers[0]) if answers[0] else None
    model_recorded = bool(answers[1])
    if record is not None and record.fence == tidy.fence and not record.status.is_terminal():
        return False
    stale: list[str] = []
    if record is not None and record.status.is_terminal():
        stale = earlier_attempts_leftovers(
            record, objects.list_keys(ObjectLayout.job_prefix(record.owner, record.id))
        )
    elif record is not None:  # running again as a later attempt: this one's leftovers
        prefix = ObjectLayout.attempt_prefix(tidy.owner, tidy.job_id, tidy.fence)
        stale = unreferenced(record, objects.list_keys(prefix))
    if tidy.model_id is not None and not model_recorded:
        stale.append(ObjectLayout.model_weights(tidy.owner, tidy.model_id))
    for key in stale:
        objects.delete(key)
    return True
