"""Request and response bodies of the HTTP API. These models validate requests and are
the OpenAPI document; a kind's ``params`` are validated by that kind's own models
(``shared.kinds``), which ``api.contract`` puts in the served document, one branch per kind
and job type."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from ..shared.job_labels import (
    MAX_NAME_CHARS,
    MAX_NOTES_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    TAG_PATTERN,
)
from ..shared.job_records import WebhookEvent
from ..shared.job_search import SORT_PATTERN, JobFilter
from ..shared.jobs import JobStatus, JobType
from ..shared.scheduling import PRIORITY_DEFAULT, PRIORITY_MAX, PRIORITY_MIN
from ..shared.webhook_urls import MAX_URL_CHARS
from .event_schemas import ProgressOut
from .model_schemas import ModelList as ModelList
from .model_schemas import ModelOut as ModelOut

# The upper bound is ATELIER_LIST_PAGE_MAX, checked by the views (``api.paging``).
PAGE_LIMIT = Field(20, ge=1, description="Items per page; at most ATELIER_LIST_PAGE_MAX.")

# A job's labels (``shared.job_labels``): bounded, and each rule in the document's schema.
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_CHARS, pattern=TAG_PATTERN)]
NAME = Field(
    None,
    min_length=1,
    max_length=MAX_NAME_CHARS,
    pattern=r"^[^\x00-\x1f\x7f]+$",
    description="What you call the run: one line, not unique.",
    examples=["dcgan lr=2e-4 baseline"],
)
TAGS_DOC = (
    f"Labels to find the job by (`GET /v1/jobs?tag=`): at most {MAX_TAGS}, each 1-"
    f"{MAX_TAG_CHARS} characters, a letter or digit then letters, digits and `_ . : / = + -`;"
    " repeats are dropped."
)
NOTES = Field(
    None,
    max_length=MAX_NOTES_CHARS,
    pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$",
    description="Free text (Markdown is shown as text); tabs and newlines allowed.",
)


def _tag_set(value: list[str] | None) -> list[str] | None:
    return list(dict.fromkeys(value)) if value is not None else None


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: JobType = Field(description="`train` produces a model; `generate` samples one.")
    kind: str = Field(description="Model kind; see GET /v1/kinds.", examples=["dcgan"])
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Validated against the kind's schema for this job type (the served "
        "document has one schema per kind and type: ``api.contract``).",
    )
    start_before: AwareDatetime | None = Field(
        None, description="If no worker has started the job by then, it ends `expired`."
    )
    # Strict: JSON's true or "5" is not a number here, as the document says.
    max_run_seconds: float | None = Field(
        None,
        gt=0,
        le=30 * 86400,
        strict=True,
        description="A run longer than this fails (per attempt).",
    )
    priority: int = Field(
        PRIORITY_DEFAULT,
        strict=True,
        ge=PRIORITY_MIN,
        le=PRIORITY_MAX,
        description="Among the caller's own waiting jobs, higher starts first; owners take "
        "turns whatever their priorities (fair scheduling).",
    )
    webhook: str | None = Field(
        None,
        max_length=MAX_URL_CHARS,
        description="An http(s) URL told about the job's events by signed POSTs (Standard "
        "Webhooks; see GET /v1/webhooks/secret). Not a private or loopback address.",
        examples=["https://example.com/atelier-hook"],
    )
    webhook_events_filter: list[WebhookEvent] | None = Field(
        None,
        min_length=1,
        description="Which events the webhook hears: `start`, `output`, `logs` (at most "
        "twice a second), `completed`. Default: all.",
    )
    name: str | None = NAME
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS, description=TAGS_DOC)
    notes: str | None = NOTES

    _tags = field_validator("tags")(_tag_set)

    @field_validator("webhook_events_filter")
    @classmethod
    def _no_repeats(cls, value: list[WebhookEvent] | None) -> list[WebhookEvent] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("webhook_events_filter names an event twice")
        return value

    @field_validator("start_before")
    @classmethod
    def _in_the_future(cls, value: AwareDatetime | None) -> AwareDatetime | None:
        if value is not None and value.timestamp() <= time.time():
            raise ValueError("start_before must be in the future")
        return value


class SubmitHeaders(BaseModel):
    idempotency_key: str | None = Field(
        None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Resending a submit with the same key and body returns the same job.",
    )


class JobUpdate(BaseModel):
    """A JSON merge patch (RFC 7396) of the job's labels: a field left out stays, null
    clears it, ``tags`` replaces the whole set."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = NAME
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS, description=TAGS_DOC)
    notes: str | None = NOTES

    _tags = field_validator("tags")(_tag_set)


