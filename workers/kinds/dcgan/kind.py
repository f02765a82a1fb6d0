"""The ``dcgan`` plug-in: train on an image dataset, generate seeded images from a model."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ....shared.errors import PermanentJobError
from ....shared.images import PngBatches, encode_npy, encode_pngs, grid, to_uint8, zip_pngs
from ....shared.jobs import OutputRef
from ....shared.kinds.dcgan import (
    SINGLE_IMAGE_OUTPUTS_MAX,
    DcganGenerateParams,
    DcganTrainParams,
    class_indices,
)
from ....shared.models import ModelRecord
from ...cache import LoadedModels
from ...checkpoints import restore_checkpoint
from ...gpu import configure_tensorflow
from ...training import TrainingKind
from ..base import (
    Exportable,
    GenerateResult,
    JobContext,
    timing_metrics,
)
from .inference import CompiledGenerator, labels_in_turn
from .model import DcganConfig, build_generator
from .training import DcganTrainer, read_images

PREVIEW_IMAGES = 64  # in grid.png


class DcganKind(TrainingKind[DcganTrainParams]):
    name = "dcgan"
    train_params = DcganTrainParams

    def setup(self) -> None:
        configure_tensorflow(self.settings.mixed_precision)
        self._generators: LoadedModels[CompiledGenerator] = LoadedModels(
            self.settings.model_cache_size
        )
        # PNG encoding, a batch a thread, beside the forward pass of the next batch.
        self._encoders = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="png")

    def trainer(self, params: DcganTrainParams, ctx: JobContext) -> DcganTrainer:
        return DcganTrainer(params, read_images(params, ctx))

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
        chosen, problems = class_indices(p, model.config)
        if problems:  # refused at submit; a record changed since cannot serve them either
            raise PermanentJobError("; ".join(message for _, message in problems))
        labels = labels_in_turn(p.n, max(config.classes, 1), chosen)
        pixels, pngs = self._draw(generator, z.astype(np.float32), labels, p.format == "png")
        outputs = self._store_images(pixels, pngs, ctx)
        return GenerateResult(
            outputs=outputs,
            metrics={
                **timing_metrics(cached, started, loaded, time.perf_counter()),
                "images": float(p.n),
            },
        )

    def _draw(
        self, generator: CompiledGenerator, z: np.ndarray, labels: np.ndarray, encode: bool
    ) -> tuple[np.ndarray, list[bytes] | None]:
        """The images' uint8 pixels and, if ``encode``, their PNGs. Each batch is encoded
        while the generator makes the next, so encoding overlaps the forward pass instead
        of following it (bench/results/images-zip.md)."""
        encoder = PngBatches(self._encoders)
        batches: list[np.ndarray] = []
        try:
            for batch in generator.batches(z, labels):
                batches.append(to_uint8(batch))
                if encode:
                    encoder.add(batches[-1])
            return np.concatenate(batches), encoder.pngs() if encode else None
        except BaseException:
            encoder.cancel()
            raise

    def exportable(self, model: ModelRecord, weights: bytes) -> Exportable:
        """The generator (the moving average of G, when the run kept one): built-in
        layers only already."""
        config = DcganConfig(**model.config)
        generator = build_generator(config)
        restore_checkpoint({"g": generator.weights}, weights)
        return Exportable(generator, details=config.to_dict())

    def _load_generator(self, model: ModelRecord, ctx: JobContext) -> CompiledGenerator:
        config = DcganConfig(**model.config)
        generator = build_generator(config)
        restore_checkpoint({"g": generator.weights}, ctx.objects.get_bytes(model.weights_key))
        return CompiledGenerator(generator, config)

    def _store_images(
        self, pixels: np.ndarray, pngs: list[bytes] | None, ctx: JobContext
    ) -> list[OutputRef]:
        """grid.png (a preview of the first 64), then the images: one images.npy array
        without ``pngs``, else one PNG object each or, past 64, one images.zip of them (see
        DcganGenerateParams)."""

        def put(name: str, data: bytes, content_type: str) -> None:
            ctx.uploader.put(name, ctx.output_key(name), data, content_type)

        put("grid.png", encode_pngs(grid(pixels[:PREVIEW_IMAGES])[np.newaxis])[0], "image/png")
        if pngs is None:
            put("images.npy", encode_npy(pixels), "application/octet-stream")
        elif len(pngs) > SINGLE_IMAGE_OUTPUTS_MAX:
            put("images.zip", zip_pngs(pngs), "application/zip")
        else:
            for index, png in enumerate(pngs):
                put(f"{index:04d}.png", png, "image/png")
        return ctx.uploader.wait()
