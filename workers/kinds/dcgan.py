"""The ``dcgan`` plug-in: train on an image dataset, generate seeded images from a model."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from atelier.shared.images import encode_npy, encode_pngs, grid, to_uint8, zip_pngs
from atelier.shared.jobs import OutputRef
from atelier.shared.kinds import SINGLE_IMAGE_OUTPUTS_MAX, DcganGenerateParams, DcganTrainParams
from atelier.shared.models import ModelRecord
from atelier.shared.storage import ObjectLayout
from atelier.workers.cache import LoadedModels
from atelier.workers.checkpoints import encode_checkpoint, restore_checkpoint
from atelier.workers.datasets import load_images
from atelier.workers.gpu import configure_tensorflow
from atelier.workers.kinds.base import (
    GenerateResult,
    JobContext,
    ModelKind,
    TrainResult,
    timing_metrics,
)
from atelier.workers.kinds.dcgan_model import DCGAN, CompiledGenerator, DcganConfig, build_generator
from atelier.workers.kinds.dcgan_training import resume, training_hooks
from atelier.workers.training import StepHooks

PREVIEW_IMAGES = 64  # in grid.png


class DcganKind(ModelKind):
    name = "dcgan"

    def setup(self) -> None:
        configure_tensorflow(self.settings.mixed_precision)
        self._generators: LoadedModels[CompiledGenerator] = LoadedModels(
            self.settings.model_cache_size
        )
        # PNG encoding runs on all cores once the forward pass has finished with them.
        self._encoders = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="png")

    # --- training ---------------------------------------------------------------------------
    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult:
        p = DcganTrainParams.model_validate(params)
        images = load_images(p.dataset, ctx.job.owner, ctx.datasets, ctx.objects)
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
        start_step = resume(gan, ctx)
        hooks = training_hooks(gan, p, ctx, start_step)
        ctx.log.info(
            "training %s on %s (%d images), steps %d..%d",
            config,
            p.dataset,
            len(images),
            start_step + 1,
            p.steps,
        )
        if start_step < p.steps:
            batches = (
                tf.data.Dataset.from_tensor_slices(images)
                # A resumed run sees a different data order, not a replay of the first.
                .shuffle(len(images), seed=p.seed + start_step, reshuffle_each_iteration=True)
                .repeat()
                .batch(p.batch_size, drop_remainder=True)
                .prefetch(tf.data.AUTOTUNE)
            )
            gan.fit(
                batches,
                steps_per_epoch=p.steps - start_step,
                epochs=1,
                verbose=0,
                callbacks=[hooks],
            )
        hooks.finish_or_stop()
        return self._finish_training(gan, p, ctx, hooks)

    def _finish_training(
        self, gan: DCGAN, p: DcganTrainParams, ctx: JobContext, hooks: StepHooks
    ) -> TrainResult:
        job = ctx.job
        if hooks.last_sample_step != p.steps:
            hooks.write_samples(p.steps)
        weights_key = ObjectLayout.model_weights(job.owner, ctx.model_id)
        weights = encode_checkpoint({"g": gan.generator.weights}, p.steps)
        ctx.uploader.put("weights", weights_key, weights, "application/zip")
        uploaded = ctx.uploader.wait()
        earlier = [o for o in job.outputs if o.name.startswith("samples/")]
        samples = earlier + [ref for ref in uploaded if ref.name.startswith("samples/")]
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
        pixels = to_uint8(generator(z.astype(np.float32)))
        outputs = self._store_images(pixels, p.format, ctx)
        return GenerateResult(
            outputs=outputs,
            metrics={
                **timing_metrics(cached, started, loaded, time.perf_counter()),
                "images": float(p.n),
            },
        )

    def _load_generator(self, model: ModelRecord, ctx: JobContext) -> CompiledGenerator:
        config = DcganConfig(**model.config)
        generator = build_generator(config)
        restore_checkpoint({"g": generator.weights}, ctx.objects.get_bytes(model.weights_key))
        return CompiledGenerator(generator, config.latent_dim)

    def _store_images(
        self, pixels: np.ndarray, image_format: str, ctx: JobContext
    ) -> list[OutputRef]:
        """grid.png (a preview of the first 64), then the images: one PNG object each,
        one images.zip of PNGs, or one images.npy array (see DcganGenerateParams)."""
        job = ctx.job

        def put(name: str, data: bytes, content_type: str) -> None:
            ctx.uploader.put(name, ObjectLayout.output(job.owner, job.id, name), data, content_type)

        put("grid.png", encode_pngs(grid(pixels[:PREVIEW_IMAGES])[np.newaxis])[0], "image/png")
        if image_format == "npy":
            put("images.npy", encode_npy(pixels), "application/octet-stream")
        elif len(pixels) > SINGLE_IMAGE_OUTPUTS_MAX:
            put("images.zip", zip_pngs(encode_pngs(pixels, pool=self._encoders)), "application/zip")
        else:
            for index, png in enumerate(encode_pngs(pixels, pool=self._encoders)):
                put(f"{index:04d}.png", png, "image/png")
        return ctx.uploader.wait()
