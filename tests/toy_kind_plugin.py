"""The worker side of the test-only ``toy`` kind (see ``tests/toy_kind.py``)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from atelier.shared.models import ModelRecord
from atelier.workers.checkpoints import restore_checkpoint
from atelier.workers.datasets import load_images
from atelier.workers.kinds.base import GenerateResult, JobContext
from atelier.workers.training import Groups, Sample, Trainer, TrainingKind
from tests.toy_kind import ToyGenerateParams, ToyTrainParams


def build_model() -> keras.Model:
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])


class ToyTrainer(Trainer[ToyTrainParams, np.ndarray]):
    def build(self) -> keras.Model:
        images = self.data
        self.means = images.reshape(len(images), -1).mean(axis=1, keepdims=True)
        self.model = build_model()
        self.model.compile(optimizer=keras.optimizers.SGD(self.params.learning_rate), loss="mse")
        return self.model

    def batches(self, start_step: int) -> Any:
        ones = np.ones_like(self.means)
        return tf.data.Dataset.from_tensor_slices((ones, self.means)).repeat().batch(32)

    def state(self) -> Groups:
        return {"w": self.model.weights, "opt": self.model.optimizer.variables}

    def build_optimizers(self) -> None:
        self.model.optimizer.build(self.model.trainable_variables)

    def weights(self) -> Groups:
        return {"w": self.model.weights}

    def sample(self, step: int) -> Sample:
        text = f"{float(self.model(np.ones((1, 1)))[0, 0]):.6f}"
        return Sample(text.encode(), "txt", "text/plain", text=text, metrics={"mean": float(text)})

    def config(self) -> dict[str, Any]:
        return {}


class ToyKind(TrainingKind[ToyTrainParams]):
    name = "toy"
    train_params = ToyTrainParams

    def trainer(self, params: ToyTrainParams, ctx: JobContext) -> ToyTrainer:
        return ToyTrainer(params, load_images(params.dataset, ctx))

    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult:
        p = ToyGenerateParams.model_validate(params)
        net = build_model()
        restore_checkpoint({"w": net.weights}, ctx.objects.get_bytes(model.weights_key))
        text = f"{float(net(np.ones((1, 1)))[0, 0]):.6f}\n" * p.n
        key = ctx.output_key("mean.txt")
        ctx.uploader.put("mean.txt", key, text.encode(), "text/plain")
        return GenerateResult(outputs=ctx.uploader.wait())
