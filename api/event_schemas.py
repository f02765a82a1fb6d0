"""Request and response bodies of the event streams, progress and metric history."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ..shared.job_records import Phase


class MetricPoint(BaseModel):
    step: int
    time: float = Field(description="When the point was recorded (seconds since the epoch).")
    metrics: dict[str, float]


class JobMetricsOut(BaseModel):
    job_id: str
    series: dict[str, list[MetricPoint]] = Field(
        description="``train`` (losses) and ``validation`` (``val_*`` metrics), oldest first."
    )


class ProgressOut(BaseModel):
    """Until step 1 a training job prepares its data: ``phase`` ``preparing``, ``label``
    says what it does, ``items_done`` of ``items_total`` ``unit`` its count and
    ``eta_seconds`` the phase's; then ``phase`` is ``training`` and those are null."""

    step: int
    total: int
    fraction: float
    eta_seconds: float | None
    metrics: dict[str, float]
    updated_at: datetime | None
    phase: Phase | None = None
    label: str | None = None
    items_done: int | None = None
    items_total: int | None = None
    unit: str | None = None
