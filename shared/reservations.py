"""Stored bytes reserved for jobs that have not finished (issue 23, point 6).

A submit reserves its job's estimated output (``Estimate.output_bytes``) in the Lua step
that checks the stored-bytes quota (``shared.quotas``): a thousand queued jobs count their
outputs before they write any. Each owner has a hash job id -> reserved bytes and its sum
(``shared.redis_keys``). The reservation is released in the MULTI that makes the job
terminal, and when the job is deleted (``JobIndexes.record_end``, ``forget_end``); from
then on the job's real outputs count, as ``storage_usage.MeteredObjectStore`` recorded them
while the job wrote them. A release deletes the entry and subtracts what it held, in one
script: releasing twice frees the bytes once.

What the MULTIs cannot cover is a job that never came to be: an API process that dies
between admitting a submit and creating its job. ``sweep`` releases the reservations whose
job is terminal or gone (and not being admitted right now); the quota check runs it before
it refuses a submit, so a leaked reservation can never keep its owner out.
"""

from __future__ import annotations

from typing import cast

import redis
from redis.client import Pipeline

from .job_records import decode
from .redis_keys import KEYS, RedisKeys
from .redis_scripts import run_script

SWEEP_BATCH = 200
"""Reservations one sweep step reads the jobs of (one pipeline, one script)."""

# KEYS reservations hash, their sum, ...; ARGV[first..] the job ids to release.
_RELEASE_FUNCTION = """
local function release(ids)
  local freed = 0
  for _, id in ipairs(ids) do
    local held = redis.call('HGET', KEYS[1], id)
    if held then
      redis.call('HDEL', KEYS[1], id)
      freed = freed + tonumber(held)
    end
  end
  if freed ~= 0 then redis.call('INCRBY', KEYS[2], -freed) end
  return freed
end
"""
_RELEASE = _RELEASE_FUNCTION + "return release(ARGV)"
# KEYS reservations hash, sum, admitting, then the job key of each id; ARGV grace (ms), ids.
# A job not created yet is gone too: its reservation stays while the submit that admitted
# it is in ``admitting`` and younger than the grace (the API process may still create it).
_RELEASE_GONE = (
    _RELEASE_FUNCTION
    + """
local clock = redis.call('TIME')
local stale = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) - tonumber(ARGV[1])
local gone = {}
for i = 2, #ARGV do
  local admitted = redis.call('ZSCORE', KEYS[3], ARGV[i])
  local admitting = admitted and tonumber(admitted) > stale
  if redis.call('EXISTS', KEYS[i + 2]) == 0 and not admitting then gone[#gone + 1] = ARGV[i] end
end
return release(gone)
"""
)


class Reservations:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys
        self._release = client.register_script(_RELEASE)
        self._release_gone = client.register_script(_RELEASE_GONE)

    def release(self, pipe: Pipeline | redis.Redis, owner: str, job_ids: list[str]) -> None:
        """Queue in ``pipe`` (or run) the release of these jobs' reservations."""
        if job_ids:
            run_script(self._release, pipe, self._owner_keys(owner), job_ids)

    def held(self, owner: str) -> int:
        """The owner's reserved bytes."""
        return int(cast(bytes | None, self._redis.get(self._keys.owner_reserved_bytes(owner))) or 0)

    def sweep(self, owner: str, grace_ms: int) -> int:
        """Release the owner's reservations whose job is terminal or gone; the bytes freed."""
        held = cast(dict[bytes, bytes], self._redis.hgetall(self._keys.owner_reservations(owner)))
        ids = [job_id.decode() for job_id in held]
        freed = 0
        for start in range(0, len(ids), SWEEP_BATCH):
            freed += self._sweep_batch(owner, ids[start : start + SWEEP_BATCH], grace_ms)
        return freed

    def _sweep_batch(self, owner: str, ids: list[str], grace_ms: int) -> int:
        pipe = self._redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self._keys.job(job_id), "record")
        records = dict(zip(ids, cast(list[bytes | None], pipe.execute()), strict=True))
        # A terminal job stays terminal: its reservation can go without a further check.
        ended = [i for i, r in records.items() if r and decode({b"record": r}).status.is_terminal()]
        gone = [i for i, r in records.items() if r is None]
        pipe = self._redis.pipeline(transaction=False)
        self.release(pipe, owner, ended)
        if gone:
            keys = [*self._owner_keys(owner), self._keys.owner_admitting(owner)]
            keys += [self._keys.job(job_id) for job_id in gone]
            run_script(self._release_gone, pipe, keys, [grace_ms, *gone])
        return sum(int(freed) for freed in pipe.execute())

    def _owner_keys(self, owner: str) -> list[str]:
        return [self._keys.owner_reservations(owner), self._keys.owner_reserved_bytes(owner)]
