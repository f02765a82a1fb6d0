"""The ``melody`` model: a decoder-only Transformer over ABC tokens (``shared.abc``), built
from keras-hub's GPT-2 blocks (``TokenAndPositionEmbedding`` + ``TransformerDecoder``
layers) with a vocabulary of the corpus's tokens instead of bytes. No download. Pure
builders; nothing runs on import."""

from __future__ import annotations

import collections
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from atelier.shared.abc import Tune

PAD, START, END = "<pad>", "<tune>", "</tune>"
SPECIALS = (PAD, START, END)
HEADER_COMBINATIONS = 400
"""Most common (M, L, R, K) headers a model keeps, to fill in what a request leaves out."""


@dataclass(frozen=True)
class MelodyConfig:
    sequence_length: int = 256
    num_layers: int = 2
    num_heads: int = 4
    hidden_dim: int = 128
    dropout: float = 0.0
    vocabulary: tuple[str, ...] = ()
    headers: tuple[tuple[tuple[str, ...], int], ...] = field(default=())
    """(header tokens, tunes with that header) of the training corpus, commonest first."""

    @classmethod
    def tiny(cls, vocabulary: tuple[str, ...] = ()) -> MelodyConfig:
        """Seconds to build and train on CPU: for tests."""
        return cls(64, 1, 2, 16, vocabulary=vocabulary)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MelodyConfig:
        headers = tuple((tuple(tokens), int(count)) for tokens, count in data["headers"])
        return cls(**{**data, "vocabulary": tuple(data["vocabulary"]), "headers": headers})


class Vocabulary:
    """Token ↔ id; ids 0-2 are padding, a tune's start and its end."""

    def __init__(self, tokens: tuple[str, ...]) -> None:
        self.tokens = tokens
        self.ids = {token: index for index, token in enumerate(tokens)}

    @classmethod
    def of(cls, tunes: list[Tune]) -> Vocabulary:
        counts = collections.Counter(token for tune in tunes for token in tune.tokens())
        return cls((*SPECIALS, *sorted(counts, key=lambda t: (-counts[t], t))))

    def encode(self, tune: Tune) -> list[int]:
        """``<tune>``, the tune's tokens, ``</tune>`` (tokens not in the vocabulary are
        dropped: the vocabulary is built from the corpus, so only uploads differ)."""
        body = [self.ids[t] for t in tune.tokens() if t in self.ids]
        return [self.ids[START], *body, self.ids[END]]

    def decode(self, ids: list[int]) -> list[str]:
        tokens = [self.tokens[i] for i in ids if 0 <= i < len(self.tokens)]
        return [t for t in tokens if t not in SPECIALS]


def header_counts(tunes: list[Tune]) -> tuple[tuple[tuple[str, ...], int], ...]:
    counts = collections.Counter(tuple(tune.header_tokens()) for tune in tunes)
    return tuple(counts.most_common(HEADER_COMBINATIONS))


def build_language_model(config: MelodyConfig) -> keras_hub.models.GPT2CausalLM:
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(config.vocabulary),
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        hidden_dim=config.hidden_dim,
        intermediate_dim=4 * config.hidden_dim,
        dropout=config.dropout,
        max_sequence_length=config.sequence_length,
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def compile_for_training(lm: keras.Model, learning_rate: float, steps: int) -> None:
    """AdamW on a cosine schedule: a short run ends at a tenth of its rate, which is
    where most of a few-minute budget's gain comes from. (The optimizer's step count is
    in the checkpoint, so a resumed run continues on the same curve.)"""
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate / 10,
        decay_steps=max(steps - steps // 20, 1),
        alpha=0.1,
        warmup_target=learning_rate,
        warmup_steps=steps // 20,
    )
    lm.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def training_windows(stream: np.ndarray, length: int, batch: int, seed: int) -> tf.data.Dataset:
    """Endless random windows of ``length`` + 1 tokens of the tunes laid end to end
    (``</tune><tune>`` between them): inputs and next-token targets."""
    corpus = tf.constant(stream)
    span = len(stream) - length - 1

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


def padded(encoded: list[list[int]], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Tunes cut to ``length`` + 1 tokens and padded: (ids, mask of real tokens)."""
    ids = np.zeros((len(encoded), length + 1), dtype=np.int32)
    for row, tune in enumerate(encoded):
        ids[row, : min(len(tune), length + 1)] = tune[: length + 1]
    return ids, ids != 0


def cross_entropy(lm: keras.Model, encoded: list[list[int]], length: int) -> tuple[float, int]:
    """Mean next-token loss in nats over the tunes' tokens after ``<tune>`` (up to the
    context), and how many tokens that is: what ``bench/melody_quality.py`` compares with
    the n-gram baseline on the same tokens."""
    total, count = 0.0, 0
    for start in range(0, len(encoded), 64):
        ids, mask = padded(encoded[start : start + 64], length)
        logits = lm({"token_ids": ids[:, :-1], "padding_mask": mask[:, :-1]}, training=False)
        losses = keras.losses.sparse_categorical_crossentropy(ids[:, 1:], logits, from_logits=True)
        weights = mask[:, 1:]
        total += float(np.sum(np.asarray(losses) * weights))
        count += int(weights.sum())
    return total / max(count, 1), count


class HeldOut:
    """Held-out tunes on which the loss is measured during training."""

    def __init__(self, encoded: list[list[int]], length: int) -> None:
        self.encoded = encoded
        self.length = length

    def metrics(self, lm: keras.Model) -> dict[str, float]:
        loss, _ = cross_entropy(lm, self.encoded, self.length)
        return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0))}
