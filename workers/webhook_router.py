"""The webhook router: job events in, webhook deliveries out.

A thread in the Celery parent of each ``webhooks`` worker. It reads the global event
stream ``{p}:events`` (``shared.events``) through the consumer group ``webhooks``, so every
event is routed once whichever webhooks worker reads it, and none is missed across
restarts: an entry is acknowledged only after its delivery record is written, and entries a
dead router took but never acknowledged are claimed by a live one after ``STALE_SECONDS``.

Events become webhook events as Replicate's do:

=================================  ===========
status ``running`` (first attempt)  start
output                              output
log                                 logs: at most one per job every
                                    ``webhook_logs_interval_seconds``; a line inside the
                                    interval is sent with the next one (the body carries the
                                    newest lines, so none is lost), and at the latest just
                                    before the job's ``completed``
end                                 completed
=================================  ===========

A ``completed`` delivery is recorded only once ``ATELIER_REDIS_MIN_REPLICAS`` replicas hold
the job's finish (``shared.durability``): a finish made on a primary cut off from its
replicas is thrown away when that primary is demoted, and the receiver would have been told
of an outcome the job never had. Until then its event stays unacknowledged and comes back
after ``STALE_SECONDS``.

Each delivery's body is rendered once, here: the job's JSON as ``GET /v1/jobs/{id}``
returns it (status fields as of the event), plus ``event`` and, for ``logs``, ``logs``.
Every attempt sends that same body under the same ``webhook-id``.

The same thread runs the sweep: every ``SWEEP_SECONDS`` it sends the message of every
delivery whose time came (a retry after its backoff, or a message that was lost).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import redis

from ..shared.durability import Durability
from ..shared.errors import NotReplicated
from ..shared.events import Event, EventType, parse_entry
from ..shared.job_logs import JobLogs
from ..shared.job_records import Job, JobStatus, WebhookEvent
from ..shared.jobs import JobStore
from ..shared.redis_keys import KEYS, RedisKeys
from ..shared.settings import Settings
from ..shared.webhooks import WebhookStore

log = logging.getLogger(__name__)

GROUP = "webhooks"
READ_COUNT = 100
BLOCK_MS = 500
STALE_SECONDS = 60.0
SWEEP_SECONDS = 1.0
SWEEP_BATCH = 200

Render = Callable[[Job], dict[str, Any]]
"""A job -> its JSON as the API shows it (``api_renderer``)."""
Send = Callable[[str], None]
"""Puts a delivery id's message on the webhooks queue."""


