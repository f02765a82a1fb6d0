"""One Redis subscription per API process that wakes the requests waiting on job events.

Serving model. Event streams and ``Prefer: wait`` requests are *long requests*: each holds
a thread of the process (gunicorn ``gthread``), blocked on a ``threading.Event`` that costs
no CPU while nothing happens. The process runs ``api_threads + api_long_requests`` threads
(``api.gunicorn_conf``) and admits at most ``api_long_requests`` long requests at once
(``LongRequests``), so ordinary requests always find one of their ``api_threads`` free; one
long request more is answered 503 with ``Retry-After``. A thread per stream was chosen over
an event loop (gevent, ASGI) because every other route, and the Redis and S3 clients they
use, stay exactly as they are (no monkey-patching); ``bench/events.py`` measures 200 open
streams on 2 cores.

Wake-ups. Every job event is PUBLISHed on ``{p}:events:wake`` as ``owner job_id`` in the
same atomic step that appends it to the streams (``shared.events``). One listener thread
per process sets the events of the waiters watching that job or owner; a woken waiter reads
its stream from its last id. A notification carries no data, so a lost one (a reconnect of
the subscription) costs nothing but latency: after reconnecting, the listener wakes every
waiter, which re-reads its stream.

Kept bodies. The same wake-ups tell the process's cache of polled jobs (``api.job_cache``)
which job changed; a write that makes no event (a rename, a cancel flag, a deletion, a
checkpoint) PUBLISHes a wake-up too, so a woken waiter may find nothing new and wait again.
The cache is flushed when the subscription drops and when it is confirmed again, and is in
use only while it is live (``live``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import redis

from ..shared.errors import RateLimited, ServiceUnavailable
from ..shared.redis_keys import KEYS, RedisKeys
from .metrics import LONG_REQUESTS

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
SUBSCRIBE_WAIT_SECONDS = 2.0


class Waiter:
    """What one long request waits on; ``wake`` is set by the listener."""

    def __init__(self, owner: str, job_id: str | None) -> None:
        self.owner = owner
        self.job_id = job_id
        self.wake = threading.Event()

    def wait(self, timeout: float) -> bool:
        """True when woken (and re-armed for the next wake-up), False on timeout."""
        woken = self.wake.wait(timeout)
        self.wake.clear()
        return woken


class ChangeListener(Protocol):
    """Told of every job a wake-up names, and of every gap in the wake-ups."""

    def changed(self, job_id: str) -> None: ...

    def flush(self) -> None: ...


class EventHub:
    def __init__(
        self, client: redis.Redis, keys: RedisKeys = KEYS, listener: ChangeListener | None = None
    ) -> None:
        self._redis = client
        self._keys = keys
        self._lock = threading.Lock()
        self._by_owner: dict[str, set[Waiter]] = defaultdict(set)
        self._by_job: dict[str, set[Waiter]] = defaultdict(set)
        self._listener: threading.Thread | None = None
        self._pid = 0
        self._change_listener = listener
        self.subscribed = threading.Event()
        self.closing = False
        """Set when the process stops: long requests end at their next wake-up."""

    @contextmanager
    def watch(self, owner: str, job_id: str | None = None) -> Iterator[Waiter]:
        """A waiter woken by every event of ``job_id`` (or of all the owner's jobs)."""
        self._ensure_listener()
        # Only a subscribed listener wakes anyone: a reader that read its stream before the
        # subscription took would sleep through what came between (until a heartbeat).
        self.subscribed.wait(SUBSCRIBE_WAIT_SECONDS)
        waiter = Waiter(owner, job_id)
        with self._lock:
            (self._by_job[job_id] if job_id else self._by_owner[owner]).add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                index, key = (self._by_job, job_id) if job_id else (self._by_owner, owner)
                index[key].discard(waiter)
                if not index[key]:
                    del index[key]

    def listen_for_changes(self, listener: ChangeListener) -> None:
        self._change_listener = listener

    def live(self) -> bool:
        """Whether this process's subscription is confirmed now (starting it if need be):
        every wake-up published from here on reaches ``changed``."""
        self._ensure_listener()
        return self.subscribed.is_set()

    def close(self) -> None:
        """Wake every waiter for the last time (the process is stopping)."""
        self.closing = True
        self._wake_all()

    def watching(self) -> int:
        with self._lock:
            return sum(map(len, self._by_owner.values())) + sum(map(len, self._by_job.values()))

    # --- the listener -----------------------------------------------------------------------
    def _ensure_listener(self) -> None:
        # Per process: gunicorn forks workers, and a thread does not survive a fork.
        if self._listener is not None and self._pid == os.getpid():
            return  # every poll asks (``live``): no lock on the common path
        with self._lock:
            if self._listener is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.subscribed.clear()
            self._listener = threading.Thread(
                target=self._listen_forever, name="event-hub", daemon=True
            )
            self._listener.start()

    def _listen_forever(self) -> None:
        while True:
            try:
                self._listen()
            except Exception:
                log.warning("event subscription lost; reconnecting", exc_info=True)
            self.subscribed.clear()
            self._flush_changes()  # wake-ups may be lost until the next confirmation
            threading.Event().wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        pubsub = self._redis.pubsub()  # type: ignore[no-untyped-call,unused-ignore]
        try:
            pubsub.subscribe(self._keys.events_wake)
            while True:
                message = pubsub.get_message(timeout=5.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    # Confirmed: from here on every publish reaches us. Kept bodies from
                    # before may have missed theirs: flushed before the cache is live.
                    self._flush_changes()
                    self.subscribed.set()
                    self._wake_all()  # what came while unsubscribed is in the streams
                elif message["type"] == "message":
                    self._dispatch(message["data"])
        finally:
            pubsub.close()

    def _dispatch(self, payload: bytes) -> None:
        owner, _, job_id = payload.decode(errors="replace").partition(" ")
        if self._change_listener is not None:
            self._change_listener.changed(job_id)
        with self._lock:
            waiters = [*self._by_owner.get(owner, ()), *self._by_job.get(job_id, ())]
        for waiter in waiters:
            waiter.wake.set()

    def _flush_changes(self) -> None:
        if self._change_listener is not None:
            self._change_listener.flush()

    def _wake_all(self) -> None:
        with self._lock:
            waiters = [
                w for group in (self._by_owner, self._by_job) for s in group.values() for w in s
            ]
        for waiter in waiters:
            waiter.wake.set()


class LongRequests:
    """At most ``limit`` long requests at once in this process, and at most ``per_owner``
    of them for one owner, so one owner's open tabs or scripts cannot take every slot
    (see the module docstring)."""

    def __init__(self, limit: int, per_owner: int) -> None:
        self.limit = limit
        self.per_owner = per_owner
        self._lock = threading.Lock()
        self._held = 0
        self._by_owner: dict[str, int] = defaultdict(int)

    def acquire(self, owner: str) -> None:
        """Take a slot, or raise 429 (the owner's share is held) or 503 (the process's
        is), both with ``Retry-After``; ``release`` gives it back."""
        with self._lock:
            if self._by_owner[owner] >= self.per_owner:
                raise RateLimited(
                    f"You already hold {self.per_owner} event streams and waits on this API "
                    "process (ATELIER_API_LONG_REQUESTS_PER_OWNER); close one, or retry.",
                    retry_after=2,
                )
            if self._held >= self.limit:
                raise ServiceUnavailable(
                    f"This API process already holds {self.limit} event streams and waits "
                    "(ATELIER_API_LONG_REQUESTS); retry shortly or ask without waiting.",
                    retry_after=2,
                )
            self._held += 1
            self._by_owner[owner] += 1
        LONG_REQUESTS.inc()

    def release(self, owner: str) -> None:
        with self._lock:
            self._held -= 1
            self._by_owner[owner] -= 1
            if not self._by_owner[owner]:
                del self._by_owner[owner]
        LONG_REQUESTS.dec()

    @contextmanager
    def slot(self, owner: str) -> Iterator[None]:
        self.acquire(owner)
        try:
            yield
        finally:
            self.release(owner)
