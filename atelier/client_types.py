"""The Python client's types: the API's answers as ``TypedDict``s, and its event streams'
parser (``Client.events``). ``atelier.client`` re-exports them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, TypedDict

Json = dict[str, Any]


class Progress(TypedDict):
    """``phase`` is ``preparing`` (with ``label``, ``items_done`` of ``items_total``
    ``unit``, and ``eta_seconds`` of the phase) until step 1, then ``training``."""

    step: int
    total: int
    fraction: float
    eta_seconds: float | None
    metrics: dict[str, float]
    updated_at: str | None
    phase: str | None
    label: str | None
    items_done: int | None
    items_total: int | None
    unit: str | None


class Output(TypedDict):
    name: str
    url: str
    content_type: str
    size_bytes: int
    text: str | None


class JobErrorInfo(TypedDict):
    """Why a job failed: ``type`` names the error (``WorkerLost``, ``PermanentJobError``...)."""

    type: str
    message: str


class Job(TypedDict):
    """A job as ``GET /v1/jobs/{id}`` answers (timestamps are ISO 8601, UTC)."""

    id: str
    type: str
    kind: str
    name: str | None
    tags: list[str]
    notes: str | None
    sweep_id: str | None
    params: Json
    status: str
    progress: Progress
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempt: int
    failures: int
    start_before: str | None
    max_run_seconds: float | None
    priority: int
    checkpoint_step: int | None
    worker: str | None
    error: JobErrorInfo | None
    outputs: list[Output]
    model_id: str | None
    metrics: dict[str, float]
    cancel_requested: bool
    webhook: str | None
    webhook_events_filter: list[str] | None


class ModelAncestor(TypedDict):
    """A model another was trained from (``init_model``)."""

    model_id: str
    job_id: str
    steps: int
    name: str | None


class Model(TypedDict):
    id: str
    name: str | None
    version: int | None
    kind: str
    config: Json
    params: Json
    """What its training job ran with; a job continuing it inherits them."""
    dataset: str
    steps: int
    metrics: dict[str, float]
    sample_grid_url: str | None
    source_job_id: str
    parent: ModelAncestor | None
    lineage: list[ModelAncestor]
    """Its parent first, then the parent's parent, ..."""
    created_at: str


class Dataset(TypedDict):
    name: str
    title: str
    modality: str
    count: int
    size_bytes: int
    builtin: bool
    image_size: int | None
    channels: int | None
    classes: int
    """Class labels the images carry (0: none)."""
    class_names: list[str]
    """Each class's name, class 0 first."""
    class_counts: list[int]
    """Images of each class, in the order of ``class_names``."""
    description: str
    preview_url: str | None
    """A grid of the first images (uploads)."""
    excerpt: str | None
    """The first characters of a corpus."""
    created_at: str | None


class MetricPoint(TypedDict):
    step: int
    time: float
    metrics: dict[str, float]


class ComparedRun(TypedDict):
    """One run of a comparison: what sets it apart, how it learned, what it drew."""

    id: str
    name: str | None
    tags: list[str]
    type: str
    kind: str
    status: str
    params: Json
    metrics: dict[str, float]
    progress_metrics: dict[str, float]
    step: int
    total: int
    series: dict[str, list[MetricPoint]]
    samples: list[Output]


class Comparison(TypedDict):
    """``GET /v1/jobs/compare``: the runs in the order asked, and the parameters (dotted
    keys for nested ones) whose values differ between them."""

    data: list[ComparedRun]
    differing_params: list[str]


class EarlyStopping(TypedDict):
    """The median rule of a sweep: ``metric`` (``-name``: larger is better), after
    ``min_fraction`` of a trial's steps, with ``min_trials`` others to compare."""

    metric: str
    min_fraction: float
    min_trials: int


class SweepTrial(TypedDict):
    """One trial of a sweep: its job, the values it tries, how it is doing."""

    index: int
    job_id: str
    values: Json
    params: Json | None
    status: str | None
    metrics: dict[str, float]
    progress_metrics: dict[str, float]
    progress: Progress | None
    """The job's steps, or its data being prepared; None once the job is deleted."""
    stopped_early: str | None
    """Why the median rule stopped it, if it did."""


class Sweep(TypedDict):
    """``GET /v1/sweeps/{id}``: the base job, the space and the trials, ranked by ``metric``
    (trial order without one)."""

    id: str
    name: str | None
    created_at: str
    base: Json
    space: Json
    trial_count: int
    status_counts: dict[str, int]
    early_stopping: EarlyStopping | None
    metric: str | None
    trials: list[SweepTrial]


class SweepSummary(TypedDict):
    id: str
    name: str | None
    created_at: str
    trial_count: int
    status_counts: dict[str, int]


class Event(TypedDict):
    id: str
    event: str
    data: Json


def parse_sse(lines: Iterable[str]) -> Iterator[Event]:
    """Server-sent events from a stream's lines (the HTML standard's rules, as far as
    Atelier's streams use them: ``id``, ``event``, one ``data`` line, comments)."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                yield Event(
                    id=fields.get("id", ""),
                    event=fields.get("event", "message"),
                    data=json.loads(fields["data"]),
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
