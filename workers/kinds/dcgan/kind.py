"""The ``dcgan`` plug-in: train on an image dataset, generate seeded images from a model."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ....shared.errors import PermanentJobError
from ....shared.images import encode_npy
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
from .drawing import Drawn, draw
from .inference import CompiledGenerator, labels_in_turn
from .model import DcganConfig, build_generator
from .training import DcganTrainer, read_images


class DcganKind(TrainingKind[DcganTrainParams]):
    name = "dcgan"
    train_params = DcganTrainParams

    def setup(self) -> None:
        configure_tensorflow(self.settings.mixed_precision)
        self._generators: LoadedModels[CompiledGenerator] = LoadedModels(
            self.settings.model_cache_size
        )
        # PNG encoding, a batch a thread, beside the forward pass of the next batch (the last
        # batch over all of them: drawing.draw).
        self._threads = os.cpu_count() or 1
        self._encoders = ThreadPoolExecutor(self._threads, thread_name_prefix="png")

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
        drawn = draw(
            generator,
            z.astype(np.float32),
            labels,
            self._encoders,
            self._threads,
            encode=p.format == "png",
            zipped=p.n > SINGLE_IMAGE_OUTPUTS_MAX,
        )
        outputs = self._store_images(drawn, ctx)
        return GenerateResult(
            outputs=outputs,
            metrics={
                **timing_metrics(cached, started, loaded, time.perf_counter()),
                "images": float(p.n),
            },
        )

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

    def _store_images(self, drawn: Drawn, ctx: JobContext) -> list[OutputRef]:
        """grid.png (a preview of the first 64), then the images: one images.npy array
        without PNGs, else one PNG object each or, past 64, one images.zip of them (see
        DcganGenerateParams)."""

        def put(name: str, data: bytes, content_type: str) -> None:
            ctx.uploader.put(name, ctx.output_key(name), data, content_type)

        put("grid.png", drawn.preview, "image/png")
        if drawn.pngs is None:
            assert drawn.pixels is not None
            put("images.npy", encode_npy(drawn.pixels), "application/octet-stream")
        elif drawn.pngs.zipped:
            put("images.zip", drawn.pngs.zip(), "application/zip")
        else:
            for index, png in enumerate(drawn.pngs.pngs()):
                put(f"{index:04d}.png", png, "image/png")
        return ctx.uploader.wait()
