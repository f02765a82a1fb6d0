"""Runs one job: claim it, dispatch to its kind, record the outcome. No Celery here, so
it is tested by calling ``JobRunner.run`` directly."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import time

import redis

from shared.errors import JobCanceled, PermanentJobError
from shared.jobs import Job, JobErrorInfo, JobStatus, JobStore, JobType
from shared.kinds import KINDS
from shared.models import ModelRecord, ModelStore
from shared.settings import Settings
from shared.storage import ObjectStore, make_object_store
from workers.kinds.base import JobContext, ModelKind

log = logging.getLogger(__name__)


class JobRunner:
    """One per worker process; holds the loaded kinds (and so their cached models)."""

    def __init__(self, settings: Settings, objects: ObjectStore | None = None) -> None:
        self.settings = settings
        client = redis.Redis.from_url(settings.redis_url, health_check_interval=30)
        self.jobs = JobStore(client)
        self.models = ModelStore(client)
        self.objects = objects or make_object_store(settings)
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self._kinds: dict[str, ModelKind] = {}

    def kind(self, name: str) -> ModelKind:
        """The kind's plug-in, imported and set up on first use in this process."""
        if name not in self._kinds:
            module_name, _, class_name = KINDS[name].implementation.partition(":")
            plugin_class = getattr(importlib.import_module(module_name), class_name)
            plugin: ModelKind = plugin_class(self.settings)
            plugin.setup()
            self._kinds[name] = plugin
        return self._kinds[name]

    def run(self, job_id: str) -> JobStatus | None:
        """Run the job if it is still queued; returns its final status, or None if skipped."""
        job = self.jobs.claim(job_id, self.worker_name)
        if job is None:
            current = self.jobs.get(job_id)
            log.info("skip %s: %s", job_id, current.status if current else "no such job")
            return None
        log.info("run %s (%s %s, attempt %d)", job.id, job.type, job.kind, job.attempt)
        ctx = JobContext(job, self.settings, self.jobs, self.objects)
        try:
            return self._dispatch(job, ctx)
        except JobCanceled as exc:
            log.info("%s canceled: %s", job.id, exc)
            self.jobs.finish(job.id, JobStatus.CANCELED)
            return JobStatus.CANCELED
        except Exception as exc:
            log.exception("%s failed", job.id)
            error = JobErrorInfo(type=type(exc).__name__, message=str(exc) or repr(exc))
            self.jobs.finish(job.id, JobStatus.FAILED, error=error)
            return JobStatus.FAILED
        finally:
            ctx.uploader.close()

    def _dispatch(self, job: Job, ctx: JobContext) -> JobStatus:
        plugin = self.kind(job.kind)
        if job.type is JobType.TRAIN:
            ctx.model_id = ModelStore.new_id()
            result = plugin.train(job.params, ctx)
            model = self.models.save(
                ModelRecord(
                    id=ctx.model_id,
                    owner=job.owner,
                    kind=job.kind,
                    config=result.config,
                    weights_key=result.weights_key,
                    samples=result.samples,
                    metrics=result.metrics,
                    source_job_id=job.id,
                    dataset=result.dataset,
                    steps=result.steps,
                    created_at=time.time(),
                )
            )
            self.jobs.finish(job.id, JobStatus.SUCCEEDED, model_id=model.id, metrics=result.metrics)
        else:
            source = self.models.get_for_owner(job.params["model_id"], job.owner)
            if source is None:
                raise PermanentJobError(f"model {job.params['model_id']} no longer exists")
            generated = plugin.generate(source, job.params, ctx)
            self.jobs.finish(
                job.id, JobStatus.SUCCEEDED, outputs=generated.outputs, metrics=generated.metrics
            )
        return JobStatus.SUCCEEDED
