"""The ``dcgan`` plug-in: train on an image dataset, generate seeded images from a model."""

from __future__ import annotations

import io
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from shared.errors import JobCanceled
from shared.jobs import OutputRef
from shared.kinds import DcganGenerateParams, DcganTrainParams
from shared.models import ModelRecord
from shared.storage import ObjectLayout
from workers.cache import LoadedModels
from workers.datasets import load_builtin
from workers.gpu import configure_tensorflow
from workers.images import encode_png, grid, to_uint8
from workers.kinds.base import GenerateResult, JobContext, ModelKind, TrainResult
from workers.kinds.dcgan_model import DCGAN, DcganConfig, build_generator, generate_images

SAMPLE_GRID_SIZE = 64  # an 8x8 grid, from noise fixed for the whole run


class DcganKind(ModelKind):
    name = "dcgan"

    def setup(self) -> None:
        configure_tensorflow()
        self._generators: LoadedModels[keras.Model] = LoadedModels(self.settings.model_cache_size)

    # --- training ---------------------------------------------------------------------------
    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult:
        p = DcganTrainParams.model_validate(params)
        images = load_builtin(p.dataset)
        config = DcganConfig(
            image_size=images.shape[1],
            channels=images.shape[3],
            latent_dim=p.latent_dim,
            base_filters=p.base_filters,
        )
        keras.utils.set_random_seed(p.seed)
        gan = DCGAN(config)
        gan.compile(
            d_optimizer=keras.optimizers.Adam(p.discriminator_lr, beta_1=p.beta_1),
            g_optimizer=keras.optimizers.Adam(p.generator_lr, beta_1=p.beta_1),
        )
        batches = (
            tf.data.Dataset.from_tensor_slices(images)
            .shuffle(len(images), seed=p.seed, reshuffle_each_iteration=True)
            .repeat()
            .batch(p.batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        callback = _TrainingHooks(gan, p, ctx)
        ctx.log.info(
            "training %s on %s (%d images) for %d steps", config, p.dataset, len(images), p.steps
        )
        gan.fit(batches, steps_per_epoch=p.steps, epochs=1, verbose=0, callbacks=[callback])
        callback.raise_if_canceled()
        return self._finish_training(gan, p, ctx, callback)

    def _finish_training(
        self, gan: DCGAN, p: DcganTrainParams, ctx: JobContext, hooks: _TrainingHooks
    ) -> TrainResult:
        job = ctx.job
        if hooks.last_sample_step != p.steps:
            hooks.write_samples(p.steps)
        weights_key = ObjectLayout.model_weights(job.owner, ctx.model_id)
        ctx.uploader.put("weights", weights_key, _weights_npz(gan.generator), "application/zip")
        uploaded = ctx.uploader.wait()
        samples = [ref for ref in uploaded if ref.name.startswith("samples/")]
        return TrainResult(
            config=gan.config.to_dict(),
            weights_key=weights_key,
            samples=samples,
            metrics=hooks.latest,
            dataset=p.dataset,
            steps=p.steps,
        )

    # --- generation -------------------------------------------------------------------------
    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult:
        p = DcganGenerateParams.model_validate(params)
        started = time.perf_counter()
        generator, cached = self._generators.get_or_load(
            model.id, lambda: self._load_generator(model, ctx)
        )
        loaded = time.perf_counter()
        config = DcganConfig(**model.config)
        z = np.random.default_rng(p.seed).standard_normal((p.n, config.latent_dim))
        pixels = to_uint8(generate_images(generator, z.astype(np.float32)))
        outputs = self._upload_images(pixels, ctx)
        return GenerateResult(
            outputs=outputs,
            metrics={
                "model_cache_hit": float(cached),
                "load_time": round(loaded - started, 4),
                "predict_time": round(time.perf_counter() - loaded, 4),
                "images": float(p.n),
            },
        )

    def _load_generator(self, model: ModelRecord, ctx: JobContext) -> keras.Model:
        generator = build_generator(DcganConfig(**model.config))
        with np.load(io.BytesIO(ctx.objects.get_bytes(model.weights_key))) as weights:
            generator.set_weights([weights[f"w{i}"] for i in range(len(weights.files))])
        return generator

    @staticmethod
    def _upload_images(pixels: np.ndarray, ctx: JobContext) -> list[OutputRef]:
        job = ctx.job
        ctx.uploader.put(
            "grid.png",
            ObjectLayout.output(job.owner, job.id, "grid.png"),
            encode_png(grid(pixels)),
            "image/png",
        )
        for index, image in enumerate(pixels):
            name = f"{index:04d}.png"
            ctx.uploader.put(
                name,
                ObjectLayout.output(job.owner, job.id, name),
                encode_png(image),
                "image/png",
            )
        return ctx.uploader.wait()


class _TrainingHooks(keras.callbacks.Callback):  # type: ignore[misc]
    """Progress, sample grids, checkpoints and the cancel check, at step boundaries."""

    def __init__(self, gan: DCGAN, params: DcganTrainParams, ctx: JobContext) -> None:
        super().__init__()
        self.gan = gan
        self.train_params = params
        self.ctx = ctx
        self.latest: dict[str, float] = {}
        self.last_sample_step = 0
        self.canceled_at: int | None = None
        noise = np.random.default_rng(params.seed + 1).standard_normal(
            (SAMPLE_GRID_SIZE, gan.config.latent_dim)
        )
        self.sample_noise = noise.astype(np.float32)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = batch + 1
        self.latest = {k: float(v) for k, v in (logs or {}).items()}
        self.ctx.report(step, self.train_params.steps, self.latest)
        if step % self.train_params.sample_every == 0:
            self.write_samples(step)
        if step % self.train_params.checkpoint_every == 0 and step < self.train_params.steps:
            self.write_checkpoint(step)
        if self.ctx.cancel_requested():
            self.canceled_at = step
            self.gan.stop_training = True

    def write_samples(self, step: int) -> None:
        pixels = to_uint8(generate_images(self.gan.generator, self.sample_noise))
        job = self.ctx.job
        future = self.ctx.uploader.put(
            f"samples/step-{step:07d}.png",
            ObjectLayout.sample(job.owner, job.id, step),
            encode_png(grid(pixels)),
            "image/png",
        )
        self.ctx.publish_output(future)
        self.last_sample_step = step

    def write_checkpoint(self, step: int) -> None:
        """G, D and both optimizers' state, so a resumed run continues the same curve."""
        arrays: dict[str, np.ndarray] = {"step": np.asarray(step)}
        for prefix, weights in (
            ("g", self.gan.generator.get_weights()),
            ("d", self.gan.discriminator.get_weights()),
            ("g_opt", [np.asarray(v) for v in self.gan.g_optimizer.variables]),
            ("d_opt", [np.asarray(v) for v in self.gan.d_optimizer.variables]),
        ):
            arrays.update({f"{prefix}{i}": w for i, w in enumerate(weights)})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        job = self.ctx.job
        self.ctx.uploader.put(
            f"checkpoint-{step}",
            ObjectLayout.checkpoint(job.owner, job.id, step),
            buffer.getvalue(),
            "application/zip",
        )

    def raise_if_canceled(self) -> None:
        if self.canceled_at is not None:
            self.ctx.uploader.wait()
            raise JobCanceled(f"canceled at step {self.canceled_at}")


def _weights_npz(model: keras.Model) -> bytes:
    buffer = io.BytesIO()
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(buffer, **arrays)
    return buffer.getvalue()
