"""A worker's life, read top to bottom: boot, claim, attempt, heartbeat, drain, stop.

Celery is an adapter around it: ``workers.celery_app`` builds one ``Worker`` and connects
Celery's signals to ``boot`` and ``drain``; ``workers.tasks``'s one task hands each message
to ``handle``. Nothing here imports Celery or TensorFlow, so the Celery parent stays light
and each phase can be called on its own in a test.

Two processes share the object (a prefork child is forked from the parent):

- The **Celery parent** (the consumer). ``boot`` starts the reaper (lost messages, lapsed
  leases, retention), the webhook router where this worker consumes the webhooks queue, the
  idle exit of a one-job worker, and the metrics server. At warm shutdown ``drain`` flags
  this process generation as draining.
- A **job process** (a pool child). ``handle`` takes a message: the claim picks the next job
  of its type by the fair rule, and one attempt runs under a lease heartbeat (both in
  ``workers.runner.JobRunner``). ``export`` takes an export message and makes a model's
  export (``workers.export.job``). A SIGTERM during a job drains it: checkpoint, requeue,
  then exit. A one-job worker stops itself after its job.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable
from types import FrameType

import redis

from ..shared.durability import Durability
from ..shared.exports import ExportFormat
from ..shared.jobs import JobStatus, JobStore, JobType, RetryPolicy
from ..shared.kinds import KINDS
from ..shared.lifecycle import sweep_retention
from ..shared.models import ModelStore
from ..shared.queue import queue_for, queue_length
from ..shared.redis_client import connect_quickly, redis_for
from ..shared.settings import Settings
from ..shared.storage import ObjectStore, make_object_store
from ..shared.storage_tidy import PutOffTidies, settle_put_off
from ..shared.sweep_stopping import TrialStopper
from .context import PROCESS_DRAINING
from .idle_exit import IdleExit
from .metrics import preinitialise, serve
from .reaper import ReaperThread
from .runner import JobRunner

log = logging.getLogger(__name__)

GENERATION = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
"""This worker process generation: made when the Celery parent imports this module, so
its pool children (forked from it) share it and a restarted worker, even one with the same
node name, never does. Its draining flag is keyed by it."""

DRAIN_FLAG_SECONDS = 600
"""How long a generation's draining flag lives: longer than any drain takes."""

Send = Callable[[str, JobType], None]


