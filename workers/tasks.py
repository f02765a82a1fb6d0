"""Celery tasks: thin wrappers that hand a job id to the runner."""

from __future__ import annotations

import os
import secrets
import signal
import socket
from types import FrameType

from celery import Celery, Task

from atelier.shared.jobs import JobType
from atelier.shared.queue import RUN_JOB_TASK, enqueue, queue_for
from atelier.shared.settings import Settings
from atelier.workers.context import PROCESS_DRAINING
from atelier.workers.runner import JobRunner

_runner: JobRunner | None = None
QUEUE_TYPES: dict[str | None, JobType] = {}

GENERATION = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
"""This worker process generation: made when the Celery parent imports this module, so
its pool children (forked from it) share it and a restarted worker, even one with the same
node name, never does. Its draining flag is keyed by it."""


def runner(settings: Settings, app: Celery) -> JobRunner:
    """The process's runner, built on first use: after the fork, in the child that runs
    jobs, so TensorFlow is never initialised in the Celery parent."""
    global _runner
    if _runner is None:

        def wake(job_id: str, job_type: JobType) -> None:
            enqueue(app, settings, job_id, job_type)

        _runner = JobRunner(settings, wake=wake)
        drain_on_sigterm()
    return _runner


def drain_on_sigterm() -> None:
    """In a job process: SIGTERM during a job means checkpoint, requeue, then exit;
    SIGTERM while idle goes to the handler it replaced (billiard's clean exit).

    Installed with the runner, at the first task, not in ``worker_process_init``: billiard
    resets a child's signal handlers *after* its initializer runs
    (``billiard.pool.Worker.after_fork``), so a handler set there never fired and a stopped
    worker's job lost every step since its last checkpoint."""
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: FrameType | None) -> None:
        if _runner is not None and _runner.busy:
            PROCESS_DRAINING.set()
            return
        if callable(previous):
            previous(signum, frame)
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, handler)


def register_tasks(app: Celery, settings: Settings) -> None:
    # The queue a message came from names its job type: no read of the named job needed.
    QUEUE_TYPES.update({queue_for(settings, t): t for t in JobType})

    @app.task(name=RUN_JOB_TASK, bind=True, ignore_result=True)
    def run_job(task: Task, job_id: str) -> None:  # type: ignore[type-arg]
        queue = (task.request.delivery_info or {}).get("routing_key")
        outcome = runner(settings, app).run(job_id, GENERATION, QUEUE_TYPES.get(queue))
        if settings.exit_after_job and outcome is not None:
            # One job per worker (a Kubernetes Job): ask the Celery parent for a warm
            # shutdown; it takes no new message, so nothing is left half-received.
            os.kill(os.getppid(), signal.SIGTERM)
