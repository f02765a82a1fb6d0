"""The clients a request needs, built once per process by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery

from ..shared.auth import ApiKeyStore
from ..shared.datasets import DatasetStore
from ..shared.durability import Durability
from ..shared.idempotency import IdempotencyStore
from ..shared.job_logs import JobLogs
from ..shared.jobs import JobStore
from ..shared.models import ModelStore
from ..shared.queue import make_celery
from ..shared.quotas import Quotas
from ..shared.rate_leases import ReadLeases
from ..shared.rate_limits import RateLimiter
from ..shared.redis_client import connect
from ..shared.settings import Settings
from ..shared.storage import ObjectStore, make_object_store
from .event_hub import EventHub, LongRequests
from .job_cache import JobBodies
from .request_local import this_app
from .upload_gate import UploadGate

EXTENSION_NAME = "atelier"


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: redis.Redis
    jobs: JobStore
    models: ModelStore
    api_keys: ApiKeyStore
    objects: ObjectStore
    celery: Celery
    idempotency: IdempotencyStore
    datasets: DatasetStore
    logs: JobLogs
    rate_limiter: RateLimiter
    read_leases: ReadLeases
    quotas: Quotas
    hub: EventHub
    durability: Durability
    long_requests: LongRequests
    uploads: UploadGate
    job_bodies: JobBodies

    @classmethod
    def build(cls, settings: Settings) -> Services:
        # Patient for a failover's length, then a 503 (``api.durability``).
        client = connect(
            settings.redis_url,
            sentinel_password=settings.redis_sentinel_password,
            patience_seconds=settings.redis_failover_wait_seconds,
            connect_timeout=1.0,
        )
        hub = EventHub(client)
        bodies = JobBodies(poll_cache_seconds(settings), hub.live)
        hub.listen_for_changes(bodies)
        return cls(
            settings=settings,
            redis=client,
            jobs=JobStore(client),
            models=ModelStore(client),
            api_keys=ApiKeyStore(client, cache_seconds=settings.auth_cache_seconds),
            objects=make_object_store(settings, meter_with=client),
            celery=make_celery(settings),
            idempotency=IdempotencyStore(client),
            datasets=DatasetStore(client),
            logs=JobLogs(client, settings.job_log_lines),
            rate_limiter=RateLimiter(client),
            read_leases=ReadLeases(client, settings.read_lease),
            quotas=Quotas(client),
            hub=hub,
            durability=Durability(
                client, settings.redis_min_replicas, settings.redis_replica_wait_seconds
            ),
            long_requests=LongRequests(
                settings.api_long_requests, settings.api_long_requests_per_owner
            ),
            uploads=UploadGate(settings.api_concurrent_uploads),
            job_bodies=bodies,
        )


def poll_cache_seconds(settings: Settings) -> float:
    """How long a process may show a polled job's kept body (``api.job_cache``): the
    setting, and with S3 a tenth of a presigned URL's life at most, so a URL from a kept
    body is never more than that older than a fresh one."""
    if settings.storage == "s3":
        return min(settings.poll_cache_seconds, settings.s3_presign_expires_seconds / 10)
    return settings.poll_cache_seconds


def services() -> Services:
    found: Services = this_app().extensions[EXTENSION_NAME]
    return found