class Worker:
    """One per worker process generation; the broker is reached through the callables the
    adapter passes: ``send(job_id, job_type)`` sends a job's message, ``send_webhook``
    a delivery's, ``consumes(queue)`` says whether this worker takes that queue and
    ``holds_a_job()`` whether it has a message it has not finished with."""

    def __init__(
        self,
        settings: Settings,
        *,
        send: Send,
        send_webhook: Callable[[str], None],
        consumes: Callable[[str], bool],
        holds_a_job: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self.generation = GENERATION
        self._send = send
        self._send_webhook = send_webhook
        self._consumes = consumes
        self._holds_a_job = holds_a_job
        # The queue a message came from names its job type: no read of the named job needed.
        self._queue_types: dict[str | None, JobType] = {queue_for(settings, t): t for t in JobType}
        self._runner: JobRunner | None = None

    # --- boot: the Celery parent, once its consumer is ready -----------------------------------
    def boot(self) -> None:
        settings = self.settings
        client = redis_for(settings)
        jobs = JobStore(client, retry=RetryPolicy.from_settings(settings))

        def waiting(job_type: str) -> int:
            return queue_length(client, queue_for(settings, JobType(job_type)))

        stopper = TrialStopper(client, jobs)
        ReaperThread(
            jobs,
            settings,
            self._resend,
            waiting,
            self._retention(client, jobs),
            stopper.check,
            self._tidying(client),
        ).start()
        if self._consumes(settings.webhook_queue):
            self._start_webhook_router(client)
        if settings.exit_after_job and settings.once_idle_seconds > 0:
            IdleExit(settings.once_idle_seconds, self._holds_a_job, stop_warmly).start()
        preinitialise(list(KINDS), [t.value for t in JobType])
        serve(settings)

    def _resend(self, job_id: str, job_type: str) -> None:
        self._send(job_id, JobType(job_type))

    def _retention(self, client: redis.Redis, jobs: JobStore) -> Callable[[int], int] | None:
        """The retention sweep, with an object store opened on its first use (the parent
        must start while storage is away); None when retention is off."""
        settings = self.settings
        if settings.retention_days <= 0:
            return None
        models = ModelStore(client)
        stores: list[ObjectStore] = []

        def sweep(batch: int) -> int:
            if not stores:
                stores.append(make_object_store(settings))
            return sweep_retention(jobs, models, stores[0], settings.retention_days, batch)

        return sweep

    def _tidying(self, client: redis.Redis) -> Callable[[int], int]:
        """Settles put-off storage tidies (``shared.storage_tidy``), with a metered object
        store opened on first use, as retention's is."""
        settings = self.settings
        tidies = PutOffTidies(client)
        durability = Durability(
            client, settings.redis_min_replicas, settings.redis_replica_wait_seconds
        )
        stores: list[ObjectStore] = []

        def settle(batch: int) -> int:
            if not stores:
                stores.append(make_object_store(settings, meter_with=client))
            return settle_put_off(tidies, durability, stores[0], batch)

        return settle

    def _start_webhook_router(self, client: redis.Redis) -> None:
        # Imported here: only a webhooks worker renders jobs for deliveries.
        from .webhook_router import RouterThread, WebhookRouter, api_renderer

        renderer = api_renderer(self.settings)
        router = WebhookRouter(client, self.settings, renderer, self._send_webhook)
        RouterThread(router).start()

    # --- claim, attempt and heartbeat: a job process, one message at a time --------------------
    def handle(self, job_id: str, queue: str | None) -> JobStatus | None:
        """A message naming ``job_id`` from ``queue``: claim the next job of that type by
        the fair rule (often that one) and run one attempt of it, its lease renewed by a
        heartbeat thread while it runs (``JobRunner.run``). Returns where the attempt ended,
        or None when nothing was claimed or the attempt was fenced off."""
        outcome = self._job_process().run(job_id, self.generation, self._queue_types.get(queue))
        # --- stop: one job per worker (a Kubernetes Job). Ask the parent for a warm
        # shutdown; it takes no new message, so nothing is left half-received.
        if self.settings.exit_after_job and outcome is not None:
            os.kill(os.getppid(), signal.SIGTERM)
        return outcome

    def export(self, model_id: str, export_format: str) -> None:
        """An ``export_model`` message (generate queue): make the model's export in that
        format, between jobs, with this process's runner (its stores and loaded kinds)."""
        from .export.job import make_export  # TensorFlow: never in the Celery parent

        runner = self._job_process()
        make_export(
            runner.models,
            runner.exports,
            runner.objects,
            runner.kind,
            model_id,
            ExportFormat(export_format),
        )

    def _job_process(self) -> JobRunner:
        """This job process's runner, built at its first message: after the fork, so
        TensorFlow is never initialised in the Celery parent."""
        if self._runner is None:
            self._runner = JobRunner(self.settings, wake=self._send)
            self._drain_on_sigterm()
        return self._runner

    # --- drain ---------------------------------------------------------------------------------
    def drain(self, who: str) -> None:
        """The parent's warm shutdown began: flag this generation as draining, so its
        running job checkpoints and goes back to the queue at once instead of being waited
        on or killed.

        One quick try, no retries: Celery runs this inside its signal handler, before it
        stops, so a Redis that is away would hold the shutdown for ``connect``'s ~30 s of
        retries. An unreachable Redis cannot take the flag anyway; the job process drains on
        its own SIGTERM, or its lease hands the job on."""
        settings = self.settings
        quick = connect_quickly(
            settings.redis_url, sentinel_password=settings.redis_sentinel_password
        )
        try:
            JobStore(quick).mark_draining(self.generation, DRAIN_FLAG_SECONDS)
        except redis.RedisError as exc:
            log.warning("%s could not flag its drain (%s); stopping anyway", who, exc)
            return
        log.info("%s (generation %s) draining: jobs checkpoint and requeue", who, self.generation)

    def _drain_on_sigterm(self) -> None:
        """In a job process: SIGTERM during a job means checkpoint, requeue, then exit;
        SIGTERM while idle goes to the handler it replaced (billiard's clean exit).

        Installed with the runner, at the first message, not in ``worker_process_init``:
        billiard resets a child's signal handlers *after* its initializer runs
        (``billiard.pool.Worker.after_fork``), so a handler set there never fired and a
        stopped worker's job lost every step since its last checkpoint."""
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum: int, frame: FrameType | None) -> None:
            if self._runner is not None and self._runner.busy:
                PROCESS_DRAINING.set()
                return
            if callable(previous):
                previous(signum, frame)
                return
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, handler)


# --- stop ----------------------------------------------------------------------------------------
def stop_warmly() -> None:
    """Ask this process for Celery's warm shutdown (exit 0): messages it has not
    acknowledged go back to the broker."""
    os.kill(os.getpid(), signal.SIGTERM)
