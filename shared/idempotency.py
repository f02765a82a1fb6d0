"""Idempotent submits: an ``Idempotency-Key`` maps to the job it created, for 24 hours.

A submit reserves the key for its job id before it creates the job. If the creation fails
with Redis away (a failover), the release of the key may fail too: the key then names a job
that was never made. A retry of that submit, within ``ADOPT_SECONDS`` of the reservation,
creates the job under the reserved id (``adoptable``), unless the job was made and then
deleted by its owner (``forget_job`` leaves a mark for the key's lifetime): that is a 409."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, cast

import redis
from pydantic import BaseModel

from .errors import IdempotencyKeyReused
from .redis_keys import KEYS, RedisKeys

KEY_LIFETIME_SECONDS = 24 * 3600
ADOPT_SECONDS = 300.0
"""How long after its reservation a key whose job does not exist is taken to name a job
never made (its submit failed mid-way), not one deleted since: longer than a client's
retries through a failover, far shorter than anyone deleting a job they just submitted."""


class IdempotencyRecord(BaseModel):
    job_id: str
    fingerprint: str
    reserved_at: float = 0.0
    """Epoch seconds; 0 in records written before it was kept (never adoptable)."""

    def adoptable(self, now: float | None = None) -> bool:
        return (now or time.time()) - self.reserved_at < ADOPT_SECONDS


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys

    def reserve(
        self, owner: str, key: str, body_fingerprint: str, job_id: str
    ) -> IdempotencyRecord | None:
        """Claim ``key`` for a new job ``job_id``; or return the reservation of an earlier
        identical request. The same key with a different body is a 422."""
        redis_key = self._keys.idempotency(owner, key)
        record = IdempotencyRecord(
            job_id=job_id, fingerprint=body_fingerprint, reserved_at=round(time.time(), 3)
        )
        if self._redis.set(redis_key, record.model_dump_json(), nx=True, ex=KEY_LIFETIME_SECONDS):
            return None
        raw = cast(bytes | None, self._redis.get(redis_key))
        if raw is None:  # expired between the two calls: try once more
            return self.reserve(owner, key, body_fingerprint, job_id)
        earlier = IdempotencyRecord.model_validate_json(raw)
        if earlier.fingerprint != body_fingerprint:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {key!r} was used for a different request body (job "
                f"{earlier.job_id}); use a new key for a new job.",
                errors=[{"field": "Idempotency-Key", "message": "reused with another body"}],
            )
        return earlier

    def was_deleted(self, job_id: str) -> bool:
        return bool(self._redis.exists(self._keys.deleted_job(job_id)))

    def forget_job(self, job_id: str) -> None:
        """An owner deleted ``job_id``: a key naming it must not make it again."""
        self._redis.set(self._keys.deleted_job(job_id), "1", ex=KEY_LIFETIME_SECONDS)

    def release(self, owner: str, key: str) -> None:
        """Forget a key whose job could not be created, so a retry can succeed."""
        self._redis.delete(self._keys.idempotency(owner, key))
