"""The ``textgen`` plug-in: a byte-level GPT-2-style language model built from keras-hub
blocks (no download: the backbone is built from a config, the vocabulary is the 256
byte values). Generation uses keras-hub's cached decoding (a key/value cache) and its
samplers."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from atelier.shared.errors import PermanentJobError
from atelier.shared.jobs import OutputRef
from atelier.shared.kinds import TextgenGenerateParams, TextgenTrainParams
from atelier.shared.models import ModelRecord
from atelier.shared.storage import ObjectLayout
from atelier.workers.cache import LoadedModels
from atelier.workers.checkpoints import encode_checkpoint, restore_checkpoint
from atelier.workers.corpus import fables
from atelier.workers.gpu import configure_tensorflow
from atelier.workers.kinds.base import (
    GenerateResult,
    JobContext,
    ModelKind,
    TrainResult,
    timing_metrics,
)
from atelier.workers.kinds.textgen_decoding import Decoder, SamplerSpec, encode
from atelier.workers.training import StepHooks

VOCABULARY = 256  # bytes
VALIDATION_FRACTION = 0.05
VALIDATION_WINDOWS = 32
SAMPLES = SamplerSpec(temperature=0.8, top_k=10)  # the samples written during training


@dataclass(frozen=True)
class TextgenConfig:
    sequence_length: int = 192
    num_layers: int = 2
    num_heads: int = 4
    hidden_dim: int = 128
    dropout: float = 0.0


def build_language_model(config: TextgenConfig) -> keras_hub.models.GPT2CausalLM:
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.hidden_dim,
        intermediate_dim=4 * config.hidden_dim,
        dropout=config.dropout,
        max_sequence_length=config.sequence_length,
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def _windows(data: np.ndarray, length: int, batch: int, seed: int) -> tf.data.Dataset:
    """Random windows of ``length`` + 1 bytes: inputs and next-byte targets."""
    corpus = tf.constant(data)
    span = len(data) - length - 1

    def cut(random: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        start = tf.math.floormod(random, span)
        window = corpus[start : start + length + 1]
        return {"token_ids": window[:-1], "padding_mask": tf.ones(length, tf.bool)}, window[1:]

    return (
        tf.data.Dataset.random(seed=seed)
        .map(cut)
        .batch(batch, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def cut_at_stops(text: str, stops: list[str]) -> str:
    cuts = [text.find(stop) for stop in stops if stop and stop in text]
    return text[: min(cuts)] if cuts else text


class TextgenKind(ModelKind):
    name = "textgen"

    def setup(self) -> None:
        configure_tensorflow(self.settings.mixed_precision)
        self._models: LoadedModels[Decoder] = LoadedModels(self.settings.model_cache_size)

    # --- training ---------------------------------------------------------------------------
    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult:
        p = TextgenTrainParams.model_validate(params)
        data = encode(self._corpus(p.dataset, ctx))
        if len(data) < 4 * (p.sequence_length + 1):
            raise PermanentJobError(
                f"the corpus has {len(data)} bytes; it needs at least "
                f"{4 * (p.sequence_length + 1)} for sequence_length {p.sequence_length}"
            )
        split = int(len(data) * (1 - VALIDATION_FRACTION))
        train, validation = data[:split], data[split - p.sequence_length :]
        config = TextgenConfig(
            p.sequence_length, p.num_layers, p.num_heads, p.hidden_dim, p.dropout
        )
        keras.utils.set_random_seed(p.seed)
        lm = build_language_model(config)
        lm.compile(
            optimizer=keras.optimizers.AdamW(p.learning_rate, weight_decay=0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        start_step = self._resume(lm, ctx)
        hooks = self._hooks(lm, p, ctx, start_step, validation)
        ctx.log.info(
            "training %s on %s (%d bytes), steps %d..%d",
            config,
            p.dataset,
            len(data),
            start_step + 1,
            p.steps,
        )
        if start_step < p.steps:
            lm.fit(
                _windows(train, p.sequence_length, p.batch_size, p.seed + start_step),
                steps_per_epoch=p.steps - start_step,
                epochs=1,
                verbose=0,
                callbacks=[hooks],
            )
        hooks.finish_or_stop()
        if hooks.last_sample_step != p.steps:
            hooks.write_samples(p.steps)
        weights_key = ObjectLayout.model_weights(ctx.job.owner, ctx.model_id)
        ctx.uploader.put(
            "weights",
            weights_key,
            encode_checkpoint({"lm": lm.weights}, p.steps),
            "application/zip",
        )
        ctx.uploader.wait()
        samples = [
            o
            for o in (ctx.jobs.get(ctx.job.id) or ctx.job).outputs
            if o.name.startswith("samples/")
        ]
        return TrainResult(
            config=asdict(config),
            weights_key=weights_key,
            samples=samples,
            metrics=hooks.latest,
            dataset=p.dataset,
            steps=p.steps,
        )

    @staticmethod
    def _corpus(name: str, ctx: JobContext) -> str:
        if name == "fables":
            return fables()
        info = ctx.datasets.get_for_owner(name, ctx.job.owner)
        if info is None or info.modality != "text" or info.data_key is None:
            raise PermanentJobError(f"text dataset {name!r} no longer exists")
        return ctx.objects.get_bytes(info.data_key).decode("utf-8")

    @staticmethod
    def _resume(lm: Any, ctx: JobContext) -> int:
        if ctx.job.checkpoint is None:
            return 0
        lm.optimizer.build(lm.trainable_variables)
        step = restore_checkpoint(
            {"lm": lm.weights, "opt": lm.optimizer.variables},
            ctx.objects.get_bytes(ctx.job.checkpoint.key),
        )
        ctx.log.info("resuming from the checkpoint at step %d (attempt %d)", step, ctx.job.attempt)
        return step

    @staticmethod
    def _hooks(
        lm: Any, p: TextgenTrainParams, ctx: JobContext, start_step: int, validation: np.ndarray
    ) -> StepHooks:
        rng = np.random.default_rng(p.seed)
        starts = rng.integers(0, len(validation) - p.sequence_length - 1, VALIDATION_WINDOWS)
        windows = np.stack([validation[s : s + p.sequence_length + 1] for s in starts])
        val_inputs = {
            "token_ids": windows[:, :-1],
            "padding_mask": np.ones_like(windows[:, :-1], dtype=bool),
        }

        decoder = Decoder(lm)

        def evaluate_and_sample(step: int) -> None:
            logits = lm(val_inputs, training=False)
            loss = float(
                keras.ops.mean(
                    keras.losses.sparse_categorical_crossentropy(
                        windows[:, 1:], logits, from_logits=True
                    )
                )
            )
            hooks.latest.update(val_loss=loss, val_perplexity=math.exp(min(loss, 50.0)))
            room = p.sequence_length - len(encode(p.sample_prompt or "\n"))
            sampled = decoder.sample(p.sample_prompt, min(120, room), 1, SAMPLES, p.seed)
            text = p.sample_prompt + sampled[0]
            job = ctx.job
            ctx.uploader.put_best_effort(
                f"samples/step-{step:07d}.txt",
                ObjectLayout.sample(job.owner, job.id, step, "txt"),
                text.encode(),
                "text/plain; charset=utf-8",
                on_stored=lambda ref: ctx.add_output(ref.model_copy(update={"text": text})),
            )

        hooks = StepHooks(
            ctx,
            total_steps=p.steps,
            start_step=start_step,
            sample_every=p.sample_every,
            checkpoint_every=p.checkpoint_every,
            samples=evaluate_and_sample,
            checkpoint=lambda step: encode_checkpoint(
                {"lm": lm.weights, "opt": lm.optimizer.variables}, step
            ),
        )
        return hooks

    # --- generation -------------------------------------------------------------------------
    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult:
        p = TextgenGenerateParams.model_validate(params)
        config = TextgenConfig(**model.config)
        needed = len((p.prompt or "\n").encode()) + p.max_new_tokens
        if needed > config.sequence_length:
            raise PermanentJobError(
                f"prompt ({needed - p.max_new_tokens} bytes) + max_new_tokens "
                f"({p.max_new_tokens}) exceeds the model's context of {config.sequence_length}"
            )
        started = time.perf_counter()
        decoder, cached = self._models.get_or_load(
            model.id, lambda: Decoder(self._load(model, config, ctx))
        )
        loaded = time.perf_counter()
        spec = SamplerSpec(p.temperature, p.top_k, p.top_p)
        texts = [
            cut_at_stops(t, p.stop)
            for t in decoder.sample(p.prompt, p.max_new_tokens, p.n, spec, p.seed)
        ]
        finished = time.perf_counter()
        outputs = self._store_texts(texts, ctx)
        tokens = p.n * p.max_new_tokens
        return GenerateResult(
            outputs=outputs,
            metrics={
                **timing_metrics(cached, started, loaded, finished),
                "tokens": float(tokens),
                "tokens_per_second": round(tokens / max(finished - loaded, 1e-9), 1),
            },
        )

    @staticmethod
    def _load(model: ModelRecord, config: TextgenConfig, ctx: JobContext) -> Any:
        lm = build_language_model(config)
        restore_checkpoint({"lm": lm.weights}, ctx.objects.get_bytes(model.weights_key))
        return lm

    @staticmethod
    def _store_texts(texts: list[str], ctx: JobContext) -> list[OutputRef]:
        job = ctx.job
        for index, text in enumerate(texts):
            name = f"sample-{index}.txt"
            ctx.uploader.put(
                name,
                ObjectLayout.output(job.owner, job.id, name),
                text.encode(),
                "text/plain; charset=utf-8",
            )
        refs = ctx.uploader.wait()
        by_name = dict(zip([f"sample-{i}.txt" for i in range(len(texts))], texts, strict=True))
        return [ref.model_copy(update={"text": by_name[ref.name]}) for ref in refs]
