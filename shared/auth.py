"""API keys. A key is shown once at creation; Redis holds only its SHA-256.

SHA-256 rather than a slow password hash is deliberate: keys are 256-bit random
tokens, so there is nothing to brute-force, and every request must verify one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time

import redis
from cachetools import TTLCache
from pydantic import BaseModel

from atelier.shared.redis_keys import KEYS, RedisKeys

KEY_PREFIX = "atk_"
OWNER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ApiKeyRecord(BaseModel):
    owner: str
    name: str
    created_at: float


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    def __init__(
        self, client: redis.Redis, keys: RedisKeys = KEYS, cache_seconds: float = 0.0
    ) -> None:
        """``cache_seconds`` > 0 keeps verified keys in memory that long, saving a Redis
        round trip on every request (a third of a status poll's time, py-spy); a key
        deleted from Redis keeps working until its entry expires. Unknown keys are never
        cached, so a new key works at once."""
        self._redis = client
        self._keys = keys
        self._cache: TTLCache[str, ApiKeyRecord] | None = (
            TTLCache(maxsize=10_000, ttl=cache_seconds) if cache_seconds > 0 else None
        )
        self._cache_lock = threading.Lock()  # the API serves requests on threads

    def create(self, owner: str, name: str = "default") -> str:
        """Create a key for ``owner`` and return it; it cannot be recovered later."""
        if not OWNER_PATTERN.match(owner):
            raise ValueError(
                "owner must be 1-63 characters of a-z, 0-9, '_' or '-', starting with a "
                f"letter or digit; got {owner!r}"
            )
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = ApiKeyRecord(owner=owner, name=name, created_at=time.time())
        self._redis.set(self._keys.api_key(hash_key(key)), record.model_dump_json())
        return key

    def lookup(self, key: str) -> ApiKeyRecord | None:
        if not key.startswith(KEY_PREFIX):
            return None
        digest = hash_key(key)
        if self._cache is not None:
            with self._cache_lock:
                cached = self._cache.get(digest)
            if cached is not None:
                return cached
        raw = self._redis.get(self._keys.api_key(digest))
        record = ApiKeyRecord.model_validate_json(raw) if raw else None
        if record is not None and self._cache is not None:
            with self._cache_lock:
                self._cache[digest] = record
        return record
