"""Idempotent submits: an ``Idempotency-Key`` maps to the job it created, for 24 hours."""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

import redis
from pydantic import BaseModel

from atelier.shared.errors import IdempotencyKeyReused
from atelier.shared.redis_keys import KEYS, RedisKeys

KEY_LIFETIME_SECONDS = 24 * 3600


class IdempotencyRecord(BaseModel):
    job_id: str
    fingerprint: str


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys

    def reserve(self, owner: str, key: str, body_fingerprint: str, job_id: str) -> str | None:
        """Claim ``key`` for a new job ``job_id``; or return the job an earlier identical
        request created. The same key with a different body is a 422."""
        redis_key = self._keys.idempotency(owner, key)
        record = IdempotencyRecord(job_id=job_id, fingerprint=body_fingerprint)
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
        return earlier.job_id

    def release(self, owner: str, key: str) -> None:
        """Forget a key whose job could not be created, so a retry can succeed."""
        self._redis.delete(self._keys.idempotency(owner, key))
