"""Prometheus metrics of the workers. Job processes write them (multiprocess mode); the
Celery parent of each worker serves ``/metrics`` for all of its processes.

Labels take only values Atelier owns: job type, kind, final status, GPU index.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

from ..shared.jobs import Job, JobStatus
from ..shared.queue_metrics import QueueDepthCollector
from ..shared.redis_client import redis_for
from ..shared.settings import Settings
from .gpu import gpu_memory_used

log = logging.getLogger(__name__)

# From a second to a week: generation jobs take seconds, training jobs hours to days.
DURATION_BUCKETS = (
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    7200,
    14400,
    28800,
    57600,
    86400,
    172800,
    345600,
    604800,
)

JOBS_FINISHED = Counter(
    "atelier_jobs_finished_total",
    "Job attempts that ended, by how they ended.",
    ["type", "kind", "status"],
)
JOBS_RUNNING = Gauge(
    "atelier_jobs_running",
    "Jobs running in this worker's processes.",
    ["type", "kind"],
    multiprocess_mode="livesum",
)
QUEUE_WAIT = Histogram(
    "atelier_job_queue_wait_seconds",
    "From submit to the start of the first attempt.",
    ["type", "kind"],
    buckets=DURATION_BUCKETS,
)
RUN_TIME = Histogram(
    "atelier_job_run_seconds",
    "Length of one attempt, by how it ended.",
    ["type", "kind", "status"],
    buckets=DURATION_BUCKETS,
)
PREPARED_CORPORA = Counter(
    "atelier_prepared_corpora_total",
    "Built-in corpora a job read: from this machine's disk (local), from object storage "
    "(fetched), or built here and stored for every worker (built).",
    ["corpus", "source"],
)
EXPORTS = Counter(
    "atelier_exports_total",
    "Model exports a worker made (ready), could not make (failed), or made for a model "
    "deleted meanwhile (discarded).",
    ["kind", "format", "outcome"],
)
TRAINING_STEPS = Counter("atelier_training_steps_total", "Optimizer steps taken.", ["kind"])
GENERATED_IMAGES = Counter(
    "atelier_generated_images_total", "Images written by generation jobs.", ["kind"]
)
GENERATED_TOKENS = Counter(
    "atelier_generated_tokens_total", "Tokens written by generation jobs.", ["kind"]
)
REAPER_ACTION_NAMES = (
    "requeued", "failed", "expired", "sent", "resent", "purged", "stopped", "tidied"
)
"""The ``action`` labels of ``REAPER_ACTIONS``, and the fields of ``reaper.ReapReport``."""
REAPER_ACTIONS = Counter(
    "atelier_reaper_actions_total",
    "What reapers did: requeued or failed a job whose worker died, expired a job past its "
    "start deadline, sent a due retry's message, re-sent a lost message, or deleted a "
    "finished job past its retention (purged), stopped a losing sweep trial, or settled "
    "a storage tidy an attempt had put off (tidied).",
    ["action"],
)
WORKER_UP = Gauge(
    "atelier_worker_up", "1 while this worker process serves jobs.", multiprocess_mode="liveall"
)
GPU_MEMORY = Gauge(
    "atelier_gpu_memory_used_bytes",
    "GPU memory in use, per visible GPU.",
    ["gpu"],
    multiprocess_mode="liveall",
)


class MetricsObserver:
    """The runner's hook for metrics: told when an attempt starts and how it ended."""

    def started(self, job: Job) -> float:
        JOBS_RUNNING.labels(job.type.value, job.kind).inc()
        if job.attempt == 1 and job.started_at is not None:
            QUEUE_WAIT.labels(job.type.value, job.kind).observe(
                max(job.started_at - job.created_at, 0.0)
            )
        return time.monotonic()

    def finished(
        self, job: Job, status: JobStatus | None, started: float, metrics: dict[str, float]
    ) -> None:
        JOBS_RUNNING.labels(job.type.value, job.kind).dec()
        outcome = (status or JobStatus.QUEUED).value
        JOBS_FINISHED.labels(job.type.value, job.kind, outcome).inc()
        RUN_TIME.labels(job.type.value, job.kind, outcome).observe(time.monotonic() - started)
        if "images" in metrics:
            GENERATED_IMAGES.labels(job.kind).inc(metrics["images"])
        if "tokens" in metrics:
            GENERATED_TOKENS.labels(job.kind).inc(metrics["tokens"])
        for index, used in gpu_memory_used().items():
            GPU_MEMORY.labels(index).set(used)


def preinitialise(kinds: list[str], types: list[str]) -> None:
    """Export zero-valued series at start, so rates and alerts see them before any job."""
    for action in REAPER_ACTION_NAMES:
        REAPER_ACTIONS.labels(action)
    for kind in kinds:
        for fmt in ("keras", "savedmodel"):
            for outcome in ("ready", "failed", "discarded"):
                EXPORTS.labels(kind, fmt, outcome)
        TRAINING_STEPS.labels(kind)
        GENERATED_IMAGES.labels(kind)
        GENERATED_TOKENS.labels(kind)
        for job_type in types:
            QUEUE_WAIT.labels(job_type, kind)
            for status in JobStatus:
                if status.is_terminal() or status is JobStatus.QUEUED:
                    JOBS_FINISHED.labels(job_type, kind, status.value)


def serve(settings: Settings) -> None:
    """The worker's ``/metrics``: every process of this worker, plus queue depth."""
    port, directory = settings.worker_metrics_port, settings.metrics_dir
    if not port or not directory:
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    registry.register(QueueDepthCollector(redis_for(settings), settings))
    start_http_server(port, addr=settings.worker_metrics_bind, registry=registry)
    WORKER_UP.set(1)
    log.info("worker metrics on %s:%d/metrics", settings.worker_metrics_bind, port)
