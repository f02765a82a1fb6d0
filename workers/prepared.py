"""Built-in corpora prepared once per deployment, kept in object storage.

Building the ``folk`` corpus parses ~11,600 tunes with music21: minutes of CPU. Its result
is the same for every worker, so the first worker that needs it builds it and stores it
under a deployment-wide key named by a hash of its recipe (``ObjectLayout.prepared``);
every other worker, and a worker restarted with an empty disk, downloads it. A worker also
keeps a copy on its own disk (``$ATELIER_DATA_DIR/cache``), read first.

Two workers that need it at once: a Redis lock with a lease (``{p}:prepare:{name}``,
SET NX PX, renewed while the build runs) lets one build; the other waits for the object,
and takes over the build if the lease runs out first (its builder died). The object is
written in one PUT, which both backends make atomic (S3; a temp file and a rename), so a
reader sees all of it or nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from ..shared.errors import NotFound
from ..shared.redis_keys import KEYS, RedisKeys
from ..shared.storage import ObjectLayout, ObjectStore
from .metrics import PREPARED_CORPORA
from .preparation import Preparation

LEASE_SECONDS = 30.0
"""How long a builder's lock outlives its last renewal (a third of it apart)."""
POLL_SECONDS = 1.0
"""How often a waiting worker looks for the object."""
CONTENT_TYPE = "application/octet-stream"

# Only the holder's token may renew or release the lock.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

log = logging.getLogger(__name__)


class PreparedCorpora:
    """One per worker process: ``get`` a built corpus's bytes, built at most once per
    deployment. Without Redis (``client`` None) it builds per machine, on local disk."""

    def __init__(
        self,
        client: redis.Redis | None,
        objects: ObjectStore,
        local_dir: Path,
        keys: RedisKeys = KEYS,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self._redis = client
        self._objects = objects
        self._local_dir = local_dir
        self._keys = keys
        self._lease = lease_seconds
        self._renew = client.register_script(_RENEW) if client else None
        self._release = client.register_script(_RELEASE) if client else None

    def get(
        self,
        name: str,
        recipe: str,
        build: Callable[[], bytes],
        preparation: Preparation,
        job_log: logging.LoggerAdapter[logging.Logger] | logging.Logger = log,
    ) -> bytes:
        """The corpus ``name`` made by ``recipe`` (a hash of what ``build`` does): from
        this machine's disk, else object storage, else built here (and stored for the
        others). ``preparation`` hears the wait or the build."""
        local = self._local_dir / f"{name}-{recipe}"
        if local.is_file():
            return self._counted(name, "local", local.read_bytes())
        key = ObjectLayout.prepared(name, recipe)
        while True:
            data = self._fetch(key)
            if data is not None:
                job_log.info("%s corpus fetched from object storage (%d bytes)", name, len(data))
                return self._counted(name, "fetched", self._keep(local, data))
            token = self._lock(name, recipe)
            if token is not None:
                try:
                    data = self._build(key, build, token, name, recipe)
                finally:
                    self._unlock(name, recipe, token)
                job_log.info("%s corpus built and stored for other workers", name)
                return self._counted(name, "built", self._keep(local, data))
            self._wait_for(key, name, recipe, preparation)

    def _build(
        self, key: str, build: Callable[[], bytes], token: str, name: str, recipe: str
    ) -> bytes:
        """Build under the lock (kept alive by a thread), then store it for everyone; a
        builder that finished while this one waited for the lock is taken instead."""
        done = threading.Event()
        keeper = threading.Thread(
            target=self._keep_lock, args=(name, recipe, token, done), daemon=True
        )
        keeper.start()
        try:
            data = self._fetch(key)
            if data is None:
                data = build()
                self._objects.put_bytes(key, data, CONTENT_TYPE)
            return data
        finally:
            done.set()
            keeper.join()

    def _wait_for(self, key: str, name: str, recipe: str, preparation: Preparation) -> None:
        """Until the object is stored or nobody holds the lock (its builder died)."""
        preparation.phase(f"waiting for another worker to build the {name} corpus", 1, "corpus")
        while self._holder(name, recipe) and not self._objects.exists(key):
            time.sleep(POLL_SECONDS)
            preparation.advance(0)  # reports now and then, and stops a canceled job

    def _fetch(self, key: str) -> bytes | None:
        try:
            return self._objects.get_bytes(key)
        except NotFound:
            return None

    def _keep(self, local: Path, data: bytes) -> bytes:
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(f".{local.name}.{os.getpid()}.tmp")
        partial.write_bytes(data)
        partial.replace(local)  # other processes on this machine see all of it or none
        return data

    @staticmethod
    def _counted(name: str, source: str, data: bytes) -> bytes:
        PREPARED_CORPORA.labels(name, source).inc()
        return data

    # --- the build lock ----------------------------------------------------------------------
    def _lock(self, name: str, recipe: str) -> str | None:
        if self._redis is None:
            return "local"
        token = secrets.token_hex(8)
        lease_ms = int(self._lease * 1000)
        taken = self._redis.set(self._keys.prepare_lock(name, recipe), token, nx=True, px=lease_ms)
        return token if taken else None

    def _holder(self, name: str, recipe: str) -> bool:
        return self._redis is not None and bool(
            self._redis.exists(self._keys.prepare_lock(name, recipe))
        )

    def _keep_lock(self, name: str, recipe: str, token: str, done: threading.Event) -> None:
        while self._renew is not None and not done.wait(self._lease / 3):
            try:
                self._renew(
                    keys=[self._keys.prepare_lock(name, recipe)],
                    args=[token, int(self._lease * 1000)],
                )
            except redis.RedisError:
                log.warning("could not renew the %s build lock", name, exc_info=True)

    def _unlock(self, name: str, recipe: str, token: str) -> None:
        if self._release is None:
            return
        try:
            self._release(keys=[self._keys.prepare_lock(name, recipe)], args=[token])
        except redis.RedisError:  # the lease runs out by itself
            log.warning("could not release the %s build lock", name, exc_info=True)
