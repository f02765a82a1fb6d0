"""What a model kind implements, and what a running job hands it."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shared.jobs import Job, JobStore, OutputRef, Progress
from shared.models import ModelRecord
from shared.settings import Settings
from shared.storage import ObjectStore


@dataclass
class TrainResult:
    """What a finished training run hands back; the runner turns it into a model record."""

    config: dict[str, Any]
    weights_key: str
    samples: list[OutputRef]
    metrics: dict[str, float]
    dataset: str
    steps: int


@dataclass
class GenerateResult:
    outputs: list[OutputRef]
    metrics: dict[str, float] = field(default_factory=dict)


class Uploader:
    """Writes objects on background threads so a training step never waits on storage."""

    def __init__(self, objects: ObjectStore, threads: int) -> None:
        self._objects = objects
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="upload")
        self._pending: list[Future[OutputRef]] = []

    def put(self, name: str, key: str, data: bytes, content_type: str) -> Future[OutputRef]:
        def upload() -> OutputRef:
            size = self._objects.put_bytes(key, data, content_type)
            return OutputRef(name=name, key=key, content_type=content_type, size_bytes=size)

        future = self._pool.submit(upload)
        self._pending.append(future)
        return future

    def wait(self) -> list[OutputRef]:
        """Block until every upload so far is stored; re-raises the first failure."""
        done = [future.result() for future in self._pending]
        self._pending.clear()
        return done

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


class JobContext:
    """A running job's link to the system: progress, cancel flag, storage, log."""

    def __init__(self, job: Job, settings: Settings, jobs: JobStore, objects: ObjectStore) -> None:
        self.job = job
        self.model_id = job.model_id or ""
        """Id the model of a training job will have (chosen before training starts)."""
        self.settings = settings
        self.objects = objects
        self.uploader = Uploader(objects, settings.upload_threads)
        self.log = logging.getLogger(f"atelier.job.{job.id}")
        self._jobs = jobs
        self._started = time.monotonic()
        self._first_step: int | None = None
        self._last_report = 0.0
        self._last_cancel_check = 0.0
        self._cancel_seen = False

    def report(self, step: int, total: int, metrics: dict[str, float]) -> None:
        """Record progress; writes to Redis at most every ``progress_interval_seconds``."""
        now = time.monotonic()
        if self._first_step is None:
            self._first_step, self._started = step - 1, now
        final = step >= total
        if not final and now - self._last_report < self.settings.progress_interval_seconds:
            return
        self._last_report = now
        done_here = step - self._first_step
        rate = done_here / max(now - self._started, 1e-9)
        eta = (total - step) / rate if rate > 0 else None
        self._jobs.set_progress(
            self.job.id,
            Progress(
                step=step,
                total=total,
                fraction=round(step / total, 6) if total else 0.0,
                eta_seconds=round(eta, 1) if eta is not None else None,
                metrics={k: round(float(v), 5) for k, v in metrics.items()},
                updated_at=time.time(),
            ),
        )

    def cancel_requested(self) -> bool:
        """True once the job was canceled; asks Redis at most every check interval."""
        now = time.monotonic()
        if not self._cancel_seen and (
            now - self._last_cancel_check >= self.settings.cancel_check_interval_seconds
        ):
            self._last_cancel_check = now
            self._cancel_seen = self._jobs.cancel_requested(self.job.id)
        return self._cancel_seen

    def publish_output(self, future: Future[OutputRef]) -> None:
        """Attach an upload to the job's outputs as soon as it is stored."""

        def attach(done: Future[OutputRef]) -> None:
            if done.exception() is None:
                self._jobs.add_outputs(self.job.id, [done.result()])

        future.add_done_callback(attach)


class ModelKind(ABC):
    """A plug-in: ``setup`` once per process, then ``train`` and ``generate`` per job."""

    name: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load what every job of this kind needs (once per worker process)."""

    @abstractmethod
    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult: ...

    @abstractmethod
    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult: ...
