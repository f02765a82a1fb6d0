"""A running attempt's link to the system: progress, stop signals, lease, storage, log.

Everything the attempt writes names it: Redis writes carry its fencing token (made by its
claim, unique to it) and are refused once a newer attempt holds the job; objects go under
the attempt's own key prefix (``ObjectLayout.attempt_prefix``). A refused write stops the
attempt at its next step, and ``discard_stale_objects`` removes what it stored that the
record does not reference."""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from enum import Enum

from ..shared.datasets import DatasetStore
from ..shared.errors import (
    DeadlineExceeded,
    JobCanceled,
    JobPreempted,
    LeaseLost,
    PermanentJobError,
)
from ..shared.job_logs import JobLogs, job_logger
from ..shared.job_records import Phase
from ..shared.jobs import CheckpointRef, Job, JobStore, JobType, OutputRef, Progress
from ..shared.metric_history import split_metrics
from ..shared.models import ModelRecord, ModelStore
from ..shared.settings import Settings
from ..shared.storage import ObjectLayout, ObjectStore
from ..shared.storage_tidy import earlier_attempts_leftovers, unreferenced
from .lease import LeaseKeeper
from .preparation import PhaseReporter
from .prepared import PreparedCorpora
from .uploads import Uploader


def is_sample(ref: OutputRef) -> bool:
    """Samples a training job writes as it learns (``samples/step-…``)."""
    return ref.name.startswith("samples/")


_server_log = logging.getLogger(__name__)
"""The worker's own log: error text that may name hosts or paths goes here, not to the job."""

# Set by the SIGTERM handler of a job process: the process is about to stop.
PROCESS_DRAINING = threading.Event()


class StopReason(Enum):
    CANCELED = "canceled"
    DRAINING = "draining"
    DEADLINE = "deadline"
    LEASE_LOST = "lease lost"


