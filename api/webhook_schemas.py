"""Response bodies of the webhook routes (``api.views.webhooks``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ..shared.job_records import WebhookEvent
from ..shared.webhooks import DeliveryStatus


class WebhookSecretOut(BaseModel):
    key: str = Field(
        description="The signing secret, `whsec_<base64>`: verify deliveries with any "
        "Standard Webhooks library (e.g. `standardwebhooks.Webhook(key).verify(...)`).",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class DeliveryOut(BaseModel):
    id: str = Field(description="The `webhook-id` header, the same on every attempt.")
    event: WebhookEvent
    url: str
    status: DeliveryStatus = Field(
        description="`pending` (tried again at `next_attempt_at`), `delivered` (a 2xx "
        "answer) or `failed` (given up: the retry window passed, or the address is refused)."
    )
    attempts: int
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None = Field(description="The receiver's last HTTP status.")
    last_error: str | None = Field(description="Why the last attempt failed.")


class DeliveryList(BaseModel):
    job_id: str
    data: list[DeliveryOut] = Field(description="Newest first (a job lists its latest 200).")
