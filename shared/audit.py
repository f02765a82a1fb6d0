"""Each owner's audit trail: who submitted, canceled or deleted what, and key changes.

One capped Redis stream per owner (``{p}:owner:{owner}:audit``): appends are O(1), the
cap (approximate, so trimming stays cheap) bounds memory, and the owner reads it newest
first through ``GET /v1/audit``.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from .redis_keys import KEYS, RedisKeys

AUDIT_CAP = 1000


class AuditLog:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys

    def append(self, owner: str, action: str, actor: str, **fields: str) -> None:
        """Record ``action`` (``job.submit``, ``key.revoke``...) done by ``actor`` (a key id,
        or ``cli``) with its target ``fields``."""
        entry: dict[str | bytes, str | bytes] = {
            "action": action,
            "actor": actor,
            "at": f"{time.time():.3f}",
        }
        entry.update(fields)
        self._redis.xadd(
            self._keys.audit(owner),
            entry,  # type: ignore[arg-type]  # redis-py's dict is invariant
            maxlen=AUDIT_CAP,
            approximate=True,
        )

    def read(self, owner: str, limit: int = 100) -> list[dict[str, Any]]:
        """The owner's newest ``limit`` events, newest first."""
        rows = self._redis.xrevrange(self._keys.audit(owner), count=limit)
        events = []
        for _entry_id, raw in rows or []:
            event: dict[str, Any] = {_s(k): _s(v) for k, v in (raw or {}).items()}
            event["at"] = float(event["at"])
            events.append(event)
        return events


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
