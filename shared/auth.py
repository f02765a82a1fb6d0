"""API keys. A key is shown once at creation; Redis holds only its SHA-256.

SHA-256 rather than a slow password hash is deliberate: keys are 256-bit random
tokens, so there is nothing to brute-force, and every request must verify one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time

import redis
from pydantic import BaseModel

from shared.redis_keys import KEYS, RedisKeys

KEY_PREFIX = "atk_"
OWNER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ApiKeyRecord(BaseModel):
    owner: str
    name: str
    created_at: float


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys

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
        raw = self._redis.get(self._keys.api_key(hash_key(key)))
        return ApiKeyRecord.model_validate_json(raw) if raw else None
