"""The worker's Celery app: ``celery -A atelier.workers.celery_app worker`` (``atelier
worker`` builds that command). An adapter: the worker's life is ``workers.worker``; this
module connects Celery's signals and task to it. Importing it stays cheap and
TensorFlow-free.

- ``worker_ready`` (parent): ``Worker.boot`` (reaper, webhook router, idle exit, metrics).
- ``worker_shutting_down`` (parent): ``Worker.drain`` flags this process generation.
- The task (``workers.tasks``): ``Worker.handle`` in a job process, which also installs
  that process's SIGTERM drain at its first message (``Worker._drain_on_sigterm`` says why
  not at ``worker_process_init``).
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_ready, worker_shutting_down
from celery.worker import state as worker_state

from ..shared.jobs import JobType
from ..shared.kinds import load_kind_plugins
from ..shared.logs import configure_logging
from ..shared.queue import enqueue, make_celery
from ..shared.settings import Settings
from .tasks import register_tasks
from .webhook_tasks import register_webhook_tasks, send_message
from .worker import Worker

settings = Settings.from_env()
configure_logging(settings)
app = make_celery(settings)
load_kind_plugins(settings.kind_plugins)


def _send(job_id: str, job_type: JobType) -> None:
    enqueue(app, settings, job_id, job_type)


def _consumes(queue: str) -> bool:
    """Whether this worker takes ``queue`` (``--queues``)."""
    queues = app.amqp.queues
    return queue in (queues.consume_from or queues)


def _holds_a_job() -> bool:
    """Whether this worker has a message it took and has not finished with."""
    return bool(worker_state.reserved_requests or worker_state.active_requests)


worker = Worker(
    settings,
    send=_send,
    send_webhook=lambda delivery_id: send_message(app, settings, delivery_id),
    consumes=_consumes,
    holds_a_job=_holds_a_job,
)
register_tasks(app, worker)
register_webhook_tasks(app, settings)


@worker_ready.connect
def boot(sender: Any = None, **_: Any) -> None:
    worker.boot()


@worker_shutting_down.connect
def drain(sender: Any = None, **_: Any) -> None:
    worker.drain(str(sender))
