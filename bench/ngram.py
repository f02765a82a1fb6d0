"""The baseline a text model has to beat: a byte n-gram with interpolated Witten-Bell
smoothing, counted in seconds. It answers "is the neural model better than counting?".

    P_k(c | h) = (C(h, c) + T(h) · P_{k-1}(c | h')) / (C(h) + T(h))

where h is the k-1 bytes before c, h' drops its oldest byte, C counts and T(h) is the
number of distinct bytes seen after h; the order-0 floor is uniform over 256 bytes, so
every byte has a probability and any held-out text has a finite cost.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

BYTES = 256


class WittenBell:
    """A byte n-gram model of ``order`` (the longest context is ``order`` - 1 bytes)."""

    def __init__(self, data: bytes, order: int) -> None:
        self.order = order
        # followers[h][c] = C(h, c), for every context length 0 .. order - 1.
        self.followers: dict[bytes, Counter[int]] = defaultdict(Counter)
        for length in range(order):
            for end in range(length, len(data)):
                self.followers[data[end - length : end]][data[end]] += 1
        self.totals = {h: sum(c.values()) for h, c in self.followers.items()}

    def probability(self, history: bytes, byte: int) -> float:
        p = 1.0 / BYTES
        for length in range(min(self.order - 1, len(history)) + 1):
            context = history[len(history) - length :]
            seen = self.followers.get(context)
            if seen is None:
                break  # a longer context that never occurred has not either
            distinct, total = len(seen), self.totals[context]
            p = (seen.get(byte, 0) + distinct * p) / (total + distinct)
        return p

    def distribution(self, history: bytes) -> np.ndarray:
        p = np.full(BYTES, 1.0 / BYTES)
        for length in range(min(self.order - 1, len(history)) + 1):
            context = history[len(history) - length :]
            seen = self.followers.get(context)
            if seen is None:
                break
            counts = np.zeros(BYTES)
            counts[list(seen)] = list(seen.values())
            distinct, total = len(seen), self.totals[context]
            p = (counts + distinct * p) / (total + distinct)
        return p

    def bits_per_byte(self, held_out: bytes, history: bytes = b"") -> float:
        """Mean cost of ``held_out`` in bits per byte, each byte predicted from the bytes
        before it (``history`` supplies those before the first)."""
        text = history + held_out
        nats = 0.0
        for index in range(len(history), len(text)):
            start = max(0, index - self.order + 1)
            nats -= math.log(self.probability(text[start:index], text[index]))
        return nats / len(held_out) / math.log(2)

    def sample(self, prompt: bytes, length: int, seed: int, temperature: float = 1.0) -> bytes:
        rng = np.random.default_rng(seed)
        text = bytearray(prompt)
        for _ in range(length):
            p = self.distribution(bytes(text[-(self.order - 1) :]) if self.order > 1 else b"")
            if temperature != 1.0:
                p = p ** (1.0 / temperature)
            text.append(int(rng.choice(BYTES, p=p / p.sum())))
        return bytes(text[len(prompt) :])