class JobContext:
    def __init__(
        self,
        job: Job,
        settings: Settings,
        jobs: JobStore,
        objects: ObjectStore,
        logs: JobLogs,
        generation: str | None,
        *,
        datasets: DatasetStore,
        upload_pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.job = job
        self.datasets = datasets
        self.settings = settings
        self.objects = objects
        self.jobs = jobs
        self.generation = generation
        """The worker process generation, whose draining flag tells the job to step aside."""
        self.model_id = ModelStore.new_id() if job.type is JobType.TRAIN else ""
        """Id the model of a training job will have (chosen before training starts, so its
        weights are stored under their final key)."""
        self.parent: ModelRecord | None = None  # what it continues: ``continue_from``
        self.outputs_added: list[OutputRef] = []
        """Outputs this attempt appended to the running job (sample grids, texts)."""
        self.unlisted_samples: list[OutputRef] = []
        """Samples stored past ``max_listed_samples``: in storage, not in the record."""
        self._listed_samples = sum(1 for o in job.outputs if is_sample(o))
        assert job.fence is not None, "a running job has the fence its claim made"
        self.fence: str = job.fence
        self.log = job_logger(logs, job.id, job.attempt, self.fence)
        self.uploader = Uploader(
            objects,
            settings.upload_threads,
            settings.upload_retry_seconds,
            self.log,
            upload_pool,
            queue_bytes=settings.upload_queue_bytes,
        )
        self.lease = LeaseKeeper(jobs, job.id, self.fence, settings.lease_seconds)
        self._started = time.monotonic()
        self._first_step: int | None = None
        self._last_report = 0.0
        self._last_check = 0.0
        self._stop: StopReason | None = None
        self._last_validation: dict[str, float] = {}
        self.preparation = self._preparation_reporter()
        # Per machine here; a worker's runner puts in its own, through Redis: once per
        # deployment (``workers.prepared``).
        self.corpora = PreparedCorpora(None, objects, settings.data_dir / "cache")

    def continue_from(self, parent: ModelRecord | None) -> None:
        """A training job starts from ``parent``'s weights, its steps numbered on from the
        parent's last: its preparation shows the step it will start from."""
        self.parent = parent
        if parent is not None:
            self.preparation = self._preparation_reporter()

    @property
    def first_step(self) -> int:
        """The step numbers of a training job start after this one: the model it continues
        ended there (0: it trains from scratch)."""
        return self.parent.steps if self.parent is not None else 0

    def close(self) -> None:
        self.uploader.close()

    # --- progress ---------------------------------------------------------------------------
    def report(self, step: int, total: int, metrics: dict[str, float]) -> None:
        """Record progress; writes to Redis at most every ``progress_interval_seconds``,
        and at once when a new validation figure came (it is a point of its curve)."""
        # NaN and infinities are no point of a curve, and JSON has no spelling for them.
        metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
        now = time.monotonic()
        if self._first_step is None:
            self._first_step, self._rate_start = step - 1, now
        validation = split_metrics(metrics)[1]
        fresh_validation = bool(validation) and validation != self._last_validation
        final = step >= total
        throttled = now - self._last_report < self.settings.progress_interval_seconds
        if throttled and not final and not fresh_validation:
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
            phase=Phase.TRAINING,
        )
        try:
            written = self.jobs.history.write_progress(
                self.job.id, self.fence, progress, validation_fresh=fresh_validation
            )
            self._fenced(written)
            self._last_validation = validation
        except Exception:
            self.log.warning("progress write failed", exc_info=True)

    def _preparation_reporter(self) -> PhaseReporter:
        """Where the kind's data code reports its preparation phases: from the step the
        run will start at (a resumed attempt's checkpoint) of its last."""
        job = self.job
        steps = int(job.params.get("steps", 0)) if job.type is JobType.TRAIN else 0
        return PhaseReporter(
            self._write_preparation,
            self.settings.progress_interval_seconds,
            step=job.checkpoint.step if job.checkpoint else self.first_step,
            total=self.first_step + steps if steps else 0,
        )

    def _write_preparation(self, progress: Progress) -> None:
        """A preparation phase's progress (``PhaseReporter`` throttles it), fenced like a
        step's; then stop if the job should (cancel, drain, deadline or fenced off), so a
        minutes-long preparation stops within seconds too."""
        try:
            self._fenced(self.jobs.history.write_progress(self.job.id, self.fence, progress))
        except Exception:
            self.log.warning("progress write failed", exc_info=True)
        self.raise_for_stop(progress.step)

    def add_output(self, ref: OutputRef) -> None:
        """List a stored output in the job's record. Samples past ``max_listed_samples``
        are not (the record stays small; each append rewrites it): they stay in storage,
        listed by ``GET /v1/jobs/{id}/samples``."""
        if is_sample(ref):
            if self._listed_samples >= self.settings.max_listed_samples:
                self.unlisted_samples.append(ref)
                return
            self._listed_samples += 1
        if self._fenced(self.jobs.add_outputs(self.job.id, self.fence, [ref])):
            self.outputs_added.append(ref)

    def record_checkpoint(self, ref: OutputRef, step: int) -> bool:
        """Point the job at a checkpoint once it is fully stored; False if fenced off."""
        pointed = self.jobs.set_checkpoint(
            self.job.id, self.fence, CheckpointRef(step=step, key=ref.key)
        )
        if self._fenced(pointed):
            self.log.info("checkpoint at step %d stored", step)
        return pointed

    def _fenced(self, accepted: bool) -> bool:
        """A refused write means a newer attempt holds the job: stop at the next step."""
        if not accepted:
            self.lease.lost.set()
        return accepted

    # --- what the job reads -------------------------------------------------------------
    def dataset_bytes(self, name: str, modality: str) -> bytes:
        """The stored data of the owner's uploaded dataset ``name``, which must be of
        ``modality`` (it was checked at upload)."""
        info = self.datasets.get_for_owner(name, self.job.owner)
        if info is None or info.modality != modality or info.data_key is None:
            noun = "ABC" if modality == "music" else modality
            raise PermanentJobError(f"{noun} dataset {name!r} no longer exists")
        return self.objects.get_bytes(info.data_key)

    # --- object keys of this attempt --------------------------------------------------------
    def output_key(self, name: str) -> str:
        return ObjectLayout.output(self.job.owner, self.job.id, self.fence, name)

    def sample_key(self, step: int, extension: str) -> str:
        return ObjectLayout.sample(self.job.owner, self.job.id, self.fence, step, extension)

    def checkpoint_key(self, step: int) -> str:
        return ObjectLayout.checkpoint(self.job.owner, self.job.id, self.fence, step)

    def delete_object(self, key: str) -> bool:
        """Best effort: an object left behind costs storage, not correctness. False when
        it could not be deleted (the caller may put the tidy off)."""
        try:
            self.objects.delete(key)
        except Exception as exc:
            self.log.warning("could not delete %s (%s)", key, type(exc).__name__)
            _server_log.warning("could not delete %s: %s", key, exc)
            return False
        return True

    def discard_stale_objects(
        self, current: Job | None, *, weights_key: str | None
    ) -> tuple[int, int]:
        """Delete what this attempt stored that ``current`` (the job's record now) does not
        reference, and the weights of a model that was never recorded. Runs when the
        attempt was fenced off, after its uploads finished. ``(deleted, not deleted)``."""
        prefix = ObjectLayout.attempt_prefix(self.job.owner, self.job.id, self.fence)
        stale = unreferenced(current, self.objects.list_keys(prefix))
        if weights_key is not None:
            stale.append(weights_key)
        return self._delete_all(stale)

    def discard_earlier_attempts(self, finished: Job) -> tuple[int, int]:
        """Once the job is finished: delete what its earlier attempts stored that the
        record does not reference (``storage_tidy.earlier_attempts_leftovers``).
        ``(deleted, not deleted)``."""
        job_prefix = ObjectLayout.job_prefix(self.job.owner, self.job.id)
        return self._delete_all(
            earlier_attempts_leftovers(finished, self.objects.list_keys(job_prefix))
        )

    def _delete_all(self, keys: list[str]) -> tuple[int, int]:
        deleted = sum(self.delete_object(key) for key in keys)
        return deleted, len(keys) - deleted

    # --- stopping ---------------------------------------------------------------------------
    def stop_reason(self) -> StopReason | None:
        """Why the job should stop now, if it should; cheap enough to call every step."""
        if self._stop is not None:
            return self._stop
        if PROCESS_DRAINING.is_set():
            self._stop = StopReason.DRAINING
        elif self.lease.lost.is_set():  # renewal or a write refused: fenced off
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
            flags = self.jobs.stop_requested(self.job.id, self.fence, self.generation)
        except Exception:
            self.log.warning("stop check failed", exc_info=True)
            return None
        if flags.fenced:
            self.lease.lost.set()
            return StopReason.LEASE_LOST
        if flags.canceled:
            return StopReason.CANCELED
        return StopReason.DRAINING if flags.draining else None

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
