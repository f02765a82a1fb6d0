"""What happens at a DCGAN step boundary: progress, sample grids, checkpoints, stopping;
and the checkpoint format a re-run resumes from."""

from __future__ import annotations

import functools
import io
import threading
from typing import Any

import keras
import numpy as np

from shared.errors import PermanentJobError
from shared.jobs import OutputRef
from shared.kinds import DcganTrainParams
from shared.storage import ObjectLayout
from workers.context import JobContext, StopReason
from workers.images import encode_png, grid, to_uint8
from workers.kinds.dcgan_model import DCGAN, generate_images

SAMPLE_GRID_SIZE = 64  # an 8x8 grid, from noise fixed for the whole run
_PARTS = ("g", "d", "g_opt", "d_opt")


def _parts(gan: DCGAN) -> dict[str, list[Any]]:
    return {
        "g": gan.generator.weights,
        "d": gan.discriminator.weights,
        "g_opt": gan.g_optimizer.variables,
        "d_opt": gan.d_optimizer.variables,
    }


def encode_checkpoint(gan: DCGAN, step: int) -> bytes:
    """G, D (with batch-norm statistics) and both optimizers' state, as one .npz."""
    arrays: dict[str, np.ndarray] = {"step": np.asarray(step)}
    for prefix, variables in _parts(gan).items():
        arrays.update({f"{prefix}{i}": np.asarray(v) for i, v in enumerate(variables)})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def restore_checkpoint(gan: DCGAN, data: bytes) -> int:
    """Load a checkpoint into a freshly built GAN; returns the step it was taken at."""
    gan.g_optimizer.build(gan.generator.trainable_variables)
    gan.d_optimizer.build(gan.discriminator.trainable_variables)
    with np.load(io.BytesIO(data)) as arrays:
        for prefix, variables in _parts(gan).items():
            stored = sum(1 for name in arrays.files if name.rstrip("0123456789") == prefix)
            if stored != len(variables):
                raise PermanentJobError(
                    f"checkpoint has {stored} '{prefix}' arrays, the network {len(variables)}"
                )
            for i, variable in enumerate(variables):
                variable.assign(arrays[f"{prefix}{i}"])
        return int(arrays["step"])


class TrainingHooks(keras.callbacks.Callback):  # type: ignore[misc]
    """Runs at each step boundary; ``start_step`` offsets the steps of a resumed run."""

    def __init__(
        self, gan: DCGAN, params: DcganTrainParams, ctx: JobContext, start_step: int
    ) -> None:
        super().__init__()
        self.gan = gan
        self.train_params = params
        self.ctx = ctx
        self.start_step = start_step
        self.latest: dict[str, float] = {}
        self.last_sample_step = 0
        self.stopped_at: int | None = None
        self._newest_checkpoint = start_step
        self._lock = threading.Lock()
        noise = np.random.default_rng(params.seed + 1).standard_normal(
            (SAMPLE_GRID_SIZE, gan.config.latent_dim)
        )
        self.sample_noise = noise.astype(np.float32)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        p = self.train_params
        step = self.start_step + batch + 1
        self.latest = {k: float(v) for k, v in (logs or {}).items()}
        self.ctx.report(step, p.steps, self.latest)
        if step % p.sample_every == 0:
            self.write_samples(step)
            self.ctx.log.info(
                "step %d/%d %s",
                step,
                p.steps,
                " ".join(f"{k}={v:.4f}" for k, v in self.latest.items()),
            )
        if step % p.checkpoint_every == 0 and step < p.steps:
            self.ctx.uploader.put_best_effort(
                f"checkpoint-{step}",
                ObjectLayout.checkpoint(self.ctx.job.owner, self.ctx.job.id, step),
                encode_checkpoint(self.gan, step),
                "application/zip",
                on_stored=functools.partial(self._point_at, step=step),
            )
        reason = self.ctx.stop_reason()
        if reason is not None and step < p.steps:
            if reason is StopReason.DRAINING:
                self.checkpoint_now(step)
            self.stopped_at = step
            self.gan.stop_training = True

    def checkpoint_now(self, step: int) -> None:
        """Store a checkpoint and wait for it: the job is about to move to another worker."""
        job = self.ctx.job
        self.ctx.uploader.put(
            f"checkpoint-{step}",
            ObjectLayout.checkpoint(job.owner, job.id, step),
            encode_checkpoint(self.gan, step),
            "application/zip",
        )
        self.ctx.uploader.wait()
        ref = OutputRef(
            name=f"checkpoint-{step}",
            key=ObjectLayout.checkpoint(job.owner, job.id, step),
            content_type="application/zip",
            size_bytes=0,
        )
        self._point_at(ref, step)

    def _point_at(self, ref: OutputRef, step: int) -> None:
        # Uploads finish out of order; never move the pointer back to an older one.
        with self._lock:
            if step <= self._newest_checkpoint:
                return
            self._newest_checkpoint = step
            self.ctx.record_checkpoint(ref, step)

    def write_samples(self, step: int) -> None:
        pixels = to_uint8(generate_images(self.gan.generator, self.sample_noise))
        job = self.ctx.job
        self.ctx.uploader.put_best_effort(
            f"samples/step-{step:07d}.png",
            ObjectLayout.sample(job.owner, job.id, step),
            encode_png(grid(pixels)),
            "image/png",
            on_stored=self.ctx.add_output,
        )
        self.last_sample_step = step
