"""How ``textgen`` measures its model as it trains: the loss on held-out text, in bits
per byte, of the network alone or interpolated with its n-gram."""

from __future__ import annotations

import math

import keras
import numpy as np

from ..causal_lm.network import loss_metrics
from ..causal_lm.ngram import TokenNgram, fit_mixture_weight, mixed


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
            losses = -np.log(mixed(network, self.ngram_probabilities, self.network_weight))
            extra = {"val_bits_per_byte_network": network_bits, "ngram_weight": self.network_weight}
        total = float(losses.sum())
        return {
            **loss_metrics(total / self.targets.size),
            "val_bits_per_byte": total / max(self.target_bytes, 1) / math.log(2),
            **extra,
        }
