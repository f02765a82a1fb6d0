"""Webhooks: the caller's signing secret, and a job's deliveries."""

from __future__ import annotations

from spectree import Response

from ...shared.webhooks import Delivery, WebhookStore
from ..auth import current_owner
from ..schemas import optional_timestamp, timestamp
from ..services import services
from ..spec import spec
from ..webhook_schemas import DeliveryList, DeliveryOut, WebhookSecretOut
from . import v1
from .jobs import owned_job


def _store() -> WebhookStore:
    return WebhookStore(services().redis)


@v1.get("/webhooks/secret")
@spec.validate(resp=Response(HTTP_200=WebhookSecretOut), tags=["webhooks"])
def webhook_secret() -> WebhookSecretOut:
    """The secret that signs the caller's webhook deliveries (needs the `submit` scope)."""
    return WebhookSecretOut(key=_store().secret(current_owner()))


@v1.post("/webhooks/secret/rotate")
@spec.validate(resp=Response(HTTP_200=WebhookSecretOut), tags=["webhooks"])
def rotate_webhook_secret() -> WebhookSecretOut:
    """A new signing secret; every attempt from now on is signed with it (needs `submit`)."""
    return WebhookSecretOut(key=_store().rotate_secret(current_owner()))


@v1.get("/jobs/<job_id>/webhooks")
@spec.validate(resp=Response(HTTP_200=DeliveryList), tags=["webhooks"])
def job_webhooks(job_id: str) -> DeliveryList:
    """The job's webhook deliveries, newest first: status, attempts, last error and status."""
    owned_job(job_id)
    return DeliveryList(job_id=job_id, data=[_present(d) for d in _store().list_for_job(job_id)])


def _present(delivery: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        event=delivery.event,
        url=delivery.url,
        status=delivery.status,
        attempts=delivery.attempts,
        created_at=timestamp(delivery.created_at),
        last_attempt_at=optional_timestamp(delivery.last_attempt_at),
        next_attempt_at=optional_timestamp(delivery.next_attempt_at),
        delivered_at=optional_timestamp(delivery.delivered_at),
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
    )
