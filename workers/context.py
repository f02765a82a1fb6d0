"""A running job's link to the system: progress, stop signals, lease, storage, log."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from enum import Enum

from atelier.shared.datasets import DatasetStore
from atelier.shared.errors import DeadlineExceeded, JobCanceled, JobPreempted, LeaseLost
from atelier.shared.job_logs import JobLogs, job_logger
from atelier.shared.jobs import CheckpointRef, Job, JobStore, JobType, OutputRef, Progress
from atelier.shared.models import ModelStore
from atelier.shared.settings import Settings
from atelier.shared.storage import ObjectLayout, ObjectStore
from atelier.workers.uploads import Uploader

# Set by the SIGTERM handler of a job process: the process is about to stop.
PROCESS_DRAINING = threading.Event()


class StopReason(Enum):
    CANCELED = "canceled"
    DRAINING = "draining"
    DEADLINE = "deadline"
    LEASE_LOST = "lease lost"


class LeaseKeeper:
    """Renews the job's lease from a thread, so a long step never looks like a dead worker;
    notices when the reaper has taken the job away."""

    def __init__(self, jobs: JobStore, job_id: str, lease_seconds: float) -> None:
        self._jobs = jobs
        self._job_id = job_id
        self._lease = lease_seconds
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._lease / 3):
            try:
                if not self._jobs.renew_lease(self._job_id, self._lease):
                    self.lost.set()
                    return
            except Exception:
                logging.getLogger(__name__).warning("lease renewal failed", exc_info=True)


class JobContext:
    def __init__(
        self,
        job: Job,
        settings: Settings,
        jobs: JobStore,
        objects: ObjectStore,
        logs: JobLogs,
        node: str | None,
        *,
        datasets: DatasetStore,
        upload_pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.job = job
        self.datasets = datasets
        self.settings = settings
        self.objects = objects
        self.jobs = jobs
        self.node = node
        self.model_id = ModelStore.new_id() if job.type is JobType.TRAIN else ""
        """Id the model of a training job will have (chosen before training starts, so its
        weights are stored under their final key)."""
        self.outputs_added: list[OutputRef] = []
        """Outputs this attempt appended to the running job (sample grids, texts)."""
        self.log = job_logger(logs, job.id)
        self.uploader = Uploader(
            objects,
            settings.upload_threads,
            settings.upload_retry_seconds,
            self.log,
            upload_pool,
        )
        self.lease = LeaseKeeper(jobs, job.id, settings.lease_seconds)
        self._started = time.monotonic()
        self._first_step: int | None = None
        self._last_report = 0.0
        self._last_check = 0.0
        self._stop: StopReason | None = None

    def close(self) -> None:
        self.uploader.close()

    # --- progress ---------------------------------------------------------------------------
    def report(self, step: int, total: int, metrics: dict[str, float]) -> None:
        """Record progress; writes to Redis at most every ``progress_interval_seconds``."""
        now = time.monotonic()
        if self._first_step is None:
            self._first_step, self._rate_start = step - 1, now
        final = step >= total
        if not final and now - self._last_report < self.settings.progress_interval_seconds:
            return
        self._last_report = now
        rate = (step - self._first_step) / max(now - self._rate_start, 1e-9)
        eta = (total - step) / rate if rate > 0 else None
        progress = Progress(
            step=step,
            total=total,
            fraction=round(step / total, 6) if total else 0.0,
            eta_seconds=round(eta, 1) if eta is not None else None,
            metrics={k: round(float(v), 5) for k, v in metrics.items()},
            updated_at=time.time(),
        )
        try:
            self.jobs.set_progress(self.job.id, progress)
        except Exception:
            self.log.warning("progress write failed", exc_info=True)

    def add_output(self, ref: OutputRef) -> None:
        self.jobs.add_outputs(self.job.id, [ref])
        self.outputs_added.append(ref)

    def record_checkpoint(self, ref: OutputRef, step: int) -> None:
        """Point the job at a checkpoint once it is fully stored."""
        self.jobs.set_checkpoint(self.job.id, CheckpointRef(step=step, key=ref.key))
        self.log.info("checkpoint at step %d stored", step)

    def delete_checkpoint(self, step: int) -> None:
        """Best effort: a checkpoint left behind costs storage, not correctness."""
        try:
            self.objects.delete(ObjectLayout.checkpoint(self.job.owner, self.job.id, step))
        except Exception as exc:
            self.log.warning("could not delete the checkpoint at step %d: %s", step, exc)

    # --- stopping ---------------------------------------------------------------------------
    def stop_reason(self) -> StopReason | None:
        """Why the job should stop now, if it should; cheap enough to call every step."""
        if self._stop is not None:
            return self._stop
        if PROCESS_DRAINING.is_set():
            self._stop = StopReason.DRAINING
        elif self.lease.lost.is_set():
            self._stop = StopReason.LEASE_LOST
        elif self._past_deadline():
            self._stop = StopReason.DEADLINE
        else:
            now = time.monotonic()
            if now - self._last_check >= self.settings.cancel_check_interval_seconds:
                self._last_check = now
                self._stop = self._ask_redis()
        return self._stop

    def _ask_redis(self) -> StopReason | None:
        try:
            canceled, draining = self.jobs.stop_requested(self.job.id, self.node)
        except Exception:
            self.log.warning("stop check failed", exc_info=True)
            return None
        if canceled:
            return StopReason.CANCELED
        return StopReason.DRAINING if draining else None

    def _past_deadline(self) -> bool:
        limit = self.job.max_run_seconds
        return limit is not None and time.monotonic() - self._started > limit

    def raise_for_stop(self, step: int) -> None:
        reason = self.stop_reason()
        if reason is StopReason.CANCELED:
            raise JobCanceled(f"canceled at step {step}")
        if reason is StopReason.DRAINING:
            raise JobPreempted(f"worker shutting down at step {step}")
        if reason is StopReason.LEASE_LOST:
            raise LeaseLost(f"lease lost at step {step}")
        if reason is StopReason.DEADLINE:
            raise DeadlineExceeded(
                f"ran longer than max_run_seconds={self.job.max_run_seconds:g} "
                f"(stopped at step {step})"
            )
