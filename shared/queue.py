"""The one Celery app, built from settings. Messages carry a job id and nothing else.

Why these keys:
- ``task_acks_late=False`` and ``worker_disable_prefetch``: the broker never redelivers a
  long job (Redis' visibility timeout would run a 3-hour job two or three times), and an
  idle worker takes the next message instead of a busy one hoarding it. The job record in
  Redis, not the broker message, is what says whether a job still has to run.
- JSON only: a message is ``run_job("job_...")``; workers re-read the record.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery

from .jobs import JobType
from .redis_client import SentinelUrl, is_sentinel_url
from .settings import Settings

RUN_JOB_TASK = "atelier.run_job"
EXPORT_MODEL_TASK = "atelier.export_model"
"""``export_model(model_id, format)``: make a model's export (``shared.exports``)."""


def make_celery(settings: Settings) -> Celery:
    app = Celery("atelier", set_as_current=False)
    broker_url, transport_options = broker_for(settings)
    app.conf.update(
        broker_url=broker_url,
        broker_connection_retry_on_startup=True,
        # Keep reconnecting through a Redis restart instead of exiting the worker.
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        task_default_queue=settings.train_queue,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_transport_options=transport_options,
        # A publish rides out a failover (sentinels elect a primary in ~10 s) before the
        # submit gives up with a 503; the reaper re-sends any message lost anyway.
        task_publish_retry_policy={
            "max_retries": 6,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 2.0,
        },
    )
    return app


def broker_for(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The broker URL and transport options kombu needs: a ``redis+sentinel://`` URL
    becomes kombu's ``sentinel://…;sentinel://…`` with the service as ``master_name``."""
    url = settings.effective_broker_url
    options: dict[str, Any] = {"visibility_timeout": 12 * 3600}
    if not is_sentinel_url(url):
        return url, options
    where = SentinelUrl.parse(url)
    options["master_name"] = where.service
    if settings.redis_sentinel_password:
        options["sentinel_kwargs"] = {"password": settings.redis_sentinel_password}
    return where.kombu_url(), options


def queue_for(settings: Settings, job_type: JobType) -> str:
    return settings.train_queue if job_type is JobType.TRAIN else settings.generate_queue


def enqueue(app: Celery, settings: Settings, job_id: str, job_type: JobType) -> None:
    app.send_task(RUN_JOB_TASK, args=[job_id], queue=queue_for(settings, job_type))


def enqueue_export(app: Celery, settings: Settings, model_id: str, export_format: str) -> None:
    """On the generate queue: an export takes seconds, as a generation does."""
    app.send_task(
        EXPORT_MODEL_TASK, args=[model_id, export_format], queue=settings.generate_queue
    )


# kombu's Redis transport splits a queue into one list per priority step; the default
# steps are 0, 3, 6 and 9, and step 0 keeps the bare queue name.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def queue_length(client: redis.Redis, queue: str) -> int:
    """Messages waiting in ``queue`` (not yet taken by a worker)."""
    pipe = client.pipeline(transaction=False)
    for suffix in _PRIORITY_SUFFIXES:
        pipe.llen(queue + suffix)
    return sum(int(n) for n in pipe.execute())
