"""Stored bytes per owner: every put and delete of an owner's object, counted in Redis.

``MeteredObjectStore`` wraps the object store the API and the workers build
(``make_object_store(settings, meter_with=client)``), so uploads, samples, checkpoints,
outputs and model weights are counted where they are written, with no call in the code
that writes them. Each owner has a hash of object key -> size and the sum of that hash
(``shared.redis_keys``), changed together by one Lua script: putting a key again counts
only the change in size, deleting a key twice counts once.

Counting follows the object store: the object is written first, then counted. A count that
fails (Redis away for a moment) is logged and skipped, never failing the write: a job must
not fail over its owner's bookkeeping. The quota it feeds is checked at submit and upload.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import redis

from .redis_keys import KEYS, RedisKeys
from .storage import ObjectLayout, ObjectStore

log = logging.getLogger(__name__)

# KEYS objects hash, stored-bytes; ARGV key, size.
_STORED = """
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('INCRBY', KEYS[2], tonumber(ARGV[2]) - old)
"""
# KEYS objects hash, stored-bytes; ARGV keys.
_DELETED = """
local freed = 0
for i = 1, #ARGV do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if old then
    redis.call('HDEL', KEYS[1], ARGV[i])
    freed = freed + tonumber(old)
  end
end
-- 0 - freed, not -freed: Lua's -0 reaches Redis as "-0", which INCRBY refuses
return redis.call('INCRBY', KEYS[2], 0 - freed)
"""


class StorageMeter:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._keys = keys
        self._stored = client.register_script(_STORED)
        self._deleted = client.register_script(_DELETED)

    def stored(self, owner: str, key: str, size: int) -> None:
        self._stored(keys=self._owner_keys(owner), args=[key, size])

    def deleted(self, owner: str, keys: Iterable[str]) -> None:
        names = list(keys)
        if names:
            self._deleted(keys=self._owner_keys(owner), args=names)

    def _owner_keys(self, owner: str) -> list[str]:
        return [self._keys.owner_objects(owner), self._keys.owner_stored_bytes(owner)]


class MeteredObjectStore:
    """An ``ObjectStore`` that counts each owner's stored bytes (see the module docstring)."""

    def __init__(self, inner: ObjectStore, meter: StorageMeter) -> None:
        self.inner = inner
        self._meter = meter

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        size = self.inner.put_bytes(key, data, content_type)
        owner = ObjectLayout.owner_of(key)
        if owner is not None:
            self._count(lambda: self._meter.stored(owner, key, size), key)
        return size

    def delete(self, key: str) -> None:
        self.inner.delete(key)
        owner = ObjectLayout.owner_of(key)
        if owner is not None:
            self._count(lambda: self._meter.deleted(owner, [key]), key)

    def get_bytes(self, key: str) -> bytes:
        return self.inner.get_bytes(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list_keys(self, prefix: str) -> list[str]:
        return self.inner.list_keys(prefix)

    def presigned_url(self, key: str, download_name: str | None = None) -> str | None:
        return self.inner.presigned_url(key, download_name)

    def check(self) -> None:
        self.inner.check()

    @staticmethod
    def _count(call: Callable[[], None], key: str) -> None:
        try:
            call()
        except redis.RedisError as exc:
            log.warning("stored bytes of %s not counted: %s", key, exc)


def unmetered(store: ObjectStore) -> ObjectStore:
    """The store under the meter (the local download route serves files from its disk)."""
    return store.inner if isinstance(store, MeteredObjectStore) else store
