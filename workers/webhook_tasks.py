"""Sending one webhook delivery: the Celery task on the webhooks queue, and the plain
function it calls (``deliver``), which tests call without Celery.

The message carries the delivery's id only; the record (``shared.webhooks``) says whether
there is anything left to send. A job worker never sends a webhook: it only writes events.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

from celery import Celery
from prometheus_client import Counter

from ..shared.job_records import WebhookEvent
from ..shared.redis_client import redis_for
from ..shared.settings import Settings
from ..shared.webhooks import (
    Delivery,
    DeliveryStatus,
    Outcome,
    WebhookStore,
    retry_delay,
    sign,
)
from .webhook_http import HttpLimits, HttpResult, post

SEND_WEBHOOK_TASK = "atelier.send_webhook"
CLAIM_MARGIN_SECONDS = 30.0
"""Beyond an attempt's own time limits, how long a claim holds a delivery: a sender that
died mid-attempt leaves it to the sweep after this."""
USER_AGENT = "Atelier-Webhooks/1"

log = logging.getLogger(__name__)

Poster = Callable[[str, bytes, dict[str, str], HttpLimits], HttpResult]

WEBHOOK_ATTEMPTS = Counter(
    "atelier_webhook_attempts_total",
    "Webhook delivery attempts, by event and what the delivery became after it.",
    ["event", "status"],
)
for _event in WebhookEvent:
    for _status in DeliveryStatus:
        WEBHOOK_ATTEMPTS.labels(_event.value, _status.value)


def claim_seconds(settings: Settings) -> float:
    return (
        settings.webhook_connect_timeout_seconds
        + settings.webhook_timeout_seconds
        + CLAIM_MARGIN_SECONDS
    )


def deliver(
    store: WebhookStore, settings: Settings, delivery_id: str, poster: Poster = post
) -> Delivery | None:
    """One attempt at a pending delivery, signed now with the owner's current secret; the
    record after it, or None when there was nothing to send (delivered, given up, gone,
    or another sender holds it)."""
    claimed = store.claim(delivery_id, claim_seconds(settings))
    if claimed is None:
        return None
    delivery, body = claimed
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": delivery.id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(store.secret(delivery.owner), delivery.id, stamp, body),
    }
    try:
        outcome = poster(
            delivery.url, body.encode(), headers, HttpLimits.from_settings(settings)
        ).outcome
    except Exception as exc:  # a bug of ours must count as an attempt, not loop unseen
        log.exception("webhook %s: the attempt failed unexpectedly", delivery.id)
        outcome = Outcome(error=f"internal error: {type(exc).__name__}")
    retry_in: float | None = None
    if not outcome.delivered:
        delay = retry_delay(
            delivery.attempts + 1,
            settings.webhook_retry_base_seconds,
            settings.webhook_retry_max_seconds,
        )
        if time.time() + delay <= delivery.created_at + settings.webhook_retry_window_seconds:
            retry_in = delay
    after = store.record_attempt(delivery, outcome, retry_in)
    WEBHOOK_ATTEMPTS.labels(delivery.event.value, after.status.value).inc()
    log.info(
        "webhook %s (%s of %s) attempt %d: %s",
        delivery.id,
        delivery.event.value,
        delivery.job_id,
        after.attempts,
        after.status.value if outcome.delivered else f"{outcome.error}; now {after.status.value}",
    )
    return after


def send_message(app: Celery, settings: Settings, delivery_id: str) -> None:
    app.send_task(SEND_WEBHOOK_TASK, args=[delivery_id], queue=settings.webhook_queue)


def register_webhook_tasks(app: Celery, settings: Settings) -> None:
    @functools.cache
    def store() -> WebhookStore:
        # Built at the first message, in the process (or thread pool) that sends.
        return WebhookStore(redis_for(settings))

    @app.task(name=SEND_WEBHOOK_TASK, ignore_result=True)
    def send_webhook(delivery_id: str) -> None:
        deliver(store(), settings, delivery_id)
