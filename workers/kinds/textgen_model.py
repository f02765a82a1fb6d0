"""The ``textgen`` model: a byte-level GPT-2-style language model built from keras-hub
blocks. No download: the backbone is built from a config and the vocabulary is the 256
byte values. Pure builders; nothing runs on import."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import keras
import keras_hub
import numpy as np
import tensorflow as tf

VOCABULARY = 256  # bytes


@dataclass(frozen=True)
class TextgenConfig:
    sequence_length: int = 192
    num_layers: int = 2
    num_heads: int = 4
    hidden_dim: int = 128
    dropout: float = 0.0

    @classmethod
    def tiny(cls) -> TextgenConfig:
        """Seconds to build and train on CPU: for tests."""
        return cls(sequence_length=64, num_layers=1, num_heads=2, hidden_dim=16)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def compile_for_training(lm: keras.Model, learning_rate: float) -> None:
    lm.compile(
        optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def training_windows(data: np.ndarray, length: int, batch: int, seed: int) -> tf.data.Dataset:
    """Endless random windows of ``length`` + 1 bytes: inputs and next-byte targets."""
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
    """Fixed windows of held-out bytes on which the loss is measured during training."""

    def __init__(self, data: np.ndarray, length: int, windows: int, seed: int) -> None:
        starts = np.random.default_rng(seed).integers(0, len(data) - length - 1, windows)
        stacked = np.stack([data[s : s + length + 1] for s in starts])
        self.targets = stacked[:, 1:]
        self.inputs = {
            "token_ids": stacked[:, :-1],
            "padding_mask": np.ones_like(stacked[:, :-1], dtype=bool),
        }

    def metrics(self, lm: keras.Model) -> dict[str, float]:
        """Mean next-byte loss in nats, and its perplexity."""
        logits = lm(self.inputs, training=False)
        loss = float(
            keras.ops.mean(
                keras.losses.sparse_categorical_crossentropy(
                    self.targets, logits, from_logits=True
                )
            )
        )
        return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0))}
