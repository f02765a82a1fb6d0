"""DCGAN specifics of a training run: what a checkpoint holds, what a sample grid shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from atelier.shared.images import encode_png, grid, to_uint8
from atelier.shared.kinds import DcganTrainParams
from atelier.shared.storage import ObjectLayout
from atelier.workers.checkpoints import encode_checkpoint, restore_checkpoint
from atelier.workers.context import JobContext
from atelier.workers.kinds.dcgan_model import DCGAN, generate_images
from atelier.workers.training import StepHooks

SAMPLE_GRID_SIZE = 64  # an 8x8 grid, from noise fixed for the whole run


def _groups(gan: DCGAN) -> dict[str, Sequence[Any]]:
    """G and D (with batch-norm statistics) and both optimizers' state."""
    return {
        "g": gan.generator.weights,
        "d": gan.discriminator.weights,
        "g_opt": gan.g_optimizer.variables,
        "d_opt": gan.d_optimizer.variables,
    }


def resume(gan: DCGAN, ctx: JobContext) -> int:
    """Load the job's newest checkpoint, if it has one; returns the step to continue from."""
    checkpoint = ctx.job.checkpoint
    if checkpoint is None:
        return 0
    gan.g_optimizer.build(gan.generator.trainable_variables)
    gan.d_optimizer.build(gan.discriminator.trainable_variables)
    step = restore_checkpoint(_groups(gan), ctx.objects.get_bytes(checkpoint.key))
    ctx.log.info("resuming from the checkpoint at step %d (attempt %d)", step, ctx.job.attempt)
    return step


def training_hooks(
    gan: DCGAN, params: DcganTrainParams, ctx: JobContext, start_step: int
) -> StepHooks:
    noise = (
        np.random.default_rng(params.seed + 1)
        .standard_normal((SAMPLE_GRID_SIZE, gan.config.latent_dim))
        .astype(np.float32)
    )

    def samples(step: int) -> None:
        pixels = to_uint8(generate_images(gan.generator, noise))
        job = ctx.job
        ctx.uploader.put_best_effort(
            f"samples/step-{step:07d}.png",
            ObjectLayout.sample(job.owner, job.id, step),
            encode_png(grid(pixels)),
            "image/png",
            on_stored=ctx.add_output,
        )

    return StepHooks(
        ctx,
        total_steps=params.steps,
        start_step=start_step,
        sample_every=params.sample_every,
        checkpoint_every=params.checkpoint_every,
        checkpoint=lambda step: encode_checkpoint(_groups(gan), step),
        samples=samples,
    )
