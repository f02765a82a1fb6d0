"""Request and response bodies of the event streams and metric history."""

from __future__ import annotations

from pydantic import BaseModel, Field


class MetricPoint(BaseModel):
    step: int
    time: float = Field(description="When the point was recorded (seconds since the epoch).")
    metrics: dict[str, float]


class JobMetricsOut(BaseModel):
    job_id: str
    series: dict[str, list[MetricPoint]] = Field(
        description="``train`` (losses) and ``validation`` (``val_*`` metrics), oldest first."
    )
