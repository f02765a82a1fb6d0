"""What a job record holds. ``shared.jobs`` owns the transitions between statuses."""

from __future__ import annotations

import math
import secrets
import time
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    """Its ``start_before`` deadline passed while it waited; it never ran."""

    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED}
)


class JobType(StrEnum):
    TRAIN = "train"
    GENERATE = "generate"


class WebhookEvent(StrEnum):
    """What a job's webhook is told about (``shared.webhooks``), as Replicate names them."""

    START = "start"
    OUTPUT = "output"
    LOGS = "logs"
    COMPLETED = "completed"


def finite_only(metrics: Any) -> Any:
    """Metrics without NaN or infinities (and without the nulls JSON made of them in
    records written before): stored, a NaN became ``null``, and the record then failed to
    read, which broke every listing of its owner's jobs."""
    if not isinstance(metrics, dict):
        return metrics
    return {
        name: value
        for name, value in metrics.items()
        if value is not None and not (isinstance(value, float) and not math.isfinite(value))
    }


Metrics = Annotated[dict[str, float], BeforeValidator(finite_only)]
"""A record's measurements: finite numbers only."""


class Phase(StrEnum):
    """What a running training job is doing: preparing its data (reading, tokenising,
    building a built-in corpus), then training."""

    PREPARING = "preparing"
    TRAINING = "training"


class Progress(BaseModel):
    step: int = 0
    total: int = 0
    fraction: float = 0.0
    eta_seconds: float | None = None
    """Of the whole run while training; of the current phase while preparing."""
    metrics: Metrics = Field(default_factory=dict)
    updated_at: float = 0.0
    phase: Phase | None = None
    """None before the first write (a queued job, a generation job, a record written
    before phases were reported)."""
    label: str | None = None
    """What the preparing phase does, for people ("building the folk corpus")."""
    items_done: int | None = None
    """The preparing phase's count so far (of ``items_total`` ``unit``)."""
    items_total: int | None = None
    unit: str | None = None
    """What the items are ("tunes", "images", "stages")."""


class OutputRef(BaseModel):
    """An object a job wrote. Records hold keys, never bytes; the API adds URLs."""

    name: str
    key: str
    content_type: str
    size_bytes: int
    text: str | None = None
    """Small text outputs are also shown inline in the job."""


class CheckpointRef(BaseModel):
    """The newest checkpoint that is fully stored; a re-run resumes from it."""

    step: int
    key: str


class JobErrorInfo(BaseModel):
    type: str
    message: str


class Job(BaseModel):
    id: str
    owner: str
    type: JobType
    kind: str
    params: dict[str, Any]
    status: JobStatus = JobStatus.QUEUED
    created_at: float
    name: str | None = None
    """What its owner calls it (``shared.job_labels``); not unique, changeable any time."""
    tags: list[str] = Field(default_factory=list)
    """Its owner's labels, a small set; each has an index (``shared.job_labels``)."""
    notes: str | None = None
    sweep_id: str | None = None
    """The sweep that made it a trial (``shared.sweeps``); it queues behind its owner's
    other jobs of the same priority (``shared.scheduling``)."""
    started_at: float | None = None
    finished_at: float | None = None
    attempt: int = 0
    """Runs so far, including one in progress."""
    failures: int = 0
    """Runs that ended by a lost worker or a transient error (capped by max_attempts)."""
    worker: str | None = None
    error: JobErrorInfo | None = None
    """Why it failed; while it waits for a retry, why the last run stopped."""
    outputs: list[OutputRef] = Field(default_factory=list)
    model_id: str | None = None
    metrics: Metrics = Field(default_factory=dict)
    """Run measurements, e.g. ``predict_time`` seconds and ``model_cache_hit`` (1 or 0)."""
    start_before: float | None = None
    max_run_seconds: float | None = None
    priority: int = 5
    """0-9; within one owner, higher runs first (``shared.scheduling``)."""
    webhook: str | None = None
    """URL told about the job's events (``shared.webhooks``); checked at submit."""
    webhook_events_filter: list[WebhookEvent] | None = None
    """Which events the webhook hears; None: all of them."""
    # Held in their own hash fields so frequent writes never race a transition.
    progress: Progress = Field(default_factory=Progress)
    checkpoint: CheckpointRef | None = None
    cancel_requested: bool = False
    fence: str | None = None
    """The running attempt's fencing token (``shared.job_indexes``), made by its claim and
    unique to it, so a claim lost in a failover and made again never repeats one. None
    before the first claim."""


SIDE_FIELDS = frozenset({"progress", "checkpoint", "cancel_requested", "fence"})
RECORD_FIELDS = frozenset(Job.model_fields) - SIDE_FIELDS


def new_id(prefix: str) -> str:
    """A time-ordered id: equal-width hex microseconds, then randomness.

    Lexicographic order is creation order, which is what lets the owner indexes page
    with ZREVRANGEBYLEX and a plain id as the cursor.
    """
    return f"{prefix}_{time.time_ns() // 1000:014x}{secrets.token_hex(4)}"


def encode(job: Job) -> dict[str, str]:
    """A new job's hash. Progress is written once there is some (``decode`` supplies the
    empty default): a queued job costs Redis less (see ``record_json``)."""
    fields = {"record": record_json(job)}
    if job.progress != Progress():
        fields["progress"] = job.progress.model_dump_json()
    return fields


def record_json(job: Job) -> str:
    # Fields at their defaults are left out (``decode`` restores them): with the broker
    # message and the indexes, this keeps a queued job under 2 KB of Redis memory (bench
    # `scale`).
    return job.model_dump_json(include=set(RECORD_FIELDS), exclude_defaults=True)


def decode(raw: dict[bytes, bytes]) -> Job:
    job = Job.model_validate_json(raw[b"record"])
    if b"progress" in raw:
        job.progress = Progress.model_validate_json(raw[b"progress"])
    if b"checkpoint" in raw:
        job.checkpoint = CheckpointRef.model_validate_json(raw[b"checkpoint"])
    job.cancel_requested = raw.get(b"cancel") == b"1"
    if b"fence" in raw:
        job.fence = raw[b"fence"].decode()
    return job


def fence_token(attempt: int) -> str:
    """A new claim's fencing token: the attempt (for people reading it) and randomness
    (so that two claims of one attempt number, one of them lost in a failover, differ)."""
    return f"{attempt}-{secrets.token_hex(4)}"
