"""Celery's tasks: thin adapters that hand a message's ids to the worker: a job's id and
queue (``workers.worker.Worker.handle``), a model's id and an export format
(``Worker.export``)."""

from __future__ import annotations

from celery import Celery, Task

from ..shared.queue import EXPORT_MODEL_TASK, RUN_JOB_TASK
from .worker import Worker


def register_tasks(app: Celery, worker: Worker) -> None:
    @app.task(name=RUN_JOB_TASK, bind=True, ignore_result=True)
    def run_job(task: Task, job_id: str) -> None:  # type: ignore[type-arg]
        worker.handle(job_id, (task.request.delivery_info or {}).get("routing_key"))

    @app.task(name=EXPORT_MODEL_TASK, ignore_result=True)
    def export_model(model_id: str, export_format: str) -> None:
        worker.export(model_id, export_format)
