"""The ``textgen`` model: a GPT-2-style language model built from keras-hub blocks over
bytes or a byte-pair vocabulary (``textgen_tokens``). No download: the backbone is built
from a config. Pure builders; nothing runs on import."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from atelier.workers.kinds.textgen_ngram import TokenNgram, fit_mixture_weight


@dataclass(frozen=True)
class TextgenConfig:
    sequence_length: int = 192
    num_layers: int = 2
    num_heads: int = 4
    hidden_dim: int = 128
    dropout: float = 0.0
    vocabulary_size: int = 256  # bytes; more: a byte-pair vocabulary

    @classmethod
    def tiny(cls) -> TextgenConfig:
        """Seconds to build and train on CPU: for tests."""
        return cls(sequence_length=64, num_layers=1, num_heads=2, hidden_dim=16)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_language_model(config: TextgenConfig) -> keras_hub.models.GPT2CausalLM:
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


def learning_rate_schedule(peak: float, steps: int) -> keras.optimizers.schedules.CosineDecay:
    """A short linear warm-up to ``peak``, then a cosine decay to a tenth of it by ``steps``:
    a run ends at a low rate, where a constant rate would leave the loss noisy."""
    warmup = min(100, steps // 10)
    return keras.optimizers.schedules.CosineDecay(
        0.0, max(steps - warmup, 1), alpha=0.1, warmup_target=peak, warmup_steps=warmup
    )


def compile_for_training(
    lm: keras.Model, learning_rate: float, steps: int | None = None, jit_compile: bool = False
) -> None:
    """AdamW at ``learning_rate``, on the warm-up and cosine schedule when ``steps`` is known.

    ``jit_compile``: XLA for the training step. Keras leaves it off on a CPU-only machine;
    on the default textgen model (2 shared CPU cores) it ran a step in 0.58 s against 0.82 s,
    the same loss."""
    rate = learning_rate if steps is None else learning_rate_schedule(learning_rate, steps)
    lm.compile(
        optimizer=keras.optimizers.AdamW(rate, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )


def training_windows(data: np.ndarray, length: int, batch: int, seed: int) -> tf.data.Dataset:
    """Endless random windows of ``length`` + 1 tokens: inputs and next-token targets."""
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


class HeldOut:
    """Fixed windows of held-out tokens on which the loss is measured during training.

    With an n-gram, the network's weight in the mixture is fitted on these windows at each
    measurement (one number over ~4,000 tokens) and the mixture is what is reported."""

    def __init__(
        self,
        data: np.ndarray,
        length: int,
        windows: int,
        seed: int,
        byte_lengths: np.ndarray,
        ngram: TokenNgram | None = None,
    ) -> None:
        starts = np.random.default_rng(seed).integers(0, len(data) - length - 1, windows)
        stacked = np.stack([data[s : s + length + 1] for s in starts])
        self.targets = stacked[:, 1:]
        self.inputs = {
            "token_ids": stacked[:, :-1],
            "padding_mask": np.ones_like(stacked[:, :-1], dtype=bool),
        }
        self.target_bytes = int(byte_lengths[self.targets].sum())
        # The n-gram reads, like the network, only the window before each target.
        self.ngram_probabilities = (
            None
            if ngram is None
            else np.stack([ngram.target_probabilities(window, 1) for window in stacked])
        )
        self.network_weight = 1.0

    def metrics(self, lm: keras.Model) -> dict[str, float]:
        """Mean next-token loss in nats and its perplexity; bits per byte of text (the
        same nats over the bytes the targets stand for), comparable across vocabularies.
        With an n-gram, these are the mixture's, and the network's own bits per byte and
        its weight in the mixture are reported beside them."""
        logits = lm(self.inputs, training=False)
        losses = np.asarray(
            keras.losses.sparse_categorical_crossentropy(self.targets, logits, from_logits=True)
        )
        network_bits = float(losses.sum()) / max(self.target_bytes, 1) / math.log(2)
        extra: dict[str, float] = {}
        if self.ngram_probabilities is not None:
            network = np.exp(-losses)
            self.network_weight = fit_mixture_weight(network, self.ngram_probabilities)
            mixed = self.network_weight * network + (1 - self.network_weight) * (
                self.ngram_probabilities
            )
            losses = -np.log(mixed)
            extra = {"val_bits_per_byte_network": network_bits, "ngram_weight": self.network_weight}
        total = float(losses.sum())
        loss = total / self.targets.size
        return {
            "val_loss": loss,
            "val_perplexity": math.exp(min(loss, 50.0)),
            "val_bits_per_byte": total / max(self.target_bytes, 1) / math.log(2),
            **extra,
        }
