"""The worker's Celery app: ``celery -A workers.celery_app worker`` (``atelier worker``
builds that command). Importing this module must stay cheap and TensorFlow-free.

Hooks, not lines in the runner:
- ``worker_ready`` (parent): start the reaper thread, and in a worker that serves the
  webhooks queue the webhook router (``workers.webhook_router``); in a ``--once`` worker,
  the idle exit (``workers.idle_exit``).
- ``worker_shutting_down`` (parent): flag this process generation as draining, so its
  running job checkpoints and goes back to the queue at once instead of being waited on or
  killed. The flag names the generation, not the node: a worker restarted under the same
  name starts clean.

A job process's SIGTERM handler (drain the running job) is installed with its runner, at
its first task (``workers.tasks.drain_on_sigterm`` says why not here).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import redis
from celery.signals import worker_ready, worker_shutting_down
from celery.worker import state as worker_state

from atelier.shared.jobs import JobStore, JobType, RetryPolicy
from atelier.shared.kinds import KINDS, load_kind_plugins
from atelier.shared.lifecycle import sweep_retention
from atelier.shared.logs import configure_logging
from atelier.shared.models import ModelStore
from atelier.shared.queue import enqueue, make_celery, queue_for, queue_length
from atelier.shared.redis_client import connect_quickly, redis_for
from atelier.shared.settings import Settings
from atelier.shared.storage import ObjectStore, make_object_store
from atelier.workers.idle_exit import IdleExit
from atelier.workers.metrics import preinitialise, serve
from atelier.workers.reaper import ReaperThread
from atelier.workers.tasks import GENERATION, register_tasks
from atelier.workers.webhook_tasks import register_webhook_tasks, send_message

settings = Settings.from_env()
configure_logging(settings)
app = make_celery(settings)
register_tasks(app, settings)
register_webhook_tasks(app, settings)
load_kind_plugins(settings.kind_plugins)
DRAIN_FLAG_SECONDS = 600


def _send(job_id: str, job_type: str) -> None:
    enqueue(app, settings, job_id, JobType(job_type))


def _retention(client: redis.Redis, jobs: JobStore) -> Callable[[int], int] | None:
    """The retention sweep, with an object store opened on its first use (the Celery
    parent must start while storage is away); None when retention is off."""
    if settings.retention_days <= 0:
        return None
    models = ModelStore(client)
    stores: list[ObjectStore] = []

    def sweep(batch: int) -> int:
        if not stores:
            stores.append(make_object_store(settings))
        return sweep_retention(jobs, models, stores[0], settings.retention_days, batch)

    return sweep


@worker_ready.connect
def start_reaper_and_metrics(sender: Any = None, **_: Any) -> None:
    client = redis_for(settings)
    jobs = JobStore(client, retry=RetryPolicy.from_settings(settings))

    def waiting(job_type: str) -> int:
        return queue_length(client, queue_for(settings, JobType(job_type)))

    ReaperThread(jobs, settings, _send, waiting, _retention(client, jobs)).start()
    if _serves(settings.webhook_queue):
        _start_webhook_router(client)
    if settings.exit_after_job and settings.once_idle_seconds > 0:
        IdleExit(settings.once_idle_seconds, _holds_a_job, _stop_warmly).start()
    preinitialise(list(KINDS), [t.value for t in JobType])
    serve(settings)


def _holds_a_job() -> bool:
    """Whether this worker has a message it took and has not finished with."""
    return bool(worker_state.reserved_requests or worker_state.active_requests)


def _stop_warmly() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown: exit 0


def _serves(queue: str) -> bool:
    """Whether this worker consumes ``queue`` (``--queues``)."""
    queues = app.amqp.queues
    return queue in (queues.consume_from or queues)


def _start_webhook_router(client: redis.Redis) -> None:
    # Imported here: only a webhooks worker builds the API's presentation of a job.
    from atelier.workers.webhook_router import RouterThread, WebhookRouter, api_renderer

    router = WebhookRouter(
        client,
        settings,
        api_renderer(settings),
        lambda delivery_id: send_message(app, settings, delivery_id),
    )
    RouterThread(router).start()


@worker_shutting_down.connect
def flag_draining(sender: Any = None, **_: Any) -> None:
    """One quick try, no retries: Celery runs this inside its signal handler, before it
    stops, so a Redis that is away would hold the shutdown for ``connect``'s ~30 s of
    retries. An unreachable Redis cannot take the flag anyway; the job process drains on
    its own SIGTERM, or its lease hands the job on."""
    log = logging.getLogger(__name__)
    quick = connect_quickly(settings.redis_url, sentinel_password=settings.redis_sentinel_password)
    try:
        JobStore(quick).mark_draining(GENERATION, DRAIN_FLAG_SECONDS)
    except redis.RedisError as exc:
        log.warning("%s could not flag its drain (%s); stopping anyway", sender, exc)
        return
    log.info("%s (generation %s) draining: running jobs checkpoint and requeue", sender, GENERATION)
