"""Queue depth, read from Redis at scrape time by the API and by every worker."""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .jobs import JobStore, JobType
from .queue import queue_length
from .redis_keys import KEYS
from .settings import Settings


class QueueDepthCollector(Collector):
    """``atelier_queue_depth{queue, state}``: messages waiting in the broker list
    (``waiting``) and jobs being run (``running``). Workers do not prefetch, so no job is
    reserved by a worker without running; jobs waiting out a retry backoff are in neither
    until the reaper sends them."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._redis = client
        self._jobs = JobStore(client)
        self._queues = {
            JobType.TRAIN: settings.train_queue,
            JobType.GENERATE: settings.generate_queue,
        }

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "atelier_queue_depth",
            "Jobs per queue: waiting for a worker, or running.",
            labels=["queue", "state"],
        )
        running = self._jobs.running_by_type()
        for job_type, queue in self._queues.items():
            family.add_metric([queue, "waiting"], queue_length(self._redis, queue))
            family.add_metric([queue, "running"], running.get(job_type, 0))
        yield family
        expired = GaugeMetricFamily(
            "atelier_leases_expired",
            "Running jobs whose worker stopped renewing the lease and that no reaper has "
            "requeued yet (should be 0 within seconds).",
        )
        expired.add_metric([], float(self._jobs.expired_lease_count()))
        yield expired
        pending = GaugeMetricFamily(
            "atelier_webhook_deliveries_pending",
            "Webhook deliveries neither delivered nor given up yet: about to be sent, or "
            "waiting out a retry's backoff (a growing number: a receiver keeps failing).",
        )
        pending.add_metric([], float(self._redis.zcard(KEYS.webhooks_due)))
        yield pending
