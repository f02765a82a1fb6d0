"""API keys. A key is shown once at creation; Redis holds only its SHA-256.

SHA-256 rather than a slow password hash is deliberate: keys are 256-bit random
tokens, so there is nothing to brute-force, and every request must verify one.

A key has scopes (``read``, ``submit``, ``upload``, ``admin``; admin implies the others),
an optional expiry and a last-used time. Its public ``id`` is the first 16 hex digits of
its hash: enough to name it for ``revoke``/``rotate``, useless to authenticate with.
Keys made before scopes existed read as ``read, submit, upload`` with no expiry, and join
their owner's index (so ``keys list`` shows them) the first time they are used.
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

from .redis_keys import KEYS, RedisKeys

KEY_PREFIX = "atk_"
OWNER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SCOPES = ("read", "submit", "upload", "admin")
DEFAULT_SCOPES = ("read", "submit", "upload")
ID_CHARS = 16
LAST_USED_RESOLUTION = 60.0
"""Seconds: a process records a key's use at most this often (not a write per request)."""


class ApiKeyRecord(BaseModel):
    owner: str
    name: str
    created_at: float
    scopes: list[str] = list(DEFAULT_SCOPES)
    expires_at: float | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


class ApiKeyInfo(ApiKeyRecord):
    """A record as listed: its public id and when it was last used (never the key)."""

    id: str
    last_used_at: float | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {list(SCOPES)}; got {scopes}")
    return [s for s in SCOPES if s in scopes]


class ApiKeyStore:
    def __init__(
        self, client: redis.Redis, keys: RedisKeys = KEYS, cache_seconds: float = 0.0
    ) -> None:
        """``cache_seconds`` > 0 keeps verified keys in memory that long, saving a Redis
        round trip on every request (a third of a status poll's time, py-spy); a key
        revoked by another process keeps working until its entry expires (this process
        forgets it at once). Unknown keys are never cached, so a new key works at once."""
        self._redis = client
        self._keys = keys
        self._cache: TTLCache[str, ApiKeyRecord] | None = (
            TTLCache(maxsize=10_000, ttl=cache_seconds) if cache_seconds > 0 else None
        )
        self._cache_lock = threading.Lock()  # the API serves requests on threads
        self._used: dict[str, float] = {}

    def create(
        self,
        owner: str,
        name: str = "default",
        scopes: list[str] | tuple[str, ...] = DEFAULT_SCOPES,
        expires_at: float | None = None,
    ) -> str:
        """Create a key for ``owner`` and return it; it cannot be recovered later."""
        if not OWNER_PATTERN.match(owner):
            raise ValueError(
                "owner must be 1-63 characters of a-z, 0-9, '_' or '-', starting with a "
                f"letter or digit; got {owner!r}"
            )
        record = ApiKeyRecord(
            owner=owner,
            name=name,
            created_at=time.time(),
            scopes=check_scopes(list(scopes)),
            expires_at=expires_at,
        )
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self._save(hash_key(key), record)
        return key

    def _save(self, digest: str, record: ApiKeyRecord) -> None:
        expiry = int(record.expires_at) + 1 if record.expires_at else None
        pipe = self._redis.pipeline()
        pipe.set(self._keys.api_key(digest), record.model_dump_json(), exat=expiry)
        pipe.hset(self._keys.owner_api_keys(record.owner), digest[:ID_CHARS], digest)
        pipe.execute()

    def lookup(self, key: str) -> ApiKeyRecord | None:
        """The key's record, or None if it is unknown, revoked or expired."""
        if not key.startswith(KEY_PREFIX):
            return None
        return self.lookup_digest(hash_key(key))

    def lookup_digest(self, digest: str) -> ApiKeyRecord | None:
        """``lookup`` by the key's hash: a dashboard session holds the hash, never the key."""
        record = self._cached(digest)
        if record is None:
            raw = self._redis.get(self._keys.api_key(digest))
            record = ApiKeyRecord.model_validate_json(raw) if raw else None
            if record is None:
                return None
            if self._cache is not None:
                with self._cache_lock:
                    self._cache[digest] = record
        if record.expired():
            return None
        self._touch(digest, record.owner)
        return record

    def _cached(self, digest: str) -> ApiKeyRecord | None:
        if self._cache is None:
            return None
        with self._cache_lock:
            return self._cache.get(digest)

    def _touch(self, digest: str, owner: str) -> None:
        """Record the use (and index a pre-scopes key) at most every LAST_USED_RESOLUTION."""
        now = time.time()
        if now - self._used.get(digest, 0.0) < LAST_USED_RESOLUTION:
            return
        self._used[digest] = now
        pipe = self._redis.pipeline()
        pipe.hset(self._keys.api_keys_used(owner), digest[:ID_CHARS], f"{now:.3f}")
        pipe.hset(self._keys.owner_api_keys(owner), digest[:ID_CHARS], digest)
        pipe.execute()

    def list_for_owner(self, owner: str) -> list[ApiKeyInfo]:
        """The owner's live keys, oldest first; index entries of expired keys are dropped."""
        index = self._redis.hgetall(self._keys.owner_api_keys(owner))
        used = self._redis.hgetall(self._keys.api_keys_used(owner))
        found: list[ApiKeyInfo] = []
        for key_id, digest in index.items():
            raw = self._redis.get(self._keys.api_key(_text(digest)))
            if raw is None:
                self._redis.hdel(self._keys.owner_api_keys(owner), key_id)
                continue
            record = ApiKeyRecord.model_validate_json(raw)
            last = used.get(key_id)
            found.append(
                ApiKeyInfo(
                    **record.model_dump(),
                    id=_text(key_id),
                    last_used_at=float(last) if last else None,
                )
            )
        return sorted(found, key=lambda info: info.created_at)

    def get(self, owner: str, key_id: str) -> ApiKeyInfo | None:
        return next((k for k in self.list_for_owner(owner) if k.id == key_id), None)

    def lookup_info(self, owner: str, key: str) -> ApiKeyInfo:
        """A just-created key as listed."""
        info = self.get(owner, hash_key(key)[:ID_CHARS])
        assert info is not None, "the key was created a moment ago"
        return info

    def revoke(self, owner: str, key_id: str) -> ApiKeyInfo | None:
        """Delete one of ``owner``'s keys by id; the revoked record, or None if unknown."""
        info = self.get(owner, key_id)
        digest = self._redis.hget(self._keys.owner_api_keys(owner), key_id)
        if info is None or digest is None:
            return None
        pipe = self._redis.pipeline()
        pipe.delete(self._keys.api_key(_text(digest)))
        pipe.hdel(self._keys.owner_api_keys(owner), key_id)
        pipe.hdel(self._keys.api_keys_used(owner), key_id)
        pipe.execute()
        if self._cache is not None:
            with self._cache_lock:
                self._cache.pop(_text(digest), None)
        return info

    def rotate(self, owner: str, key_id: str) -> str | None:
        """A new key with the old one's name, scopes and expiry; the old one is revoked."""
        old = self.revoke(owner, key_id)
        if old is None:
            return None
        return self.create(owner, old.name, old.scopes, old.expires_at)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
