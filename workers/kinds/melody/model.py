"""The ``melody`` model: a causal language model (``causal_lm``) over ABC tokens
(``shared.kinds.melody.abc``), with a vocabulary of the corpus's tokens, and its held-out loss per
tune. Pure builders; nothing runs on import."""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass, field
from typing import Any

import keras
import numpy as np

from ....shared.kinds.melody.abc import Tune
from ..causal_lm.network import LanguageModelConfig, loss_metrics

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

    @property
    def network(self) -> LanguageModelConfig:
        """The network's shape: a token of the vocabulary per input."""
        return LanguageModelConfig(
            self.sequence_length,
            self.num_layers,
            self.num_heads,
            self.hidden_dim,
            self.dropout,
            len(self.vocabulary),
        )

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
        return loss_metrics(cross_entropy(lm, self.encoded, self.length)[0])
