"""The one Celery app, built from settings. Messages carry a job id and nothing else.

Why these keys:
- ``task_acks_late=False`` and ``worker_disable_prefetch``: the broker never redelivers a
  long job (Redis' visibility timeout would run a 3-hour job two or three times), and an
  idle worker takes the next message instead of a busy one hoarding it. The job record in
  Redis, not the broker message, is what says whether a job still has to run.
- JSON only: a message is ``run_job("job_...")``; workers re-read the record.
"""

from __future__ import annotations

import redis
from celery import Celery

from atelier.shared.jobs import JobType
from atelier.shared.settings import Settings

RUN_JOB_TASK = "atelier.run_job"


def make_celery(settings: Settings) -> Celery:
    app = Celery("atelier", set_as_current=False)
    app.conf.update(
        broker_url=settings.effective_broker_url,
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
        broker_transport_options={"visibility_timeout": 12 * 3600},
    )
    return app


def queue_for(settings: Settings, job_type: JobType) -> str:
    return settings.train_queue if job_type is JobType.TRAIN else settings.generate_queue


def enqueue(app: Celery, settings: Settings, job_id: str, job_type: JobType) -> None:
    app.send_task(RUN_JOB_TASK, args=[job_id], queue=queue_for(settings, job_type))


# kombu's Redis transport splits a queue into one list per priority step; the default
# steps are 0, 3, 6 and 9, and step 0 keeps the bare queue name.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def queue_length(client: redis.Redis, queue: str) -> int:
    """Messages waiting in ``queue`` (not yet taken by a worker)."""
    pipe = client.pipeline(transaction=False)
    for suffix in _PRIORITY_SUFFIXES:
        pipe.llen(queue + suffix)
    return sum(int(n) for n in pipe.execute())
