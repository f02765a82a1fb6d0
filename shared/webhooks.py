"""Webhook deliveries and the per-owner signing secret (Standard Webhooks).

A delivery is one event of one job sent to the job's ``webhook`` URL. Its record in Redis
is the truth, as a job's is: the Celery message that sends it (``atelier.send_webhook``,
on the webhooks queue) is only a wake-up. Every pending delivery is in ``{p}:webhooks:due``
scored by when it should next be tried; the webhooks worker's sweep sends again any whose
time came (a retry after backoff, or a message that was lost). A sender claims a delivery
before it calls the URL, pushing its due time past the attempt, so one attempt runs at a
time and a duplicate message finds nothing to do.

At-least-once: a receiver may see a delivery twice (a crash between its 2xx and our
record of it), always with the same ``webhook-id``, which is the delivery's id.

Signing follows the Standard Webhooks spec: ``webhook-signature: v1,<base64 HMAC-SHA256>``
over ``{webhook-id}.{webhook-timestamp}.{body}`` with the owner's secret ``whsec_<base64>``;
each attempt is signed when it is sent, with the secret current then.
"""

from __future__ import annotations

import base64
import random
import secrets
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, cast

import redis
from pydantic import BaseModel
from standardwebhooks import Webhook

from .job_records import WebhookEvent, new_id
from .redis_keys import KEYS, RedisKeys

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
DELIVERIES_KEPT = 200
"""Deliveries a job lists (the newest); older records are deleted with their index entry."""
DELIVERY_TTL_SECONDS = 7 * 86400
"""A delivery record, and a job's list of them, expire this long after their last write."""
LAST_ERROR_CHARS = 300


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    """Not delivered yet; tried again at ``next_attempt_at``."""
    DELIVERED = "delivered"
    """The receiver answered 2xx."""
    FAILED = "failed"
    """Given up: the retry window passed, or the URL is one Atelier will not call."""


class Delivery(BaseModel):
    id: str
    """The ``webhook-id`` header, the same on every attempt."""
    job_id: str
    owner: str
    event: WebhookEvent
    url: str
    created_at: float
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    next_attempt_at: float | None = None
    last_attempt_at: float | None = None
    delivered_at: float | None = None
    last_status_code: int | None = None
    last_error: str | None = None


class Outcome(BaseModel):
    """What one attempt came to; ``retry`` False means give up now whatever the window."""

    status_code: int | None = None
    error: str | None = None
    retry: bool = True

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# Claim a pending delivery that no sender holds: push its due time past the attempt (so
# the sweep does not send it again meanwhile) and hand back its record and body.
_CLAIM = """
local found = redis.call('HMGET', KEYS[1], 'record', 'body', 'claim')
if not found[1] or not found[2] or cjson.decode(found[1])['status'] ~= 'pending' then
  -- Nothing to send (expired, trimmed, finished): it must not stay due.
  redis.call('ZREM', KEYS[2], ARGV[3])
  return false
end
if found[3] and tonumber(found[3]) > tonumber(ARGV[1]) then return false end
redis.call('HSET', KEYS[1], 'claim', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return {found[1], found[2]}
"""

# The sweep's batch: due ids, each pushed ``grace`` ahead so other sweeps pass over them.
_CLAIM_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, delivery_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header value for one attempt (the spec's reference
    library signs; receivers verify with the same)."""
    when = datetime.fromtimestamp(timestamp, UTC)
    return Webhook(secret).sign(delivery_id, when, body)


def retry_delay(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with equal jitter: half the doubled delay, plus up to the other
    half at random, so receivers that failed together are not retried in lockstep."""
    ceiling: float = min(cap, base * 2.0 ** max(attempts - 1, 0))
    jitter: float = (rng or random.Random()).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


class WebhookStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys
        self._claim = client.register_script(_CLAIM)
        self._claim_due = client.register_script(_CLAIM_DUE)

    # --- the owner's secret -----------------------------------------------------------------
    def secret(self, owner: str) -> str:
        """The owner's signing secret, made on first use."""
        key = self._keys.webhook_secret(owner)
        self._redis.set(key, new_secret(), nx=True)
        return _text(self._redis.get(key))

    def rotate_secret(self, owner: str) -> str:
        """A new secret; deliveries attempted from now on are signed with it."""
        secret = new_secret()
        self._redis.set(self._keys.webhook_secret(owner), secret)
        return secret

    # --- deliveries -------------------------------------------------------------------------
    def create(
        self, job_id: str, owner: str, event: WebhookEvent, url: str, body: str, due_in: float
    ) -> Delivery:
        """Record a pending delivery; the sweep sends it after ``due_in`` seconds unless a
        sender claims it first (the caller sends its message at once)."""
        now = time.time()
        delivery = Delivery(
            id=new_id("msg"), job_id=job_id, owner=owner, event=event, url=url, created_at=now
        )
        key, index = self._keys.webhook(delivery.id), self._keys.job_webhooks(job_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"record": delivery.model_dump_json(), "body": body})
        pipe.expire(key, DELIVERY_TTL_SECONDS)
        pipe.zadd(index, {delivery.id: now})
        pipe.expire(index, DELIVERY_TTL_SECONDS)
        pipe.zadd(self._keys.webhooks_due, {delivery.id: now + due_in})
        pipe.execute()
        self._trim(job_id)
        return delivery

    def _trim(self, job_id: str) -> None:
        """Keep a job's newest ``DELIVERIES_KEPT`` deliveries (a job that logs for days
        would otherwise list hundreds of thousands)."""
        index = self._keys.job_webhooks(job_id)
        old = cast(list[bytes], self._redis.zrange(index, 0, -DELIVERIES_KEPT - 1))
        if not old:
            return
        pipe = self._redis.pipeline(transaction=True)
        pipe.zrem(index, *old)
        pipe.zrem(self._keys.webhooks_due, *old)
        pipe.delete(*(self._keys.webhook(_text(i)) for i in old))
        pipe.execute()

    def get(self, delivery_id: str) -> Delivery | None:
        raw = self._redis.hget(self._keys.webhook(delivery_id), "record")
        return Delivery.model_validate_json(cast(bytes, raw)) if raw else None

    def list_for_job(self, job_id: str) -> list[Delivery]:
        """The job's deliveries, newest first."""
        ids = cast(list[bytes], self._redis.zrevrange(self._keys.job_webhooks(job_id), 0, -1))
        pipe = self._redis.pipeline(transaction=False)
        for delivery_id in ids:
            pipe.hget(self._keys.webhook(_text(delivery_id)), "record")
        return [Delivery.model_validate_json(raw) for raw in pipe.execute() if raw]

    def claim(self, delivery_id: str, hold_seconds: float) -> tuple[Delivery, str] | None:
        """The pending delivery and its body, held by this sender for ``hold_seconds``;
        None when it is delivered, given up, gone, or held by another sender."""
        now = time.time()
        found = self._claim(
            keys=[self._keys.webhook(delivery_id), self._keys.webhooks_due],
            args=[now, now + hold_seconds, delivery_id],
        )
        if not found:
            return None
        record, body = cast(list[bytes], found)
        return Delivery.model_validate_json(record), _text(body)

    def claim_due(self, batch: int, hold_seconds: float) -> list[str]:
        """Up to ``batch`` deliveries due now, pushed ``hold_seconds`` ahead."""
        now = time.time()
        ids = self._claim_due(keys=[self._keys.webhooks_due], args=[now, batch, now + hold_seconds])
        return [_text(i) for i in cast(list[bytes], ids)]

    def record_attempt(
        self, delivery: Delivery, outcome: Outcome, retry_in: float | None
    ) -> Delivery:
        """Write an attempt's outcome: delivered, pending again in ``retry_in`` seconds, or
        failed (no ``retry_in``, or the outcome says not to retry)."""
        now = time.time()
        changes: dict[str, Any] = {
            "attempts": delivery.attempts + 1,
            "last_attempt_at": now,
            "last_status_code": outcome.status_code,
            "last_error": (outcome.error or "")[:LAST_ERROR_CHARS] or None,
            "next_attempt_at": None,
        }
        if outcome.delivered:
            changes.update(status=DeliveryStatus.DELIVERED, delivered_at=now, last_error=None)
        elif outcome.retry and retry_in is not None:
            changes["next_attempt_at"] = now + retry_in
        else:
            changes["status"] = DeliveryStatus.FAILED
        after = delivery.model_copy(update=changes)
        key = self._keys.webhook(delivery.id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, "record", after.model_dump_json())
        pipe.hdel(key, "claim")
        if after.status is DeliveryStatus.PENDING:
            pipe.zadd(self._keys.webhooks_due, {delivery.id: now + (retry_in or 0.0)})
        else:
            # The body is only needed to send it again: a finished delivery keeps its record.
            pipe.hdel(key, "body")
            pipe.zrem(self._keys.webhooks_due, delivery.id)
        pipe.expire(key, DELIVERY_TTL_SECONDS)
        pipe.execute()
        return after


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
