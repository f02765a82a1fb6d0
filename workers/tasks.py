"""Celery tasks: thin wrappers that hand a job id to the runner."""

from __future__ import annotations

from celery import Celery

from shared.queue import RUN_JOB_TASK
from shared.settings import Settings
from workers.runner import JobRunner

_runner: JobRunner | None = None


def runner(settings: Settings) -> JobRunner:
    """The process's runner, built on first use: after the fork, in the child that runs
    jobs, so TensorFlow is never initialised in the Celery parent."""
    global _runner
    if _runner is None:
        _runner = JobRunner(settings)
    return _runner


def register_tasks(app: Celery, settings: Settings) -> None:
    @app.task(name=RUN_JOB_TASK, ignore_result=True)
    def run_job(job_id: str) -> None:
        runner(settings).run(job_id)
