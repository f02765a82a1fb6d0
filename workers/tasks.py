"""Celery's task: a thin adapter that hands a message's job id and queue to the worker
(``workers.worker.Worker.handle``)."""

from __future__ import annotations

from celery import Celery, Task

from ..shared.queue import RUN_JOB_TASK
from .worker import Worker


def register_tasks(app: Celery, worker: Worker) -> None:
    @app.task(name=RUN_JOB_TASK, bind=True, ignore_result=True)
    def run_job(task: Task, job_id: str) -> None:  # type: ignore[type-arg]
        worker.handle(job_id, (task.request.delivery_info or {}).get("routing_key"))