class WebhookRouter:
    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        render: Render,
        send: Send,
        keys: RedisKeys = KEYS,
        consumer: str | None = None,
    ) -> None:
        self._redis = client
        self._settings = settings
        self._render = render
        self._send = send
        self._keys = keys
        self._consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.jobs = JobStore(client, keys)
        self.logs = JobLogs(client, settings.job_log_lines, keys)
        self.store = WebhookStore(client, keys)
        self.durability = Durability(
            client, settings.redis_min_replicas, settings.redis_replica_wait_seconds, keys
        )
        self._logs_sent: dict[str, float] = {}
        self._logs_owed: dict[str, float] = {}
        self._next_sweep = 0.0
        self._group_ready = False

    # --- the loop ---------------------------------------------------------------------------
    def step(self) -> int:
        """Route what is waiting (blocking up to ``BLOCK_MS``), send owed logs deliveries,
        and sweep when due; the number of events read."""
        self._ensure_group()
        entries = self._stale() + self._read()
        for entry_id, fields in entries:
            try:
                self._route(parse_entry(entry_id, fields))
            except redis.RedisError:
                raise  # not acknowledged: routed again once Redis answers
            except NotReplicated as exc:
                log.info("webhook router: event %r held: %s", entry_id, exc)
                continue  # not acknowledged: claimed again after STALE_SECONDS
            except Exception:
                # An event we cannot read would otherwise come back forever (XAUTOCLAIM).
                log.exception("webhook router: event %r skipped", entry_id)
            # Acknowledged only now that the delivery (if any) is recorded.
            self._redis.xack(self._keys.all_events, GROUP, entry_id)
        self._pay_owed_logs(time.monotonic())
        if time.monotonic() >= self._next_sweep:
            self.sweep()
            self._next_sweep = time.monotonic() + SWEEP_SECONDS
        return len(entries)

    def sweep(self) -> int:
        """Send the message of every delivery that is due (retries, lost messages)."""
        hold = self._settings.lost_message_seconds
        ids = self.store.claim_due(SWEEP_BATCH, hold)
        for delivery_id in ids:
            self._send(delivery_id)
        return len(ids)

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From the stream's start: events written before any webhooks worker existed
            # are routed too (jobs without a webhook cost one read each).
            self._redis.xgroup_create(self._keys.all_events, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def forget_group(self) -> None:
        """Create the group again at the next step (a Redis restarted without its data)."""
        self._group_ready = False

    def _read(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        found = self._redis.xreadgroup(
            GROUP, self._consumer, {self._keys.all_events: ">"}, count=READ_COUNT, block=BLOCK_MS
        )
        return [entry for _stream, entries in cast(list[Any], found or []) for entry in entries]

    def _stale(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Entries another router (or this one, before a crash) took but never acknowledged."""
        found = self._redis.xautoclaim(
            self._keys.all_events,
            GROUP,
            self._consumer,
            min_idle_time=int(STALE_SECONDS * 1000),
            count=READ_COUNT,
        )
        # Entries trimmed from the stream meanwhile come back empty: nothing to route.
        return [(entry_id, fields) for entry_id, fields in found[1] if fields]

    # --- routing ----------------------------------------------------------------------------
    def _route(self, event: Event) -> None:
        webhook_event = webhook_event_for(event)
        if webhook_event is None:
            return
        job = self.jobs.get(event.job)
        if job is None or not job.webhook:
            return
        if webhook_event is WebhookEvent.COMPLETED and job.id in self._logs_owed:
            del self._logs_owed[job.id]  # the last lines go before ``completed``
            self.deliver(job, WebhookEvent.LOGS)
        if not hears(job, webhook_event):
            return
        if webhook_event is WebhookEvent.COMPLETED:
            self.durability.confirm("The job's finish")
        if webhook_event is WebhookEvent.LOGS:
            self._logs_arrived(job)
        else:
            self.deliver(_as_of(job, event), webhook_event)

    def _logs_arrived(self, job: Job) -> None:
        now = time.monotonic()
        last = self._logs_sent.get(job.id)
        interval = self._settings.webhook_logs_interval_seconds
        if last is None or now - last >= interval:
            self.deliver(job, WebhookEvent.LOGS)
        else:
            self._logs_owed.setdefault(job.id, last + interval)

    def _pay_owed_logs(self, now: float) -> None:
        for job_id, due in list(self._logs_owed.items()):
            if due > now:
                continue
            del self._logs_owed[job_id]
            job = self.jobs.get(job_id)
            if job is not None and job.webhook:
                self.deliver(job, WebhookEvent.LOGS)
        # Forget jobs quiet for a whole interval: the map holds only jobs logging now.
        horizon = now - self._settings.webhook_logs_interval_seconds
        for job_id in [j for j, sent in self._logs_sent.items() if sent < horizon]:
            del self._logs_sent[job_id]

    def deliver(self, job: Job, event: WebhookEvent) -> None:
        """Record the delivery (the truth), then send its message (only a wake-up: if it is
        lost, the sweep sends another after ``lost_message_seconds``)."""
        body = {**self._render(job), "event": event.value}
        if event is WebhookEvent.LOGS:
            body["logs"] = self.logs.read(job.id)
            self._logs_sent[job.id] = time.monotonic()
        text = json.dumps(body, separators=(",", ":"))
        assert job.webhook is not None
        delivery = self.store.create(
            job.id, job.owner, event, job.webhook, text, self._settings.lost_message_seconds
        )
        self._send(delivery.id)


def webhook_event_for(event: Event) -> WebhookEvent | None:
    """The webhook event a job event makes, if any (progress makes none)."""
    if event.type is EventType.STATUS:
        started = event.data.get("status") == JobStatus.RUNNING.value
        return WebhookEvent.START if started and event.data.get("attempt") == 1 else None
    return {
        EventType.OUTPUT: WebhookEvent.OUTPUT,
        EventType.LOG: WebhookEvent.LOGS,
        EventType.END: WebhookEvent.COMPLETED,
    }.get(event.type)


def hears(job: Job, event: WebhookEvent) -> bool:
    return job.webhook_events_filter is None or event in job.webhook_events_filter


def _as_of(job: Job, event: Event) -> Job:
    """The record with the status the event reported (it may have moved on since)."""
    if event.type not in (EventType.STATUS, EventType.END):
        return job
    # ``attempt`` is left out of events of jobs that never ran (``shared.events``).
    status, attempt = JobStatus(event.data["status"]), event.data.get("attempt", 0)
    return job.model_copy(update={"status": status, "attempt": attempt})


class RouterThread(threading.Thread):
    """Runs ``WebhookRouter.step`` until stopped; a Redis outage is logged and waited out."""

    def __init__(self, router: WebhookRouter) -> None:
        super().__init__(name="atelier-webhook-router", daemon=True)
        self.router = router
        self.stopping = threading.Event()

    def run(self) -> None:
        log.info("webhook router started")
        while not self.stopping.is_set():
            try:
                self.router.step()
            except redis.RedisError as exc:
                log.warning("webhook router: Redis unavailable (%s); retrying", exc)
                self.router.forget_group()
                self.stopping.wait(1.0)
            except Exception:
                log.exception("webhook router step failed; going on")
                self.stopping.wait(1.0)


def api_renderer(settings: Settings) -> Render:
    """The API's own body of a job (``api.bodies``), with the download URLs a client of
    the API at ``api_url`` gets; no Flask app is built for it."""
    from ..api.bodies import Links, files_route_of, job_body
    from ..shared.storage import make_object_store

    links = Links(make_object_store(settings), files_route_of(settings.api_url))

    def render(job: Job) -> dict[str, Any]:
        rendered: dict[str, Any] = job_body(job, links).model_dump(mode="json")
        return rendered

    return render