class JobListQuery(BaseModel):
    status: JobStatus | None = None
    type: JobType | None = None
    kind: str | None = None
    tag: Tag | None = Field(None, description="Only jobs carrying this tag.")
    name_prefix: str | None = Field(
        None, max_length=MAX_NAME_CHARS, description="Only jobs whose name starts so (any case)."
    )
    dataset: str | None = Field(
        None, max_length=200, description="Only jobs whose `params.dataset` is this."
    )
    sort: str | None = Field(
        None,
        pattern=SORT_PATTERN,
        description="A final metric to order by, smallest first (`val_loss`), or largest "
        "first (`-val_loss`); jobs without it last. Ranks the newest 5,000 jobs (of the "
        "tag). Default: newest first.",
        examples=["val_loss"],
    )
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")
    limit: int = PAGE_LIMIT

    def job_filter(self) -> JobFilter:
        """What the query keeps (the API's list and the dashboard's read it alike)."""
        return JobFilter(
            status=self.status,
            type=self.type,
            kind=self.kind,
            tag=self.tag,
            name_prefix=self.name_prefix,
            dataset=self.dataset,
        )


class OutputOut(BaseModel):
    name: str
    content_type: str
    size_bytes: int
    url: str
    text: str | None = Field(None, description="The content of a text output.")


class ErrorOut(BaseModel):
    type: str
    message: str


class JobOut(BaseModel):
    id: str
    type: JobType
    kind: str
    name: str | None
    tags: list[str]
    notes: str | None
    sweep_id: str | None = Field(None, description="The sweep it is a trial of, if any.")
    params: dict[str, Any]
    status: JobStatus
    progress: ProgressOut
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempt: int
    failures: int = Field(description="Attempts ended by a lost worker or transient error.")
    start_before: datetime | None
    max_run_seconds: float | None
    priority: int
    checkpoint_step: int | None = Field(description="Step of the newest stored checkpoint.")
    worker: str | None
    error: ErrorOut | None
    outputs: list[OutputOut]
    model_id: str | None
    metrics: dict[str, float] = Field(
        description="Run measurements: predict_time and load_time (seconds), model_cache_hit."
    )
    cancel_requested: bool
    webhook: str | None = Field(None, description="The URL told about the job's events.")
    webhook_events_filter: list[WebhookEvent] | None = Field(
        None, description="The events the webhook hears (all four unless the submit chose)."
    )


class JobLogsOut(BaseModel):
    job_id: str
    lines: list[str] = Field(description="The job's own log lines, oldest first (capped).")


class JobList(BaseModel):
    data: list[JobOut]
    next_cursor: str | None


class PageQuery(BaseModel):
    cursor: str | None = None
    limit: int = PAGE_LIMIT


class DatasetOut(BaseModel):
    name: str = Field(description="What a job's `params.dataset` names: a built-in or `ds_…`.")
    title: str
    description: str
    modality: str
    image_size: int | None
    channels: int | None
    count: int = Field(description="Images, characters of text, or tunes.")
    classes: int = Field(
        0, description="Class labels the images carry (a dcgan learns each); 0: unlabelled."
    )
    class_names: list[str] = Field(
        default_factory=list,
        description=(
            "Each class's name, class 0 first (generation's `labels` take a name or its "
            "index): folder names or string labels sorted, by number when all are numbers."
        ),
    )
    class_counts: list[int] = Field(
        default_factory=list, description="Images of each class, in the order of `class_names`."
    )
    size_bytes: int
    builtin: bool
    preview_url: str | None = Field(description="A grid of the first images (uploads).")
    excerpt: str | None = Field(description="The first characters of a corpus.")
    created_at: datetime | None


