"""The step-boundary hooks every kind's training shares: progress, samples, checkpoints,
and cooperative stopping (cancel, drain, deadline, lost lease)."""

from __future__ import annotations

import bisect
import functools
import threading
from collections.abc import Callable
from typing import Any

import keras

from atelier.shared.jobs import OutputRef
from atelier.shared.storage import ObjectLayout
from atelier.workers.context import JobContext, StopReason
from atelier.workers.metrics import TRAINING_STEPS


class StepHooks(keras.callbacks.Callback):  # type: ignore[misc]
    """``start_step`` offsets the steps of a resumed run. ``checkpoint`` encodes the
    training state at a step; ``samples`` writes whatever the kind shows as it learns."""

    def __init__(
        self,
        ctx: JobContext,
        *,
        total_steps: int,
        start_step: int,
        sample_every: int,
        checkpoint_every: int,
        checkpoint: Callable[[int], bytes],
        samples: Callable[[int], None],
        log_every: int | None = None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.total_steps = total_steps
        self.start_step = start_step
        self.sample_every = sample_every
        self.checkpoint_every = checkpoint_every
        self.log_every = log_every or sample_every
        self._checkpoint = checkpoint
        self._samples = samples
        self.latest: dict[str, float] = {}
        self.last_sample_step = 0
        self.stopped_at: int | None = None
        self._newest_checkpoint = start_step
        # Steps with a stored checkpoint from this run (and the one it resumed from),
        # oldest first; all but the newest `checkpoints_kept` are deleted.
        self._stored_checkpoints = [start_step] if start_step > 0 else []
        self._lock = threading.Lock()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self.start_step + batch + 1
        self.latest.update({k: float(v) for k, v in (logs or {}).items()})
        self.ctx.report(step, self.total_steps, self.latest)
        TRAINING_STEPS.labels(self.ctx.job.kind).inc()
        if step % self.sample_every == 0:
            self.write_samples(step)
        if step % self.log_every == 0:
            metrics = " ".join(f"{k}={v:.4f}" for k, v in self.latest.items())
            self.ctx.log.info("step %d/%d %s", step, self.total_steps, metrics)
        if step % self.checkpoint_every == 0 and step < self.total_steps:
            job = self.ctx.job
            self.ctx.uploader.put_best_effort(
                f"checkpoint-{step}",
                ObjectLayout.checkpoint(job.owner, job.id, step),
                self._checkpoint(step),
                "application/zip",
                on_stored=functools.partial(self._point_at, step=step),
            )
        reason = self.ctx.stop_reason()
        if reason is not None and step < self.total_steps:
            if reason is StopReason.DRAINING:
                self.checkpoint_now(step)
            self.stopped_at = step
            self.model.stop_training = True

    def write_samples(self, step: int) -> None:
        self._samples(step)
        self.last_sample_step = step

    def checkpoint_now(self, step: int) -> None:
        """Store a checkpoint and wait for it: the job is about to move to another worker."""
        job = self.ctx.job
        key = ObjectLayout.checkpoint(job.owner, job.id, step)
        self.ctx.uploader.put(f"checkpoint-{step}", key, self._checkpoint(step), "application/zip")
        self.ctx.uploader.wait()
        self._point_at(
            OutputRef(
                name=f"checkpoint-{step}", key=key, content_type="application/zip", size_bytes=0
            ),
            step,
        )

    def _point_at(self, ref: OutputRef, step: int) -> None:
        # Uploads finish out of order; never move the pointer back to an older one. The
        # pointer is moved before anything is deleted, and the newest is always kept.
        with self._lock:
            bisect.insort(self._stored_checkpoints, step)
            if step > self._newest_checkpoint:
                self._newest_checkpoint = step
                self.ctx.record_checkpoint(ref, step)
            keep = max(self.ctx.settings.checkpoints_kept, 1)
            stale = self._stored_checkpoints[:-keep]
            del self._stored_checkpoints[:-keep]
        for old in stale:
            self.ctx.delete_checkpoint(old)

    def finish_or_stop(self) -> None:
        """After ``fit``: wait for uploads; raise if the run was stopped early."""
        if self.stopped_at is not None:
            self.ctx.uploader.wait()
            self.ctx.raise_for_stop(self.stopped_at)
