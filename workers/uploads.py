"""Background uploads that never stall a training step and survive storage outages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..shared.errors import NotFound, StorageUnavailable
from ..shared.job_logs import JobLogger
from ..shared.jobs import OutputRef
from ..shared.storage import ObjectStore

log = logging.getLogger(__name__)

T = TypeVar("T")

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

    The queue is bounded: ``put`` blocks while ``queue_bytes`` of uploads are pending, so a
    job that makes checkpoints faster than storage takes them (``checkpoint_every=1``, an
    outage) slows down instead of growing memory until it is killed. One object larger
    than the bound goes alone, once the queue is empty.
    """

    def __init__(
        self,
        objects: ObjectStore,
        threads: int,
        retry_seconds: float,
        logger: logging.Logger | JobLogger = log,
        pool: ThreadPoolExecutor | None = None,
        queue_bytes: int = 256 << 20,
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
        self._queue_bytes = queue_bytes
        self._pending_bytes = 0
        self._drained = threading.Condition()

    @property
    def pending_bytes(self) -> int:
        """Bytes handed to ``put`` whose upload has not finished."""
        with self._drained:
            return self._pending_bytes

    def _admit(self, size: int) -> None:
        """Wait until ``size`` more bytes fit the queue (or the queue is empty)."""
        with self._drained:
            while self._pending_bytes and self._pending_bytes + size > self._queue_bytes:
                self._drained.wait()
            self._pending_bytes += size

    def _release(self, size: int) -> None:
        with self._drained:
            self._pending_bytes -= size
            self._drained.notify_all()

    def _submit(self, size: int, call: Callable[[], T]) -> Future[T]:
        """``call`` on the pool once ``size`` fits; its bytes leave the queue before its
        future completes, so ``wait`` returning means the queue is empty."""

        def run() -> T:
            try:
                return call()
            finally:
                self._release(size)

        self._admit(size)
        try:
            return self._pool.submit(run)
        except BaseException:
            self._release(size)
            raise

    def put(self, name: str, key: str, data: bytes, content_type: str) -> Future[OutputRef]:
        """An upload that must succeed; ``wait`` raises if it did not."""
        future = self._submit(
            len(data), lambda: self._upload(name, key, data, content_type, self._retry_seconds)
        )
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
                self._log.warning("dropped %s after storage errors", name)
                log.info("dropped %s: %s", name, exc)
                return None
            if on_stored is not None:
                on_stored(ref)
            return ref

        future = self._submit(len(data), attempt)
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
        size = patiently(
            lambda: self._objects.put_bytes(key, data, content_type),
            f"storing {name}",
            budget,
            self._log,
        )
        return OutputRef(name=name, key=key, content_type=content_type, size_bytes=size)


def patiently(
    call: Callable[[], T], what: str, budget: float, logger: logging.Logger | JobLogger = log
) -> T:
    """``call()``, tried again with backoff (0.5 s doubling, at most 8 s) while the object
    store fails, for up to ``budget`` seconds; then StorageUnavailable (transient: the job
    is retried later). A missing object (NotFound) is no outage and is raised at once."""
    deadline = time.monotonic() + budget
    delay = 0.5
    while True:
        try:
            return call()
        except NotFound:
            raise
        except Exception as exc:
            # What the owner reads (the job's log, its error) names the kind of failure;
            # the text, which can name hosts and endpoints, goes to the worker's log.
            log.info("%s failed: %s", what, exc)
            if time.monotonic() + delay > deadline:
                raise StorageUnavailable(
                    f"{what} failed for {budget:.0f}s ({type(exc).__name__})"
                ) from exc
            logger.warning("%s failed (%s); retrying in %.1fs", what, type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 8.0)


class PatientReads:
    """The object store as a job sees it: reads (weights, datasets, checkpoints) ride out
    an outage as uploads do, within the same window, instead of failing the attempt at once
    (a 30 s outage failed every generation job that started in it: found by the soak)."""

    def __init__(self, objects: ObjectStore, budget: float) -> None:
        self._objects = objects
        self._budget = budget

    def get_bytes(self, key: str) -> bytes:
        return patiently(lambda: self._objects.get_bytes(key), f"reading {key}", self._budget)

    def list_keys(self, prefix: str) -> list[str]:
        return patiently(lambda: self._objects.list_keys(prefix), f"listing {prefix}", self._budget)

    # Writes go through the Uploader's own retries; deletes are best effort.
    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        return self._objects.put_bytes(key, data, content_type)

    def exists(self, key: str) -> bool:
        return self._objects.exists(key)

    def delete(self, key: str) -> None:
        self._objects.delete(key)

    def presigned_url(self, key: str, download_name: str | None = None) -> str | None:
        return self._objects.presigned_url(key, download_name)

    def check(self) -> None:
        self._objects.check()
