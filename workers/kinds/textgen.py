"""The ``textgen`` plug-in: train a language model (``textgen_model``) over bytes or a
byte-pair vocabulary learned from the corpus (``textgen_tokens``), and write text from one
with keras-hub's cached decoding and samplers (``textgen_decoding``)."""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

from atelier.shared.errors import PermanentJobError
from atelier.shared.jobs import OutputRef
from atelier.shared.kinds import TextgenGenerateParams, TextgenTrainParams
from atelier.shared.models import ModelRecord
from atelier.workers.cache import LoadedModels
from atelier.workers.checkpoints import restore_checkpoint
from atelier.workers.corpus import fables
from atelier.workers.gpu import configure_tensorflow
from atelier.workers.kinds.base import (
    GenerateResult,
    JobContext,
    ModelKind,
    TrainResult,
    timing_metrics,
)
from atelier.workers.kinds.textgen_decoding import Decoder, SamplerSpec
from atelier.workers.kinds.textgen_model import (
    HeldOut,
    TextgenConfig,
    build_language_model,
    compile_for_training,
    training_windows,
)
from atelier.workers.kinds.textgen_ngram import (
    NGRAM_KEYS,
    NGRAM_ORDER_KEY,
    NGRAM_TOKENS_KEY,
    NGRAM_WEIGHT_KEY,
    NgramMixture,
    TokenArray,
    TokenNgram,
)
from atelier.workers.kinds.textgen_tokens import TOKENIZER_KEY, new_tokens, tokens_from_config
from atelier.workers.training import Groups, Sample, Trainer, run_training

VALIDATION_FRACTION = 0.05
VALIDATION_WINDOWS = 32
SAMPLES = SamplerSpec(temperature=0.8, top_k=10)  # the samples written during training
SAMPLE_TOKENS = 120


def cut_at_stops(text: str, stops: list[str]) -> str:
    cuts = [text.find(stop) for stop in stops if stop and stop in text]
    return text[: min(cuts)] if cuts else text


def read_corpus(name: str, ctx: JobContext) -> str:
    if name == "fables":
        return fables()
    info = ctx.datasets.get_for_owner(name, ctx.job.owner)
    if info is None or info.modality != "text" or info.data_key is None:
        raise PermanentJobError(f"text dataset {name!r} no longer exists")
    return ctx.objects.get_bytes(info.data_key).decode("utf-8")


