"""A GPT-2-style causal language model built from keras-hub blocks (no download: the
backbone is built from a config), how it is compiled for training, and the windows of
tokens it trains on. Pure builders; nothing runs on import."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import keras
import keras_hub
import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class LanguageModelConfig:
    """The network's shape. The defaults are a byte-level model (``textgen``'s records
    from before subword vocabularies hold no ``vocabulary_size``)."""

    sequence_length: int = 192
    num_layers: int = 2
    num_heads: int = 4
    hidden_dim: int = 128
    dropout: float = 0.0
    vocabulary_size: int = 256

    @classmethod
    def tiny(cls, vocabulary_size: int = 256) -> LanguageModelConfig:
        """Seconds to build and train on CPU: for tests."""
        return cls(64, 1, 2, 16, vocabulary_size=vocabulary_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_language_model(config: LanguageModelConfig) -> keras_hub.models.GPT2CausalLM:
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=config.vocabulary_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.hidden_dim,
        intermediate_dim=4 * config.hidden_dim,
        dropout=config.dropout,
        max_sequence_length=config.sequence_length,
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


@dataclass(frozen=True)
class WarmupCosine:
    """A linear warm-up from ``start`` to ``peak`` over ``warmup`` steps, then a cosine
    decay to a tenth of ``peak`` by ``steps``: a run ends at a low rate, where a constant
    rate would leave the loss noisy. (The optimizer's step count is in the checkpoint, so
    a resumed run continues on the same curve.)"""

    peak: float
    steps: int
    warmup: int
    start: float = 0.0

    def build(self) -> keras.optimizers.schedules.CosineDecay:
        return keras.optimizers.schedules.CosineDecay(
            self.start,
            max(self.steps - self.warmup, 1),
            alpha=0.1,
            warmup_target=self.peak,
            warmup_steps=self.warmup,
        )


JitCompile = bool | Literal["auto"]


def compile_for_training(
    lm: keras.Model, rate: float | WarmupCosine, jit_compile: JitCompile = "auto"
) -> None:
    """AdamW (weight decay 0.01) at ``rate``, on next-token cross-entropy.

    ``jit_compile``: XLA for the training step. Keras's "auto" leaves it off on a CPU-only
    machine; on the default textgen model (2 shared CPU cores) it ran a step in 0.58 s
    against 0.82 s, the same loss."""
    learning_rate = rate.build() if isinstance(rate, WarmupCosine) else rate
    lm.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )


def training_windows(tokens: np.ndarray, length: int, batch: int, seed: int) -> tf.data.Dataset:
    """Endless random windows of ``length`` + 1 tokens of ``tokens`` (a corpus, or tunes
    laid end to end): inputs and next-token targets."""
    corpus = tf.constant(tokens)
    span = len(tokens) - length - 1

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


def loss_metrics(loss: float) -> dict[str, float]:
    """A held-out mean next-token loss in nats, and its perplexity."""
    return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0))}