class DatasetList(BaseModel):
    data: list[DatasetOut]


def _binary_part(schema: dict[str, Any]) -> None:
    """A file part: binary, required, so no ``default: null`` (not a string)."""
    schema.update(type="string", format="binary")
    schema.pop("default", None)


class DatasetForm(BaseModel):
    """Multipart fields of an upload; the file itself goes in the `file` part."""

    # `file` is required (the view says so in its own words); the document says it too.
    model_config = ConfigDict(json_schema_extra={"required": ["file"]})

    title: str = Field("", max_length=200)
    # Plain ints (form fields arrive as text) checked against the allowed values.
    image_size: int = Field(28, description="Images are resized to 28, 32 or 64 px.")
    channels: int = Field(1, description="1 = grayscale, 3 = RGB.")
    file: Any = Field(
        None,
        json_schema_extra=_binary_part,
        description=(
            "A .zip of PNG/JPEG images (labelled: one folder per class), a .npz of uint8 "
            "`images` (labelled: a `labels` array of class numbers or names), a UTF-8 .txt, "
            "or ABC tunes (.abc or a .zip of .abc files)."
        ),
    )

    @field_validator("image_size")
    @classmethod
    def _known_size(cls, value: int) -> int:
        if value not in (28, 32, 64):
            raise ValueError(f"image_size must be 28, 32 or 64, not {value}")
        return value

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: int) -> int:
        if value not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), not {value}")
        return value


class KindOut(BaseModel):
    name: str
    description: str
    modality: str
    train_params_schema: dict[str, Any]
    generate_params_schema: dict[str, Any]


class KindList(BaseModel):
    data: list[KindOut]


class QuotaOut(BaseModel):
    name: str = Field(description="`queued_jobs`, `stored_bytes` or `datasets`.")
    usage: int
    limit: int = Field(description="The owner's quota; 0: none.")
    unit: str = Field(description="`jobs`, `bytes` or `datasets`.")
    reserved: int = Field(
        0,
        description="Held against the limit for what is not stored yet: the estimated "
        "outputs of the owner's unfinished jobs, released as each ends (`stored_bytes`; "
        "0 for the others). A submit is refused when usage + reserved + its estimate would "
        "pass the limit.",
    )


class RateBudgetOut(BaseModel):
    name: str = Field(
        description="`submits` (POST /v1/jobs), `uploads` (POST /v1/datasets) "
        "or `reads` (every other authenticated request)."
    )
    per_minute: int = Field(description="Average requests a minute; 0: unlimited.")
    burst: int = Field(description="Requests allowed at once.")
    remaining: int = Field(description="Requests that could be made now.")
    reset_seconds: int = Field(description="Seconds until one more request is available.")


class UsageOut(BaseModel):
    owner: str
    quotas: list[QuotaOut]
    rate_limits: list[RateBudgetOut]
    max_running_jobs: int = Field(description="Jobs of each type that run at once; more wait.")
    share: float = Field(description="Weight in fair scheduling across owners.")


class Problem(BaseModel):
    """RFC 9457 problem details; ``type`` is stable, ``detail`` says what to fix."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] | None = None


def problems(*statuses: int) -> dict[str, type[Problem]]:
    """``Response(**problems(409))``: the errors a view itself raises. Those every route of
    its kind can give (401, 400/413 on a body, 404 on a path id, 422 on a query, 414, 429)
    ``api.contract`` and ``api.limits_doc`` add to the document."""
    return {f"HTTP_{status}": Problem for status in statuses}


def timestamp(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def optional_timestamp(value: float | None) -> datetime | None:
    return timestamp(value) if value is not None else None
