"""Runs one job: claim it, dispatch to its kind, record the outcome. No Celery here, so
it is tested by calling ``JobRunner.run`` directly."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions
import redis

from ..shared.datasets import DatasetStore
from ..shared.durability import Durability
from ..shared.errors import (
    AtelierError,
    JobCanceled,
    JobPreempted,
    LeaseLost,
    PermanentJobError,
    TransientJobError,
)
from ..shared.exports import ExportStore
from ..shared.job_logs import JobLogs
from ..shared.jobs import Job, JobErrorInfo, JobStatus, JobStore, JobType, RetryPolicy
from ..shared.kinds import KINDS, load_kind_plugins
from ..shared.logs import JOB_ID, OWNER
from ..shared.models import ModelRecord, ModelStore
from ..shared.redis_client import redis_for
from ..shared.settings import Settings
from ..shared.storage import ObjectLayout, ObjectStore, make_object_store
from ..shared.storage_tidy import PutOffTidies, PutOffTidy
from .context import JobContext
from .kinds.base import ModelKind
from .metrics import MetricsObserver
from .prepared import PreparedCorpora
from .settling import durable_record, finish_surely
from .uploads import PatientReads, patiently

log = logging.getLogger(__name__)

# Failures that may not recur: a service was briefly away. Everything else is permanent.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientJobError,
    redis.ConnectionError,
    redis.TimeoutError,
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
)


class JobRunner:
    """One per worker process; holds the loaded kinds (and so their cached models)."""

    def __init__(
        self,
        settings: Settings,
        objects: ObjectStore | None = None,
        wake: Callable[[str, JobType], None] | None = None,
    ) -> None:
        """``wake(job_id, job_type)`` sends a wake-up message (the Celery task passes its
        enqueue): used when a running slot frees while a wake-up is owed."""
        self.settings = settings
        self._wake = wake
        client = redis_for(settings)
        self.durability = Durability(
            client, settings.redis_min_replicas, settings.redis_replica_wait_seconds
        )
        load_kind_plugins(settings.kind_plugins)
        self.jobs = JobStore(client, retry=RetryPolicy.from_settings(settings))
        self.models = ModelStore(client)
        self.exports = ExportStore(client)
        self.datasets = DatasetStore(client)
        self.logs = JobLogs(client, settings.job_log_lines)
        self.tidies = PutOffTidies(client)
        # Patient from the start: a store that cannot be reached when the first job arrives
        # would make the task raise before the claim, and its message would be gone.
        budget = settings.upload_retry_seconds
        self.objects = PatientReads(
            objects
            or patiently(
                # Metered: every object a job stores or deletes counts to its owner's
                # stored-bytes quota (shared.storage_usage).
                lambda: make_object_store(settings, meter_with=client),
                "opening storage",
                budget,
            ),
            budget,
        )
        self.corpora = PreparedCorpora(client, self.objects, settings.data_dir / "cache")
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self.busy = False
        self.observer = MetricsObserver()
        self._kinds: dict[str, ModelKind] = {}
        self._finished: Job | None = None  # the record of the current job, once finished
        self._finish_durable = False  # ... and confirmed by the replicas it must reach
        # Threads start on first use, so building this before a prefork fork is safe.
        self._upload_pool = ThreadPoolExecutor(
            max_workers=settings.upload_threads, thread_name_prefix="upload"
        )

    def kind(self, name: str) -> ModelKind:
        """The kind's plug-in, imported and set up on first use in this process."""
        if name not in self._kinds:
            module_name, _, class_name = KINDS[name].implementation.partition(":")
            plugin_class = getattr(importlib.import_module(module_name), class_name)
            plugin: ModelKind = plugin_class(self.settings)
            plugin.setup()
            self._kinds[name] = plugin
        return self._kinds[name]

    def run(
        self, job_id: str, generation: str | None = None, job_type: JobType | None = None
    ) -> JobStatus | None:
        """A message named ``job_id``: claim the next job of its type by the fair rule
        (``shared.scheduling``; often that one) and run it. Returns where the run ended, or
        None if nothing was claimed or the run was fenced off (a newer attempt holds it).

        ``generation`` names this worker process generation, whose draining flag tells the
        job to checkpoint and step aside. ``job_type``, when the queue told it, saves reading
        the named job.
        """
        job = self._claim(job_id, job_type)
        if job is None:
            return None
        JOB_ID.set(job.id)
        OWNER.set(job.owner)
        ctx = JobContext(
            job,
            self.settings,
            self.jobs,
            self.objects,
            self.logs,
            generation,
            datasets=self.datasets,
            upload_pool=self._upload_pool,
        )
        ctx.corpora = self.corpora
        ctx.log.info("attempt %d of %s %s on %s", job.attempt, job.type, job.kind, self.worker_name)
        self.busy = True
        started = self.observer.started(job)
        self._finished = None
        self._finish_durable = False
        outcome: JobStatus | None = None
        try:
            outcome = self._attempt(job, ctx)
            if self._finished is not None and not self._finish_durable:
                outcome = self._settle(job, ctx, outcome)
            return outcome
        finally:
            self.busy = False
            ctx.close()
            self._tidy(job, ctx, outcome)
            self._free_slot(job)
            metrics: dict[str, float] = self._finished.metrics if self._finished else {}
            self.observer.finished(job, outcome, started, metrics)
            JOB_ID.set(None)
            OWNER.set(None)

    def _claim(self, hint_id: str, job_type: JobType | None) -> Job | None:
        if job_type is None:
            hint = self.jobs.get(hint_id)
            if hint is None:
                log.info("skip %s: no such job", hint_id)
                return None
            job_type = hint.type
        if not self.durability.confirmed():
            # No replica to confirm a claim (one is down, or a failover left none yet):
            # claim nothing rather than claim and give back, which would cycle every
            # queued job through running and queued, with events and webhooks each time.
            # The job stays queued; the reaper sends its message again.
            log.warning("message for %s: too few Redis replicas to claim now", hint_id)
            return None
        job = self.jobs.claim_next(
            job_type, self.worker_name, self.settings.lease_seconds, self.settings
        )
        if job is None:
            self.jobs.fair.owe_wakeup(job_type)
            log.info("message for %s: no %s job may start now", hint_id, job_type.value)
            return None
        if not self.durability.confirmed():
            # A claim a failover could take back must not start work: the job would run
            # here and, claimed again after the failover, elsewhere too. Give it back; its
            # message comes again from the reaper (``JobStore.requeue``).
            log.warning("%s: the claim was not confirmed by the replicas; giving it back", job.id)
            self.jobs.requeue(job.id, fence=job.fence or "")
            return None
        return job

    def _free_slot(self, job: Job) -> None:
        """A running slot of ``job``'s owner freed: send the wake-up owed, if one is."""
        try:
            if self._wake is not None and self.jobs.fair.take_owed_wakeup(job.type):
                self._wake(job.id, job.type)
        except Exception:
            log.warning("%s: could not send an owed wake-up", job.id, exc_info=True)

    def _attempt(self, job: Job, ctx: JobContext) -> JobStatus | None:
        """One attempt; every way it can end maps to a status (None: not ours any more)."""
        try:
            with ctx.lease:
                return self._dispatch(job, ctx)
        except JobCanceled as exc:
            ctx.log.info("canceled: %s", exc)
            return self._finish(job, JobStatus.CANCELED)
        except JobPreempted as exc:
            ctx.log.info("requeued: %s", exc)
            requeued = self.jobs.requeue(job.id, fence=ctx.fence)
            return JobStatus.QUEUED if requeued is not None else None
        except LeaseLost as exc:
            ctx.log.warning("stopped, another worker owns the job now: %s", exc)
            return None
        except TRANSIENT_ERRORS as exc:
            # The job's log says what the owner may read; the worker's log has the details.
            ctx.log.warning("transient failure: %s", _error_info(exc).message)
            log.warning("%s: transient failure: %s: %s", job.id, type(exc).__name__, exc)
            after = self.jobs.attempt_failed(job.id, _error_info(exc), fence=ctx.fence)
            if after is not None and after.status.is_terminal():
                self._finished = after
                self._finish_durable = self.durability.confirmed()
            return after.status if after is not None else None
        except Exception as exc:
            ctx.log.exception("failed")
            kind = "permanent" if isinstance(exc, PermanentJobError) else "unexpected"
            log.info("%s: %s error %s", job.id, kind, type(exc).__name__)
            return self._finish(job, JobStatus.FAILED, error=_error_info(exc))

    def _finish(self, job: Job, status: JobStatus, **fields: Any) -> JobStatus | None:
        # Past a lost reply (``settling.finish_surely``): a finish that stood counts as it.
        done, read = finish_surely(self.jobs, self.durability, job, status, **fields)
        if done is None:
            log.warning("%s: not ours any more; %s not recorded", job.id, status)
            return None
        self._finished = done
        self._finish_durable = read or self.durability.confirmed()
        if not self._finish_durable:
            # Recorded, not yet safe from a failover: keep what earlier attempts stored
            # (``_tidy``); a finish the failover loses runs the job again from its checkpoint.
            log.warning("%s: the %s finish was not confirmed by the replicas", job.id, status)
        return status

    def _settle(self, job: Job, ctx: JobContext, outcome: JobStatus | None) -> JobStatus | None:
        """A finish the replicas did not confirm: read the job once a replica confirms
        the read (``_durable_record``) to learn whether it stands. It may not: made on a
        primary cut off from its replica, it was thrown away when that node rejoined as a
        replica. Then the job goes back to the queue if this attempt still holds it, and
        this attempt counts as fenced off (None): its objects and its model's weights go,
        and its success is not counted. Still unknown, all is kept."""
        known, current = self._durable_record(job.id)
        if not known:
            log.warning("%s: the %s finish is still unconfirmed", job.id, outcome)
            return outcome
        if current is not None and current.fence == ctx.fence:
            if current.status.is_terminal():
                self._finish_durable = True
                return outcome
            try:
                self.jobs.requeue(job.id, fence=ctx.fence)
            except redis.RedisError:
                return outcome
        log.warning("%s: the %s finish was taken back by a failover", job.id, outcome)
        return None

    def _durable_record(self, job_id: str) -> tuple[bool, Job | None]:
        return durable_record(self.durability, job_id)

    def _dispatch(self, job: Job, ctx: JobContext) -> JobStatus | None:
        plugin = self.kind(job.kind)
        if job.type is JobType.TRAIN:
            parent = self._parent_of(job)
            ctx.continue_from(parent)
            result = plugin.train(job.params, ctx)
            model = ModelRecord(
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
                name=job.params.get("model_name"),
                params=job.params,
                lineage=parent.child_lineage() if parent else [],
            )
            # The model is recorded in the same MULTI as the success, or not at all.
            return self._finish(
                job,
                JobStatus.SUCCEEDED,
                model_id=model.id,
                metrics=result.metrics,
                also=lambda pipe, _job: self.models.save_in(pipe, model),
            )
        source = self.models.resolve(job.params["model_id"], job.owner)
        if source is None:
            raise PermanentJobError(f"model {job.params['model_id']} no longer exists")
        generated = plugin.generate(source, job.params, ctx)
        return self._finish(
            job, JobStatus.SUCCEEDED, outputs=generated.outputs, metrics=generated.metrics
        )

    def _parent_of(self, job: Job) -> ModelRecord | None:
        """The model a training job continues (``init_model``, an id since submit)."""
        model_id = job.params.get("init_model")
        if not model_id:
            return None
        parent = self.models.get_for_owner(model_id, job.owner)
        if parent is None:
            raise PermanentJobError(f"model {model_id} (init_model) no longer exists")
        return parent

    def _tidy(self, job: Job, ctx: JobContext, outcome: JobStatus | None) -> None:
        """Storage an attempt leaves behind: a fenced-off attempt removes what it stored
        that the record does not reference (its model's weights included); a finished job
        removes what its earlier attempts stored that the record does not reference.
        Either is decided on a record a replica confirms; short of one, or when storage
        refuses a delete, the tidy is put off for the reapers (``shared.storage_tidy``)."""
        if outcome is not None and self._finished is None:
            # Requeued or retried later: its next attempt's finish tidies the job's objects,
            # but not this attempt's model weights, which no finish will record (a finish
            # that failed on a failover left some in the cluster soak): the reapers do.
            if job.type is JobType.TRAIN:
                self._put_off_tidy(job, ctx)
            return
        if outcome is not None and not self._finish_durable:
            log.warning("%s: its finish is unconfirmed; tidying storage put off", job.id)
            self._put_off_tidy(job, ctx)
            return
        try:
            kept = self._tidy_now(job, ctx, outcome)
        except Exception:
            log.warning("%s: could not tidy storage; put off", job.id, exc_info=True)
            kept = True
        if kept:
            self._put_off_tidy(job, ctx)

    def _tidy_now(self, job: Job, ctx: JobContext, outcome: JobStatus | None) -> bool:
        """``_tidy`` on a confirmed record; True when something had to be kept."""
        current: Job | None = self._finished
        if outcome is None or current is None:
            known, current = self._durable_record(job.id)
            if not known:
                log.warning("%s: its record could not be confirmed; storage kept", job.id)
                return True
        if outcome is None and _moved_on(current, ctx.fence):
            weights = ObjectLayout.model_weights(job.owner, ctx.model_id)
            dropped, kept = ctx.discard_stale_objects(
                current, weights_key=weights if job.type is JobType.TRAIN else None
            )
            log.warning(
                "%s: attempt %d fenced off, %d objects discarded", job.id, job.attempt, dropped
            )
            return kept > 0
        if current is not None and outcome is not None:
            # The record this attempt's finish wrote, which the replicas confirmed.
            return ctx.discard_earlier_attempts(current)[1] > 0
        return False

    def _put_off_tidy(self, job: Job, ctx: JobContext) -> None:
        model_id = ctx.model_id if job.type is JobType.TRAIN else None
        try:
            self.tidies.put_off(PutOffTidy(job.id, job.owner, ctx.fence, model_id))
        except redis.RedisError:
            log.warning("%s: could not put the storage tidy off; objects kept", job.id)


def _moved_on(current: Job | None, fence: str) -> bool:
    """The job no longer runs as the attempt of ``fence``: requeued by the reaper, a newer
    attempt claimed it, or a failover lost the claim. (An attempt whose process is dying
    holds it until its lease runs out.)"""
    return current is None or current.fence != fence or current.status is not JobStatus.RUNNING


def _error_info(exc: BaseException, prefix: str = "") -> JobErrorInfo:
    """Our own errors' messages are written for users; any other's text can name server
    paths, hosts or library internals, so it stays in the worker's log (with the traceback)."""
    if isinstance(exc, AtelierError):
        message = str(exc) or type(exc).__name__
    else:
        message = f"{type(exc).__name__}: an internal error (details in the worker's log)"
    return JobErrorInfo(type=type(exc).__name__, message=prefix + message)