class TextgenTrainer(Trainer[TextgenTrainParams]):
    lm: keras.Model

    def build(self) -> keras.Model:
        p = self.params
        text = read_corpus(p.dataset, self.ctx)
        split = int(len(text) * (1 - VALIDATION_FRACTION))
        # The vocabulary is learned from the training text only: held-out text stays unseen.
        self.tokens = new_tokens(text[:split], p.vocabulary_size)
        train = self.tokens.encode(text[:split])
        # Held-out windows may start in the last context of training text, so that a small
        # corpus still has whole windows to measure on (its targets are mostly held out).
        validation = np.concatenate([train[-p.sequence_length :], self.tokens.encode(text[split:])])
        if len(train) < 4 * (p.sequence_length + 1) or len(validation) < p.sequence_length + 2:
            raise PermanentJobError(
                f"the corpus has {len(train)} training tokens; it needs at least "
                f"{4 * (p.sequence_length + 1)} for sequence_length {p.sequence_length}"
            )
        self.train_tokens = train
        vocabulary = self.tokens.vocabulary_size
        self.ngram = TokenNgram(train, vocabulary, p.ngram_order) if p.ngram_order else None
        self.held_out = HeldOut(
            validation,
            p.sequence_length,
            VALIDATION_WINDOWS,
            p.seed,
            self.tokens.byte_lengths(),
            self.ngram,
        )
        self.model_config = TextgenConfig(
            p.sequence_length,
            p.num_layers,
            p.num_heads,
            p.hidden_dim,
            p.dropout,
            self.tokens.vocabulary_size,
        )
        self.lm = build_language_model(self.model_config)
        compile_for_training(self.lm, p.learning_rate, p.steps, jit_compile=True)
        self.mixture = None if self.ngram is None else NgramMixture(self.ngram, 0.5)
        self.decoder = Decoder(self.lm, self.tokens, mixture=self.mixture)
        return self.lm

    def batches(self, start_step: int) -> Any:
        p = self.params
        return training_windows(
            self.train_tokens, p.sequence_length, p.batch_size, p.seed + start_step
        )

    def state(self) -> Groups:
        return {"lm": self.lm.weights, "opt": self.lm.optimizer.variables}

    def build_optimizers(self) -> None:
        self.lm.optimizer.build(self.lm.trainable_variables)

    def weights(self) -> Groups:
        if self.ngram is None:
            return {"lm": self.lm.weights}
        return {"lm": self.lm.weights, "ngram": [TokenArray(self.train_tokens)]}

    def sample(self, step: int) -> Sample:
        """Validation loss (which also refits the n-gram's share of the mixture), and a
        continuation of the sample prompt."""
        p = self.params
        metrics = self.held_out.metrics(self.lm)
        if self.mixture is not None:
            self.mixture.weight = self.held_out.network_weight
        sampled = self.decoder.sample(p.sample_prompt, SAMPLE_TOKENS, 1, SAMPLES, p.seed)
        text = p.sample_prompt + sampled[0]
        return Sample(
            text.encode(),
            "txt",
            "text/plain; charset=utf-8",
            text=text,
            metrics=metrics,
        )

    def config(self) -> dict[str, Any]:
        mixture: dict[str, Any] = {}
        if self.mixture is not None:
            # Fitted for the final weights here, whether or not this attempt sampled them.
            self.held_out.metrics(self.lm)
            mixture = {
                NGRAM_ORDER_KEY: self.params.ngram_order,
                NGRAM_WEIGHT_KEY: self.held_out.network_weight,
                NGRAM_TOKENS_KEY: len(self.train_tokens),
            }
        return {**self.model_config.to_dict(), **self.tokens.to_config(), **mixture}

    def describe(self) -> str:
        size = len(self.train_tokens)
        return f"{self.model_config} on {self.params.dataset} ({size} training tokens)"


class TextgenKind(ModelKind):
    name = "textgen"

    def setup(self) -> None:
        configure_tensorflow(self.settings.mixed_precision)
        self._models: LoadedModels[Decoder] = LoadedModels(self.settings.model_cache_size)

    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult:
        return run_training(TextgenTrainer(TextgenTrainParams.model_validate(params), ctx), ctx)

    # --- generation -------------------------------------------------------------------------
    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult:
        p = TextgenGenerateParams.model_validate(params)
        started = time.perf_counter()
        decoder, cached = self._models.get_or_load(model.id, lambda: self._load(model, ctx))
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
    def _load(model: ModelRecord, ctx: JobContext) -> Decoder:
        """A model's network and tokenizer; a record without a tokenizer is byte-level."""
        stored = model.config
        extra = {TOKENIZER_KEY, *NGRAM_KEYS}
        config = TextgenConfig(**{k: v for k, v in stored.items() if k not in extra})
        lm = build_language_model(config)
        corpus = TokenArray()
        groups = {"lm": lm.weights, "ngram": [corpus]} if NGRAM_ORDER_KEY in stored else {}
        restore_checkpoint(groups or {"lm": lm.weights}, ctx.objects.get_bytes(model.weights_key))
        mixture = None
        if groups:
            ngram = TokenNgram(corpus.value, config.vocabulary_size, int(stored[NGRAM_ORDER_KEY]))
            mixture = NgramMixture(ngram, float(stored[NGRAM_WEIGHT_KEY]))
        return Decoder(lm, tokens_from_config(stored), mixture=mixture)

    @staticmethod
    def _store_texts(texts: list[str], ctx: JobContext) -> list[OutputRef]:
        for index, text in enumerate(texts):
            name = f"sample-{index}.txt"
            ctx.uploader.put(
                name,
                ctx.output_key(name),
                text.encode(),
                "text/plain; charset=utf-8",
            )
        refs = ctx.uploader.wait()
        by_name = dict(zip([f"sample-{i}.txt" for i in range(len(texts))], texts, strict=True))
        return [ref.model_copy(update={"text": by_name[ref.name]}) for ref in refs]
