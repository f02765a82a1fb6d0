"""Background uploads that never stall a training step and survive storage outages."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from atelier.shared.errors import NotFound, StorageUnavailable
from atelier.shared.job_logs import JobLogger
from atelier.shared.jobs import OutputRef
from atelier.shared.storage import ObjectStore

log = logging.getLogger(__name__)

# Best-effort objects (samples, checkpoints) give up after this long: the next one will
# replace them, and training must not wait on an outage.
BEST_EFFORT_SECONDS = 20.0


class Uploader:
    """Writes objects on background threads.

    ``required`` uploads (weights, outputs) retry with exponential backoff for
    ``retry_seconds`` and then make ``wait`` raise StorageUnavailable, a transient error
    the runner retries later. Best-effort uploads log and drop the object instead.
    botocore already retries each request a few times; this loop covers outages longer
    than its ~10 s budget, which is why it is hand-written rather than a library's.
    """

    def __init__(
        self,
        objects: ObjectStore,
        threads: int,
        retry_seconds: float,
        logger: logging.Logger | JobLogger = log,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        """``pool``: the worker process's shared upload threads. Starting a pool per job
        cost ~8% of a minimal generate job's CPU (py-spy), so the runner lends one."""
        self._objects = objects
        self._retry_seconds = retry_seconds
        self._log = logger
        self._owns_pool = pool is None
        self._pool = pool or ThreadPoolExecutor(max_workers=threads, thread_name_prefix="upload")
        self._required: list[Future[OutputRef]] = []
        self._best_effort: list[Future[OutputRef | None]] = []

    def put(self, name: str, key: str, data: bytes, content_type: str) -> Future[OutputRef]:
        """An upload that must succeed; ``wait`` raises if it did not."""
        future = self._pool.submit(self._upload, name, key, data, content_type, self._retry_seconds)
        self._required.append(future)
        return future

    def put_best_effort(
        self,
        name: str,
        key: str,
        data: bytes,
        content_type: str,
        on_stored: Callable[[OutputRef], None] | None = None,
    ) -> Future[OutputRef | None]:
        def attempt() -> OutputRef | None:
            try:
                ref = self._upload(name, key, data, content_type, BEST_EFFORT_SECONDS)
            except StorageUnavailable as exc:
                self._log.warning("dropped %s after storage errors: %s", name, exc)
                return None
            if on_stored is not None:
                on_stored(ref)
            return ref

        future = self._pool.submit(attempt)
        self._best_effort.append(future)
        return future

    def wait(self) -> list[OutputRef]:
        """Block until every upload so far is done; the stored refs, required first."""
        required = [future.result() for future in self._required]
        best = [ref for future in self._best_effort if (ref := future.result()) is not None]
        self._required.clear()
        self._best_effort.clear()
        return required + best

    def close(self) -> None:
        """Wait for this uploader's objects (their errors were, or will not be, reported
        by ``wait``); stop the threads if they are this uploader's own."""
        pending: list[Future[Any]] = [*self._required, *self._best_effort]
        for future in pending:
            future.exception()
        if self._owns_pool:
            self._pool.shutdown(wait=True, cancel_futures=False)

    def _upload(
        self, name: str, key: str, data: bytes, content_type: str, budget: float
    ) -> OutputRef:
        deadline = time.monotonic() + budget
        delay = 0.5
        while True:
            try:
                size = self._objects.put_bytes(key, data, content_type)
                return OutputRef(name=name, key=key, content_type=content_type, size_bytes=size)
            except NotFound:
                raise
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    raise StorageUnavailable(
                        f"could not store {name} for {budget:.0f}s: {exc}"
                    ) from exc
                self._log.warning("storing %s failed (%s); retrying in %.1fs", name, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
