"""The ``textgen`` plug-in: train a causal language model (``causal_lm``) over bytes or a
byte-pair vocabulary learned from the corpus (``tokens``), optionally interpolated
with a token n-gram, and write text from one (``decoding``)."""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np

from ....shared.errors import PermanentJobError
from ....shared.jobs import OutputRef
from ....shared.kinds.textgen import TextgenGenerateParams, TextgenTrainParams
from ....shared.models import ModelRecord
from ...cache import LoadedModels
from ...checkpoints import restore_checkpoint
from ...corpus import fables
from ...gpu import configure_tensorflow
from ...training import Groups, Sample, TrainingKind
from ..base import (
    Exportable,
    GenerateResult,
    JobContext,
    timing_metrics,
)
from ..causal_lm.network import (
    LanguageModelConfig,
    WarmupCosine,
    build_language_model,
)
from ..causal_lm.ngram import (
    NGRAM_KEYS,
    NGRAM_ORDER_KEY,
    NGRAM_TOKENS_KEY,
    NGRAM_WEIGHT_KEY,
    NgramMixture,
    TokenArray,
    TokenNgram,
)
from ..causal_lm.sampling import SamplerSpec
from ..causal_lm.trainer import CausalLmTrainer
from .decoding import Decoder
from .held_out import HeldOut
from .tokens import (
    TOKENIZER_KEY,
    TextTokens,
    new_tokens,
    tokens_from_config,
)

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
    ctx.preparation.phase("downloading the dataset", 1, "files")
    text = ctx.dataset_bytes(name, "text").decode("utf-8")
    ctx.preparation.advance()
    return text


def split_corpus(text: str) -> tuple[str, str]:
    """(training, held-out) text: the last 5% is held out."""
    split = int(len(text) * (1 - VALIDATION_FRACTION))
    return text[:split], text[split:]


def text_schedule(p: TextgenTrainParams) -> WarmupCosine:
    """Warm up over a tenth of the run (at most 100 steps) from 0."""
    return WarmupCosine(p.learning_rate, p.steps, warmup=min(100, p.steps // 10))


class TextgenTrainer(CausalLmTrainer[TextgenTrainParams, str]):
    """Trains on a corpus: the text of the job's dataset."""

    tokens: TextTokens

    def build(self) -> keras.Model:
        p = self.params
        train = self._tokenize()
        vocabulary = self.tokens.vocabulary_size
        self.ngram = TokenNgram(train, vocabulary, p.ngram_order) if p.ngram_order else None
        self.held_out = HeldOut(
            self.validation_tokens,
            p.sequence_length,
            VALIDATION_WINDOWS,
            p.seed,
            self.tokens.byte_lengths(),
            self.ngram,
        )
        network = LanguageModelConfig(
            p.sequence_length, p.num_layers, p.num_heads, p.hidden_dim, p.dropout, vocabulary
        )
        lm = self.build_network(network, train, p.batch_size, text_schedule(p), jit_compile=True)
        self.mixture = None if self.ngram is None else NgramMixture(self.ngram, 0.5)
        self.decoder = Decoder(lm, self.tokens, mixture=self.mixture)
        return lm

    def _tokenize(self) -> np.ndarray:
        """The training tokens; sets the tokenizer and the held-out tokens."""
        p = self.params
        text, held_out = split_corpus(self.data)
        # Learning the vocabulary, encoding the training text, then the held-out text.
        self.preparation.phase("tokenising the dataset", 3, "stages")
        # The vocabulary is learned from the training text only: held-out text stays unseen.
        # A run continuing a model keeps its vocabulary, which encodes any text.
        parent = self.parent
        self.tokens = (
            tokens_from_config(parent.config) if parent else new_tokens(text, p.vocabulary_size)
        )
        self.preparation.advance()
        train = self.tokens.encode(text)
        self.preparation.advance()
        # Held-out windows may start in the last context of training text, so that a small
        # corpus still has whole windows to measure on (its targets are mostly held out).
        self.validation_tokens = np.concatenate(
            [train[-p.sequence_length :], self.tokens.encode(held_out)]
        )
        self.preparation.advance()
        if len(train) < 4 * (p.sequence_length + 1) or (
            len(self.validation_tokens) < p.sequence_length + 2
        ):
            raise PermanentJobError(
                f"the corpus has {len(train)} training tokens; it needs at least "
                f"{4 * (p.sequence_length + 1)} for sequence_length {p.sequence_length}"
            )
        return train

    def weights(self) -> Groups:
        if self.ngram is None:
            return super().weights()
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
        return {**self.network.to_dict(), **self.tokens.to_config(), **mixture}

    def describe(self) -> str:
        size = len(self.train_tokens)
        return f"{self.network} on {self.params.dataset} ({size} training tokens)"


class TextgenKind(TrainingKind[TextgenTrainParams]):
    name = "textgen"
    train_params = TextgenTrainParams

    def setup(self) -> None:
        configure_tensorflow(self.settings.mixed_precision)
        self._models: LoadedModels[Decoder] = LoadedModels(self.settings.model_cache_size)

    def trainer(self, params: TextgenTrainParams, ctx: JobContext) -> TextgenTrainer:
        return TextgenTrainer(params, read_corpus(params.dataset, ctx))

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

    def exportable(self, model: ModelRecord, weights: bytes) -> Exportable:
        """The network alone (an n-gram mixed in at generation is not exported) and its
        tokenizer: ``tokenizer.json`` (the ``tokenizers`` library's format) for a
        byte-pair vocabulary, nothing for bytes."""
        from ...export.networks import plain_language_model

        extra = {TOKENIZER_KEY, *NGRAM_KEYS}
        config = LanguageModelConfig(**{k: v for k, v in model.config.items() if k not in extra})
        lm = build_language_model(config)
        restore_checkpoint({"lm": lm.weights}, weights)
        stored = model.config.get(TOKENIZER_KEY)
        files = {"tokenizer.json": str(stored).encode()} if stored else {}
        details = {**config.to_dict(), "tokenizer": "byte-pair" if stored else "bytes"}
        return Exportable(plain_language_model(lm), files, details)

    @staticmethod
    def _load(model: ModelRecord, ctx: JobContext) -> Decoder:
        """A model's network and tokenizer; a record without a tokenizer is byte-level."""
        stored = model.config
        extra = {TOKENIZER_KEY, *NGRAM_KEYS}
        config = LanguageModelConfig(**{k: v for k, v in stored.items() if k not in extra})
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
